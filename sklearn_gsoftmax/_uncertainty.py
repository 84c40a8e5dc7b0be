"""The uncertain flag's public methods, for both estimators.

:class:`UncertaintyMixin` gives ``predict_uncertain``, ``predict_set``,
``predict_frame``, ``shift_report``, ``select_for_labeling`` and
``confidence_margin`` to an estimator that implements ``_predictions(X)`` (a
:class:`Predictions`) and ``_novelty_features(X)`` (the inputs of each novelty
detector), and calls ``_fit_uncertainty`` at the end of ``fit``. The rules and
the fitted state are ``_flag``'s; the mixin stores that state in the
estimator's attributes and applies it.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd

from ._class_mix import ClassMixMixin

# ConformalReference is imported here too for models pickled before it moved
from ._conformal import ConformalReference  # noqa: F401
from ._flag import (
    DEFAULT_RULES,
    RULES,
    SAMPLE_RULES,
    Rules,
    assigned_statistics,
    batch_statistics,
    check_rules,
    fit_flag,
    probability_masks,
)
from ._labeling import select_diverse
from ._links import top_probability
from ._novelty import missing_counts
from ._priors import prior_requests, prior_state
from ._shift import MIN_BATCH, shift_report
from ._source import lazily
from ._ties import at_most, first_index_of_max

__all__ = ["DEFAULT_RULES", "RULES", "Predictions", "UncertaintyMixin", "check_alpha"]


def check_alpha(alpha) -> float:
    """Validate a miscoverage level ``alpha`` in (0, 1)."""
    if isinstance(alpha, bool) or not isinstance(alpha, int | float | np.floating):
        raise ValueError(f"alpha must be a number in (0, 1), got {alpha!r}.")
    if not 0.0 < alpha < 1.0:
        raise ValueError(
            f"alpha must lie in (0, 1) (the share of samples whose true class may "
            f"fall outside the set), got {alpha}."
        )
    return float(alpha)


class Predictions(NamedTuple):
    """What the rules need of new samples, from an estimator's ``_predictions``.

    ``proba`` the (averaged) probabilities, ``per_model`` each model's own,
    ``out_of_range`` whether a score leaves a calibrator's fitted range (None
    when not asked for) and ``margin`` the calibrated score margin of the top
    class over the runner-up, which keeps ordering where probabilities
    saturate (averaged; ``per_model_margin`` each model's own).
    """

    proba: np.ndarray
    per_model: list
    out_of_range: np.ndarray | None
    margin: np.ndarray
    per_model_margin: list


class UncertaintyMixin(ClassMixMixin):
    """The uncertain flag's public methods (see the module)."""

    def _fit_uncertainty(self, held, per_model, novelty=None) -> None:
        """Learn the flag's state from the held-out predictions: ``held`` made
        as new predictions are made, ``per_model`` each model's own (sources
        of ``_flag.held_out_rows``); ``novelty`` the fitted ``NoveltyModel``
        of the ``novelty`` rule."""
        self._uncertainty_rules = check_rules(self.uncertainty_rules)
        fitted = fit_flag(
            self._rules(threshold=self.uncertainty_threshold),
            held,
            per_model,
            novelty,
            self._score_columns(),
            # in the flag's passes: on a cluster, round trips saved
            alongside=prior_requests(held, per_model, len(self.classes_)),
        )
        self.uncertainty_threshold_ = fitted.threshold
        self.uncertainty_margin_threshold_ = fitted.margin_threshold
        self.coverage_ = fitted.coverage
        self.accepted_accuracy_ = fitted.accuracy
        self._conformal_references = fitted.references
        self._novelty = novelty
        self._held_out_summary = fitted.summary
        self._flag_warning_given = False
        self._prior_state = prior_state(fitted.alongside)
        self.training_priors_ = self._prior_state["implied"].copy()

    @property
    def conformity_scores_(self) -> np.ndarray:
        """The held-out nonconformity scores, each model's part sorted (see
        the estimators' Attributes): read from the conformal references when
        asked for, so that a fit whose model never ranks against them does
        not sort them (on 10^6 scores the sort costs a tenth of the
        calibrator's fit)."""
        references = self.__dict__.get("_conformal_references")
        if references is None:
            raise AttributeError(
                f"'{type(self).__name__}' object has no attribute 'conformity_scores_'"
            )
        return np.concatenate([reference.scores for reference in references])

    def _rules(self, threshold=None, *, adapted=True) -> Rules:
        """The flag's parameters and fitted thresholds (those of fit with
        ``adapted=False``, on a copy adapted to other class proportions)."""
        margin_threshold = getattr(self, "uncertainty_margin_threshold_", -math.inf)
        unadapted = self.__dict__.get("_unadapted_thresholds")
        if not adapted and unadapted is not None and threshold is None:
            threshold, margin_threshold = unadapted
        return Rules(
            self._uncertainty_rules,
            self.uncertainty_threshold_ if threshold is None else threshold,
            margin_threshold,
            self.target_accuracy,
            self.ambiguity_ratio,
            self.conformal_alpha,
            self.novelty_alpha,
        )

    def _warn_if_flagging_everything(self) -> None:
        """Warn, at the first use of the flag of a fitted model, when
        ``low_confidence`` flags every prediction because no threshold reached
        ``target_accuracy`` in fit (a fit that never uses the flag, as in a
        grid search, stays quiet)."""
        if (
            "low_confidence" in self._uncertainty_rules
            and math.isinf(self.uncertainty_threshold_)
            and not self.__dict__.get("_flag_warning_given", False)
        ):
            # once per fitted model: at every batch of an online service it
            # would bury the warnings that are news
            self._flag_warning_given = True
            warnings.warn(
                # worded as the fit's warning was, which filters may match
                "no confidence threshold reaches target_accuracy="
                f"{self.target_accuracy} on the held-out predictions of fit "
                "(coverage_ == 0), so the low_confidence rule flags every "
                "prediction. Lower target_accuracy or improve the model.",
                UserWarning,
                # the caller of predict_uncertain / predict_frame
                stacklevel=4,
            )

    def _check_uncertainty_fitted(self):
        if not hasattr(self, "_conformal_references"):
            raise ValueError(
                f"this {type(self).__name__} has no fitted uncertain-flag state: it "
                "was fitted on one fold inside GaussianSoftmaxClassifier (use the "
                "classifier's methods) or saved by a version of sklearn-gsoftmax "
                "without the flag. Refit it to use predict_uncertain, predict_set "
                "and predict_frame."
            )

    def _rule_masks(
        self, X, *, adapted: bool = True
    ) -> tuple[Predictions, dict, tuple | None]:
        """The predictions, each rule's flags and, when the ``novelty`` rule is
        on, the novelty p-values and how many of each sample's features the
        detector found missing (with their number). On a copy adapted to other
        class proportions (:meth:`adapt_priors`), the adapted ones unless
        ``adapted=False``."""
        predictions = self._predictions(X)
        self._check_uncertainty_fitted()
        self._warn_if_flagging_everything()
        ratio = self.__dict__.get("_prior_ratio") if adapted else None
        if ratio is not None:
            # the per-model probabilities stay as fitted: the conformal rule
            # ranks them against the held-out scores, reweighted
            predictions = predictions._replace(proba=self._adapted(predictions.proba))
        sets = None
        if ratio is not None and "conformal" in self._uncertainty_rules:
            sets = self._conformal_sets(predictions.per_model, self.conformal_alpha)
        masks = probability_masks(
            self._rules(adapted=adapted),
            predictions.proba,
            predictions.per_model,
            self._conformal_references,
            predictions.margin,
            sets,
        )
        novelty = None
        if "out_of_range" in self._uncertainty_rules:
            masks["out_of_range"] = predictions.out_of_range
        if "novelty" in self._uncertainty_rules:
            features = self._novelty_features(X)
            pvalues = self._novelty.pvalues(features)
            novelty = (pvalues, *missing_counts(features[0]))
            masks["novelty"] = at_most(pvalues, self.novelty_alpha, floor=0.0)
        return (
            predictions,
            {rule: masks[rule] for rule in self._uncertainty_rules},
            novelty,
        )

    def confidence_margin(self, X) -> np.ndarray:
        """The calibrated score margin of each prediction: its top class's
        calibrated score minus the runner-up's.

        Far from the boundary the bounded links saturate, so the most confident
        predictions share one probability; the margin keeps ordering them by
        their scores. Everything here that ranks by confidence (the automatic
        threshold, :meth:`select_for_labeling`) breaks ties with it; pass it as
        ``margin`` to :func:`~sklearn_gsoftmax.metrics.risk_coverage_curve`.

        Parameters
        ----------
        X : array-like of shape (m, ...)
            Samples (for the calibrator: scores).

        Returns
        -------
        margin : ndarray of shape (m,)
            At least 0; averaged over the (classifier, calibrator) pairs.
        """
        return self._predictions(X, with_range=False).margin

    def shift_report(self, X, y=None, *, alpha: float = 0.01):
        """Does this batch look like the training data? One row per check.

        Each rule's flag rate and the mean top-class probability (and, with
        labels, the accuracy, the accuracy of the predictions that the rules on
        probabilities accept, and the log-loss) are compared with what the
        held-out (out-of-fold) training predictions showed at fit time. Flag
        rates are tested with Fisher's exact test (two-sided: a shift may also
        make a model more confident; one-sided for ``out_of_range``, whose
        expected rate is an upper bound), the mean probability with Welch's
        z-test (two-sided), the accuracies with Fisher's exact test (one-sided,
        lower; a batch in which nothing is accepted where a share was expected
        has the p-value of that share being refused every time) and the
        log-loss with Welch's z-test (one-sided, higher). A check is
        ``shifted`` when its p-value is below ``alpha`` divided by the number
        of checks (Bonferroni), so that a batch from the training distribution
        is called shifted with chance at most about ``alpha``.

        Each held-out training prediction came from the one model that did not
        see the sample; an ensemble predicts by the average of its models,
        which is less confident than any one of them. So the tests compare the
        held-out predictions with the batch's samples each predicted by one
        model in turn; the ``observed`` column holds the average's values and
        ``expected`` the held-out values moved by the difference the
        averaging makes on this batch.

        Parameters
        ----------
        X : array-like of shape (m, ...)
            A batch of at least 20 samples (for the calibrator: scores).
        y : array-like of shape (m,), default=None
            Their labels, if known: adds the accuracy and log-loss checks.
        alpha : float in (0, 1), default=0.01
            Family-wise false-alarm rate of the report.

        Returns
        -------
        report : pandas.DataFrame
            Indexed by check, with the columns ``observed``, ``expected``,
            ``p_value``, ``shifted`` and ``test`` (the test used). The verdict
            for the batch, ``report["shifted"].any()``, is also in
            ``report.attrs["shifted"]``.
        """
        alpha = check_alpha(alpha)
        predictions, masks, _ = self._rule_masks(X, adapted=False)
        if not hasattr(self, "_held_out_summary"):
            raise ValueError(
                f"this {type(self).__name__} was saved by a version of "
                "sklearn-gsoftmax without the shift report's held-out summary; "
                "refit it to use shift_report."
            )
        proba = predictions.proba
        if proba.shape[0] < MIN_BATCH:
            raise ValueError(
                f"shift_report needs a batch of at least {MIN_BATCH} samples to test "
                f"anything, got {proba.shape[0]}; pool batches before reporting."
            )
        y_index = None if y is None else self._label_indices(y, proba.shape[0])
        rules = self._rules(adapted=False)
        # the rules that do not look at a model's probabilities are the same
        # for the average and for each model
        shared = {rule: masks[rule] for rule in masks if rule in SAMPLE_RULES}
        observed = batch_statistics(
            rules, proba, predictions.margin, None, y_index, masks=masks
        )
        assigned = assigned_statistics(
            rules,
            predictions.per_model,
            predictions.per_model_margin,
            self._conformal_references,
            y_index,
        )
        merged = {**assigned.masks, **shared}
        assigned = assigned._replace(
            masks={rule: merged[rule] for rule in self._uncertainty_rules}
        )
        has_mix = "_prior_state" in self.__dict__
        report = shift_report(
            self._held_out_summary,
            observed,
            assigned,
            alpha=alpha,
            extra_checks=int(has_mix),
        )
        return self._with_class_mix(report, proba, observed, assigned)

    def _label_indices(self, y, n_rows: int) -> np.ndarray:
        """Positions in ``classes_`` of labels ``y``, with a clear error for
        labels the estimator does not know."""
        y = np.asarray(y).reshape(-1)
        if y.shape[0] != n_rows:
            raise ValueError(
                f"X and y have different lengths: {n_rows} and {y.shape[0]}."
            )
        known = set(self.classes_.tolist())
        unseen = sorted({label for label in y.tolist() if label not in known}, key=str)
        if unseen:
            raise ValueError(
                f"y holds labels {unseen} unseen in fit (classes_ are "
                f"{self.classes_.tolist()}); pass labels of the fitted classes."
            )
        return np.searchsorted(self.classes_, y)

    def select_for_labeling(self, X, n_select: int) -> np.ndarray:
        """Positions of the samples most worth labelling next.

        A label is worth most on an unsure prediction (low top-class
        probability) and on a novel sample (flagged by the ``novelty`` rule,
        when it is on). The pool is split into ``n_select`` clusters by k-means
        weighted by that worth, in the features the novelty detector sees (else
        the probabilities), and each cluster gives the sample nearest its
        centre: the labels go where they are worth most, spread out, without
        near-duplicates. The positions come in priority order: novel first,
        then the least confident, ties among saturated probabilities broken by
        the calibrated score margin.

        Parameters
        ----------
        X : array-like of shape (m, ...)
            The pool of unlabelled samples (for the calibrator: scores).
        n_select : int
            How many to select, between 1 and ``m``.

        Returns
        -------
        positions : ndarray of int of shape (n_select,)
            Row positions into ``X``, most worth labelling first.
        """
        predictions = self._predictions(X, with_range=False)
        self._check_uncertainty_fitted()
        m = predictions.proba.shape[0]
        if (
            isinstance(n_select, bool)
            or not isinstance(n_select, int | np.integer)
            or not 1 <= n_select <= m
        ):
            raise ValueError(
                f"n_select must be an integer between 1 and the number of samples "
                f"in X ({m}), got {n_select!r}."
            )
        # the samples are placed where the novelty detector sees them, or by
        # their probabilities when the rule is off
        novelty, pvalues, features = None, None, predictions.proba
        if self._novelty is not None:
            novelty_features = self._novelty_features(X)
            novelty, pvalues = self._novelty.scores_and_pvalues(novelty_features)
            features = self._novelty.placement(novelty_features[0])
        return select_diverse(
            n_select,
            confidence=top_probability(predictions.proba),
            margin=predictions.margin,
            features=features,
            pvalues=pvalues,
            alpha=self.novelty_alpha,
            novelty=novelty,
        )

    @lazily
    def predict_uncertain(self, X) -> np.ndarray:
        """Flag the predictions not to trust, by the rules in ``uncertainty_rules``.

        Parameters
        ----------
        X : array-like of shape (m, ...)
            Samples (for the calibrator: scores), as for ``predict_proba``.

        Returns
        -------
        uncertain : ndarray of bool of shape (m,)
            True where at least one rule flags the prediction.
        """
        predictions, masks, _ = self._rule_masks(X)
        uncertain = np.zeros(predictions.proba.shape[0], dtype=bool)
        for mask in masks.values():
            uncertain |= mask
        return uncertain

    def predict_set(self, X, alpha=None) -> np.ndarray:
        """Conformal prediction sets with ``1 - alpha`` marginal coverage.

        A class enters the set when its nonconformity ``1 - p_k`` is not among
        the ``alpha`` largest of the held-out ones (``conformity_scores_``),
        each new score ranked against the scores of the model that produced it:
        split-conformal prediction for a single model (the calibrator, or
        ``ensemble=False``), cross-conformal prediction with one model per fold.
        For exchangeable data the true class is in the set for a share of about
        ``1 - alpha`` of the samples on average (exactly at least ``1 - alpha``
        for split-conformal with held-out scores; cross-conformal carries a
        weaker formal guarantee but covers about as well in practice). It says
        nothing about any single sample, nor about shifted data.

        Parameters
        ----------
        X : array-like of shape (m, ...)
            Samples (for the calibrator: scores).
        alpha : float in (0, 1), default=None
            Miscoverage level; ``None`` uses ``conformal_alpha``.

        Returns
        -------
        sets : ndarray of bool of shape (m, n_classes)
            ``sets[i, k]`` is True when ``classes_[k]`` is in sample ``i``'s set.
        """
        alpha = check_alpha(self.conformal_alpha if alpha is None else alpha)
        per_model = self._predictions(X, with_range=False).per_model
        self._check_uncertainty_fitted()
        return self._conformal_sets(per_model, alpha)

    @lazily
    def predict_frame(self, X):
        """A table of predictions to act on or to route to a person.

        Parameters
        ----------
        X : array-like of shape (m, ...)
            Samples (for the calibrator: scores). A DataFrame's index is kept.

        Returns
        -------
        frame : pandas.DataFrame
            Indexed like ``X`` (else 0..m-1), with the columns ``prediction``,
            ``proba_<class>`` for each class, ``novelty_pvalue`` when the
            ``novelty`` rule is on (the share of held-out training samples at
            least as novel: small means unlike the training data),
            ``uncertain`` and ``reasons`` (the names of the rules that flagged
            the row, comma-separated; empty when none did).
        """

        predictions, masks, novelty = self._rule_masks(X)
        proba = predictions.proba
        index = X.index if isinstance(X, pd.DataFrame | pd.Series) else None
        columns = {"prediction": self.classes_[first_index_of_max(proba)]}
        columns.update(
            (f"proba_{label}", proba[:, k]) for k, label in enumerate(self.classes_)
        )
        if novelty is not None:
            columns["novelty_pvalue"] = novelty[0]
        flagged = np.zeros(proba.shape[0], dtype=bool)
        reasons = np.full(proba.shape[0], "", dtype=object)
        for rule, mask in masks.items():
            flagged |= mask
            named = np.full(proba.shape[0], rule, dtype=object)
            if rule == "novelty":
                # missing values make a sample novel: say so, it is the fix
                _, missing, n_features = novelty
                some = mask & (missing > 0)
                named[some] = [
                    f"novelty ({count} of {n_features} features missing)"
                    for count in missing[some]
                ]
            reasons[mask] = [
                r + ", " + name if r else name
                for r, name in zip(reasons[mask], named[mask])
            ]
        columns["uncertain"] = flagged
        columns["reasons"] = reasons
        # one frame at once: added one by one, 200 class columns set off 100
        # of pandas' PerformanceWarnings
        return pd.DataFrame(columns, index=index)

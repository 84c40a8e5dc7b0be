"""The uncertain flag: which predictions not to act on, and why.

Pure numpy functions of probabilities and labels, and a mixin that gives both
estimators ``predict_uncertain``, ``predict_set`` and ``predict_frame`` from two
hooks: held-out probabilities at fit time, and probabilities plus an
out-of-range mask at predict time.

The rules (``uncertainty_rules``):

``low_confidence``
    The top-class probability is below ``uncertainty_threshold``. Catches the
    predictions the model itself says are likely wrong.
``ambiguous``
    The top class is less than ``ambiguity_ratio`` times as probable as the
    runner-up: two (or more) classes compete. Catches confusions between close
    classes even when the top probability is moderate (in a 10-class problem,
    0.45 against 0.40 is ambiguous; 0.45 against nine at 0.06 is not).
``out_of_range``
    A score falls outside the range the calibrator saw in fit. This marks
    novelty, not error: the model extrapolates there, often confidently and
    correctly, so the rule is off by default. It serves data collection:
    labelling those samples extends the range the model has evidence for.
``conformal``
    The split-conformal prediction set at level ``1 - conformal_alpha`` does not
    hold exactly one class: several classes cannot be excluded (or none fits).
``novelty``
    The sample is unlike the training data: its conformal novelty p-value is at
    most ``novelty_alpha`` (see ``_novelty``), so in-distribution at most about
    that share is flagged. Confidence cannot see shift (far from the training
    data models are confidently wrong); this rule does.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import numpy as np

from . import _dask
from ._selective import low_confidence, select_threshold
from ._shift import held_out_summary
from ._ties import TIE_RTOL, at_most, below, first_index_of_max, index_at_or_above

RULES = ("low_confidence", "ambiguous", "out_of_range", "conformal", "novelty")

#: The rules applied unless ``uncertainty_rules`` says otherwise: one for the
#: predictions the model rates unlikely, one for samples unlike its training data.
DEFAULT_RULES = ("low_confidence", "novelty")


def check_rules(rules) -> tuple:
    """Validate ``uncertainty_rules``: a tuple (or list) of known rule names."""
    if not isinstance(rules, tuple | list):
        raise ValueError(
            f"uncertainty_rules must be a tuple of rule names from {RULES}, got "
            f"{rules!r}."
        )
    unknown = [rule for rule in rules if rule not in RULES]
    if unknown:
        raise ValueError(
            f"unknown uncertainty rule(s) {unknown}; the rules are {RULES}."
        )
    return tuple(dict.fromkeys(rules))


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


def outside_range(z: np.ndarray, score_range: np.ndarray) -> np.ndarray:
    """Rows of scores ``z`` with a score outside ``score_range`` (row 0 the
    minimum, row 1 the maximum of each column)."""
    low, high = score_range
    # relative to the range itself: raw scores may be in any unit, and a
    # score equal to a training extreme stays inside whatever its last bits
    outside = (z < low - TIE_RTOL * np.abs(low)) | (z > high + TIE_RTOL * np.abs(high))
    return outside if outside.ndim == 1 else outside.any(axis=1)


def top_two(proba: np.ndarray):
    """The largest and second largest probability of each row."""
    if proba.shape[1] == 2:
        return top_probability(proba), np.minimum(proba[:, 0], proba[:, 1])
    part = np.partition(proba, -2, axis=1)
    return part[:, -1], part[:, -2]


def top_probability(proba: np.ndarray) -> np.ndarray:
    """The largest probability of each row (the confidence)."""
    if proba.shape[1] == 2:
        # numpy reduces along a short last axis slowly: 10x faster for 10^6 rows
        return np.maximum(proba[:, 0], proba[:, 1])
    return proba.max(axis=1)


def _is_correct(proba: np.ndarray, y_index: np.ndarray) -> np.ndarray:
    return first_index_of_max(proba) == y_index


def nonconformity(proba: np.ndarray, y_index: np.ndarray) -> np.ndarray:
    """The nonconformity score ``1 - p_true`` of each row."""
    return 1.0 - proba[np.arange(len(y_index)), y_index]


class ConformalReference:
    """Held-out nonconformity scores ``1 - p_true`` of one model, sorted, with
    their cumulative weights: what a new sample's score is ranked against.

    The sort waits for the first use (``predict_set``, the ``conformal``
    rule): on 10^6 scores it costs a third of the calibrator's fit, which a
    model that never builds a prediction set need not pay.
    """

    def __init__(self, scores: np.ndarray, weights: np.ndarray):
        self._unsorted = (scores, weights)

    def __setstate__(self, state):
        # saved before the sort was deferred: already sorted
        if "scores" in state:
            state = {"_index": (state["scores"], state["cumulative"])}
        self.__dict__.update(state)

    def _sorted(self) -> tuple:
        index = self.__dict__.get("_index")
        if index is None:
            scores, weights = self._unsorted
            # the weight below a score does not depend on the order within
            # ties, so the fast unstable sort will do
            if np.all(weights == 1.0):
                index = (
                    np.sort(scores),
                    np.arange(len(scores) + 1, dtype=np.float64),
                )
            else:
                order = np.argsort(scores)
                index = (
                    scores[order],
                    np.concatenate([[0.0], np.cumsum(weights[order])]),
                )
            # one assignment: a thread reading it sees both parts or neither
            self._index = index
        return index

    @classmethod
    def pooled(cls, references) -> ConformalReference:
        """One reference holding the scores and weights of several."""
        parts = [reference._scores_and_weights() for reference in references]
        return cls(
            np.concatenate([scores for scores, _ in parts]),
            np.concatenate([weights for _, weights in parts]),
        )

    def _scores_and_weights(self) -> tuple:
        # unsorted when not sorted yet: pooling need not sort each part
        if "_index" in self.__dict__:
            scores, cumulative = self._index
            return scores, np.diff(cumulative)
        return self._unsorted

    @property
    def scores(self) -> np.ndarray:
        """The reference scores, sorted."""
        return self._sorted()[0]

    @property
    def cumulative(self) -> np.ndarray:
        """``cumulative[i]``: the total weight of the ``i`` smallest scores."""
        return self._sorted()[1]

    def weight_at_or_above(self, test_scores: np.ndarray) -> np.ndarray:
        """Total weight of the reference scores >= each test score (or
        tying with it)."""
        scores, cumulative = self._sorted()
        # a reference score that ties with a test score counts as equal
        return cumulative[-1] - cumulative[index_at_or_above(scores, test_scores)]


def conformal_sets(references, probabilities, alpha: float) -> np.ndarray:
    """Cross-conformal prediction sets.

    ``references[j]`` holds the held-out scores of the samples that model ``j``
    did not see, ``probabilities[j]`` model ``j``'s probabilities of the new
    samples. Class ``k`` enters a sample's set when its conformal p-value

        (1 + sum_j weight{i in j : s_i >= 1 - p_jk(x)}) / (W + 1)

    exceeds ``alpha`` (``W`` the total reference weight): each new score is
    ranked against the scores of the same model, so that both sides are equally
    sharp. With one model this is split-conformal prediction: the set of classes
    with ``1 - p_k <= q``, ``q`` the ``ceil((n + 1)(1 - alpha))``-th smallest
    reference score; with one model per fold it is cross-conformal prediction.
    """
    total = sum(reference.cumulative[-1] for reference in references)
    count = np.ones(probabilities[0].shape)
    for reference, proba in zip(references, probabilities):
        count += reference.weight_at_or_above(1.0 - proba)
    # a p-value that ties with alpha counts as alpha: out of the set
    return below(alpha, count / (total + 1.0))


class Predictions(NamedTuple):
    """What the rules need of new samples, from an estimator's ``_predictions``.

    ``proba`` the (averaged) probabilities, ``per_model`` each model's own,
    ``out_of_range`` whether a score leaves a calibrator's fitted range (None
    when not asked for) and ``margin`` the calibrated score margin of the top
    class over the runner-up, which keeps ordering where probabilities saturate.
    """

    proba: np.ndarray
    per_model: list
    out_of_range: np.ndarray | None
    margin: np.ndarray


class UncertaintyMixin:
    """``predict_uncertain``, ``predict_set``, ``predict_frame``,
    ``shift_report`` and ``select_for_labeling`` for an estimator that
    implements ``_predictions(X)`` (a :class:`Predictions`) and
    ``_novelty_features(X)`` (the inputs of each novelty detector), and calls
    ``_fit_uncertainty`` at the end of ``fit``."""

    def _fit_uncertainty(
        self,
        proba,
        y_index,
        weights,
        references=None,
        novelty=None,
        margin=None,
        summary_proba=None,
    ):
        """Learn the threshold from held-out predictions (ties in confidence
        broken by their calibrated ``margin``); keep the conformal references
        (one per model, in the order of ``_predictions``; ``None`` for a single
        model, whose reference is these predictions') and the fitted
        ``NoveltyModel`` of the ``novelty`` rule. ``summary_proba``, when
        given, stands for ``proba`` in what :meth:`shift_report` expects of a
        batch (an ensemble's held-out predictions as its average makes them)."""
        self._uncertainty_rules = check_rules(self.uncertainty_rules)
        confidence = top_probability(proba)
        correct = _is_correct(proba, y_index)
        self.uncertainty_margin_threshold_ = -math.inf
        if self.uncertainty_threshold == "auto":
            threshold, coverage, accuracy, self.uncertainty_margin_threshold_ = (
                select_threshold(
                    confidence,
                    correct,
                    weights,
                    self.target_accuracy,
                    margin=np.zeros_like(confidence) if margin is None else margin,
                )
            )
        else:
            threshold = float(self.uncertainty_threshold)
            accepted = ~below(confidence, threshold)
            accepted_weight = weights[accepted].sum()
            coverage = float(accepted_weight / weights.sum())
            accuracy = (
                float(weights[accepted & correct].sum() / accepted_weight)
                if accepted_weight > 0
                else float("nan")
            )
        self.uncertainty_threshold_ = threshold
        self.coverage_ = coverage
        self.accepted_accuracy_ = accuracy
        self.conformity_scores_ = nonconformity(proba, y_index)
        if references is None:
            references = [ConformalReference(self.conformity_scores_, weights)]
        self._conformal_references = references
        self._novelty = novelty
        self._held_out_summary = self._summarise_held_out(
            proba if summary_proba is None else summary_proba, y_index, weights, margin
        )

    def _summarise_held_out(self, proba, y_index, weights, margin) -> dict:
        """Flag rates, confidence, loss and accepted accuracy of the held-out
        predictions: what :meth:`shift_report` expects of a batch."""
        # the conformal rule's held-out sets need a sorted reference: build it
        # only for that rule (a sort of every held-out score)
        pooled = None
        if "conformal" in self._uncertainty_rules:
            # a single model's reference holds these very scores already
            pooled = (
                self._conformal_references
                if len(self._conformal_references) == 1
                else [ConformalReference(self.conformity_scores_, weights)]
            )
        masks = self._probability_masks(proba, [proba], pooled, margin)
        rates = {
            rule: np.dot(weights, mask) / weights.sum() for rule, mask in masks.items()
        }
        if "out_of_range" in self._uncertainty_rules:
            # A new exchangeable score leaves the range of m held-out ones with
            # chance at most 2/(m + 1) per column; over the columns and the
            # models this gives an upper bound of the rate, not an estimate
            # (shift_report tests it one-sided).
            within = 1.0
            for reference in self._conformal_references:
                columns = self._score_columns()
                within *= max(0.0, 1.0 - 2.0 * columns / (len(reference.scores) + 1))
            rates["out_of_range"] = 1.0 - within
        if self._novelty is not None:
            rates["novelty"] = self._novelty.held_out_flag_rate(self.novelty_alpha)
        accepted = np.ones(len(y_index), dtype=bool)
        for mask in masks.values():
            accepted &= ~mask
        true_proba = 1.0 - self.conformity_scores_
        with np.errstate(divide="ignore"):
            loss = -np.log(true_proba)
        return held_out_summary(
            {rule: rates[rule] for rule in self._uncertainty_rules},
            top_probability(proba),
            loss,
            accepted,
            _is_correct(proba, y_index),
            weights,
        )

    def _low_confidence(self, top, margin) -> np.ndarray:
        return low_confidence(
            top,
            margin,
            self.uncertainty_threshold_,
            getattr(self, "uncertainty_margin_threshold_", -math.inf),
        )

    def _probability_masks(self, proba, per_model, references, margin) -> dict:
        """Flags of the rules that look at probabilities (and margins) only."""
        masks = {}
        for rule in self._uncertainty_rules:
            if rule == "low_confidence":
                masks[rule] = self._low_confidence(top_probability(proba), margin)
            elif rule == "ambiguous":
                top, runner_up = top_two(proba)
                masks[rule] = below(top, self.ambiguity_ratio * runner_up)
            elif rule == "conformal":
                sets = conformal_sets(references, per_model, self.conformal_alpha)
                masks[rule] = sets.sum(axis=1) != 1
        return masks

    def _warn_if_flagging_everything(self) -> None:
        """Warn, at each use of the flag, when ``low_confidence`` flags every
        prediction because no threshold reached ``target_accuracy`` in fit (a
        fit that never uses the flag, as in a grid search, stays quiet)."""
        if "low_confidence" in self._uncertainty_rules and math.isinf(
            self.uncertainty_threshold_
        ):
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

    def _novelty_pvalues(self, X) -> np.ndarray:
        """Conformal novelty p-values of new samples (small: unlike training)."""
        return self._novelty.pvalues(self._novelty_features(X))

    def _rule_masks(self, X) -> tuple[Predictions, dict, np.ndarray | None]:
        """The predictions, each rule's flags and, when the ``novelty`` rule is
        on, the novelty p-values."""
        predictions = self._predictions(X)
        self._check_uncertainty_fitted()
        self._warn_if_flagging_everything()
        by_probability = self._probability_masks(
            predictions.proba,
            predictions.per_model,
            self._conformal_references,
            predictions.margin,
        )
        masks, pvalues = {}, None
        for rule in self._uncertainty_rules:
            if rule == "out_of_range":
                masks[rule] = predictions.out_of_range
            elif rule == "novelty":
                pvalues = self._novelty_pvalues(X)
                masks[rule] = at_most(pvalues, self.novelty_alpha)
            else:
                masks[rule] = by_probability[rule]
        return predictions, masks, pvalues

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
        labels, the accuracy of the accepted predictions and the log-loss) are
        compared with what the held-out (out-of-fold) training predictions
        showed at fit time. Flag rates are tested with an exact binomial test
        (two-sided: a shift may also make a model more confident), the mean
        probability with a z-test on the mean (two-sided), the accepted accuracy
        with a one-sided binomial test (lower) and the log-loss with a one-sided
        z-test (higher). A check is ``shifted`` when its p-value is below
        ``alpha`` divided by the number of checks (Bonferroni), so that a batch
        from the training distribution is called shifted with chance at most
        about ``alpha``.

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
        from ._shift import MIN_BATCH
        from ._shift import shift_report as report

        alpha = check_alpha(alpha)
        predictions, masks, _ = self._rule_masks(X)
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
        correct = loss = None
        if y is not None:
            y_index = self._label_indices(y, proba.shape[0])
            correct = _is_correct(proba, y_index)
            with np.errstate(divide="ignore"):
                loss = -np.log(proba[np.arange(len(y_index)), y_index])
        return report(
            self._held_out_summary,
            masks,
            top_probability(proba),
            correct=correct,
            loss=loss,
            alpha=alpha,
        )

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
        from ._labeling import select_diverse

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
        pvalues, features = None, predictions.proba
        if self._novelty is not None:
            novelty_features = self._novelty_features(X)
            pvalues = self._novelty.pvalues(novelty_features)
            features = novelty_features[0]
        return select_diverse(
            n_select,
            confidence=top_probability(predictions.proba),
            margin=predictions.margin,
            features=features,
            pvalues=pvalues,
            alpha=self.novelty_alpha,
        )

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
        if _dask.is_dask_collection(X):
            return _dask.predict(self, "predict_uncertain", X)
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
        return conformal_sets(self._conformal_references, per_model, alpha)

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
        if _dask.is_dask_collection(X):
            return _dask.predict(self, "predict_frame", X)
        import pandas as pd

        predictions, masks, pvalues = self._rule_masks(X)
        proba = predictions.proba
        index = X.index if isinstance(X, pd.DataFrame | pd.Series) else None
        frame = pd.DataFrame(
            {"prediction": self.classes_[first_index_of_max(proba)]}, index=index
        )
        for k, label in enumerate(self.classes_):
            frame[f"proba_{label}"] = proba[:, k]
        if pvalues is not None:
            frame["novelty_pvalue"] = pvalues
        flagged = np.zeros(proba.shape[0], dtype=bool)
        reasons = np.full(proba.shape[0], "", dtype=object)
        for rule, mask in masks.items():
            flagged |= mask
            reasons[mask] = [r + ", " + rule if r else rule for r in reasons[mask]]
        frame["uncertain"] = flagged
        frame["reasons"] = reasons
        return frame

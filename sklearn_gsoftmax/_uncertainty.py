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

# ConformalReference is imported here too for models pickled before it moved
from ._conformal import ConformalReference, conformal_sets, nonconformity
from ._novelty import missing_counts
from ._selective import low_confidence, select_threshold
from ._shift import Batch, held_out_summary
from ._ties import TIE_RTOL, at_most, below, first_index_of_max

RULES = ("low_confidence", "ambiguous", "out_of_range", "conformal", "novelty")

#: The rules that look at a sample (its features or scores), not at a model's
#: probabilities.
SAMPLE_RULES = ("out_of_range", "novelty")

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


class HeldOut(NamedTuple):
    """Held-out predictions of the training samples: what the flag is fitted on.

    ``proba`` and ``margin`` are made the way new predictions are made (for an
    ensemble, every pair's calibrator applied to the scores of the estimator
    that did not see the sample, averaged), for the samples ``y_index`` with
    ``weights``. ``per_model`` holds, for each model in the order of
    ``_predictions``, ``(proba, margin, y_index, weights)`` of its own
    held-out predictions of the samples it did not see: its conformal
    reference, and what :meth:`UncertaintyMixin.shift_report` compares a
    batch with.
    """

    proba: np.ndarray
    margin: np.ndarray
    y_index: np.ndarray
    weights: np.ndarray
    per_model: list

    @classmethod
    def of_one_model(cls, proba, margin, y_index, weights) -> HeldOut:
        """A single model's held-out predictions."""
        return cls(proba, margin, y_index, weights, [(proba, margin, y_index, weights)])


def _concatenate(parts: list) -> Batch:
    """One :class:`Batch` of the rows of ``parts``, in order."""
    first = parts[0]
    return Batch(
        {
            rule: np.concatenate([part.masks[rule] for part in parts])
            for rule in first.masks
        },
        *(
            None
            if getattr(first, field) is None
            else np.concatenate([getattr(part, field) for part in parts])
            for field in Batch._fields[1:]
        ),
    )


class UncertaintyMixin:
    """``predict_uncertain``, ``predict_set``, ``predict_frame``,
    ``shift_report`` and ``select_for_labeling`` for an estimator that
    implements ``_predictions(X)`` (a :class:`Predictions`) and
    ``_novelty_features(X)`` (the inputs of each novelty detector), and calls
    ``_fit_uncertainty`` at the end of ``fit``."""

    def _fit_uncertainty(self, held_out: HeldOut, novelty=None):
        """Learn the threshold from the held-out predictions (ties in
        confidence broken by their calibrated margin); keep each model's
        conformal reference, the fitted ``NoveltyModel`` of the ``novelty``
        rule and what :meth:`shift_report` expects of a batch."""
        self._uncertainty_rules = check_rules(self.uncertainty_rules)
        proba, weights = held_out.proba, held_out.weights
        confidence = top_probability(proba)
        correct = _is_correct(proba, held_out.y_index)
        self.uncertainty_margin_threshold_ = -math.inf
        if self.uncertainty_threshold == "auto":
            threshold, coverage, accuracy, self.uncertainty_margin_threshold_ = (
                select_threshold(
                    confidence,
                    correct,
                    weights,
                    self.target_accuracy,
                    margin=held_out.margin,
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
        nonconformities = [
            nonconformity(model_proba, model_y)
            for model_proba, _, model_y, _ in held_out.per_model
        ]
        self.conformity_scores_ = np.concatenate(nonconformities)
        self._conformal_references = [
            ConformalReference(scores, model_weights)
            for scores, (*_, model_weights) in zip(nonconformities, held_out.per_model)
        ]
        self._novelty = novelty
        self._held_out_summary = self._summarise_held_out(held_out.per_model)
        self._flag_warning_given = False

    def _summarise_held_out(self, per_model) -> dict:
        """Flag rates, confidence, loss and accuracy of each model's own
        held-out predictions, pooled: what :meth:`shift_report` expects of a
        batch whose samples are each predicted by one model."""
        parts = [
            self._batch_statistics(
                model_proba,
                margin,
                [reference],
                y_index,
                # a held-out sample's score is in its own reference already:
                # the rule's sets are a little wider here than for new samples
            )
            for (model_proba, margin, y_index, _), reference in zip(
                per_model, self._conformal_references
            )
        ]
        held_out = _concatenate(parts)
        weights = np.concatenate([model_weights for *_, model_weights in per_model])
        rates = {
            rule: np.dot(weights, mask) / weights.sum()
            for rule, mask in held_out.masks.items()
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
        return held_out_summary(
            {rule: rates[rule] for rule in self._uncertainty_rules}, held_out, weights
        )

    def _batch_statistics(self, proba, margin, references, y_index=None) -> Batch:
        """The flags of the rules that look at probabilities, the confidence,
        acceptance and, with labels, correctness and log-loss of predictions
        ``proba`` of one model (``references`` its conformal reference)."""
        masks = self._probability_masks(proba, [proba], references, margin)
        accepted = np.ones(len(proba), dtype=bool)
        for mask in masks.values():
            accepted &= ~mask
        correct = loss = None
        if y_index is not None:
            correct = _is_correct(proba, y_index)
            with np.errstate(divide="ignore"):
                loss = -np.log(proba[np.arange(len(y_index)), y_index])
            loss = loss.astype(np.float64, copy=False)
        return Batch(masks, top_probability(proba), accepted, correct, loss)

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

    def _rule_masks(self, X) -> tuple[Predictions, dict, np.ndarray | None]:
        """The predictions, each rule's flags and, when the ``novelty`` rule is
        on, the novelty p-values and how many of each sample's features the
        detector found missing (with their number)."""
        predictions = self._predictions(X)
        self._check_uncertainty_fitted()
        self._warn_if_flagging_everything()
        by_probability = self._probability_masks(
            predictions.proba,
            predictions.per_model,
            self._conformal_references,
            predictions.margin,
        )
        masks, novelty = {}, None
        for rule in self._uncertainty_rules:
            if rule == "out_of_range":
                masks[rule] = predictions.out_of_range
            elif rule == "novelty":
                features = self._novelty_features(X)
                pvalues = self._novelty.pvalues(features)
                novelty = (pvalues, *missing_counts(features[0]))
                masks[rule] = at_most(pvalues, self.novelty_alpha)
            else:
                masks[rule] = by_probability[rule]
        return predictions, masks, novelty

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
        y_index = None if y is None else self._label_indices(y, proba.shape[0])
        # the rules that do not look at a model's probabilities are the same
        # for the average and for each model
        shared = {rule: masks[rule] for rule in masks if rule in SAMPLE_RULES}
        observed = self._batch_statistics(
            proba, predictions.margin, self._conformal_references, y_index
        )
        return report(
            self._held_out_summary,
            self._with_masks(observed, shared),
            self._with_masks(self._assigned_statistics(predictions, y_index), shared),
            alpha=alpha,
        )

    def _with_masks(self, batch: Batch, shared: dict) -> Batch:
        merged = {**batch.masks, **shared}
        return batch._replace(
            masks={rule: merged[rule] for rule in self._uncertainty_rules}
        )

    def _assigned_statistics(self, predictions, y_index) -> Batch:
        """:meth:`_batch_statistics` with each sample predicted by one model in
        turn (sample ``i`` by model ``i % n_models``), as each held-out sample
        was by the one model that did not see it."""
        n_models = len(predictions.per_model)
        m = len(predictions.proba)
        parts, order = [], []
        for j, (proba, margin, reference) in enumerate(
            zip(
                predictions.per_model,
                predictions.per_model_margin,
                self._conformal_references,
            )
        ):
            rows = np.arange(j, m, n_models)
            parts.append(
                self._batch_statistics(
                    proba[rows],
                    margin[rows],
                    [reference],
                    None if y_index is None else y_index[rows],
                )
            )
            order.append(rows)
        assigned = _concatenate(parts)
        back = np.argsort(np.concatenate(order))
        return Batch(
            {rule: mask[back] for rule, mask in assigned.masks.items()},
            *(None if field is None else field[back] for field in assigned[1:]),
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

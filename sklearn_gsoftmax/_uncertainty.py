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
"""

from __future__ import annotations

import warnings

import numpy as np

RULES = ("low_confidence", "ambiguous", "out_of_range", "conformal")


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
    outside = (z < score_range[0]) | (z > score_range[1])
    return outside if outside.ndim == 1 else outside.any(axis=1)


def top_two(proba: np.ndarray):
    """The largest and second largest probability of each row."""
    if proba.shape[1] == 2:
        return proba.max(axis=1), proba.min(axis=1)
    part = np.partition(proba, -2, axis=1)
    return part[:, -1], part[:, -2]


def _is_correct(proba: np.ndarray, y_index: np.ndarray) -> np.ndarray:
    return np.argmax(proba, axis=1) == y_index


def accepted_accuracy_curve(confidence, correct, weights):
    """Accuracy of the accepted predictions as the threshold falls.

    Sorts by decreasing confidence and returns, at each distinct confidence
    (samples of equal confidence are accepted together), ``(threshold,
    coverage, accuracy)``: accepting every prediction with confidence >=
    threshold covers that share of the (weighted) samples with that accuracy.
    """
    # the order within ties does not matter (ties are accepted together), so
    # the fast unstable sort will do
    order = np.argsort(-confidence)
    sorted_confidence = confidence[order]
    if np.all(weights == 1.0):
        accepted_weight = np.arange(1.0, len(order) + 1.0)
        accepted_correct = np.cumsum(correct[order], dtype=np.float64)
    else:
        sorted_weights = weights[order]
        accepted_weight = np.cumsum(sorted_weights)
        accepted_correct = np.cumsum(sorted_weights * correct[order])
    end_of_tie = np.append(sorted_confidence[1:] != sorted_confidence[:-1], True)
    end_of_tie &= accepted_weight > 0
    accepted_weight = accepted_weight[end_of_tie]
    return (
        sorted_confidence[end_of_tie],
        accepted_weight / accepted_weight[-1],
        accepted_correct[end_of_tie] / accepted_weight,
    )


def select_threshold(confidence, correct, weights, target_accuracy):
    """Selective classification: the smallest threshold whose accepted
    predictions (confidence >= threshold) reach ``target_accuracy``.

    Returns ``(threshold, coverage, accuracy)`` on the given data. When no
    threshold reaches the target, the threshold lies above every confidence
    (everything is flagged) and a warning says so.
    """
    thresholds, coverage, accuracy = accepted_accuracy_curve(
        confidence, correct, weights
    )
    valid = np.flatnonzero(accuracy >= target_accuracy)
    if valid.size == 0:
        warnings.warn(
            f"no confidence threshold reaches target_accuracy={target_accuracy} on "
            "the held-out predictions; every prediction will be flagged "
            "low_confidence. Lower target_accuracy or improve the model.",
            UserWarning,
            stacklevel=3,
        )
        return float(np.nextafter(thresholds[0], np.inf)), 0.0, float("nan")
    last = valid[-1]
    return float(thresholds[last]), float(coverage[last]), float(accuracy[last])


def nonconformity(proba: np.ndarray, y_index: np.ndarray) -> np.ndarray:
    """The nonconformity score ``1 - p_true`` of each row."""
    return 1.0 - proba[np.arange(len(y_index)), y_index]


class ConformalReference:
    """Held-out nonconformity scores ``1 - p_true`` of one model, sorted, with
    their cumulative weights: what a new sample's score is ranked against."""

    def __init__(self, scores: np.ndarray, weights: np.ndarray):
        # the weight below a score does not depend on the order within ties,
        # so the fast unstable sort will do
        if np.all(weights == 1.0):
            self.scores = np.sort(scores)
            self.cumulative = np.arange(len(scores) + 1, dtype=np.float64)
            return
        order = np.argsort(scores)
        self.scores = scores[order]
        self.cumulative = np.concatenate([[0.0], np.cumsum(weights[order])])

    def weight_at_or_above(self, test_scores: np.ndarray) -> np.ndarray:
        """Total weight of the reference scores >= each test score."""
        below = np.searchsorted(self.scores, test_scores, side="left")
        return self.cumulative[-1] - self.cumulative[below]


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
    return count / (total + 1.0) > alpha


class UncertaintyMixin:
    """``predict_uncertain``, ``predict_set`` and ``predict_frame`` for an
    estimator that implements ``_predictions(X)`` (returning the probabilities,
    the out-of-range mask and each model's own probabilities) and calls
    ``_fit_uncertainty`` at the end of ``fit``."""

    def _fit_uncertainty(self, proba, y_index, weights, references=None):
        """Learn the threshold from held-out predictions; keep the conformal
        references (one per model, in the order of ``_predictions``; ``None``
        for a single model, whose reference is these predictions')."""
        self._uncertainty_rules = check_rules(self.uncertainty_rules)
        confidence = proba.max(axis=1)
        correct = _is_correct(proba, y_index)
        if self.uncertainty_threshold == "auto":
            threshold, coverage, accuracy = select_threshold(
                confidence, correct, weights, self.target_accuracy
            )
        else:
            threshold = float(self.uncertainty_threshold)
            accepted = confidence >= threshold
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

    def _check_uncertainty_fitted(self):
        if not hasattr(self, "_conformal_references"):
            raise ValueError(
                f"this {type(self).__name__} has no fitted uncertain-flag state: it "
                "was fitted on one fold inside GaussianSoftmaxClassifier (use the "
                "classifier's methods) or saved by a version of sklearn-gsoftmax "
                "without the flag. Refit it to use predict_uncertain, predict_set "
                "and predict_frame."
            )

    def _rule_masks(self, X) -> tuple[np.ndarray, dict]:
        proba, out_of_range, per_model = self._predictions(X)
        self._check_uncertainty_fitted()
        masks = {}
        for rule in self._uncertainty_rules:
            if rule == "low_confidence":
                masks[rule] = proba.max(axis=1) < self.uncertainty_threshold_
            elif rule == "ambiguous":
                top, runner_up = top_two(proba)
                masks[rule] = top < self.ambiguity_ratio * runner_up
            elif rule == "out_of_range":
                masks[rule] = out_of_range
            else:
                sets = conformal_sets(
                    self._conformal_references, per_model, self.conformal_alpha
                )
                masks[rule] = sets.sum(axis=1) != 1
        return proba, masks

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
        proba, masks = self._rule_masks(X)
        uncertain = np.zeros(proba.shape[0], dtype=bool)
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
        _, _, per_model = self._predictions(X)
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
            ``proba_<class>`` for each class, ``uncertain`` and ``reasons`` (the
            names of the rules that flagged the row, comma-separated; empty when
            none did).
        """
        import pandas as pd

        proba, masks = self._rule_masks(X)
        index = X.index if isinstance(X, pd.DataFrame | pd.Series) else None
        frame = pd.DataFrame(
            {"prediction": self.classes_[np.argmax(proba, axis=1)]}, index=index
        )
        for k, label in enumerate(self.classes_):
            frame[f"proba_{label}"] = proba[:, k]
        flagged = np.zeros(proba.shape[0], dtype=bool)
        reasons = np.full(proba.shape[0], "", dtype=object)
        for rule, mask in masks.items():
            flagged |= mask
            reasons[mask] = [r + ", " + rule if r else rule for r in reasons[mask]]
        frame["uncertain"] = flagged
        frame["reasons"] = reasons
        return frame

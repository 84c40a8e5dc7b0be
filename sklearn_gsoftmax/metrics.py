"""Metrics for bounded probabilities and for knowing when not to trust them.

The mean log-loss hides what bounded probabilities are for: a single confident
mistake. :func:`probability_report` and :func:`sample_log_loss` report the
per-sample loss, its maximum and the smallest probability a model gave, next to
the usual log-loss and Brier score. :func:`risk_coverage_curve` and
:func:`risk_coverage_auc` measure how well a model's confidence ranks its
errors last: the accuracy of what a confidence threshold accepts, against the
share it accepts.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils._param_validation import validate_params
from sklearn.utils.validation import check_array, check_consistent_length

from ._uncertainty import accepted_accuracy_curve

_PROBA_PARAMS = {
    "y_true": ["array-like"],
    "y_prob": ["array-like"],
    "labels": ["array-like", None],
}


def _true_class_probability(y_true, y_prob, labels):
    y_prob = check_array(y_prob, ensure_2d=True, dtype=[np.float64, np.float32])
    y_true = np.asarray(y_true).reshape(-1)
    check_consistent_length(y_true, y_prob)
    labels = np.unique(y_true) if labels is None else np.asarray(labels)
    if y_prob.shape[1] != len(labels):
        raise ValueError(
            f"y_prob has {y_prob.shape[1]} columns but there are {len(labels)} "
            "labels; pass labels= in the order of the columns (e.g. model.classes_)."
        )
    if not np.all((y_prob >= 0) & (y_prob <= 1)):
        raise ValueError("y_prob must hold probabilities in [0, 1].")
    order = np.argsort(labels)
    position = np.searchsorted(labels[order], y_true)
    position = np.clip(position, 0, len(labels) - 1)
    found = labels[order][position] == y_true
    if not found.all():
        unseen = np.unique(y_true[~found])
        raise ValueError(
            f"y_true holds labels {unseen.tolist()} that are not in labels "
            f"{labels.tolist()}."
        )
    index = order[position]
    with np.errstate(divide="ignore"):
        losses = -np.log(y_prob[np.arange(len(index)), index])
    return y_prob, index, losses


@validate_params(_PROBA_PARAMS, prefer_skip_nested_validation=True)
def sample_log_loss(y_true, y_prob, *, labels=None) -> np.ndarray:
    """Negative log-probability of the true class, one value per sample.

    Parameters
    ----------
    y_true : array-like of shape (m,)
        True labels.
    y_prob : array-like of shape (m, n_classes)
        Predicted probabilities, columns in the order of ``labels``.
    labels : array-like of shape (n_classes,), default=None
        The label of each column; ``None`` takes the sorted unique ``y_true``.

    Returns
    -------
    loss : ndarray of shape (m,)
        ``-ln p_true``; infinite where the true class got probability 0. No
        probability is clipped.

    Examples
    --------
    >>> from sklearn_gsoftmax.metrics import sample_log_loss
    >>> sample_log_loss([0, 1], [[0.5, 0.5], [0.9, 0.1]]).round(4)
    array([0.6931, 2.3026])
    """
    return _true_class_probability(y_true, y_prob, labels)[2]


@validate_params(_PROBA_PARAMS, prefer_skip_nested_validation=True)
def probability_report(y_true, y_prob, *, labels=None) -> dict:
    """Log-loss, Brier score, worst single-sample loss and smallest probability.

    Parameters
    ----------
    y_true : array-like of shape (m,)
        True labels.
    y_prob : array-like of shape (m, n_classes)
        Predicted probabilities, columns in the order of ``labels``.
    labels : array-like of shape (n_classes,), default=None
        The label of each column; ``None`` takes the sorted unique ``y_true``.

    Returns
    -------
    report : dict
        ``log_loss`` (mean), ``brier`` (mean squared distance to the one-hot
        label, summed over classes), ``max_log_loss`` (the largest single-sample
        loss), ``min_proba`` (the smallest probability in ``y_prob``) and
        ``accuracy``.

    Examples
    --------
    >>> from sklearn_gsoftmax.metrics import probability_report
    >>> report = probability_report([0, 1], [[0.5, 0.5], [0.9, 0.1]])
    >>> round(report["max_log_loss"], 4), report["accuracy"]
    (2.3026, 0.5)
    """
    y_prob, index, losses = _true_class_probability(y_true, y_prob, labels)
    onehot = np.zeros_like(y_prob)
    onehot[np.arange(len(index)), index] = 1.0
    return {
        "log_loss": float(losses.mean()),
        "brier": float(np.mean(np.sum((y_prob - onehot) ** 2, axis=1))),
        "max_log_loss": float(losses.max()),
        "min_proba": float(y_prob.min()),
        "accuracy": float(np.mean(np.argmax(y_prob, axis=1) == index)),
    }


@validate_params(_PROBA_PARAMS, prefer_skip_nested_validation=True)
def risk_coverage_curve(y_true, y_prob, *, labels=None):
    """Accuracy of the predictions a confidence threshold accepts, against the
    share it accepts.

    Ranks the samples by their top-class probability; each threshold accepts
    the samples at or above it. A model whose confidence ranks its errors last
    keeps a high accuracy down to a low coverage.

    Parameters
    ----------
    y_true : array-like of shape (m,)
        True labels.
    y_prob : array-like of shape (m, n_classes)
        Predicted probabilities, columns in the order of ``labels``.
    labels : array-like of shape (n_classes,), default=None
        The label of each column; ``None`` takes the sorted unique ``y_true``.

    Returns
    -------
    coverage : ndarray
        Share of the samples accepted, increasing to 1.
    accuracy : ndarray
        Accuracy of the accepted samples.
    thresholds : ndarray
        The confidence threshold of each point, decreasing.

    Examples
    --------
    >>> from sklearn_gsoftmax.metrics import risk_coverage_curve
    >>> coverage, accuracy, _ = risk_coverage_curve(
    ...     [0, 1, 1, 0], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]]
    ... )
    >>> coverage.tolist(), accuracy.tolist()
    ([0.25, 0.5, 0.75, 1.0], [1.0, 1.0, 0.6666666666666666, 0.5])
    """
    y_prob, index, _ = _true_class_probability(y_true, y_prob, labels)
    correct = np.argmax(y_prob, axis=1) == index
    thresholds, coverage, accuracy = accepted_accuracy_curve(
        y_prob.max(axis=1), correct, np.ones(len(index))
    )
    return coverage, accuracy, thresholds


@validate_params(_PROBA_PARAMS, prefer_skip_nested_validation=True)
def risk_coverage_auc(y_true, y_prob, *, labels=None) -> float:
    """Area under the accuracy-coverage curve of :func:`risk_coverage_curve`.

    The curve is taken as a step function of the coverage (each point's
    accuracy holds over the interval of coverage that ends at it, as
    ``matplotlib``'s ``step(where="pre")`` draws it), so the area is the
    average, over acceptance levels, of
    the accuracy of what is accepted: near 1 when the errors are ranked last, about
    the plain accuracy for a ranking that carries no information, and lower for
    one that ranks errors first.

    Parameters
    ----------
    y_true : array-like of shape (m,)
        True labels.
    y_prob : array-like of shape (m, n_classes)
        Predicted probabilities, columns in the order of ``labels``.
    labels : array-like of shape (n_classes,), default=None
        The label of each column.

    Returns
    -------
    area : float
        In [0, 1]; higher is better.

    Examples
    --------
    >>> from sklearn_gsoftmax.metrics import risk_coverage_auc
    >>> proba = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]]
    >>> risk_coverage_auc([0, 1, 1, 0], proba)
    0.7916666666666666
    """
    coverage, accuracy, _ = risk_coverage_curve(y_true, y_prob, labels=labels)
    widths = np.diff(coverage, prepend=0.0)
    return float(widths @ accuracy)

"""Metrics for bounded probabilities: the whole log-loss and its worst case.

The mean log-loss hides what bounded probabilities are for: a single confident
mistake. These functions report the per-sample loss, its maximum and the smallest
probability a model gave, next to the usual log-loss and Brier score.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils._param_validation import validate_params
from sklearn.utils.validation import check_array, check_consistent_length


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


@validate_params(
    {
        "y_true": ["array-like"],
        "y_prob": ["array-like"],
        "labels": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
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


@validate_params(
    {
        "y_true": ["array-like"],
        "y_prob": ["array-like"],
        "labels": ["array-like", None],
    },
    prefer_skip_nested_validation=True,
)
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

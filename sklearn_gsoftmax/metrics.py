"""Metrics for bounded probabilities and for knowing when not to trust them.

The mean log-loss hides what bounded probabilities are for: a single confident
mistake. :func:`calibration_report` reports, next to scikit-learn's log-loss and
Brier score, the largest single-sample loss (:func:`sample_log_loss`), the
smallest probability a model gave, the share of its confident errors and its
:func:`expected_calibration_error`. :func:`risk_coverage_curve` and
:func:`risk_coverage_auc` measure how well a model's confidence ranks its
errors last: the accuracy of what a confidence threshold accepts, against the
share it accepts.

Every function takes probabilities of shape ``(m, n_classes)``, columns in the
order of ``labels`` (``model.classes_``), or for two classes the probability of
the second class alone, of shape ``(m,)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, log_loss
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    column_or_1d,
)

from ._selective import accepted_accuracy_curve
from ._ties import below, first_index_of_max, index_at_or_above

_PROBA_PARAMS = {
    "y_true": ["array-like"],
    "y_prob": ["array-like"],
    "labels": ["array-like", None],
}

_BINNING_PARAMS = {
    "n_bins": [Interval(Integral, 1, None, closed="left")],
    "strategy": [StrOptions({"uniform", "quantile"})],
    "sample_weight": ["array-like", None],
}

#: The top-class probability from which a wrong prediction counts as a
#: confident error in :func:`calibration_report`: one that a bounded model can
#: give too (the gaussian link reaches it with 10 classes from n = 153), so
#: that the count compares calibrators fairly. A true-class probability below
#: 1e-3, the count before 0.3, is out of reach of a bounded model fitted on
#: fewer than 1 000 samples, which favoured it by construction.
CONFIDENT_ERROR_PROBA = 0.95


def _check_probabilities(y_true, y_prob, labels):
    """Validated ``(y_prob, index, labels)``: ``(m, K)`` probabilities, the
    column of each sample's true class, and the label of each column.

    A 1-D ``y_prob`` is the probability of the second of two labels.
    """
    y_prob = check_array(y_prob, ensure_2d=False, dtype=[np.float64, np.float32])
    y_true = np.asarray(y_true).reshape(-1)
    check_consistent_length(y_true, y_prob)
    labels = np.unique(y_true) if labels is None else np.asarray(labels)
    if y_prob.ndim == 1:
        if len(labels) != 2:
            raise ValueError(
                "a 1-D y_prob holds the probability of the second of two labels, "
                f"but there are {len(labels)} labels; pass labels=[negative, "
                "positive] (e.g. model.classes_) or a 2-D y_prob."
            )
        y_prob = np.column_stack([1 - y_prob, y_prob])
    if y_prob.ndim != 2:
        raise ValueError(
            f"y_prob must be of shape (m, n_classes) or (m,), got {y_prob.shape}."
        )
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
    return y_prob, order[position], labels


def _true_class_probability(y_true, y_prob, labels):
    """``(y_prob, index, losses)``: the validated probabilities, the column of
    each true class and ``-ln p_true``, unclipped."""
    y_prob, index, _ = _check_probabilities(y_true, y_prob, labels)
    with np.errstate(divide="ignore"):
        losses = -np.log(y_prob[np.arange(len(index)), index])
    return y_prob, index, losses


def _check_weights(sample_weight, n_rows: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n_rows)
    weights = check_array(sample_weight, ensure_2d=False, dtype=np.float64)
    if weights.shape != (n_rows,):
        raise ValueError(
            f"sample_weight has shape {weights.shape}; it needs one weight per "
            f"sample, shape ({n_rows},)."
        )
    if np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError(
            "sample_weight must be non-negative with a positive sum; drop the "
            "samples that should not count rather than weighting them negatively."
        )
    return weights


def _bin_edges(prob, weights, n_bins: int, strategy: str) -> np.ndarray:
    """``n_bins + 1`` edges from 0 to 1: equal width, or equal (weighted) mass
    with the inner edges at the inverted-CDF quantiles of ``prob``, so that
    integer weights bin like repeated rows."""
    if strategy == "uniform":
        return np.linspace(0.0, 1.0, n_bins + 1)
    order = np.argsort(prob, kind="stable")
    cumulative = np.cumsum(weights[order])
    targets = cumulative[-1] * np.arange(1, n_bins) / n_bins
    at = np.minimum(np.searchsorted(cumulative, targets), len(order) - 1)
    return np.concatenate([[0.0], prob[order][at].astype(np.float64), [1.0]])


def _reliability_bins(prob, hit, weights, n_bins: int, strategy: str):
    """Per bin of ``prob``: the edges, the total weight, the weighted mean
    probability and the weighted frequency of ``hit``.

    Bins are closed on the right, ``(e_j, e_j+1]`` (the first also holds 0), as
    in :func:`sklearn.calibration.calibration_curve`. The means are NaN in
    empty bins.
    """
    edges = _bin_edges(prob, weights, n_bins, strategy)
    # a probability that ties with an edge (often one of the data's own
    # values) is on the edge: in the bin below it
    bin_index = index_at_or_above(edges[1:-1], prob)
    total = np.bincount(bin_index, weights=weights, minlength=n_bins)
    prob_sum = np.bincount(bin_index, weights=weights * prob, minlength=n_bins)
    hit_sum = np.bincount(bin_index, weights=weights * hit, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return edges, total, prob_sum / total, hit_sum / total


def _binned_targets(y_prob, index, kind: str, column: int | None = None):
    """The ``(probability, hit)`` pairs a reliability diagram bins: the top
    class's probability and whether it is right (``"top_label"``), or one
    column's probability and whether it is the true class (``"classwise"``)."""
    if kind == "top_label":
        return y_prob.max(axis=1), first_index_of_max(y_prob) == index
    return y_prob[:, column], index == column


def _gap_norm(total, mean_prob, frequency, norm: str) -> float:
    filled = total > 0
    share = total[filled] / total.sum()
    gap = np.abs(frequency[filled] - mean_prob[filled])
    if norm == "l1":
        return float(share @ gap)
    if norm == "l2":
        return float(np.sqrt(share @ gap**2))
    return float(gap.max())


def _calibration_error(y_prob, index, weights, *, n_bins, strategy, kind, norm):
    columns = [None] if kind == "top_label" else range(y_prob.shape[1])
    errors = np.array(
        [
            _gap_norm(
                *_reliability_bins(
                    *_binned_targets(y_prob, index, kind, column),
                    weights,
                    n_bins,
                    strategy,
                )[1:],
                norm,
            )
            for column in columns
        ]
    )
    # class-wise: the mean over classes of each class's error, in the same norm
    if norm == "max":
        return float(errors.max())
    if norm == "l2":
        return float(np.sqrt(np.mean(errors**2)))
    return float(errors.mean())


@validate_params(_PROBA_PARAMS, prefer_skip_nested_validation=True)
def sample_log_loss(y_true, y_prob, *, labels=None) -> np.ndarray:
    """Negative log-probability of the true class, one value per sample.

    Parameters
    ----------
    y_true : array-like of shape (m,)
        True labels.
    y_prob : array-like of shape (m, n_classes) or (m,)
        Predicted probabilities, columns in the order of ``labels``; for two
        classes also the probability of the second label alone.
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
    _PROBA_PARAMS
    | _BINNING_PARAMS
    | {
        "kind": [StrOptions({"top_label", "classwise"})],
        "norm": [StrOptions({"l1", "l2", "max"})],
    },
    prefer_skip_nested_validation=True,
)
def expected_calibration_error(
    y_true,
    y_prob,
    *,
    n_bins: int = 15,
    strategy: str = "uniform",
    kind: str = "top_label",
    norm: str = "l1",
    sample_weight=None,
    labels=None,
) -> float:
    r"""Expected calibration error: how far the predicted probabilities lie
    from the observed frequencies, bin by bin.

    The samples are binned by a predicted probability; in each bin :math:`b`
    (holding the share :math:`w_b` of the samples) the mean predicted
    probability :math:`\bar p_b` is compared with the observed frequency
    :math:`\bar y_b` of the event it predicts:

    .. math::

        \mathrm{ECE} = \sum_b w_b \, |\bar y_b - \bar p_b|
        \quad (\texttt{norm="l1"}),\qquad
        \Bigl(\sum_b w_b \, (\bar y_b - \bar p_b)^2\Bigr)^{1/2}
        \quad (\texttt{"l2"}),\qquad
        \max_b |\bar y_b - \bar p_b| \quad (\texttt{"max"}).

    ``norm="max"`` is the maximum calibration error; it ignores how many
    samples a bin holds, so it is noisy on small bins.

    Parameters
    ----------
    y_true : array-like of shape (m,)
        True labels.
    y_prob : array-like of shape (m, n_classes) or (m,)
        Predicted probabilities, columns in the order of ``labels``; for two
        classes also the probability of the second label alone.
    n_bins : int, default=15
        Number of bins.
    strategy : {"uniform", "quantile"}, default="uniform"
        ``"uniform"``: equal-width bins on [0, 1]. ``"quantile"``: bins of
        (about) equal weight, their inner edges at the quantiles of the binned
        probabilities; tied probabilities share a bin, so fewer bins may fill.
    kind : {"top_label", "classwise"}, default="top_label"
        ``"top_label"`` (confidence ECE): bins the top-class probability and
        compares it with the accuracy. ``"classwise"``: for every class, bins
        its probability and compares it with how often it is the true class;
        the result is the mean over the classes (the maximum for
        ``norm="max"``, the root mean square for ``norm="l2"``). For two
        classes and ``"uniform"`` bins the class-wise error equals that of
        the positive class's :func:`~sklearn.calibration.calibration_curve`
        (up to samples lying exactly on a bin edge).
    norm : {"l1", "l2", "max"}, default="l1"
        How the per-bin gaps are combined.
    sample_weight : array-like of shape (m,), default=None
        Sample weights; integer weights count like repeated samples, also in
        the quantile bin edges.
    labels : array-like of shape (n_classes,), default=None
        The label of each column; ``None`` takes the sorted unique ``y_true``.

    Returns
    -------
    ece : float
        In [0, 1]; 0 for a model calibrated on every bin.

    See Also
    --------
    calibration_report : ECE next to the log-loss, Brier score and worst loss.
    sklearn.calibration.calibration_curve : The binary reliability curve.

    References
    ----------
    Guo, Pleiss, Sun, Weinberger (2017), "On Calibration of Modern Neural
    Networks", ICML (the top-label ECE and the maximum calibration error).
    Kull, Perello-Nieto, Kängsepp, Silva Filho, Song, Flach (2019), "Beyond
    temperature scaling", NeurIPS (the class-wise ECE).

    Examples
    --------
    >>> from sklearn_gsoftmax.metrics import expected_calibration_error
    >>> y = [0, 0, 1, 1]
    >>> proba = [0.1, 0.3, 0.6, 0.8]  # probability of class 1
    >>> round(expected_calibration_error(y, proba, n_bins=2), 4)
    0.25
    """
    y_prob, index, _ = _check_probabilities(y_true, y_prob, labels)
    weights = _check_weights(sample_weight, len(index))
    return _calibration_error(
        y_prob, index, weights, n_bins=n_bins, strategy=strategy, kind=kind, norm=norm
    )


def _report_row(
    y_prob,
    index,
    weights,
    sample_weight,
    *,
    n_bins,
    strategy,
    confident_above,
    confident_below,
):
    n_classes = y_prob.shape[1]
    rows = np.arange(len(index))
    kept = weights > 0
    p_true = y_prob[rows, index]
    with np.errstate(divide="ignore"):
        losses = -np.log(p_true[kept])
    correct = first_index_of_max(y_prob) == index
    # scikit-learn's Brier score is binary-only before 1.7; summed over the
    # one-vs-rest columns it is the multiclass Brier score on every version
    brier = sum(
        brier_score_loss(
            index == k, y_prob[:, k], sample_weight=sample_weight, pos_label=True
        )
        for k in range(n_classes)
    )
    return {
        "log_loss": float(
            log_loss(
                index,
                y_prob,
                sample_weight=sample_weight,
                labels=np.arange(n_classes),
            )
        ),
        "brier": float(brier),
        "ece": _calibration_error(
            y_prob,
            index,
            weights,
            n_bins=n_bins,
            strategy=strategy,
            kind="top_label",
            norm="l1",
        ),
        "max_log_loss": float(losses.max()),
        "min_proba": float(y_prob[kept].min()),
        "confident_errors": float(
            np.average(
                below(p_true, confident_below, floor=0.0)
                if confident_below is not None
                else ~correct & ~below(y_prob.max(axis=1), confident_above),
                weights=weights,
            )
        ),
        "accuracy": float(np.average(correct, weights=weights)),
    }


@validate_params(
    {
        "y_true": ["array-like"],
        "y_prob": ["array-like", Mapping],
        "labels": ["array-like", None],
        "confident_above": [Interval(Real, 0, 1, closed="right")],
        "confident_below": [Interval(Real, 0, 1, closed="neither"), None],
    }
    | _BINNING_PARAMS,
    prefer_skip_nested_validation=True,
)
def calibration_report(
    y_true,
    y_prob,
    *,
    labels=None,
    sample_weight=None,
    n_bins: int = 15,
    strategy: str = "uniform",
    confident_above: float = CONFIDENT_ERROR_PROBA,
    confident_below: float | None = None,
):
    """The mean and the worst of a model's probabilities, one row per model.

    Bounded probabilities change the worst single-sample loss much more than
    the mean, so the report gives both.

    Parameters
    ----------
    y_true : array-like of shape (m,)
        True labels.
    y_prob : array-like of shape (m, n_classes) or (m,), or dict
        Predicted probabilities, columns in the order of ``labels`` (for two
        classes also the probability of the second label alone), or a dict
        mapping each model's name to its probabilities, all for ``y_true``.
    labels : array-like of shape (n_classes,), default=None
        The label of each column; ``None`` takes the sorted unique ``y_true``.
    sample_weight : array-like of shape (m,), default=None
        Sample weights, for every entry of the report.
    n_bins : int, default=15
        Number of bins of the expected calibration error.
    strategy : {"uniform", "quantile"}, default="uniform"
        Bins of the expected calibration error; see
        :func:`expected_calibration_error`.
    confident_above : float in (0, 1], default=0.95
        A wrong prediction whose top class got a probability of at least this
        is a confident error.
    confident_below : float in (0, 1), default=None
        Deprecated since 0.3: counts instead the samples whose true class got
        a probability below this (the count of 0.2, at 1e-3). A bounded model
        fitted on fewer than ``1 / confident_below`` samples cannot reach it,
        so the count favours it by construction; use ``confident_above``.

    Returns
    -------
    report : dict or pandas.DataFrame
        For one array of probabilities, a dict; for a dict of them, a
        DataFrame with one row per model (indexed by the names). The entries:

        ``log_loss``
            :func:`sklearn.metrics.log_loss` (which clips probabilities at the
            float type's machine epsilon).
        ``brier``
            The multiclass Brier score: the mean squared distance to the
            one-hot label, summed over the classes (twice
            :func:`sklearn.metrics.brier_score_loss`'s binary value; computed
            as the sum of its one-vs-rest values).
        ``ece``
            The top-label :func:`expected_calibration_error`.
        ``max_log_loss``
            The largest single-sample loss ``-ln p_true``, unclipped (infinite
            when a true class got probability 0).
        ``min_proba``
            The smallest probability in ``y_prob``.
        ``confident_errors``
            The share of the samples predicted wrong with a top-class
            probability of at least ``confident_above``.
        ``accuracy``
            The share of the samples whose top class is the true one.

    See Also
    --------
    sample_log_loss : The loss of each sample.
    expected_calibration_error : Its variants (class-wise, other norms).

    Examples
    --------
    >>> from sklearn_gsoftmax.metrics import calibration_report
    >>> y = [0, 1, 1]
    >>> report = calibration_report(
    ...     y, {"sure": [0.0001, 0.9, 0.99], "unsure": [0.4, 0.6, 0.6]}
    ... )
    >>> report[["max_log_loss", "confident_errors", "accuracy"]].round(3)
            max_log_loss  confident_errors  accuracy
    sure           0.105               0.0       1.0
    unsure         0.511               0.0       1.0
    """
    if confident_below is not None:
        warnings.warn(
            "confident_below is deprecated since 0.3 and will be removed in 0.5: "
            "a bounded model fitted on fewer than 1 / confident_below samples "
            "cannot give such a probability, so the count favours it by "
            "construction. Use confident_above (a wrong prediction at least that "
            "confident).",
            FutureWarning,
            stacklevel=2,
        )
    options = {
        "n_bins": n_bins,
        "strategy": strategy,
        "confident_above": confident_above,
        "confident_below": confident_below,
    }
    models = y_prob if isinstance(y_prob, Mapping) else {None: y_prob}
    rows = {}
    for name, proba in models.items():
        proba, index, _ = _check_probabilities(y_true, proba, labels)
        weights = _check_weights(sample_weight, len(index))
        rows[name] = _report_row(proba, index, weights, sample_weight, **options)
    if not isinstance(y_prob, Mapping):
        return rows[None]
    return pd.DataFrame.from_dict(rows, orient="index")


@validate_params(_PROBA_PARAMS, prefer_skip_nested_validation=True)
def probability_report(y_true, y_prob, *, labels=None) -> dict:
    """Log-loss, Brier score, worst single-sample loss and smallest probability.

    .. deprecated:: 0.2
        Use :func:`calibration_report`, which returns the same entries and
        more; ``probability_report`` will be removed in 0.4.

    Parameters
    ----------
    y_true : array-like of shape (m,)
        True labels.
    y_prob : array-like of shape (m, n_classes) or (m,)
        Predicted probabilities, columns in the order of ``labels``.
    labels : array-like of shape (n_classes,), default=None
        The label of each column; ``None`` takes the sorted unique ``y_true``.

    Returns
    -------
    report : dict
        ``log_loss``, ``brier``, ``max_log_loss``, ``min_proba`` and
        ``accuracy``, as :func:`calibration_report` gives them.
    """
    warnings.warn(
        "probability_report is deprecated in 0.2 and will be removed in 0.4; use "
        "calibration_report, which returns the same entries and more.",
        FutureWarning,
        stacklevel=3,
    )
    report = calibration_report(y_true, y_prob, labels=labels)
    keys = ("log_loss", "brier", "max_log_loss", "min_proba", "accuracy")
    return {key: report[key] for key in keys}


_RANKING_PARAMS = {**_PROBA_PARAMS, "margin": ["array-like", None]}


@validate_params(_RANKING_PARAMS, prefer_skip_nested_validation=True)
def risk_coverage_curve(y_true, y_prob, *, labels=None, margin=None):
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
    margin : array-like of shape (m,), default=None
        Breaks ties in the top-class probability, higher ranking first: the
        estimators' ``confidence_margin(X)``, which orders predictions whose
        probabilities saturate at the bound. ``None``: tied samples are
        accepted together.

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
    correct = first_index_of_max(y_prob) == index
    if margin is not None:
        margin = column_or_1d(margin).astype(np.float64)
        if margin.shape[0] != len(index) or np.isnan(margin).any():
            raise ValueError(
                f"margin must hold one number (not NaN) per sample, {len(index)}, "
                f"got shape {margin.shape}; pass estimator.confidence_margin(X)."
            )
    thresholds, coverage, accuracy = accepted_accuracy_curve(
        y_prob.max(axis=1), correct, np.ones(len(index)), margin=margin
    )
    return coverage, accuracy, thresholds


@validate_params(_RANKING_PARAMS, prefer_skip_nested_validation=True)
def risk_coverage_auc(y_true, y_prob, *, labels=None, margin=None) -> float:
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
    margin : array-like of shape (m,), default=None
        Breaks ties in the top-class probability, as in
        :func:`risk_coverage_curve`.

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
    coverage, accuracy, _ = risk_coverage_curve(
        y_true, y_prob, labels=labels, margin=margin
    )
    widths = np.diff(coverage, prepend=0.0)
    return float(widths @ accuracy)

"""When the class mix moves: estimate new class proportions and adapt to them.

Under a pure *label shift* the classes come in other proportions ``q`` than in
training, but each class's samples look the same, so Bayes' rule gives the new
probabilities from the old ones,

.. math::

    p'_k(x) = \\frac{p_k(x)\\, q_k / \\pi_k}{\\sum_j p_j(x)\\, q_j / \\pi_j},

``pi`` the proportions the fitted probabilities assume: the mean of the
held-out probabilities of fit (the *implied* prior; the training class
frequencies as far as the model is calibrated). This module holds the
arithmetic, numpy only:

* :func:`estimate_priors`: the MAP-EM of Saerens, Latinne and Decaestecker
  (2002) with a Dirichlet prior of ``K`` pseudo-counts towards ``pi`` (plain EM
  collapses a proportion to 0 on a small batch and chases noise without a
  shift), run only when :func:`class_mix_test` finds evidence that the
  proportions moved; otherwise ``pi`` is kept (measured cost without a shift:
  +0.3 % log-loss, against up to 1.7 % for plain EM);
* :func:`adapt_proba`: the reweighting above, kept within the link's bounds;
* :func:`weighted_conformal_sets`: conformal sets under label shift, the
  held-out scores weighted by ``q / pi`` of their class (Podkopaev and Ramdas
  2021);
* :func:`prior_requests` and :func:`prior_state`: what fit stores for all
  this.

References
----------
.. [1] M. Saerens, P. Latinne and C. Decaestecker, "Adjusting the outputs of a
   classifier to new a priori probabilities: a simple procedure", Neural
   Computation 14 (2002).
.. [2] A. Podkopaev and A. Ramdas, "Distribution-free uncertainty
   quantification for classification under label shift", UAI 2021.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy import stats

from ._conformal import ConformalReference, nonconformity
from ._links import clip_to_bounds, proba_bounds
from ._source import QuantileSummary, by_blocks, jointly
from ._ties import below

#: Fewest rows :func:`estimate_priors` estimates proportions from.
MIN_ROWS = 20

#: Level of :func:`class_mix_test` below which the proportions are adapted.
GUARD_ALPHA = 0.05

#: EM stops when no proportion moves by more than this in an iteration.
EM_TOL = 1e-8

#: ... or after this many iterations (a median of 11 in the measurements).
EM_MAX_ITER = 1000

#: Held-out rows kept for re-selecting the threshold after adaptation.
ROW_CAP = 10_000

#: Points of each class's conformal reference built from chunks on a cluster
#: (exact for rows in memory, as ``_flag.REFERENCE_POINTS``).
CLASS_REFERENCE_POINTS = 20_000

#: How far the given proportions may sum from 1.
SUM_TOLERANCE = 1e-6


# --------------------------------------------------------------------------------------
# Estimation


def em_priors(
    proba: np.ndarray,
    implied: np.ndarray,
    *,
    pseudo_counts: float | None = None,
    tol: float = EM_TOL,
    max_iter: int = EM_MAX_ITER,
) -> tuple[np.ndarray, int]:
    """MAP-EM estimate of a batch's class proportions.

    Each step computes the posteriors ``R`` of the rows under the current
    proportions ``q`` (the reweighted probabilities) and sets

    .. math:: q \\leftarrow \\frac{\\sum_i R_i + \\lambda \\pi}{m + \\lambda},

    the mode of a Dirichlet(``1 + lambda pi``) prior times the likelihood;
    ``lambda = 0`` is the EM of Saerens et al.

    Parameters
    ----------
    proba : ndarray of shape (m, K)
        The batch's probabilities under the training proportions.
    implied : ndarray of shape (K,)
        The proportions ``pi`` those probabilities assume (positive).
    pseudo_counts : float, default=None
        ``lambda``; ``None`` uses ``K``.
    tol, max_iter : float, int
        Stop when no proportion moves by more than ``tol``, or after
        ``max_iter`` iterations.

    Returns
    -------
    q : ndarray of shape (K,)
        Proportions summing to 1.
    iterations : int
    """
    m, n_classes = proba.shape
    lam = float(n_classes if pseudo_counts is None else pseudo_counts)
    ratio = proba / implied
    q = implied.astype(np.float64).copy()
    for iteration in range(1, max_iter + 1):
        weighted = ratio * q
        # every row has a positive probability somewhere: no division by 0
        posterior = weighted / weighted.sum(axis=1, keepdims=True)
        new = (posterior.sum(axis=0) + lam * implied) / (m + lam)
        new /= new.sum()
        if np.max(np.abs(new - q)) < tol:
            return new, iteration
        q = new
    return q, max_iter


def class_mix_test(
    proba: np.ndarray, implied: np.ndarray, covariance: np.ndarray, n: float
) -> tuple[float, float]:
    """Test of "the class proportions did not move".

    Under it the batch's probabilities are distributed as the held-out ones,
    so the difference ``d`` of their means (first ``K - 1`` classes) has the
    covariance ``S = C (1/m + 1/n)``, ``C`` that of the held-out
    probabilities; ``T = d' S^-1 d`` is about chi-squared with ``K - 1``
    degrees of freedom (measured false alarms at 0.01: at most 0.008).

    Returns
    -------
    statistic, p_value : float
    """
    m, n_classes = proba.shape
    d = (proba.mean(axis=0) - implied)[:-1]
    s = covariance[:-1, :-1] * (1.0 / m + 1.0 / n)
    # a class never predicted apart from the others makes S singular: the
    # pseudo-inverse tests the directions the held-out data spans
    statistic = float(d @ np.linalg.pinv(s) @ d)
    if not math.isfinite(statistic):
        statistic = math.inf
    return statistic, float(stats.chi2.sf(statistic, n_classes - 1))


def estimate_priors(proba: np.ndarray, state: dict) -> tuple[np.ndarray, float]:
    """The batch's class proportions: :func:`em_priors` when
    :func:`class_mix_test` rejects at :data:`GUARD_ALPHA`, else the training
    proportions unchanged; with the test's p-value."""
    implied = state["implied"]
    _, p_value = class_mix_test(proba, implied, state["covariance"], state["n"])
    # a p-value that ties with the level counts as the level: no evidence
    if not below(p_value, GUARD_ALPHA, floor=0.0):
        return implied.copy(), p_value
    return em_priors(proba, implied)[0], p_value


def priors_covariance(
    proba: np.ndarray, implied: np.ndarray, q: np.ndarray, n: float
) -> np.ndarray:
    """Asymptotic covariance of the estimated proportions ``q``: the inverse
    observed information of the label-shift mixture on the simplex, inflated
    by ``1 + m/n`` for the error of the held-out ``implied`` (measured
    coverage of the 95 % intervals: 0.95-0.99). Classes at ``q ~ 0`` get no
    variance (their interval is one-sided from 0)."""
    m, n_classes = proba.shape
    cov = np.zeros((n_classes, n_classes))
    active = np.flatnonzero(q > 1e-6)
    if len(active) < 2:
        return cov
    ratio = proba[:, active] / implied[active]
    mixture = (proba / implied) @ q
    scaled = ratio / mixture[:, None]
    information = scaled.T @ scaled
    k = len(active)
    # the last active proportion is 1 minus the others
    d = np.vstack([np.eye(k - 1), -np.ones((1, k - 1))])
    inverse = np.linalg.pinv(d.T @ information @ d)
    cov[np.ix_(active, active)] = d @ inverse @ d.T * (1.0 + m / n)
    return cov


def priors_intervals(
    proba: np.ndarray, implied: np.ndarray, q: np.ndarray, n: float, level=0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Asymptotic ``level`` confidence intervals of the proportions ``q``,
    within [0, 1]."""
    se = np.sqrt(np.maximum(np.diag(priors_covariance(proba, implied, q, n)), 0.0))
    z = stats.norm.ppf(0.5 + level / 2.0)
    return np.clip(q - z * se, 0.0, 1.0), np.clip(q + z * se, 0.0, 1.0)


# --------------------------------------------------------------------------------------
# Validation


def check_priors(priors, classes: np.ndarray, frequencies: np.ndarray) -> np.ndarray:
    """Given proportions as an array in the order of ``classes`` (or a
    mapping from label to proportion), validated."""
    if isinstance(priors, Mapping):
        known = {label: k for k, label in enumerate(classes.tolist())}
        unknown = [label for label in priors if label not in known]
        missing = [label for label in known if label not in priors]
        if unknown or missing:
            raise ValueError(
                f"priors must give a proportion for each class of classes_ "
                f"{classes.tolist()}; unknown labels {unknown}, missing {missing}."
            )
        priors = [priors[label] for label in classes.tolist()]
    try:
        values = np.asarray(priors, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"priors must be numbers, one per class in the order of classes_ "
            f"{classes.tolist()}; got {priors!r}."
        ) from exc
    if values.shape != (len(classes),):
        raise ValueError(
            f"priors must hold one proportion per class, {len(classes)} in the "
            f"order of classes_ {classes.tolist()}; got shape {values.shape}."
        )
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(
            f"priors must be finite and non-negative, got {values.tolist()}."
        )
    if abs(values.sum() - 1.0) > SUM_TOLERANCE:
        raise ValueError(
            f"priors must sum to 1 (within {SUM_TOLERANCE:g}), got a sum of "
            f"{values.sum():.9g}; divide them by their sum."
        )
    zero = (values == 0) & (frequencies > 0)
    if zero.any():
        raise ValueError(
            f"priors give a proportion of 0 to classes {classes[zero].tolist()} "
            "seen in training; Bayes' rule cannot bring a zero back. Give them a "
            "small positive proportion, or refit without them."
        )
    return values / values.sum()


def check_batch(proba: np.ndarray) -> None:
    """A batch large enough to estimate proportions from."""
    if proba.shape[0] < MIN_ROWS:
        raise ValueError(
            f"estimating class proportions needs a batch of at least {MIN_ROWS} "
            f"samples, got {proba.shape[0]}; pool batches, or pass the "
            "proportions as priors=."
        )


# --------------------------------------------------------------------------------------
# Adaptation


def odds_floor(n, link: str) -> float:
    """The smallest log-odds of a class against the row's top class in the
    link's range: ``-log(n - 1)`` for the gaussian link (each class at least
    ``p_top / (n - 1)``), ``-inf`` for softmax."""
    if link == "softmax":
        return -math.inf
    if link == "gaussian":
        return -math.log(n - 1.0)
    # the linear link's range is a box: the ratio of its bounds
    low, high = proba_bounds(n, 2, link, "vs_top")
    return math.log(low / high)


def adapt_proba(
    proba: np.ndarray,
    ratio: np.ndarray,
    n,
    link: str,
    multiclass: str,
    *,
    log: bool = False,
) -> np.ndarray:
    """Probabilities reweighted by ``ratio = q / pi`` (Bayes' rule), within
    the link's bounds and summing to 1.

    The log-odds of each class against the row's top are floored at
    :func:`odds_floor` (for the gaussian link that is exactly its range), then
    the rows are moved towards the uniform distribution as little as puts
    every entry within :func:`~._links.proba_bounds` (which the uniform one
    is), and the last ulps clipped.

    ``proba`` holds logs with ``log``; so does the result.
    """
    dtype = proba.dtype
    with np.errstate(divide="ignore"):
        # a class given proportion 0 gets log 0 = -inf: the floor lifts it
        log_ratio = np.log(np.asarray(ratio, dtype=np.float64))
        logs = (proba if log else np.log(proba)).astype(np.float64) + log_ratio
    logs -= logs.max(axis=1, keepdims=True)
    np.maximum(logs, odds_floor(n, link), out=logs)
    adapted = np.exp(logs)
    adapted /= adapted.sum(axis=1, keepdims=True)
    n_classes = adapted.shape[1]
    low, high = proba_bounds(n, n_classes, link, multiclass)
    uniform = 1.0 / n_classes
    # the share t of the uniform row that lifts each entry to low (or lowers
    # it to high): (1 - t) p + t / K reaches the bound at this t
    with np.errstate(divide="ignore", invalid="ignore"):
        lift = np.where(adapted < low, (low - adapted) / (uniform - adapted), 0.0)
        lower = np.where(adapted > high, (adapted - high) / (adapted - uniform), 0.0)
    share = np.clip(np.maximum(lift, lower).max(axis=1, keepdims=True), 0.0, 1.0)
    adapted = (1.0 - share) * adapted + share * uniform
    if log:
        with np.errstate(divide="ignore"):
            adapted = np.log(adapted)
    return clip_to_bounds(adapted.astype(dtype), n, link, multiclass, log=log)


def weighted_conformal_sets(
    class_references: list, probabilities: list, alpha: float, ratio: np.ndarray
) -> np.ndarray:
    """Conformal sets under label shift (Podkopaev and Ramdas 2021).

    As :func:`~._conformal.conformal_sets`, with each held-out score weighted
    by ``ratio = q / pi`` of its class and the candidate class ``k`` by
    ``ratio[k]``: class ``k`` enters the set when

        (r_k + sum_j sum_c r_c weight{i in j, y_i = c : s_i >= 1 - p_jk(x)})
        / (r_k + sum_c r_c W_c)

    exceeds ``alpha``. ``class_references[j][c]`` holds model ``j``'s held-out
    scores of class ``c``; ``probabilities[j]`` its (unadapted)
    probabilities. With ``ratio`` all ones it is the unweighted set.
    """
    ratio = np.asarray(ratio, dtype=np.float64)
    n_classes = len(ratio)
    total = sum(
        ratio[c] * references[c].cumulative[-1]
        for references in class_references
        for c in range(n_classes)
    )
    count = np.zeros(probabilities[0].shape)
    for references, proba in zip(class_references, probabilities):
        scores = 1.0 - proba
        for c in range(n_classes):
            if ratio[c] > 0:
                count += ratio[c] * references[c].weight_at_or_above(scores)
    p_values = (ratio + count) / (ratio + total)
    # a p-value that ties with alpha counts as alpha: out of the set
    return below(alpha, p_values, floor=0.0)


# --------------------------------------------------------------------------------------
# What fit stores


def _rows_up_to(cap: int, n_rows: int):
    """``(fn, merge)`` gathering up to ``cap`` of the ``n_rows`` rows, evenly
    spaced by their positions in the whole (the same rows from every
    chunking), with the total weight where they are fewer than all
    (:func:`_at_full_weight` scales theirs to it)."""
    keep = None
    if n_rows > cap:
        keep = np.linspace(0, n_rows - 1, cap).round().astype(np.intp)

    def gather(chunk):
        w = np.asarray(chunk.w, dtype=np.float64)
        local = slice(None)
        if keep is not None:
            inside = (keep >= chunk.start) & (keep < chunk.start + len(w))
            local = keep[inside] - chunk.start
        # selected before the float64 copy: a network's (m, K) probabilities
        z = chunk.z[local]
        rows = {
            "proba": z[:, :-1].astype(np.float64),
            "margin": z[:, -1].astype(np.float64),
            "y": np.asarray(chunk.y, dtype=np.intp)[local],
            "w": w[local],
        }
        return rows, None if keep is None else float(w.sum())

    def merge(a, b):
        rows = {key: np.concatenate([a[0][key], b[0][key]]) for key in a[0]}
        return rows, None if a[1] is None else a[1] + b[1]

    return gather, merge


def _at_full_weight(gathered) -> dict:
    """The rows of :func:`_rows_up_to`, their weights scaled to the total of
    all rows where they are a part of them."""
    rows, total = gathered
    if total is not None:
        rows["w"] = rows["w"] * (total / max(rows["w"].sum(), 1e-300))
    return rows


def _moments(chunk, n_classes):
    proba = chunk.z[:, :-1].astype(np.float64)
    w = np.asarray(chunk.w, dtype=np.float64)
    return (
        float(w.sum()),
        w @ proba,
        (proba * w[:, None]).T @ proba,
        np.bincount(chunk.y, weights=w, minlength=n_classes),
    )


def _add_moments(a, b):
    return tuple(x + y for x, y in zip(a, b))


def _class_summaries(n_classes: int):
    """``(fn, merge)`` of a model's held-out nonconformity scores, one
    summary per class (see :func:`_class_references`)."""

    def summarise(chunk):
        proba = chunk.z[:, :-1]
        y = np.asarray(chunk.y)
        scores = nonconformity(proba, y).astype(np.float64)
        w = np.asarray(chunk.w, dtype=np.float64)
        return [
            QuantileSummary(scores[y == c], w[y == c], CLASS_REFERENCE_POINTS)
            for c in range(n_classes)
        ]

    def merge(a, b):
        return [x.merge(y) for x, y in zip(a, b)]

    return summarise, merge


def _class_references(summaries) -> list:
    """One model's conformal references, one per class, from its class
    summaries."""
    return [ConformalReference(*summary.points()) for summary in summaries]


def prior_requests(held, per_model: list, n_classes: int) -> list:
    """The statistics that adaptation needs of the held-out predictions of fit
    (sources of ``_flag.held_out_rows``: ``held`` as new predictions are
    made, ``per_model`` each model's own), as ``(source, fn, merge)``
    requests (see ``_source.one_pass_each``): the moments of ``held`` and up
    to :data:`ROW_CAP` of its rows; up to a share of them of each model's
    rows and its nonconformity scores per class. :func:`prior_state` makes
    the fitted state of their results."""
    moments_part = (
        by_blocks(lambda chunk: _moments(chunk, n_classes), _add_moments),
        _add_moments,
    )
    per_model_cap = max(ROW_CAP // len(per_model), 1)
    return [(held, *jointly(moments_part, _rows_up_to(ROW_CAP, held.n_rows)))] + [
        (
            model_held,
            *jointly(
                _rows_up_to(per_model_cap, model_held.n_rows),
                _class_summaries(n_classes),
            ),
        )
        for model_held in per_model
    ]


def prior_state(results: list) -> dict:
    """What fit stores for adaptation, from the results of
    :func:`prior_requests`: the implied proportions, the training class
    frequencies, the covariance of the probabilities, the held-out weight,
    rows (as made, and each model's) and each model's conformal references
    per class."""
    ((weight, total, squares, counts), rows), *model_parts = results
    implied = total / weight
    covariance = squares / weight - np.outer(implied, implied)
    return {
        "implied": implied,
        "frequencies": counts / counts.sum(),
        "covariance": covariance,
        "n": float(weight),
        "rows": _at_full_weight(rows),
        "model_rows": [_at_full_weight(model_rows) for model_rows, _ in model_parts],
        "class_references": [
            _class_references(summaries) for _, summaries in model_parts
        ],
    }

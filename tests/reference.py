"""A slow, obviously correct re-implementation of sklearn-gsoftmax, for
differential tests (``tests/test_reference.py``).

Written from the spec (``shared/spec/gaussian-softmax.md``, mirrored in
``docs/math.rst``), the user guide (``docs/user_guide.rst``) and the public
docstrings, and sharing no code with the package: it imports nothing from
``sklearn_gsoftmax``, only numpy, scipy and scikit-learn primitives. Where the
package is fast (bins, sorted references, vectorised tie groups), this is
plain: loops, brute force over every candidate, direct counting. What it
implements, and from where:

* **Ties** (user guide, "The same answer on every machine"): two values tie
  when they agree to 1e-9 relative (absolute below magnitude 1); ties chain
  in a sorted run and are broken by position. :func:`ties`,
  :func:`tie_groups`, :func:`first_index_of_max`.
* **The links** (spec, "The links", "Numerically stable evaluation"):
  softmax, linear, gaussian for two classes, ``vs_top`` and ``simplex``, with
  infinite scores as bounds; :func:`link_proba`.
* **Their gradients** (spec, "The gradient"): the closed forms of
  ``d(-ln p_y)/dz``; :func:`nll_grad`.
* **The calibrator's optimum** (spec, "What a calibrator fits"; user guide,
  "What n is"): ``p = link_n(a z + b)`` by plain weighted maximum likelihood
  (no prior, no box), minimised by scipy's L-BFGS-B from several starts;
  ``n`` is the sum of the weights (the row count without weights), rows of
  weight 0 take no part. :func:`fit_affine`, :class:`AffineFit`.
* **The meta-estimator's cross-fitting** (user guide, "Calibrating
  out-of-fold scores"; ``GaussianSoftmaxClassifier``'s docstring, Notes):
  folds from ``check_cv(cv, y, classifier=True)``; per fold a clone of the
  estimator fitted on the training rows (with their sample weights when its
  ``fit`` takes them); scores from ``decision_function``, else
  ``log(predict_proba)`` (zeros give ``-inf``; ``max(p, 1e-12)`` under
  ``link="softmax"``); a class missing from a fold's training part is never
  predicted by that fold's model (``-inf`` calibrated score: the link's
  floor), its calibrator covers the classes the model saw and is fitted on
  the held-out rows of those classes, with ``n`` the whole training count.
  ``ensemble=True`` averages the pairs' probabilities; ``ensemble=False``
  fits one calibrator on the out-of-fold scores (a missing class's column
  ``-inf``) and refits the estimator on all rows. :class:`CrossFit`.
* **The automatic threshold** (user guide, "The threshold"; "Ranking
  saturated predictions"): the smallest threshold whose accepted
  predictions reach the target accuracy, ties in confidence accepted
  together and ordered by the calibrated margin, by brute force over every
  candidate. :func:`auto_threshold`, :func:`low_confidence_flags`.
* **Conformal sets** (user guide, "Conformal prediction sets"): p-values by
  direct counting against the held-out nonconformity scores.
  :func:`conformal_pvalues`, :func:`conformal_sets`.
* **Novelty p-values** (user guide, "The novelty rule"):
  ``(1 + #{i : s_i >= s(x)}) / (N + 1)`` by counting. :func:`novelty_pvalues`.
* **The shift report** of a single model (user guide, "The shift report";
  ``shift_report``'s docstring): each rate, mean and accuracy recomputed from
  the held-out and batch predictions, Fisher's exact and Welch's z-tests,
  Bonferroni. :func:`shift_report`.
* **The metrics** (``sklearn_gsoftmax.metrics`` docstrings): the expected
  calibration error (top-label and class-wise, uniform and quantile bins,
  l1/l2/max norms) by explicit loops over the bins, the calibration report
  and the risk-coverage curve. :func:`expected_calibration_error`,
  :func:`calibration_report`, :func:`risk_coverage_curve`.
* **The selection for labelling** (user guide, "What to label next";
  ``select_for_labeling``'s docstring): not re-implemented (k-means), but its
  promised properties: :func:`selection_violations`.
"""

from __future__ import annotations

import math
from inspect import signature

import numpy as np
from scipy import optimize, stats
from sklearn.base import clone
from sklearn.model_selection import check_cv

#: Two values tie when they agree to this, relative (absolute below 1).
TIE_RTOL = 1e-9

#: The smallest probability whose log ``link="softmax"`` takes (README).
PROBA_FLOOR = 1e-12


# --------------------------------------------------------------------------
# Ties
# --------------------------------------------------------------------------


def ties(a, b) -> bool:
    """``a`` and ``b`` are the same value: equal, or finite and within
    ``TIE_RTOL * max(|a|, |b|, 1)`` of each other."""
    a, b = float(a), float(b)
    if a == b:
        return True
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) <= TIE_RTOL * max(abs(a), abs(b), 1.0)


def below(a, b) -> bool:
    """``a < b`` and the two do not tie."""
    return float(a) < float(b) and not ties(a, b)


def tie_groups(values):
    """Per value, its group (0 for the smallest values): sorted, a value
    that ties with the previous one joins its group (ties chain). Returns the
    groups and each group's smallest value."""
    values = [float(v) for v in np.asarray(values).reshape(-1)]
    order = sorted(range(len(values)), key=lambda i: values[i])
    group = [0] * len(values)
    lowest = []
    previous = None
    for i in order:
        if previous is None or not ties(values[i], previous):
            lowest.append(values[i])
        group[i] = len(lowest) - 1
        previous = values[i]
    return np.array(group, dtype=int), np.array(lowest)


def first_index_of_max(row) -> int:
    """The first position whose value ties with the row's largest."""
    top = max(float(v) for v in row)
    for k, value in enumerate(row):
        if not below(value, top):
            return k
    raise AssertionError("unreachable")


def predicted_index(proba) -> np.ndarray:
    """:func:`first_index_of_max` of each row."""
    return np.array([first_index_of_max(row) for row in np.asarray(proba)])


# --------------------------------------------------------------------------
# The links (spec, "The links")
# --------------------------------------------------------------------------


def _log_n_minus_1(n) -> float:
    return math.log(n - 1.0)


def _below_top(z: np.ndarray) -> np.ndarray:
    """``z_i - max(z)`` per row, in ``[-inf, 0]``: entries equal to the top
    (several ``+inf``, or a row of ``-inf``) give 0, not ``inf - inf``."""
    top = z.max(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = z - top
    diff[z == top] = 0.0
    return diff


def _softmax(v: np.ndarray, log=False) -> np.ndarray:
    d = _below_top(v)
    log_p = d - np.log(np.exp(d).sum(axis=1, keepdims=True))
    return log_p if log else np.exp(log_p)


def as_rows(z) -> np.ndarray:
    """Binary decision scores ``s`` as the rows ``(0, s)``; rows unchanged."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 1:
        return np.column_stack([np.zeros_like(z), z])
    return z


def link_proba(z, n, link="gaussian", multiclass="vs_top", log=False) -> np.ndarray:
    """Probabilities (or their logs) of the rows ``z`` under a link with
    sample count ``n``, straight from the spec's formulas."""
    z = as_rows(z)
    k = z.shape[1]
    if np.isnan(z).any():
        raise ValueError("NaN is not a score")
    if link == "softmax":
        return _softmax(z, log)
    if link == "linear":
        p = 1.0 / n + (1.0 - k / n) * _softmax(z)
        return np.log(p) if log else p
    big_l = _log_n_minus_1(n)
    if big_l == 0.0:  # n = 2: two samples support no preference
        p = np.full(z.shape, 1.0 / k)
        return np.log(p) if log else p
    if k == 2 or multiclass == "vs_top":
        # every class's odds against the leading one: the two-class formula
        d = big_l * np.tanh(_below_top(z) / big_l)
        return _softmax(d, log)
    # simplex: an inner softmax at temperature L / K, an outer one in base n - 1
    with np.errstate(over="ignore"):  # -1e308 * K: -inf, a weight of 0
        sigma = _softmax(k * _below_top(z) / big_l)
    return _softmax(big_l * sigma, log)


def binary_gaussian(s, n) -> np.ndarray:
    """``p_1 = 1 / (1 + (n - 1) ** (-tanh(s / L)))``, the spec's property 5."""
    s = np.asarray(s, dtype=np.float64)
    big_l = _log_n_minus_1(n)
    if big_l == 0.0:
        return np.full(s.shape, 0.5)
    return 1.0 / (1.0 + (n - 1.0) ** (-np.tanh(s / big_l)))


def bounds(n, k, link="gaussian", multiclass="vs_top"):
    """The smallest and largest probability the link can give (spec)."""
    if link == "softmax":
        return 0.0, 1.0
    if link == "linear" or k == 2:
        return 1.0 / n, 1.0 - (k - 1.0) / n
    if multiclass == "vs_top":
        return 1.0 / ((k - 1.0) * (n - 1.0) + 1.0), (n - 1.0) / (n + k - 2.0)
    return 1.0 / (n + k - 2.0), (n - 1.0) / (n + k - 2.0)


def nll_grad(z, y, n, link="gaussian", multiclass="vs_top") -> np.ndarray:
    """``d(-ln p_y)/dz`` of each row, by the spec's closed forms (shaped like
    ``z``: for binary decision scores, the derivative in ``s``)."""
    binary = np.asarray(z).ndim == 1
    rows = as_rows(z)
    m, k = rows.shape
    y = np.asarray(y, dtype=int)
    p = link_proba(rows, n, link, multiclass)
    g = p.copy()
    g[np.arange(m), y] -= 1.0
    if link == "softmax":
        grad = g
    elif link == "linear":
        q = _softmax(rows)
        q_y = q[np.arange(m), y][:, None]
        delta = np.zeros_like(q)
        delta[np.arange(m), y] = 1.0
        grad = -(1.0 - k / n) * q_y * (delta - q) / p[np.arange(m), y][:, None]
    else:
        big_l = _log_n_minus_1(n)
        if big_l == 0.0:
            grad = np.zeros_like(rows)
        elif k == 2 or multiclass == "vs_top":
            top = np.argmax(rows, axis=1)
            t = 1.0 - np.tanh(_below_top(rows) / big_l) ** 2
            t[np.arange(m), top] = 1.0
            h = g * t
            grad = h.copy()
            others = h.sum(axis=1) - h[np.arange(m), top]
            grad[np.arange(m), top] = -others
        else:
            with np.errstate(over="ignore"):
                sigma = _softmax(k * _below_top(rows) / big_l)
            inner = (sigma * g).sum(axis=1, keepdims=True)
            grad = k * sigma * (g - inner)
    if binary:
        # z = (0, s): the derivative in s is the second column's
        return grad[:, 1]
    return grad


# --------------------------------------------------------------------------
# The calibrator's optimum (spec, "What a calibrator fits")
# --------------------------------------------------------------------------


def margin_of(z) -> np.ndarray:
    """Two columns of scores as one binary decision score ``z_1 - z_0``."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 1:
        return z
    with np.errstate(invalid="ignore"):
        s = z[:, 1] - z[:, 0]
    s[z[:, 1] == z[:, 0]] = 0.0
    return s


def affine(z, scale, offsets) -> np.ndarray:
    """``a z + b`` with infinite scores kept as bounds (and ignored by a
    zero scale, which carries no information). Binary decision scores give
    the rows ``(0, a s + b_1)``."""
    z = np.asarray(z, dtype=np.float64)
    if scale == 0.0:
        scaled = np.zeros_like(z)
    else:
        with np.errstate(over="ignore"):
            scaled = scale * z
    if z.ndim == 1:
        return np.column_stack([np.zeros_like(z), scaled + offsets[1]])
    return scaled + np.asarray(offsets)[None, :]


class AffineFit:
    """A fitted ``p = link_n(a z + b)``: the scale, the offsets (the first
    0), the weighted mean NLL at the optimum and every local optimum found
    (``(nll, probabilities of the fitted rows)``), to tell a unique optimum
    from near-equal basins."""

    def __init__(
        self, scale, offsets, nll, n, link, multiclass, optima, at_box, curvature
    ):
        # at_box: no finite optimum (at the search's box, or separable);
        # curvature: the smallest eigenvalue of the loss's Hessian there
        self.scale = scale
        self.offsets = offsets
        self.nll = nll
        self.n = n
        self.link = link
        self.multiclass = multiclass
        self.optima = optima
        self.at_box = at_box
        self.curvature = curvature

    def mapped(self, z) -> np.ndarray:
        return affine(z, self.scale, self.offsets)

    def predict_proba(self, z) -> np.ndarray:
        return link_proba(self.mapped(z), self.n, self.link, self.multiclass)

    @property
    def finite_optimum(self) -> bool:
        """The likelihood has its maximum at finite parameters (not at the
        search's box, nor rising for ever on separable scores)."""
        return not self.at_box

    def unique_optimum(self, tol_nll=1e-7, tol_proba=1e-4) -> bool:
        """No other local optimum as good (within ``tol_nll``) gives other
        probabilities; the optimum is finite and the loss curves in every
        direction around it (standardised parameters), so that its
        parameters are determined to far better than ``tol_proba``."""
        best = min(self.optima, key=lambda o: o[0])
        for nll, proba in self.optima:
            if nll <= best[0] + tol_nll and np.abs(proba - best[1]).max() > tol_proba:
                return False
        return self.finite_optimum and self.curvature > 1e-4


def robust_unit(z, weights=None) -> float:
    """The robust scale the package documents standardising scores by
    (docs/math.rst): the mean absolute deviation from the median after
    clipping to the 5th-95th percentiles and to 10 interquartile ranges
    beyond the quartiles; for score columns the larger of that of the scores
    and of the scores centred on their row's mean."""
    z = np.asarray(z, dtype=np.float64)
    rows = z.reshape(len(z), -1)
    weights = np.ones(len(z)) if weights is None else np.asarray(weights, float)
    units = []
    candidates = [rows]
    if rows.shape[1] > 1:
        finite = np.where(np.isfinite(rows), rows, np.nan)
        candidates.append(rows - np.nanmean(finite, axis=1, keepdims=True))
    for values in candidates:
        w = np.repeat(weights, values.shape[1])
        v = values.ravel()
        keep = np.isfinite(v) & (w > 0)
        v, w = v[keep], w[keep]
        if not v.size:
            continue
        order = np.argsort(v)
        cumulative = np.cumsum(w[order]) / w.sum()

        def quantile(level, v=v, order=order, cumulative=cumulative):
            return v[order][min(np.searchsorted(cumulative, level), len(v) - 1)]

        low, median, high = quantile(0.05), quantile(0.5), quantile(0.95)
        reach = 10 * (quantile(0.75) - quantile(0.25))
        if reach > 0:
            low = max(low, quantile(0.25) - reach)
            high = min(high, quantile(0.75) + reach)
        units.append(float(np.dot(w, np.abs(np.clip(v, low, high) - median)) / w.sum()))
    positive = [u for u in units if u > 0]
    return max(positive) if positive else 1.0


def prior_allowance(fit: AffineFit, z, weights=None) -> float:
    """How much the package's weak ridge prior (1e-9 / 2 times the squared
    parameters on standardised scores, docs/math.rst) may raise its NLL
    above the unpenalised optimum ``fit``: at most the prior's value there
    (with a margin of 4 for the approximate unit)."""
    scale = fit.scale * robust_unit(z, weights)
    return 4 * 0.5e-9 * (scale**2 + float(np.sum(np.asarray(fit.offsets) ** 2)))


#: The package's rule for a calibrator's held-out predictions
#: (docs/architecture.rst, the data flow of a fit): its own probabilities of
#: its fitted rows stand for held-out ones from 100 rows (the weights' sum) per
#: fitted parameter on; with fewer, and at least 10 rows a class, each row's
#: come from the map refitted on the other rows of a 5-fold split.
OWN_ROWS_PER_PARAMETER = 100


def own_probabilities_stand_for_held_out(total, k, n_params) -> bool:
    """Whether a calibrator of ``k`` classes and ``n_params`` parameters
    fitted on rows of total weight ``total`` takes its own probabilities of
    those rows as its held-out predictions (see above)."""
    return not 10 * k <= total < OWN_ROWS_PER_PARAMETER * n_params


def held_out_refits(z, y_index, weights, n, link="gaussian", multiclass="vs_top"):
    """The held-out probabilities of a calibrator that needs refits (see
    above): each row's from the map fitted, by :func:`fit_affine`, on the
    other rows of ``KFold(5, shuffle=True, random_state=0)`` with the link's
    ``n`` of all rows; and whether every refit's optimum is unique."""
    from sklearn.model_selection import KFold

    z = np.asarray(z, dtype=np.float64)
    weights = np.ones(len(y_index)) if weights is None else np.asarray(weights, float)
    proba, unique = None, True
    for train, test in KFold(5, shuffle=True, random_state=0).split(z):
        fit = fit_affine(z[train], y_index[train], weights[train], n, link, multiclass)
        unique = unique and fit.unique_optimum()
        part = fit.predict_proba(z[test])
        if proba is None:
            proba = np.empty((len(z), part.shape[1]))
        proba[test] = part
    return proba, unique


def weighted_nll(proba, y_index, weights) -> float:
    """The weighted mean of ``-ln p_true``, rows of weight 0 left out."""
    proba = np.asarray(proba)
    keep = np.asarray(weights) > 0
    p_true = proba[np.arange(len(y_index)), y_index][keep]
    w = np.asarray(weights, dtype=np.float64)[keep]
    return float(np.dot(w, -np.log(p_true)) / w.sum())


#: Box of the reference's search, in standardised units: far beyond where
#: the package's own box (a scale of 1e4, offsets of 50) lies.
_REF_MAX_SCALE = 1e6
_REF_MAX_OFFSET = 1e6


def fit_affine(
    z,
    y_index,
    weights=None,
    n=None,
    link="gaussian",
    multiclass="vs_top",
    fit_intercept=True,
    starts=(),
) -> AffineFit:
    """The maximum-likelihood ``a`` and ``b`` of ``p = link_n(a z + b)``.

    ``z`` holds binary decision scores ``(m,)`` (``a`` free in sign) or one
    column per class (``a >= 0``; two columns are the decision score
    ``z_1 - z_0``). ``n`` defaults to the sum of the weights. L-BFGS-B with
    the closed-form gradient, from the best points of a grid of scales (and
    for binary scores, of steep steps at quantiles of the scores: a bounded
    link's likelihood may be highest for a saturated step) and from
    ``starts``, ``(a, b)`` pairs in the units of ``z`` (a candidate optimum
    to verify: if it is one, the optimiser stays there, and if a better
    one exists, another start finds it); the best end point is polished.
    """
    z = np.asarray(z, dtype=np.float64)
    if z.ndim == 2 and z.shape[1] == 2:
        z = margin_of(z)
    y_index = np.asarray(y_index, dtype=int)
    weights = np.ones(len(y_index)) if weights is None else np.asarray(weights, float)
    n = float(weights.sum()) if n is None else float(n)
    keep = weights > 0
    z, y, w = z[keep], y_index[keep], weights[keep]
    binary = z.ndim == 1
    k = 2 if binary else z.shape[1]
    # a unit of the scores for the optimiser's sake (the optimum does not
    # depend on it): their median absolute deviation, robust to saturated ones
    finite = z[np.isfinite(z)]
    unit = float(np.median(np.abs(finite - np.median(finite)))) if finite.size else 1.0
    if not 0.0 < unit < np.inf:
        unit = float(np.std(finite)) if finite.size else 1.0
    unit = unit if 0.0 < unit < np.inf else 1.0
    zs = z / unit
    zf = np.where(np.isfinite(zs), zs, 0.0)  # infinite scores: no gradient
    total = w.sum()
    n_offsets = (k - 1) if fit_intercept else 0

    def unpack(theta):
        offsets = np.zeros(k)
        if fit_intercept:
            offsets[1:] = theta[1:]
        return theta[0], offsets

    def loss_grad(theta):
        scale, offsets = unpack(theta)
        u = affine(zs, scale, offsets)
        log_p = link_proba(u, n, link, multiclass, log=True)
        loss = -np.dot(w, log_p[np.arange(len(y)), y]) / total
        g_u = nll_grad(u, y, n, link, multiclass) * w[:, None] / total
        if binary:
            d_scale = np.dot(g_u[:, 1], zf)
        else:
            d_scale = float((g_u * zf).sum())
        grad = [d_scale]
        if fit_intercept:
            grad.extend(g_u.sum(axis=0)[1:])
        return loss, np.array(grad)

    scale_low = -_REF_MAX_SCALE if binary else 0.0
    box = [(scale_low, _REF_MAX_SCALE)] + [(-_REF_MAX_OFFSET, _REF_MAX_OFFSET)] * (
        n_offsets
    )
    counts = np.array([w[y == j].sum() for j in range(k)])
    prior = np.log(np.maximum(counts, 0.5) / max(counts[0], 0.5))
    offsets = prior[1:] if fit_intercept else np.zeros(0)
    # the loss along a grid of scales (offsets at the class frequencies'):
    # the local optimiser starts from the three best points and from 0, so
    # that a second basin (mislabelled extreme scores) cannot hide the best
    grid = [0.0] + [float(a) for a in np.logspace(-2, 2, 17)]
    if binary:
        grid += [-a for a in grid[1:]]
    profile = sorted(grid, key=lambda a: loss_grad(np.r_[a, offsets])[0])
    candidates = [np.r_[a, offsets] for a in profile[:3]] + [np.r_[0.0, offsets]]
    if fit_intercept:
        candidates.append(np.r_[1.0, np.zeros(n_offsets)])
    if binary and fit_intercept:
        cuts = np.unique(np.quantile(zs[np.isfinite(zs)], np.linspace(0.02, 0.98, 25)))
        steps = [
            np.r_[a, -a * cut] for cut in cuts for a in (10.0, -10.0, 100.0, -100.0)
        ]
        steps = sorted(steps, key=lambda theta: loss_grad(theta)[0])
        candidates += steps[:2]
    for scale, given_offsets in starts:
        theta = np.r_[scale * unit, np.asarray(given_offsets, float)[1:]]
        candidates.append(np.clip(theta[: 1 + n_offsets], *np.array(box).T))
    options = {"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-11}
    optima = [
        optimize.minimize(
            loss_grad, start, jac=True, method="L-BFGS-B", bounds=box, options=options
        )
        for start in candidates
    ]
    best = min(optima, key=lambda r: r.fun)
    polished = optimize.minimize(
        loss_grad, best.x, jac=True, method="L-BFGS-B", bounds=box, options=options
    )
    if polished.fun <= best.fun:
        best = polished
        optima.append(polished)

    def proba_at(theta):
        scale, offsets = unpack(theta)
        return link_proba(affine(zs, scale, offsets), n, link, multiclass)

    scale, offsets = unpack(best.x)
    at_box = abs(scale) >= 0.999 * _REF_MAX_SCALE or (
        fit_intercept and np.abs(offsets).max() >= 0.999 * _REF_MAX_OFFSET
    )
    # No finite optimum: separable scores (twice the parameters, the same
    # boundary twice as sharp, cost nothing) or a class without labels (its
    # offset runs off for ever); a large move along a flat direction changes
    # the loss by almost nothing, where it costs much at a finite optimum.
    low, high = np.array(box).T
    if np.any((2.0 * best.x < low) | (2.0 * best.x > high)):
        at_box = True  # within a factor 2 of the box along its own ray
    moves = [best.x] if np.any(best.x != 0) else []
    for j in range(len(best.x)):
        step = np.zeros(len(best.x))
        step[j] = max(1.0, abs(best.x[j]))
        moves += [step, -step]
    for move in moves:
        moved = np.clip(best.x + move, low, high)
        if np.any(moved != best.x) and loss_grad(moved)[0] <= best.fun + 1e-6:
            at_box = True
    # the curvature of the loss at the optimum (central differences of the
    # closed-form gradient): along a direction of almost no curvature two
    # optimisers may stop far apart with the same loss
    size = len(best.x)
    hessian = np.empty((size, size))
    for j in range(size):
        step = np.zeros(size)
        step[j] = 1e-5 * max(1.0, abs(best.x[j]))
        hessian[:, j] = (loss_grad(best.x + step)[1] - loss_grad(best.x - step)[1]) / (
            2 * step[j]
        )
    free = np.ones(size, bool)
    if not binary and best.x[0] <= 1e-8:
        free[0] = False  # the scale at its bound 0: no curvature needed there
    hessian = (hessian + hessian.T)[np.ix_(free, free)] / 2
    curvature = float(np.linalg.eigvalsh(hessian).min()) if free.any() else np.inf
    return AffineFit(
        scale / unit,
        offsets,
        float(best.fun),
        n,
        link,
        multiclass,
        [(float(r.fun), proba_at(r.x)) for r in optima],
        at_box,
        curvature,
    )


# --------------------------------------------------------------------------
# The meta-estimator's cross-fitting
# --------------------------------------------------------------------------


def estimator_scores(estimator, X, *, finite=False) -> np.ndarray:
    """``decision_function`` where the estimator has it, else the log of
    ``predict_proba`` (zeros give ``-inf``; with ``finite``, probabilities
    are raised to ``PROBA_FLOOR`` first)."""
    if hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(X), dtype=np.float64)
    proba = np.asarray(estimator.predict_proba(X), dtype=np.float64)
    if finite:
        proba = np.maximum(proba, PROBA_FLOOR)
    with np.errstate(divide="ignore"):
        return np.log(proba)


def _rows(X, index):
    return X.iloc[index] if hasattr(X, "iloc") else X[index]


def _fit_estimator(estimator, X, y, weights, rows):
    kwargs = {}
    if weights is not None and "sample_weight" in signature(estimator.fit).parameters:
        kwargs["sample_weight"] = weights[rows]
    return clone(estimator).fit(_rows(X, rows), y[rows], **kwargs)


class _Pair:
    """A fold's estimator and the calibrator of its scores, over the classes
    ``seen`` (positions in all classes) it was trained on."""

    def __init__(self, estimator, seen, calibrator, n_classes, finite):
        self.estimator = estimator
        self.seen = seen
        self.calibrator = calibrator
        self.n_classes = n_classes
        self.finite = finite

    def own_scores(self, X) -> np.ndarray:
        """The estimator's scores of its own classes: a binary decision score
        for two, else one column each."""
        scores = estimator_scores(self.estimator, X, finite=self.finite)
        return margin_of(scores) if len(self.seen) == 2 else scores

    def calibrated(self, X) -> np.ndarray:
        """Calibrated scores of every class: the seen ones mapped, the
        others ``-inf`` (never predicted by this pair)."""
        mapped = self.calibrator.mapped(self.own_scores(X))
        full = np.full((mapped.shape[0], self.n_classes), -np.inf)
        full[:, self.seen] = mapped
        return full

    def predict_proba(self, X) -> np.ndarray:
        c = self.calibrator
        return link_proba(self.calibrated(X), c.n, c.link, c.multiclass)


class CrossFit:
    """What ``GaussianSoftmaxClassifier(estimator, cv=cv, ensemble=ensemble,
    link=link, multiclass=multiclass, fit_intercept=fit_intercept,
    score_map="affine", fit_ceiling=False)`` computes, from scikit-learn
    primitives."""

    def __init__(
        self,
        estimator,
        *,
        cv=None,
        ensemble=True,
        link="gaussian",
        multiclass="vs_top",
        fit_intercept=True,
    ):
        self.estimator = estimator
        self.cv = cv
        self.ensemble = ensemble
        self.link = link
        self.multiclass = multiclass
        self.fit_intercept = fit_intercept

    def fit(self, X, y, sample_weight=None, starts=None):
        """Fit as the meta-estimator does; ``starts[j]`` holds extra starts
        of pair ``j``'s calibrator (see :func:`fit_affine`)."""
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        k = len(self.classes_)
        y_index = np.searchsorted(self.classes_, y)
        weights = (
            np.ones(len(y))
            if sample_weight is None
            else np.asarray(sample_weight, float)
        )
        given = None if sample_weight is None else weights
        self.n_samples_ = float(weights.sum())
        finite = self.link == "softmax"
        folds = list(check_cv(self.cv, y, classifier=True).split(X, y))
        self.folds_ = folds
        if self.ensemble:
            self.pairs_ = []
            for j, (train, test) in enumerate(folds):
                estimator = _fit_estimator(self.estimator, X, y, given, train)
                seen = np.searchsorted(self.classes_, estimator.classes_)
                position = np.full(k, -1)
                position[seen] = np.arange(len(seen))
                labels = position[y_index[test]]
                keep = labels >= 0  # held-out rows of the classes it saw
                pair = _Pair(estimator, seen, None, k, finite)
                scores = pair.own_scores(_rows(X, test))
                pair.fitted_on = (scores[keep], labels[keep], weights[test][keep])
                pair.calibrator = fit_affine(
                    *pair.fitted_on,
                    self.n_samples_,
                    self.link,
                    self.multiclass,
                    self.fit_intercept,
                    starts=() if starts is None else starts[j],
                )
                self.pairs_.append(pair)
            return self
        # ensemble=False: one calibrator on the out-of-fold scores of all
        # classes (a class a fold did not see: -inf), the estimator refitted
        columns = 1 if k == 2 else k
        oof = np.full((len(y), columns), np.nan)
        for train, test in folds:
            estimator = _fit_estimator(self.estimator, X, y, given, train)
            seen = np.searchsorted(self.classes_, estimator.classes_)
            part = _Pair(estimator, seen, None, k, finite)
            scores = part.own_scores(_rows(X, test))
            if k == 2:
                oof[test, 0] = scores
                continue
            full = np.full((len(test), k), -np.inf)
            if len(seen) == 2:
                # the decision score s of seen[1] against seen[0]: (0, s)
                full[:, seen[0]] = 0.0
                full[:, seen[1]] = scores
            else:
                full[:, seen] = scores
            oof[test] = full
        self.oof_scores_ = oof[:, 0] if k == 2 else oof
        final = _fit_estimator(self.estimator, X, y, given, np.arange(len(y)))
        pair = _Pair(final, np.arange(k), None, k, finite)
        pair.fitted_on = (self.oof_scores_, y_index, weights)
        pair.calibrator = fit_affine(
            *pair.fitted_on,
            self.n_samples_,
            self.link,
            self.multiclass,
            self.fit_intercept,
            starts=() if starts is None else starts[0],
        )
        self.pairs_ = [pair]
        return self

    def predict_proba(self, X) -> np.ndarray:
        return np.mean([pair.predict_proba(X) for pair in self.pairs_], axis=0)

    def oof_proba(self) -> np.ndarray:
        """``ensemble=False``: the calibrator's probabilities of the
        out-of-fold scores, the held-out predictions of the flag."""
        c = self.pairs_[0].calibrator
        return c.predict_proba(self.oof_scores_)


# --------------------------------------------------------------------------
# The flag: the automatic threshold and low_confidence
# --------------------------------------------------------------------------


def threshold_candidates(confidence, margin=None):
    """Every candidate of the ``"auto"`` threshold, the one accepting the
    most first: each tie group of confidence, smallest first, and within it
    each margin of the predictions tying with the group's smallest value (a
    tie group of their margins: its smallest value), smallest first. Yields
    ``(threshold, margin_threshold, accepted)``, ``accepted`` the predictions
    that :func:`low_confidence_flags` does not flag (those ``predict``
    accepts); each candidate accepts the next one's and more."""
    confidence = np.asarray(confidence, dtype=np.float64)
    _, c_lowest = tie_groups(confidence)
    if margin is not None:
        margin = np.asarray(margin, dtype=np.float64)
    for threshold in c_lowest:
        at_threshold = ties_with(confidence, threshold)
        below_threshold = (confidence < threshold) & ~at_threshold
        if margin is None:
            cuts = [-math.inf]
        else:
            cuts = tie_groups(margin[at_threshold])[1].tolist()
        for cut in cuts:
            # low_confidence_flags, by arrays
            accepted = ~below_threshold
            if cut > -math.inf:
                margin_below = (margin < cut) & ~ties_with(margin, cut)
                accepted &= ~(at_threshold & margin_below)
            yield float(threshold), cut, accepted


def auto_threshold(confidence, correct, weights, target, margin=None):
    """Brute force over :func:`threshold_candidates`: the first (accepting
    the most) whose (weighted) accuracy reaches ``target`` (or ties with it)
    wins.

    Returns ``(threshold, coverage, accuracy, margin_threshold, accepted)``,
    ``accepted`` the boolean mask; ``(inf, 0, nan, -inf, none)`` when no
    candidate reaches the target.
    """
    correct = np.asarray(correct, dtype=bool)
    weights = np.asarray(weights, dtype=np.float64)
    total = weights.sum()
    for threshold, cut, accepted in threshold_candidates(confidence, margin):
        accepted_weight = weights[accepted].sum()
        if accepted_weight <= 0:
            continue
        accuracy = weights[accepted & correct].sum() / accepted_weight
        if accuracy >= target or ties(accuracy, target):
            return threshold, accepted_weight / total, accuracy, cut, accepted
    return math.inf, 0.0, math.nan, -math.inf, np.zeros(len(correct), bool)


def low_confidence_flags(top, margin, threshold, margin_threshold) -> np.ndarray:
    """The ``low_confidence`` rule: a top probability below the threshold;
    one tying with it, a margin below the margin threshold."""
    flags = []
    for t, m in zip(np.asarray(top), np.asarray(margin)):
        flag = below(t, threshold)
        if ties(t, threshold) and margin_threshold > -math.inf:
            flag = flag or below(m, margin_threshold)
        flags.append(flag)
    return np.array(flags, dtype=bool)


def ambiguous_flags(proba, ratio) -> np.ndarray:
    """The ``ambiguous`` rule: the top probability is less than ``ratio``
    times the runner-up's."""
    flags = []
    for row in np.asarray(proba):
        ordered = sorted(row, reverse=True)
        flags.append(below(ordered[0], ratio * ordered[1]))
    return np.array(flags, dtype=bool)


# --------------------------------------------------------------------------
# Conformal sets and novelty p-values: direct counting
# --------------------------------------------------------------------------


def ties_with(values, value) -> np.ndarray:
    """:func:`ties` of each of ``values`` with ``value``."""
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        gap = np.abs(values - value)
        tolerance = TIE_RTOL * np.maximum(np.maximum(np.abs(values), abs(value)), 1.0)
    return (values == value) | (np.isfinite(gap) & (gap <= tolerance))


def _weight_at_or_above(reference, weights, value) -> float:
    """The total weight of the reference values at least ``value`` or tying
    with it."""
    counted = (reference >= value) | ties_with(reference, value)
    return float(np.sum(weights[counted]))


def conformal_pvalues(reference, weights, proba) -> np.ndarray:
    """``(1 + weight{i : s_i >= 1 - p_k}) / (W + 1)`` for every sample and
    class, ``s`` the held-out nonconformity scores ``1 - p_true``."""
    reference = np.asarray(reference, dtype=np.float64)
    weights = np.ones(len(reference)) if weights is None else np.asarray(weights)
    total = weights.sum()
    proba = np.asarray(proba, dtype=np.float64)
    out = np.empty(proba.shape)
    for i in range(proba.shape[0]):
        for k in range(proba.shape[1]):
            count = _weight_at_or_above(reference, weights, 1.0 - proba[i, k])
            out[i, k] = (1.0 + count) / (total + 1.0)
    return out


def conformal_sets(reference, weights, proba, alpha) -> np.ndarray:
    """Class ``k`` is in the set when its p-value exceeds ``alpha`` (a
    p-value that ties with ``alpha`` does not)."""
    pvalues = conformal_pvalues(reference, weights, proba)
    return np.vectorize(lambda p: below(alpha, p))(pvalues).astype(bool)


def novelty_pvalues(held_out, weights, scores) -> np.ndarray:
    """``(1 + weight{i : s_i >= s(x)}) / (W + 1)`` of each new novelty
    score ``s(x)`` (higher is more novel) against the held-out ones."""
    held_out = np.asarray(held_out, dtype=np.float64)
    weights = np.ones(len(held_out)) if weights is None else np.asarray(weights)
    total = weights.sum()
    return np.array(
        [
            (1.0 + _weight_at_or_above(held_out, weights, s)) / (total + 1.0)
            for s in np.asarray(scores, dtype=np.float64)
        ]
    )


# --------------------------------------------------------------------------
# The shift report of a single model
# --------------------------------------------------------------------------


def _weighted_mean_std(values, weights):
    values, weights = np.asarray(values, float), np.asarray(weights, float)
    finite = np.isfinite(values)
    values, weights = values[finite], weights[finite]
    mean = float(np.sum(weights * values) / np.sum(weights))
    var = float(np.sum(weights * (values - mean) ** 2) / np.sum(weights))
    return mean, math.sqrt(var)


def _welch(batch, mean, std, n_reference, alternative):
    batch = np.asarray(batch, float)
    if np.isinf(batch).any():
        return 0.0
    batch_mean = float(np.mean(batch))
    if ties(batch_mean, mean):
        return 1.0
    se = math.sqrt(np.var(batch) / len(batch) + std**2 / n_reference)
    if se == 0.0:
        return 0.0
    z = (batch_mean - mean) / se
    if alternative == "two-sided":
        return float(2.0 * stats.norm.sf(abs(z)))
    return float(stats.norm.sf(z))


def _fisher(successes, trials, reference_successes, reference_trials, alternative):
    table = [
        [successes, trials - successes],
        [reference_successes, reference_trials - reference_successes],
    ]
    return float(stats.fisher_exact(table, alternative=alternative).pvalue)


def shift_report(held_out: dict, batch: dict, alpha=0.01, n_checks=None) -> dict:
    """The checks of a batch against the held-out predictions of one model
    (unit weights), as the user guide defines them.

    ``held_out`` and ``batch`` map ``"flags"`` to ``{rule: mask}`` (the
    rules on probabilities), ``"confidence"`` to the top-class
    probabilities and, with labels, ``"correct"`` and ``"loss"``. Returns
    ``{check: (observed, expected, p_value)}`` and the Bonferroni verdict,
    over ``n_checks`` checks in all (these, unless given).
    """
    n_ref = len(held_out["confidence"])
    m = len(batch["confidence"])
    rows = {}
    for rule, mask in batch["flags"].items():
        reference = int(np.sum(held_out["flags"][rule]))
        rows[f"flag rate: {rule}"] = (
            float(np.mean(mask)),
            reference / n_ref,
            _fisher(int(np.sum(mask)), m, reference, n_ref, "two-sided"),
        )
    mean, std = _weighted_mean_std(held_out["confidence"], np.ones(n_ref))
    rows["mean top-class probability"] = (
        float(np.mean(batch["confidence"])),
        mean,
        _welch(batch["confidence"], mean, std, n_ref, "two-sided"),
    )
    if "correct" in batch:
        ref_correct = np.asarray(held_out["correct"], bool)
        rows["accuracy"] = (
            float(np.mean(batch["correct"])),
            float(np.mean(ref_correct)),
            _fisher(
                int(np.sum(batch["correct"])),
                m,
                int(ref_correct.sum()),
                n_ref,
                "less",
            ),
        )

        def accepted_of(part):
            flags = list(part["flags"].values())
            accepted = np.ones(len(part["confidence"]), bool)
            for mask in flags:
                accepted &= ~np.asarray(mask, bool)
            return accepted

        ref_accepted = accepted_of(held_out)
        if ref_accepted.any():
            accepted = accepted_of(batch)
            correct = np.asarray(batch["correct"], bool)
            ref_acc = float(ref_correct[ref_accepted].mean())
            if accepted.any():
                p_value = _fisher(
                    int(correct[accepted].sum()),
                    int(accepted.sum()),
                    int(ref_correct[ref_accepted].sum()),
                    int(ref_accepted.sum()),
                    "less",
                )
                observed = float(correct[accepted].mean())
            else:
                p_value = (1.0 - ref_accepted.sum() / n_ref) ** m
                observed = math.nan
            rows["accuracy of accepted predictions"] = (observed, ref_acc, p_value)
        mean, std = _weighted_mean_std(held_out["loss"], np.ones(n_ref))
        rows["log-loss"] = (
            float(np.mean(batch["loss"])),
            mean,
            _welch(batch["loss"], mean, std, n_ref, "greater"),
        )
    n_checks = len(rows) if n_checks is None else n_checks
    shifted = {check: row[2] < alpha / n_checks for check, row in rows.items()}
    return {"rows": rows, "shifted": shifted, "verdict": any(shifted.values())}


# --------------------------------------------------------------------------
# Metrics, by loops
# --------------------------------------------------------------------------


def _quantile_edges(prob, weights, n_bins):
    """Inner edges at the inverted-CDF quantiles: the first probability
    whose cumulative weight (ascending) reaches ``j / n_bins`` of the total."""
    order = sorted(range(len(prob)), key=lambda i: prob[i])
    total = float(np.sum(weights))
    edges = [0.0]
    for j in range(1, n_bins):
        target = total * j / n_bins
        cumulative = 0.0
        edge = prob[order[-1]]
        for i in order:
            cumulative += weights[i]
            if cumulative >= target:
                edge = prob[i]
                break
        edges.append(float(edge))
    edges.append(1.0)
    return edges


def _bin_of(p, edges) -> int:
    """Bins are ``(e_j, e_j+1]``, the first holding 0 too; a probability
    tying with an edge lies on it (in the bin below)."""
    n_bins = len(edges) - 1
    for j in range(n_bins):
        last = j == n_bins - 1
        if last or not (p > edges[j + 1] and not ties(p, edges[j + 1])):
            return j
    raise AssertionError("unreachable")


def _gap(prob, hit, weights, n_bins, strategy, norm) -> float:
    prob = [float(p) for p in prob]
    if strategy == "uniform":
        edges = [j / n_bins for j in range(n_bins + 1)]
    else:
        edges = _quantile_edges(prob, weights, n_bins)
    weight = [0.0] * n_bins
    prob_sum = [0.0] * n_bins
    hit_sum = [0.0] * n_bins
    for p, h, w in zip(prob, hit, weights):
        j = _bin_of(p, edges)
        weight[j] += w
        prob_sum[j] += w * p
        hit_sum[j] += w * h
    total = sum(weight)
    gaps, shares = [], []
    for j in range(n_bins):
        if weight[j] > 0:
            gaps.append(abs(hit_sum[j] / weight[j] - prob_sum[j] / weight[j]))
            shares.append(weight[j] / total)
    if norm == "l1":
        return sum(s * g for s, g in zip(shares, gaps))
    if norm == "l2":
        return math.sqrt(sum(s * g * g for s, g in zip(shares, gaps)))
    return max(gaps)


def expected_calibration_error(
    y_index,
    proba,
    *,
    n_bins=15,
    strategy="uniform",
    kind="top_label",
    norm="l1",
    weights=None,
) -> float:
    """ECE by loops: top-label (the top probability against whether the
    predicted class is right) or class-wise (each column against whether it
    is the true class, combined over the classes in the same norm)."""
    proba = np.asarray(proba, dtype=np.float64)
    y_index = np.asarray(y_index, dtype=int)
    weights = np.ones(len(y_index)) if weights is None else np.asarray(weights, float)
    if kind == "top_label":
        top = proba.max(axis=1)
        hit = predicted_index(proba) == y_index
        return _gap(top, hit, weights, n_bins, strategy, norm)
    errors = [
        _gap(proba[:, k], y_index == k, weights, n_bins, strategy, norm)
        for k in range(proba.shape[1])
    ]
    if norm == "l1":
        return sum(errors) / len(errors)
    if norm == "l2":
        return math.sqrt(sum(e * e for e in errors) / len(errors))
    return max(errors)


def calibration_report(y_index, proba, weights=None, confident_above=0.95) -> dict:
    """The entries of ``metrics.calibration_report``, one loop each."""
    proba = np.asarray(proba, dtype=np.float64)
    y_index = np.asarray(y_index, dtype=int)
    m, k = proba.shape
    weights = np.ones(m) if weights is None else np.asarray(weights, float)
    total = weights.sum()
    eps = np.finfo(np.float64).eps
    log_loss = brier = confident = correct_weight = 0.0
    worst, smallest = -math.inf, math.inf
    for i in range(m):
        row = proba[i] / proba[i].sum()  # scikit-learn's log_loss renormalises
        p_true = min(max(row[y_index[i]], eps), 1 - eps)
        log_loss += weights[i] * -math.log(p_true)
        brier += weights[i] * sum(
            (proba[i, j] - (j == y_index[i])) ** 2 for j in range(k)
        )
        right = first_index_of_max(proba[i]) == y_index[i]
        correct_weight += weights[i] * right
        if not right and not below(proba[i].max(), confident_above):
            confident += weights[i]
        if weights[i] > 0:
            with np.errstate(divide="ignore"):
                worst = max(worst, -float(np.log(proba[i, y_index[i]])))
            smallest = min(smallest, float(proba[i].min()))
    return {
        "log_loss": log_loss / total,
        "brier": brier / total,
        "ece": expected_calibration_error(y_index, proba, weights=weights),
        "max_log_loss": worst,
        "min_proba": smallest,
        "confident_errors": confident / total,
        "accuracy": correct_weight / total,
    }


def risk_coverage_curve(y_index, proba, margin=None):
    """Per candidate of :func:`threshold_candidates`, the largest threshold
    first: the share accepted, its accuracy and the confidence threshold."""
    proba = np.asarray(proba, dtype=np.float64)
    confidence = proba.max(axis=1)
    correct = predicted_index(proba) == np.asarray(y_index)
    candidates = list(threshold_candidates(confidence, margin))[::-1]
    coverage = [accepted.mean() for _, _, accepted in candidates]
    accuracy = [correct[accepted].mean() for _, _, accepted in candidates]
    thresholds = [threshold for threshold, _, _ in candidates]
    return np.array(coverage), np.array(accuracy), np.array(thresholds)


# --------------------------------------------------------------------------
# Labelling: the promised properties
# --------------------------------------------------------------------------


def selection_violations(
    positions, n_select, m, *, confidence, margin, pvalues=None, alpha=None, place=None
) -> list:
    """What ``select_for_labeling``'s positions break of its promises:
    ``n_select`` distinct valid positions; in priority order (novel first,
    the smallest novelty p-value first, then the least confident, ties by
    the smallest margin); the most novel sample first when any is novel; and
    with ``place`` (the samples' features), no two picks near-identical
    while enough distinct samples exist. An empty list: none broken."""
    problems = []
    positions = [int(p) for p in positions]
    if len(positions) != n_select:
        problems.append(f"{len(positions)} positions for n_select={n_select}")
    if len(set(positions)) != len(positions):
        problems.append(f"repeated positions {positions}")
    if any(not 0 <= p < m for p in positions):
        problems.append(f"positions out of range(0, {m}): {positions}")
    if problems:
        return problems
    novel = (
        np.zeros(m, bool)
        if pvalues is None
        else np.array([not below(alpha, p) for p in pvalues])
    )
    for first, second in zip(positions, positions[1:]):
        if novel[second] and not novel[first]:
            problems.append(f"novel {second} after the not novel {first}")
        elif novel[first] and novel[second]:
            if below(pvalues[second], pvalues[first]):
                problems.append(f"novel {second} more novel than {first}, after it")
        elif not novel[first] and not novel[second]:
            c1, c2 = confidence[first], confidence[second]
            if below(c2, c1) or (ties(c1, c2) and below(margin[second], margin[first])):
                problems.append(f"{second} less confident than {first}, after it")
    if novel.any():
        p0 = positions[0]
        most = min(pvalues[novel])
        if not novel[p0] or below(most, pvalues[p0]):
            problems.append(f"first pick {p0} is not among the most novel samples")
    if place is not None:
        place = np.asarray(place, dtype=np.float64)

        def same(i, j):
            return all(ties(a, b) for a, b in zip(place[i], place[j]))

        distinct = []
        for i in range(m):
            if not any(same(i, j) for j in distinct):
                distinct.append(i)
        if len(distinct) >= n_select:
            for a, i in enumerate(positions):
                for j in positions[a + 1 :]:
                    if same(i, j):
                        problems.append(f"near-duplicates {i} and {j} both picked")
    return problems

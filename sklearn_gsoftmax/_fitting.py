"""Fitting the scale and offsets of ``p = link_n(a * z + b)`` by maximum likelihood.

Binary problems (two parameters) use a damped Newton method with the exact
Hessian: a handful of passes over the data, which is what makes a fit on 10^6
scores as fast as scikit-learn's sigmoid calibration. ``K >= 3`` classes use
L-BFGS-B with the analytic gradient of ``_links``.

The scores are divided by a robust scale (see ``_score_unit``) before fitting,
so that the parameters and the prior below do not depend on the units of the
scores; the fitted scale is converted back at the end.

The bounded links' likelihood is not convex in the scale (a few mislabelled
extreme scores give it a second basin near a flat model), so their local
optimisers start from a search over the scale (``_search``). The softmax
link's loss is convex: one start.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from ._links import binary_nll_derivatives, multiclass_nll_grad
from ._search import (
    SEARCH_GRADIENT_TOL,
    LocalFit,
    global_fit,
    not_converged,
    scale_grid,
    search_rows,
)

#: Strength of the ridge prior ``PRIOR_STRENGTH / 2 * (a**2 + |b|**2)`` added to the
#: mean negative log-likelihood (parameters on standardised scores). On separable
#: scores the likelihood of a saturating link is flat far out in the scale, so the
#: maximum is not unique; this prior makes it unique. Elsewhere it moves the fitted
#: probabilities by less than 1e-6 (seen in the parity tests with scikit-learn's
#: Platt and temperature scaling, which have no prior).
PRIOR_STRENGTH = 1e-9

_NEWTON_MAX_ITER = 100
_LBFGS_MAX_ITER = 1000
_GRADIENT_TOL = 1e-10
_POLISH_DECREMENT = 1e-10
# L-BFGS may stop on a failed line search with a tiny gradient still above
# _GRADIENT_TOL. That happens in the flat far region of (nearly) separable
# scores, where probabilities sit near their bounds and further steps change
# them little; such a stop is taken as converged, a larger gradient is an error.
_ACCEPTABLE_GRADIENT = 1e-4
# Box of the parameters on standardised scores (unit scale). Beyond it
# every link is saturated: an offset of 50 is a probability ratio of e**50, a
# scale of 1e4 turns a score difference of 1e-3 RMS into 10 logits. On
# separable scores, where the likelihood keeps rising towards infinity, the box
# (with the prior) puts the optimum at a finite, unique point that L-BFGS-B
# reaches without wandering down an endless flat valley.
_MAX_SCALE = 1e4
_MAX_OFFSET = 50.0


def affine_scores(z: np.ndarray, scale: float, intercept) -> np.ndarray:
    """``scale * z + intercept`` where an infinite score stays a bound.

    ``0 * inf`` would be NaN: with a zero scale the scores carry no information, so
    infinite ones map to the intercept like every other.
    """
    if (
        z.dtype != np.float64
        and scale != 0.0
        and not (
            float(np.finfo(z.dtype).smallest_subnormal)
            <= abs(scale)
            <= float(np.finfo(z.dtype).max)
        )
    ):
        # The scale itself overflows float32 (scores of tiny magnitude) or
        # underflows to 0 in it (scores of huge magnitude): inf * 0 would be
        # NaN. Compute in float64, then round.
        with np.errstate(over="ignore", under="ignore"):
            return affine_scores(z.astype(np.float64), scale, intercept).astype(z.dtype)
    if scale == 0.0:
        out = np.zeros_like(z)
    else:
        # a huge score times the scale may overflow to inf: that is the bound
        with np.errstate(over="ignore"):
            out = z * scale
    out += intercept
    return out


def _finite_copy(z: np.ndarray) -> np.ndarray:
    """``z`` with infinite entries set to 0, for products with derivatives.

    The saturating links' derivatives are exactly 0 at infinite scores, so the
    infinite entries contribute nothing to the gradient; a 0 avoids ``0 * inf``.
    """
    finite = np.isfinite(z)
    if finite.all():
        return z
    return np.where(finite, z, 0.0)


def _weighted_quantiles(values: np.ndarray, w: np.ndarray, levels) -> np.ndarray:
    """Lower weighted quantiles: the first value whose cumulative weight reaches
    ``level`` times the total. With frequency weights they equal the quantiles
    of the rows repeated (a weight of k acts as k repeated rows here too)."""
    levels = np.asarray(levels, dtype=float)
    if np.all(w == w[0]):
        ranks = np.clip(np.ceil(levels * len(values)).astype(int) - 1, 0, None)
        return np.partition(values, ranks)[ranks]
    order = np.argsort(values)
    cumulative = np.cumsum(w[order])
    ranks = np.searchsorted(cumulative, levels * cumulative[-1])
    return values[order][np.minimum(ranks, len(values) - 1)]


def _score_unit(values: np.ndarray, w: np.ndarray) -> float:
    """A robust scale of the scores: their mean absolute deviation from the
    median, after clipping them to their 5th and 95th percentiles.

    The fit divides the scores by it, so that the parameters, the prior and the
    box do not depend on the units of the scores. Robustness matters: a root
    mean square is inflated by one outlier, which makes the right standardised
    scale huge and hands the fit to the prior (one score of 1e8 among normal
    ones flattened every probability to 1/2). A median absolute deviation in
    turn collapses on scores that sit in a few clusters. Clipping to the 5-95 %
    range keeps both problems out unless 90 % of the scores are equal.
    """
    low, median, high = _weighted_quantiles(values, w, [0.05, 0.5, 0.95])
    with np.errstate(over="ignore", invalid="ignore"):
        unit = float(np.abs(np.clip(values, low, high) - median) @ w) / float(w.sum())
        if not 0.0 < unit < np.inf:
            # 90 % of the scores are equal: the plain mean absolute deviation
            unit = float(np.abs(values - median) @ w) / float(w.sum())
    return unit if 0.0 < unit < np.inf else 1.0


def _standardise(z: np.ndarray, unit: float) -> np.ndarray:
    """``z / unit``, with scores beyond 1e100 units made infinite.

    Such a score is saturated at any scale a fit can reach (|a| > 1e-90), so it
    is a bound like an infinite one; kept finite, its square in the Hessian
    would overflow and meet a zero derivative as ``inf * 0``.
    """
    with np.errstate(over="ignore"):
        z_std = z / unit
    huge = np.abs(z_std) > 1e100
    if huge.any():
        z_std[huge] = np.copysign(np.inf, z_std[huge])
    return z_std


class FitResult:
    """The fitted parameters in the units of the original scores."""

    def __init__(
        self, scale: float, intercept: np.ndarray, n_iter: int, unit: float = 1.0
    ):
        self.scale = scale
        self.intercept = intercept
        self.n_iter = n_iter
        # the scores' robust unit the fit standardised them by
        self.unit = unit


def _binary_objective(s_std, sign, w, n, link: str, n_params: int):
    """``evaluate(theta) -> (loss, gradient, Hessian)`` of binary margins."""
    s_std_finite = _finite_copy(s_std)
    # Precomputed products: each Newton pass is then one kernel call and dots.
    w_s = w * s_std_finite
    w_ss = w_s * s_std_finite
    buffers = [np.empty_like(s_std) for _ in range(5)]

    def evaluate(theta):
        b = theta[1] if n_params == 2 else 0.0
        u = affine_scores(s_std, theta[0], b)
        loss, d1, d2 = binary_nll_derivatives(u, sign, n, link, buffers)
        value = loss @ w + 0.5 * PRIOR_STRENGTH * theta @ theta
        grad = np.empty(n_params)
        grad[0] = d1 @ w_s
        hess = np.empty((n_params, n_params))
        hess[0, 0] = d2 @ w_ss
        if n_params == 2:
            grad[1] = d1 @ w
            hess[0, 1] = hess[1, 0] = d2 @ w_s
            hess[1, 1] = d2 @ w
        grad += PRIOR_STRENGTH * theta
        hess[np.diag_indices(n_params)] += PRIOR_STRENGTH
        return value, grad, hess

    return evaluate


def fit_binary(s, y, weights, n, link: str, fit_intercept: bool) -> FitResult:
    """Fit ``u = a * s + b`` for binary margins ``s`` and 0/1 labels ``y``.

    ``weights`` are normalised to sum to 1 here; the loss is their weighted mean
    negative log-likelihood plus the prior.
    """
    w = weights / weights.sum()
    unit = _score_unit(_finite_copy(s), w)
    s_std = _standardise(s, unit)
    sign = 2.0 * y - 1.0
    n_params = 2 if fit_intercept else 1
    bounds = [(-_MAX_SCALE, _MAX_SCALE)] + [(-_MAX_OFFSET, _MAX_OFFSET)] * (
        n_params - 1
    )

    def rows(sample):
        if sample is None:
            return s_std, sign, w
        return s_std[sample[0]], sign[sample[0]], sample[1]

    def newton_on(sample, tol=_GRADIENT_TOL):
        evaluate = _binary_objective(*rows(sample), n, link, n_params)
        return (
            lambda theta: evaluate(theta)[0],
            lambda theta, box=bounds: _damped_newton(evaluate, theta, box, tol),
        )

    def search():
        sample = search_rows(w, np.abs(s_std))
        return sample, lambda grid: _binary_losses(*rows(sample), n, link, grid)

    theta, n_iter = fit_by_link(
        link, newton_on, np.zeros(n_params), bounds, True, search
    )
    intercept = np.array([0.0, theta[1] if fit_intercept else 0.0])
    return FitResult(theta[0] / unit, intercept, n_iter, unit)


def _binary_losses(s_std, sign, w, n, link: str, grid: np.ndarray) -> np.ndarray:
    """The losses at the rows of ``grid`` (scale, offset), in one pass."""
    scale = grid[:, :1]
    with np.errstate(over="ignore", invalid="ignore"):
        u = scale * s_std
    u[grid[:, 0] == 0.0] = 0.0  # 0 * inf: see affine_scores
    if grid.shape[1] == 2:
        u += grid[:, 1:]
    loss = binary_nll_derivatives(u.ravel(), np.tile(sign, len(grid)), n, link)[0]
    prior = 0.5 * PRIOR_STRENGTH * np.einsum("ij,ij->i", grid, grid)
    return loss.reshape(len(grid), -1) @ w + prior


#: Offsets of the binary search's lines, added to the flat model's offset (the
#: first line, 0, is the flat model's own).
_OFFSET_SHIFTS = (0.0, -2.0, -1.0, 1.0, 2.0)


def fit_by_link(link, local_on, start, bounds, signed: bool, search):
    """The fit of every link, from ``local_on(sample)`` (see
    :func:`_search_then_fit`).

    Softmax's loss is convex in the parameters: one local fit from ``start``
    is its maximum likelihood (and a flat fit on far mislabelled scores its
    true answer). The bounded links search their basins first; ``search()``
    gives the subsample and the losses along a grid on it. Returns the
    parameters and the iteration count.
    """
    if link == "softmax":
        theta, value, n_iter, problem = local_on(None)[1](start)
        if problem is not None:
            not_converged(problem, value)
        return theta, n_iter
    sample, sub_values = search()
    theta, _, n_iter, _ = _search_then_fit(local_on, sample, sub_values, bounds, signed)
    return theta, n_iter


def unit_scale_start(n_params: int) -> np.ndarray:
    """Scale 1, offsets 0: the multiclass start (scale 0 is a saddle there)."""
    start = np.zeros(n_params)
    start[0] = 1.0
    return start


def values_along(value):
    """The losses at the rows of a grid, one evaluation each."""
    return lambda grid: np.array([value(theta) for theta in grid])


def _search_then_fit(local_on, sample, sub_values, bounds, signed: bool):
    """The bounded links' fit: :func:`global_fit` over a grid of scales whose
    offsets are those of the flat model (the optimum at scale 0).

    ``local_on(sample, tol)`` gives ``(value, fit)`` functions on a subsample
    from :func:`search_rows` (``None``: all rows); ``fit(theta, box)``
    optimises locally within a box to gradient tolerance ``tol``.
    """
    search_fit = local_on(sample, SEARCH_GRADIENT_TOL)[1]
    full_value, final_fit = local_on(None)
    flat = search_fit(np.zeros(len(bounds)), [(0.0, 0.0)] + bounds[1:]).theta
    scales = scale_grid(signed)
    # Binary scores: lines of other offsets too. A saturated basin may sit at
    # an offset far from the flat model's (20 tied scores: the flat line's
    # profile passed it by and the fit ended 2e-3 worse, silently).
    shifts = _OFFSET_SHIFTS if len(flat) == 2 else (0.0,)
    grid = np.tile(flat, (len(shifts) * len(scales), 1))
    grid[:, 0] = np.tile(scales, len(shifts))
    if len(flat) == 2:
        grid[:, 1] += np.repeat(shifts, len(scales))
        np.clip(grid[:, 1], *bounds[1], out=grid[:, 1])
    return global_fit(
        grid,
        sub_values,
        search_fit,
        final_fit,
        None if sample is None else full_value,
        lines=len(shifts),
    )


def _damped_newton(evaluate, theta, bounds, tol=_GRADIENT_TOL) -> LocalFit:
    """Minimise within a box with projected Newton steps, a backtracking line
    search and a shifted Hessian where it is not positive definite (the
    saturating links' loss is not convex far from the optimum).

    A parameter at a bound whose gradient points out of the box is held there;
    the Newton step is solved for the others.
    """
    low, high = np.array(bounds, dtype=float).T
    theta = np.clip(theta, low, high)
    value, grad, hess = evaluate(theta)
    for n_iter in range(1, _NEWTON_MAX_ITER + 1):
        held = ((theta <= low) & (grad > 0)) | ((theta >= high) & (grad < 0))
        free = ~held
        if not free.any() or np.max(np.abs(grad[free])) <= tol:
            return LocalFit(theta, value, n_iter - 1)
        step = np.zeros_like(theta)
        hess_free = _positive_definite(hess[np.ix_(free, free)])
        step[free] = -np.linalg.solve(hess_free, grad[free])
        slope = grad @ step
        if -slope <= _POLISH_DECREMENT * abs(value):
            # The predicted decrease is at the rounding level of the loss, so a
            # line search cannot tell better from worse: take the Newton step,
            # which in this quadratic region lands on the optimum. The loss
            # reported is the one before the step: equal to rounding level.
            return LocalFit(np.clip(theta + step, low, high), value, n_iter)
        t = 1.0
        while True:
            candidate = np.clip(theta + t * step, low, high)
            new = evaluate(candidate)
            if new[0] <= value + 1e-4 * (grad @ (candidate - theta)):
                break
            t *= 0.5
            if t < 1e-10:
                # No decrease along a descent direction: the loss is flat to
                # machine precision here, which is the optimum we can reach.
                return LocalFit(theta, value, n_iter)
        theta = candidate
        value, grad, hess = new
    held = ((theta <= low) & (grad > 0)) | ((theta >= high) & (grad < 0))
    if np.max(np.abs(grad[~held]), initial=0.0) <= _ACCEPTABLE_GRADIENT:
        # crept along the flat far region of separable scores (see
        # _ACCEPTABLE_GRADIENT): as converged as it will get
        return LocalFit(theta, value, _NEWTON_MAX_ITER)
    return LocalFit(
        theta,
        value,
        _NEWTON_MAX_ITER,
        f"Newton iterations stopped after {_NEWTON_MAX_ITER} steps with gradient "
        f"{np.max(np.abs(grad)):.3g}",
    )


def _positive_definite(hess: np.ndarray) -> np.ndarray:
    eigenvalues = np.linalg.eigvalsh(hess)
    floor = 1e-8 * max(1.0, abs(eigenvalues[-1]))
    if eigenvalues[0] >= floor:
        return hess
    return hess + (floor - eigenvalues[0]) * np.eye(hess.shape[0])


def _projected_gradient(result, bounds) -> float:
    """Largest gradient entry that a step could still follow: at a bound, a
    slope pointing out of the box is the optimum, not a failure (at a = 0 the
    scores carry no information)."""
    projected = result.jac.copy()
    for i, (low, high) in enumerate(bounds):
        if (result.x[i] <= low and projected[i] > 0) or (
            result.x[i] >= high and projected[i] < 0
        ):
            projected[i] = 0.0
    return float(np.max(np.abs(projected)))


def _multiclass_objective(z_std, y, w, n, link: str, multiclass: str, n_params):
    """``loss_grad(theta) -> (loss, gradient)`` of ``(m, K)`` logits."""
    k = z_std.shape[1]
    z_std_finite = _finite_copy(z_std)
    infinite = ~np.isfinite(z_std)
    infinite = infinite if infinite.any() else None

    def loss_grad(theta):
        intercept = np.zeros(k)
        if n_params > 1:
            intercept[1:] = theta[1:]
        u = affine_scores(z_std, theta[0], intercept)
        loss, g = multiclass_nll_grad(u, y, n, link, multiclass)
        if infinite is not None and theta[0] != 0.0:
            # An infinite score stays infinite whatever the offset: its
            # derivative is 0. The link's gradient is not, in a row of equal
            # infinite scores, which it treats as a tie.
            g[infinite] = 0.0
        g *= w[:, None]
        grad = np.empty(n_params)
        grad[0] = np.einsum("ij,ij->", g, z_std_finite)
        if n_params > 1:
            grad[1:] = g[:, 1:].sum(axis=0)
        value = loss @ w + 0.5 * PRIOR_STRENGTH * theta @ theta
        return value, grad + PRIOR_STRENGTH * theta

    return loss_grad


def _lbfgs(loss_grad, theta, bounds, tol=_GRADIENT_TOL) -> LocalFit:
    """L-BFGS-B within a box, restarted once where its line search fails."""
    for _attempt in range(2):
        result = minimize(
            loss_grad,
            np.clip(theta, *np.array(bounds, dtype=float).T),
            method="L-BFGS-B",
            jac=True,
            bounds=bounds,
            options={
                "maxiter": _LBFGS_MAX_ITER,
                "gtol": tol,
                "ftol": 64 * np.finfo(float).eps,
            },
        )
        if (
            result.success
            or _projected_gradient(result, bounds) <= _ACCEPTABLE_GRADIENT
        ):
            # scipy reports no nit when every parameter is fixed by its bounds
            return LocalFit(result.x, float(result.fun), int(getattr(result, "nit", 0)))
        # A failed line search (typical of the flat far region of separable
        # scores) often clears when L-BFGS restarts from where it stopped.
        theta = result.x
    return LocalFit(
        result.x,
        float(result.fun),
        int(getattr(result, "nit", 0)),
        f"L-BFGS stopped: {result.message} (projected gradient "
        f"{_projected_gradient(result, bounds):.3g})",
    )


def fit_multiclass(
    z, y, weights, n, link: str, multiclass: str, fit_intercept: bool
) -> FitResult:
    """Fit ``a * z + b`` (``a >= 0``, ``b_0 = 0``) for ``(m, K)`` logits."""
    m, k = z.shape
    w = weights / weights.sum()
    z_finite = _finite_copy(z)
    with np.errstate(over="ignore", invalid="ignore"):
        # rows of +-1e308 may overflow their mean: such rows only add outliers
        centred = z_finite - z_finite.mean(axis=1, keepdims=True)
    centred[np.isnan(centred)] = 0.0
    unit = _score_unit(centred.ravel(), np.repeat(w, k))
    z_std = _standardise(z, unit)
    n_params = k if fit_intercept else 1
    bounds = [(0.0, _MAX_SCALE)] + [(-_MAX_OFFSET, _MAX_OFFSET)] * (n_params - 1)

    def lbfgs_on(sample, tol=_GRADIENT_TOL):
        if sample is None:
            args = z_std, y, w
        else:
            args = z_std[sample[0]], y[sample[0]], sample[1]
        loss_grad = _multiclass_objective(*args, n, link, multiclass, n_params)
        return (
            lambda theta: loss_grad(theta)[0],
            lambda theta, box=bounds: _lbfgs(loss_grad, theta, box, tol),
        )

    def search():
        with np.errstate(invalid="ignore"):
            # inf - inf in a row of infinite scores: NaN, counted as extreme
            spread = z_std.max(axis=1) - z_std.min(axis=1)
        sample = search_rows(w, np.nan_to_num(spread, nan=np.inf))
        return sample, values_along(lbfgs_on(sample)[0])

    theta, n_iter = fit_by_link(
        link, lbfgs_on, unit_scale_start(n_params), bounds, False, search
    )
    intercept = np.zeros(k)
    if fit_intercept:
        intercept[1:] = theta[1:]
    return FitResult(float(theta[0]) / unit, intercept, n_iter, unit)

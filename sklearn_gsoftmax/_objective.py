"""The calibration objective: where each parameter sits, and the loss of a chunk.

A calibration map sends scores ``z`` to the link's logits ``u``: the affine map
``u = a z + b`` of the spec, or the matrix map ``u = W z + b``, and with the
gaussian link its ceiling ``L = ln(n - 1)`` may be fitted too. A
:class:`Layout` says where each parameter sits in the vector ``theta`` the
optimisers see, their bounds and the penalty added to the mean negative
log-likelihood. :func:`objective` evaluates the data term chunk by chunk
(through a ``_source.Source``) and adds the penalty once, so that the fit on a
cluster is the fit in memory.

Parameters are fitted on standardised scores ``z / unit`` (``unit`` a robust
scale of the scores, see ``_fitting``), so that the prior and the box do not
depend on the units; the chunks are not copied for that: the kernels apply
``theta / unit`` to the scores as they are (float32 stays float32).
"""

from __future__ import annotations

import functools

import numpy as np

from ._links import (
    binary_ceiling_nll_grads,
    binary_margin,
    binary_nll_derivatives,
    link_proba,
    log_n_minus_1,
    multiclass_nll_grad,
    vs_top_nll_grads,
)
from ._source import add

#: Strength of the ridge prior ``PRIOR_STRENGTH / 2 * |theta|**2`` on the
#: parameters of standardised scores, added to the mean negative
#: log-likelihood. On separable scores the likelihood of a saturating link is
#: flat far out in the scale, so the maximum is not unique; this prior makes it
#: unique. Elsewhere it moves the fitted probabilities by less than 1e-6 (seen
#: in the parity tests with scikit-learn's Platt and temperature scaling).
PRIOR_STRENGTH = 1e-9

#: Box of the parameters on standardised scores. Beyond it every link is
#: saturated: an offset of 50 is a probability ratio of e**50, a scale of 1e4
#: turns a score difference of 1e-3 RMS into 10 logits. On separable scores,
#: where the likelihood keeps rising towards infinity, the box (with the prior)
#: puts the optimum at a finite, unique point.
MAX_SCALE = 1e4
MAX_OFFSET = 50.0

#: Smallest fitted ceiling ``L``: probabilities within 0.1 % of uniform.
MIN_CEILING = 1e-3

#: Ridge ``MAP_RIDGE * |W|**2`` on the matrix map's entries. On (nearly)
#: separable scores the likelihood keeps rising with the matrix's diagonal,
#: which the off-diagonal ridge does not hold: without it the fit runs to the
#: box (wine, 25 rows a fold: 5 times the best scikit-learn log-loss, against
#: 2.2 with it). Chosen on the quality benchmark (1e-6 to 1e-4 measured). The
#: affine scale has none: on separable binary scores its standardised scale of
#: several hundred would pay nats for it.
MAP_RIDGE = 1e-5


#: Newton's method moves the ceiling ``L`` by at most this much a step. Its
#: start, ``ln(n - 1)``, is far above most margins, where the loss is nearly
#: flat in ``L``: the first Newton step went to the box's other end and the
#: line search halved it ten times (a ceiling fit of 4 000 rows took 19
#: passes, 9 with the cap).
MAX_CEILING_STEP = 1.0


class Layout:
    """Where each parameter sits in ``theta``, their bounds and penalty.

    ``theta`` holds the scale ``a`` (affine) or the ``K x K`` matrix ``W``
    (row-major), then the offsets (``K - 1`` for the affine map, whose first
    offset is 0; ``K`` for the matrix, whose ridge fixes their level), then
    ``L`` when the ceiling is fitted. A binary problem is carried by its
    margin (the rows ``(0, s)``): scale free in sign, one offset.
    """

    def __init__(
        self, k, *, matrix=False, fit_intercept=True, ceiling=False, n=2.0, penalty=0.0
    ):
        self.k, self.matrix, self.ceiling = k, matrix, ceiling
        self.fit_intercept = fit_intercept
        self.n, self.big_l_max = n, log_n_minus_1(n)
        self.penalty = penalty if matrix else 0.0
        self.n_map = k * k if matrix else 1
        self.n_offsets = (k if matrix else k - 1) if fit_intercept else 0
        self.offsets = slice(self.n_map, self.n_map + self.n_offsets)
        self.size = self.n_map + self.n_offsets + int(ceiling)
        if matrix:
            diagonal = np.eye(k, dtype=bool).ravel()
            scale_bounds = [
                (0.0, MAX_SCALE) if on else (-MAX_SCALE, MAX_SCALE) for on in diagonal
            ]
        else:
            # a binary margin's scale is free in sign
            scale_bounds = [(-MAX_SCALE if k == 2 else 0.0, MAX_SCALE)]
        self.bounds = (
            scale_bounds
            + [(-MAX_OFFSET, MAX_OFFSET)] * self.n_offsets
            + [(MIN_CEILING, self.big_l_max)] * int(ceiling)
        )
        self.offset_anchor = np.zeros(self.n_offsets)
        # Newton's largest step per parameter (see MAX_CEILING_STEP)
        self.max_steps = None
        if ceiling:
            self.max_steps = np.full(self.size, np.inf)
            self.max_steps[-1] = MAX_CEILING_STEP

    def intercept(self, theta) -> np.ndarray:
        b = np.zeros(self.k)
        offsets = theta[self.offsets]
        if self.matrix:
            b[: len(offsets)] = offsets
        else:
            b[1 : 1 + len(offsets)] = offsets
        return b

    def big_l(self, theta) -> float:
        return float(theta[-1]) if self.ceiling else self.big_l_max

    def n_link(self, theta) -> float:
        """The ``n`` of the fitted link: ``1 + exp(L)``, ``n`` at the bound."""
        big_l = self.big_l(theta)
        return self.n if big_l >= self.big_l_max else 1.0 + float(np.exp(big_l))

    def start(self, scale_std: float, intercept: np.ndarray, big_l=None) -> np.ndarray:
        """``theta`` of an affine map (scale on standardised scores, offsets
        ``intercept``) and a ceiling ``big_l`` (``ln(n - 1)`` when ``None``);
        its offsets are where the matrix's ridge pulls the offsets to."""
        theta = np.zeros(self.size)
        if self.matrix:
            theta[: self.n_map] = scale_std * np.eye(self.k).ravel()
            theta[self.offsets] = intercept[: self.n_offsets]
        else:
            theta[0] = scale_std
            theta[self.offsets] = intercept[1 : 1 + self.n_offsets]
        if self.ceiling:
            theta[-1] = self.big_l_max if big_l is None else big_l
        theta = np.clip(theta, *np.array(self.bounds).T)
        self.offset_anchor = theta[self.offsets].copy()
        return theta

    def penalty_value_grad_hess(self, theta):
        """The weak prior and, for the matrix, ``MAP_RIDGE`` on its entries,
        the off-diagonal ridge and that of the offsets' change from the anchor
        (:meth:`start` sets it), with their Hessian (constant)."""
        value = 0.5 * PRIOR_STRENGTH * theta @ theta
        grad = PRIOR_STRENGTH * theta
        hess = PRIOR_STRENGTH * np.ones(self.size)  # diagonal
        if not self.matrix:
            return value, grad, hess
        entries = theta[: self.n_map]
        value += MAP_RIDGE * entries @ entries
        grad[: self.n_map] += 2.0 * MAP_RIDGE * entries
        hess[: self.n_map] += 2.0 * MAP_RIDGE
        if self.penalty:
            k = self.k
            off_diagonal = ~np.eye(k, dtype=bool).ravel()
            off = np.where(off_diagonal, entries, 0.0)
            lam_w = self.penalty / (k * (k - 1))
            lam_b = self.penalty / k
            change = theta[self.offsets] - self.offset_anchor
            value += lam_w * off @ off + lam_b * change @ change
            grad[: self.n_map] += 2.0 * lam_w * off
            grad[self.offsets] += 2.0 * lam_b * change
            hess[: self.n_map][off_diagonal] += 2.0 * lam_w
            hess[self.offsets] += 2.0 * lam_b
        return value, grad, hess


# --------------------------------------------------------------------------------------
# Maps from scores to the link's logits


def finite_copy(z: np.ndarray) -> np.ndarray:
    """``z`` with infinite entries set to 0, for products with derivatives.

    The saturating links' derivatives are exactly 0 at infinite scores, so the
    infinite entries contribute nothing to the gradient; a 0 avoids ``0 * inf``.
    """
    finite = np.isfinite(z)
    if finite.all():
        return z
    return np.where(finite, z, 0.0).astype(z.dtype, copy=False)


def affine_scores(z: np.ndarray, scale: float, intercept) -> np.ndarray:
    """``scale * z + intercept`` where an infinite score stays a bound.

    ``0 * inf`` would be NaN: with a zero scale the scores carry no
    information, so infinite ones map to the intercept like every other.
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
    # a cast intercept keeps float32 scores float32
    out += intercept if np.ndim(intercept) == 0 else intercept.astype(z.dtype)
    return out


def matrix_scores(z, cross, coef, intercept) -> np.ndarray:
    """``u_i = W_ii z_i + sum_{j != i} W_ij clip(z_j) + b_i``, in the scores'
    dtype (float64 where float32 cannot hold the matrix's entries).

    The diagonal term is ``W_ii (z_i - clip(z_i))`` added to the clipped
    product: 0 inside the range, and an infinite score stays infinite (a
    bound) unless ``W_ii = 0``, where it carries no information (as in
    :func:`affine_scores`).
    """
    if z.dtype != np.float64 and np.abs(coef).max() > np.finfo(z.dtype).max:
        # entries beyond float32 (scores of tiny magnitude): compute in float64
        wide = matrix_scores(
            z.astype(np.float64), cross.astype(np.float64), coef, intercept
        )
        with np.errstate(over="ignore"):
            return wide.astype(z.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        u = cross @ coef.T.astype(z.dtype, copy=False)
        excess = z - cross
    diagonal = np.diag(coef).astype(z.dtype, copy=False)
    excess[:, diagonal == 0.0] = 0.0
    with np.errstate(over="ignore"):
        u += excess * diagonal
    u += intercept.astype(z.dtype, copy=False)
    return u


def finite_bounds(z: np.ndarray) -> np.ndarray:
    """``(2, K)``: each column's smallest and largest finite score; ``inf``
    and ``-inf`` for a column without any, or no rows (so that chunks merge by
    min / max)."""
    z = z.reshape(len(z), -1)
    finite = np.isfinite(z)
    return np.vstack(
        [
            np.where(finite, z, np.inf).min(axis=0, initial=np.inf),
            np.where(finite, z, -np.inf).max(axis=0, initial=-np.inf),
        ]
    ).astype(np.float64)


def settled(bounds: np.ndarray) -> np.ndarray:
    """:func:`finite_bounds` with the columns that had no finite score at 0:
    the range the matrix's cross terms are clipped to."""
    bounds = bounds.copy()
    bounds[:, bounds[0] > bounds[1]] = 0.0
    return bounds


def margins(z: np.ndarray) -> np.ndarray:
    """Binary scores as margins ``(m,)`` in float64: ``(m,)`` and ``(m, 1)``
    as they are, ``(m, 2)`` reduced to ``z_1 - z_0``."""
    z = z.astype(np.float64, copy=False)
    if z.ndim == 2 and z.shape[1] == 2:
        return binary_margin(z)
    return z.reshape(-1)


def standardise(z: np.ndarray, unit: float) -> np.ndarray:
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


# --------------------------------------------------------------------------------------
# The objective


class Problem:
    """What the data term depends on besides ``theta``: the layout, the link
    and its form, the scores' unit, the total weight (the loss is a weighted
    mean) and, for the matrix, the clip range of the cross terms."""

    def __init__(self, layout, link, form, unit, total, clip_range=None):
        self.layout, self.link, self.form = layout, link, form
        self.unit, self.total, self.clip_range = unit, total, clip_range


def _binary_term(problem: Problem, chunk):
    """The data term of binary margins: ``evaluate(theta)`` gives the loss, the
    gradient and the exact Hessian (Newton's method), flattened."""
    layout = problem.layout
    s_std = standardise(margins(chunk.z), problem.unit)
    sign = 2.0 * chunk.y - 1.0
    w = chunk.w / problem.total
    s_finite = finite_copy(s_std)
    w_s = w * s_finite
    w_ss = w_s * s_finite
    buffers = [np.empty_like(s_std) for _ in range(5)]
    b = layout.offsets
    size = layout.size

    def evaluate(theta):
        offset = float(theta[b][0]) if layout.fit_intercept else 0.0
        u = affine_scores(s_std, float(theta[0]), offset)
        grad = np.zeros(size)
        hess = np.zeros((size, size))
        if layout.ceiling:
            loss, d_u, d_big_l, (h_uu, h_ul, h_ll) = binary_ceiling_nll_grads(
                u, sign, layout.big_l(theta)
            )
            grad[-1], hess[-1, -1] = d_big_l @ w, h_ll @ w
            hess[0, -1] = hess[-1, 0] = h_ul @ w_s
            if layout.fit_intercept:
                hess[b, -1] = hess[-1, b] = h_ul @ w
        else:
            loss, d_u, h_uu = binary_nll_derivatives(
                u, sign, layout.n, problem.link, buffers
            )
        grad[0], hess[0, 0] = d_u @ w_s, h_uu @ w_ss
        if layout.fit_intercept:
            grad[b], hess[b, b] = d_u @ w, h_uu @ w
            hess[0, b] = hess[b, 0] = h_uu @ w_s
        return np.concatenate([[loss @ w], grad, hess.ravel()])

    return evaluate


def _multiclass_term(problem: Problem, chunk):
    """The data term of ``(m, K)`` logits: ``evaluate(theta)`` gives the loss
    and the gradient, flattened. The scores stay in their units (the
    standardised parameters are divided by the unit instead) and in their
    dtype in memory; each evaluation computes in float64 (a block at a time,
    see ``_source.BLOCK_ENTRIES``): float32 rounding of every row's loss
    would make the mean's last changes noise, and L-BFGS's line search then
    spends several evaluations a step chasing it."""
    layout, unit = problem.layout, problem.unit
    k = layout.k
    stored, y = chunk.z, chunk.y
    w = chunk.w / problem.total
    # checked once: the float64 copy of each evaluation needs no scan then
    all_finite = bool(np.isfinite(stored).all())
    if layout.matrix:
        low, high = (problem.clip_range * unit).astype(stored.dtype)
        stored_cross = np.clip(stored, low, high)

    def evaluate(theta):
        z = stored.astype(np.float64, copy=False)
        z_finite = z if all_finite else finite_copy(z)
        cross = None
        if layout.matrix:
            cross = stored_cross.astype(np.float64, copy=False)
            excess = z_finite - cross
            if not all_finite:
                excess[~np.isfinite(z)] = 0.0  # its derivative is 0 there
        u = _mapped(layout, unit, z, cross, theta)
        infinite = ~np.isfinite(u)
        if layout.ceiling:
            loss, g, d_big_l = vs_top_nll_grads(u, y, layout.big_l(theta))
        else:
            loss, g = multiclass_nll_grad(u, y, layout.n, problem.link, problem.form)
        # an infinite mapped score is a bound: no parameter moves it (the
        # link's gradient is not 0 in a row of equal infinite scores, a tie)
        if infinite.any():
            g[infinite] = 0.0
        g *= w.astype(g.dtype)[:, None]
        grad = np.zeros(layout.size)
        # column sums by einsum: numpy's sum along the long axis of a few
        # columns is several times slower
        class_sums = np.einsum("ij->j", g, dtype=np.float64)
        if layout.matrix:
            coef_grad = (g.T @ cross).astype(np.float64)
            coef_grad[np.diag_indices(k)] += np.einsum(
                "ij,ij->j", g, excess, dtype=np.float64
            )
            grad[: layout.n_map] = coef_grad.ravel() / unit
            offsets = class_sums[: layout.n_offsets]
        else:
            grad[0] = np.einsum("ij,ij->", g, z_finite, dtype=np.float64) / unit
            offsets = class_sums[1 : 1 + layout.n_offsets]
        grad[layout.offsets] = offsets
        if layout.ceiling:
            grad[-1] = d_big_l.astype(np.float64) @ w
        value = loss.astype(np.float64) @ w
        return np.concatenate([[value], grad])

    return evaluate


def _mapped(layout: Layout, unit: float, z, cross, theta) -> np.ndarray:
    """The link's logits of scores ``z`` at ``theta`` (on standardised
    scores, hence the ``unit``); ``cross`` the matrix map's clipped scores."""
    intercept = layout.intercept(theta)
    if layout.matrix:
        coef = theta[: layout.n_map].reshape(layout.k, layout.k) / unit
        return matrix_scores(z, cross, coef, intercept)
    return affine_scores(z, float(theta[0]) / unit, intercept)


def _multiclass_curvature(problem: Problem, chunk, theta) -> np.ndarray:
    """An estimate of the data term's Hessian diagonal at ``theta``, for
    L-BFGS's preconditioning: the Fisher information of a softmax with the
    link's probabilities, ``sum_i w_i p_ik (1 - p_ik)`` for the offset of
    class ``k`` and the probability-weighted variance of a row's scores for
    the scale. Only its order of magnitude matters: it puts the offsets of
    rare classes (curvature ~ their share) on the scale of the others, which
    is what makes a fit of many classes converge in a few dozen steps."""
    layout, unit = problem.layout, problem.unit
    z = finite_copy(chunk.z)
    w = chunk.w / problem.total
    cross = None
    if layout.matrix:
        low, high = problem.clip_range * unit
        cross = np.clip(z, low, high)
    u = _mapped(layout, unit, z, cross, theta)
    n = layout.n_link(theta)
    # huge scores overflow the squares: an infinite curvature, which the
    # preconditioner leaves out (it only sets the parameters' scales)
    with np.errstate(invalid="ignore", over="ignore"):
        p = np.nan_to_num(link_proba(u, n, problem.link, problem.form), nan=0.0)
        p = p.astype(np.float64, copy=False)
        spread = w @ (p * (1.0 - p))
        curvature = np.ones(layout.size)
        if layout.matrix:
            scaled = cross.astype(np.float64, copy=False) / unit
            entries = spread[:, None] * (w @ scaled**2)[None]
            curvature[: layout.n_map] = entries.ravel()
            offsets = spread[: layout.n_offsets]
        else:
            z_std = z.astype(np.float64, copy=False) / unit
            mean = np.einsum("ij,ij->i", p, z_std)
            variance = np.einsum("ij,ij->i", p, z_std**2) - mean**2
            curvature[0] = w @ np.maximum(variance, 0.0)
            offsets = spread[1 : 1 + layout.n_offsets]
    curvature[layout.offsets] = offsets
    return np.nan_to_num(curvature, nan=np.inf)


def data_term(problem: Problem):
    """``make(chunk)`` of a source's evaluator: the data term of the chunk."""
    if problem.layout.k == 2:
        return lambda chunk: _binary_term(problem, chunk)
    return lambda chunk: _multiclass_term(problem, chunk)


def _also_at_many(term):
    """``term`` (a chunk's data term), which with ``many=True`` takes a list
    of parameter vectors and gives their outputs stacked."""

    def evaluate(theta, many=False):
        if many:
            return np.stack([term(one) for one in theta])
        return term(theta)

    return evaluate


def map_objective(
    source, spec, layout: Layout, unit: float, total: float, clip_range=None
):
    """:func:`objective` of a map of ``layout`` under ``spec``'s link and
    multiclass form on ``source`` (of total weight ``total``), on scores
    standardised by ``unit``; ``clip_range``, the matrix's, in the scores'
    units."""
    problem = Problem(
        layout,
        spec.link,
        spec.multiclass,
        unit,
        total,
        None if clip_range is None else clip_range / unit,
    )
    return objective(source, problem)


def objective(source, problem: Problem):
    """The penalised objective on all rows of ``source``: for binary margins
    ``evaluate(theta) -> (value, gradient, Hessian)``, for logits
    ``evaluate(theta) -> (value, gradient)``. Each call is one pass over the
    rows (on a cluster, one round trip); the penalty is added once.
    ``evaluate.values(thetas)`` gives the values at several parameter vectors
    in one pass (and keeps their gradients: the next call at one of them
    reads them instead of passing over the rows again), and for logits
    ``evaluate.curvature(theta)`` the estimated diagonal of the Hessian."""
    layout = problem.layout
    size = layout.size
    make = data_term(problem)
    evaluate_data = source.evaluator(lambda chunk: _also_at_many(make(chunk)), add)
    binary = layout.k == 2
    # the data term's outputs at the points of the last call of values(),
    # by the bytes of the parameters: a final fit starts at one of them
    kept = {}

    def evaluate(theta):
        theta = np.asarray(theta, dtype=float)
        out = kept.pop(theta.tobytes(), None)
        if out is None:
            out = evaluate_data(theta)
        penalty, penalty_grad, penalty_hess = layout.penalty_value_grad_hess(theta)
        value = float(out[0]) + penalty
        grad = out[1 : 1 + size] + penalty_grad
        if not binary:
            return value, grad
        hess = out[1 + size :].reshape(size, size) + np.diag(penalty_hess)
        return value, grad, hess

    def values(thetas) -> list:
        """The penalised objective's values at several ``thetas`` in one pass
        over the rows (on a cluster, one round trip instead of one each)."""
        thetas = [np.asarray(theta, dtype=float) for theta in thetas]
        data = evaluate_data(thetas, True)
        kept.clear()
        kept.update((theta.tobytes(), out) for theta, out in zip(thetas, data))
        return [
            float(out[0]) + layout.penalty_value_grad_hess(theta)[0]
            for out, theta in zip(data, thetas)
        ]

    evaluate.values = values
    if not binary:
        # block by block, as the data term: its float64 temporaries stay small
        curvature_of_data = source.evaluator(
            lambda chunk: functools.partial(_multiclass_curvature, problem, chunk), add
        )

        def curvature(theta):
            theta = np.asarray(theta, dtype=float)
            return curvature_of_data(theta) + layout.penalty_value_grad_hess(theta)[2]

        evaluate.curvature = curvature
    return evaluate

"""Refining the affine fit: a matrix score map and a fitted ceiling.

The spec's calibrator fits ``p = link_n(a * z + b)``. Two extensions start from
that fit (so they inherit its search, which keeps mislabelled extreme scores
from pulling it into a flat basin) and refine it with the link's analytic
derivatives: L-BFGS-B, or Newton's method with the exact Hessian for binary
margins (three parameters):

* ``score_map="matrix"`` (three or more classes): ``u = W z + b``, Dirichlet
  calibration's map, with its off-diagonal ridge (``ODIR``) ``lam / (K (K - 1))
  * sum_{i != j} W_ij**2 + lam / K * |b - b_affine|**2`` on the mean log-loss
  (the offsets pulled to the affine fit's, so that the ridge is 0 at the
  start). The diagonal is at least 0 (each class's probability rises with its
  own score) and held only by ``MAP_RIDGE``. The cross terms see each score
  clipped to the range it had in the fit: a class's score corrects the others
  only as far as the calibration set shows how, which also keeps huge and
  infinite scores out of them (an infinite score stays a bound through its
  own, diagonal, entry).
* ``fit_ceiling`` (the gaussian link, binary or ``vs_top``): ``L``, the link's
  logit range, is fitted too, in ``(0, ln(n - 1)]``. The link is then the
  gaussian link of a smaller sample count ``n_link = 1 + exp(L) <= n``: the
  probabilities stay within the spec's bounds for ``n`` and tighten where the
  calibration labels never come as close to them (label noise, overlapping
  classes). One error among ``N`` saturated correct scores puts ``L`` near
  ``ln N``.

Binary scores are carried as the rows ``(0, s)`` of their margin, so that both
go through one objective. Parameters are fitted on standardised scores (the
affine fit's unit) and converted back at the end.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._fitting import (
    _GRADIENT_TOL,
    _MAX_OFFSET,
    _MAX_SCALE,
    PRIOR_STRENGTH,
    _damped_newton,
    _finite_copy,
    _lbfgs,
    _standardise,
    affine_scores,
)
from ._links import (
    _log_n_minus_1,
    binary_ceiling_nll_grads,
    multiclass_nll_grad,
    vs_top_nll_grads,
)
from ._search import not_converged

#: Smallest fitted ceiling ``L``: probabilities within 0.1 % of uniform.
MIN_CEILING = 1e-3

#: Ridge ``MAP_RIDGE * |W|**2`` on the matrix map's entries, on the mean
#: log-loss of standardised scores. On (nearly) separable scores the likelihood
#: keeps rising with the matrix's diagonal, which the off-diagonal ridge does not
#: hold: without it the fit runs to the box (wine, 25 rows a fold: 5 times the
#: best scikit-learn log-loss, against 2.2 with it). Chosen on the quality
#: benchmark (1e-6 to 1e-4 measured; larger trades in-distribution log-loss for
#: log-loss under shift). The affine map's scale has none: on separable binary
#: scores its standardised scale of several hundred would pay nats for it, and
#: the refinement would flatten a sharp, right fit.
MAP_RIDGE = 1e-5


class Refined(NamedTuple):
    """The refined map in the units of the original scores."""

    coef: np.ndarray | None  # (K, K) for score_map="matrix", else None
    scale: float
    intercept: np.ndarray
    n_link: float
    n_iter: int


class Layout:
    """Where each parameter sits in ``theta``, and their bounds.

    ``theta`` holds the scale ``a`` (affine) or the ``K x K`` matrix ``W``
    (row-major), then the offsets (``K - 1`` for the affine map, whose first
    offset is 0; ``K`` for the matrix, whose ridge fixes their level), then
    ``L`` when the ceiling is fitted.
    """

    def __init__(self, k, *, matrix, fit_intercept, ceiling, n, penalty):
        self.k, self.matrix, self.ceiling = k, matrix, ceiling
        self.fit_intercept = fit_intercept
        self.n, self.big_l_max = n, _log_n_minus_1(n)
        self.penalty = penalty if matrix else 0.0
        self.n_map = k * k if matrix else 1
        self.n_offsets = (k if matrix else k - 1) if fit_intercept else 0
        self.offsets = slice(self.n_map, self.n_map + self.n_offsets)
        self.size = self.n_map + self.n_offsets + int(ceiling)
        if matrix:
            diagonal = np.eye(k, dtype=bool).ravel()
            scale_bounds = [
                (0.0, _MAX_SCALE) if on else (-_MAX_SCALE, _MAX_SCALE)
                for on in diagonal
            ]
        else:
            # a binary margin's scale is free in sign, as in fit_binary
            scale_bounds = [(-_MAX_SCALE if k == 2 else 0.0, _MAX_SCALE)]
        self.bounds = (
            scale_bounds
            + [(-_MAX_OFFSET, _MAX_OFFSET)] * self.n_offsets
            + [(MIN_CEILING, self.big_l_max)] * int(ceiling)
        )

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

    def start(self, scale_std: float, intercept: np.ndarray) -> np.ndarray:
        """``theta`` of the affine fit (scale on standardised scores); its
        offsets are where the matrix's ridge pulls the offsets to."""
        theta = np.zeros(self.size)
        if self.matrix:
            theta[: self.n_map] = scale_std * np.eye(self.k).ravel()
            theta[self.offsets] = intercept[: self.n_offsets]
        else:
            theta[0] = scale_std
            theta[self.offsets] = intercept[1 : 1 + self.n_offsets]
        if self.ceiling:
            theta[-1] = self.big_l_max
        theta = np.clip(theta, *np.array(self.bounds).T)
        self.offset_anchor = theta[self.offsets].copy()
        return theta

    @property
    def penalty_hessian(self) -> np.ndarray:
        """The Hessian of :meth:`penalty_value_grad` of an affine layout
        (the weak prior only): binary layouts are the ones Newton's method
        fits."""
        return PRIOR_STRENGTH * np.eye(self.size)

    def penalty_value_grad(self, theta):
        """The weak prior of ``_fitting`` and, for the matrix, ``MAP_RIDGE``
        on its entries, the off-diagonal ridge and that of the offsets' change
        from the affine fit's (:meth:`start` sets them), 0 at the start: the
        refinement's objective is never above the affine fit's plus
        ``MAP_RIDGE`` times its squared scale."""
        value = 0.5 * PRIOR_STRENGTH * theta @ theta
        grad = PRIOR_STRENGTH * theta
        if not self.matrix:
            return value, grad
        entries = theta[: self.n_map]
        value += MAP_RIDGE * entries @ entries
        grad[: self.n_map] += 2.0 * MAP_RIDGE * entries
        if self.penalty:
            k = self.k
            off = np.where(np.eye(k, dtype=bool), 0.0, entries.reshape(k, k))
            lam_w = self.penalty / (k * (k - 1))
            lam_b = self.penalty / k
            change = theta[self.offsets] - self.offset_anchor
            value += lam_w * np.sum(off * off) + lam_b * change @ change
            grad[: self.n_map] += 2.0 * lam_w * off.ravel()
            grad[self.offsets] += 2.0 * lam_b * change
        return value, grad


def clipped_scores(z: np.ndarray, low, high) -> np.ndarray:
    """The scores the matrix's cross terms see: clipped to the fit's range."""
    return np.clip(z, low, high)


def matrix_scores(z, cross, coef, intercept) -> np.ndarray:
    """``u_i = W_ii z_i + sum_{j != i} W_ij clip(z_j) + b_i``, in the scores'
    dtype (float64 where float32 cannot hold the matrix's entries).

    The diagonal term is ``W_ii (z_i - clip(z_i))`` added to the clipped
    product: 0 inside the range, and an infinite score stays infinite (a
    bound) unless ``W_ii = 0``, where it carries no information (as in
    ``affine_scores``).
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


def objective(z_std, y, w, layout: Layout, link: str, form: str, low, high):
    """``loss_grad(theta)``: the data term ``sum_r w_r (-ln p_{y_r})`` of
    rows ``z_std`` (standardised, ``(m, K)``) and its gradient; no penalty, so
    that sums over chunks of the rows add up (the Dask fit)."""
    k = layout.k
    if k == 2:
        return _binary_objective(z_std[:, 1], y, w, layout)
    z_finite = _finite_copy(z_std)
    if layout.matrix:
        cross = clipped_scores(z_std, low, high)
        excess = z_finite - cross
        excess[~np.isfinite(z_std)] = 0.0  # its derivative is 0 there

    def loss_grad(theta):
        intercept = layout.intercept(theta)
        if layout.matrix:
            coef = theta[: layout.n_map].reshape(k, k)
            u = matrix_scores(z_std, cross, coef, intercept)
        else:
            u = affine_scores(z_std, float(theta[0]), intercept)
        infinite = ~np.isfinite(u)
        if layout.ceiling:
            loss, g, d_big_l = vs_top_nll_grads(u, y, layout.big_l(theta))
        else:
            loss, g = multiclass_nll_grad(u, y, layout.n, link, form)
        # an infinite mapped score is a bound: no parameter moves it (the
        # link's gradient is not 0 in a row of equal infinite scores, a tie)
        g[infinite] = 0.0
        g *= w[:, None]
        grad = np.zeros(layout.size)
        if layout.matrix:
            coef_grad = g.T @ cross
            coef_grad[np.diag_indices(k)] += np.einsum("ij,ij->j", g, excess)
            grad[: layout.n_map] = coef_grad.ravel()
            offsets = g.sum(axis=0)[: layout.n_offsets]
        else:
            grad[0] = np.einsum("ij,ij->", g, z_finite)
            offsets = g.sum(axis=0)[1 : 1 + layout.n_offsets]
        grad[layout.offsets] = offsets
        if layout.ceiling:
            grad[-1] = d_big_l @ w
        return float(loss @ w), grad

    return loss_grad


def _binary_objective(s_std, y, w, layout: Layout):
    """:func:`objective` of binary margins ``s_std`` (the rows ``(0, s)``):
    the scale, the offset and the ceiling, by the one-dimensional kernel. Its
    ``evaluate`` also gives the exact Hessian, for Newton's method."""
    sign = 2.0 * y - 1.0
    s_finite = _finite_copy(s_std)
    w_s = w * s_finite
    w_ss = w_s * s_finite
    b = layout.offsets

    def evaluate(theta):
        offset = float(theta[b][0]) if layout.fit_intercept else 0.0
        u = affine_scores(s_std, float(theta[0]), offset)
        loss, d_u, d_big_l, (h_uu, h_ul, h_ll) = binary_ceiling_nll_grads(
            u, sign, layout.big_l(theta)
        )
        grad = np.zeros(layout.size)
        hess = np.zeros((layout.size, layout.size))
        grad[0], hess[0, 0] = d_u @ w_s, h_uu @ w_ss
        grad[-1], hess[-1, -1] = d_big_l @ w, h_ll @ w
        hess[0, -1] = hess[-1, 0] = h_ul @ w_s
        if layout.fit_intercept:
            grad[b], hess[b, b] = d_u @ w, h_uu @ w
            hess[0, b] = hess[b, 0] = h_uu @ w_s
            hess[b, -1] = hess[-1, b] = h_ul @ w
        return float(loss @ w), grad, hess

    def loss_grad(theta):
        return evaluate(theta)[:2]

    loss_grad.evaluate = evaluate
    return loss_grad


def as_rows(z: np.ndarray) -> np.ndarray:
    """Binary margins as the rows ``(0, s)``; ``(m, K)`` scores unchanged."""
    if z.ndim == 1:
        return np.column_stack([np.zeros_like(z), z])
    return z


def standardised_range(clip_range, unit: float):
    """``(low, high)`` of the clip range in standardised units (``None``
    for the affine map, whose objective clips nothing)."""
    return (None, None) if clip_range is None else clip_range / unit


def refine(data_loss_grad, layout: Layout, result) -> Refined:
    """Minimise the data term plus the ridge within the box, from the affine
    fit ``result``; the returned map is in the original units (the scores
    were standardised by ``result.unit``)."""
    unit = result.unit
    start = layout.start(result.scale * unit, result.intercept)

    def loss_grad(theta):
        value, grad = data_loss_grad(theta)
        penalty, penalty_grad = layout.penalty_value_grad(theta)
        return value + penalty, grad + penalty_grad

    data_evaluate = getattr(data_loss_grad, "evaluate", None)
    if data_evaluate is not None:
        # binary: three parameters, the exact Hessian, a few Newton steps

        def evaluate(theta):
            value, grad, hess = data_evaluate(theta)
            penalty, penalty_grad = layout.penalty_value_grad(theta)
            return value + penalty, grad + penalty_grad, hess + layout.penalty_hessian

        fit = _damped_newton(evaluate, start, layout.bounds)
    else:
        fit = _lbfgs(loss_grad, start, layout.bounds, _GRADIENT_TOL)
    if fit.problem is not None:
        not_converged(fit.problem, fit.value)
    theta = fit.theta
    big_l = layout.big_l(theta)
    n_link = layout.n if big_l >= layout.big_l_max else 1.0 + float(np.exp(big_l))
    coef = None
    scale = float(theta[0]) / unit
    if layout.matrix:
        coef = theta[: layout.n_map].reshape(layout.k, layout.k) / unit
        scale = float(np.mean(np.diag(coef)))
    return Refined(coef, scale, layout.intercept(theta), n_link, fit.n_iter)


def refine_in_memory(z, y, w, layout: Layout, link, form, result, clip_range):
    """:func:`refine` on scores in memory, from the affine fit ``result``;
    ``clip_range`` is :func:`finite_range` of ``z`` for the matrix map."""
    z_std = _standardise(as_rows(z), result.unit)
    low, high = standardised_range(clip_range, result.unit)
    data = objective(z_std, y, w / w.sum(), layout, link, form, low, high)
    return refine(data, layout, result)


def finite_bounds(z: np.ndarray) -> np.ndarray:
    """``(2, K)``: each column's smallest and largest finite score; ``inf``
    and ``-inf`` for a column without any, or no rows (so that chunks merge by
    min / max)."""
    finite = np.isfinite(z)
    return np.vstack(
        [
            np.where(finite, z, np.inf).min(axis=0, initial=np.inf),
            np.where(finite, z, -np.inf).max(axis=0, initial=-np.inf),
        ]
    ).astype(np.float64)


def settled(bounds: np.ndarray) -> np.ndarray:
    """:func:`finite_bounds` with the columns that had no finite score at 0."""
    bounds = bounds.copy()
    bounds[:, bounds[0] > bounds[1]] = 0.0
    return bounds


def finite_range(z: np.ndarray) -> np.ndarray:
    """The range the matrix's cross terms are clipped to: each column's
    smallest and largest finite score (0 for a column without any)."""
    return settled(finite_bounds(z))

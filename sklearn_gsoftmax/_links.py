"""The link functions: softmax, linear and gaussian, with their NLL gradients.

Numpy only. The public functions validate their input and dispatch to private
kernels that take validated arrays and a real sample count ``n``; the estimators
call the kernels directly (``n`` may then be a sum of sample weights).

Conventions of the kernels:

* a binary problem is carried as its margin ``s`` of shape ``(m,)`` (the row
  ``z = (0, s)``); a ``(m, 2)`` array is reduced to ``s = z_1 - z_0`` first, so every
  binary computation goes through the exact two-class formula;
* ``K >= 3`` scores are carried as ``(m, K)`` arrays and always shifted by their row
  maximum first, so that no ``exp`` can overflow.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import expit, log_expit

from ._validation import (
    check_class_indices,
    check_multiclass,
    check_n_samples,
    check_scores,
    n_classes_of,
)

LINKS = ("gaussian", "linear", "softmax")


# --------------------------------------------------------------------------------------
# Shared pieces


def log_n_minus_1(n) -> float:
    """``L = ln(n - 1)``, the half-width of the gaussian link's logit range."""
    return math.log(n - 1)


def binary_margin(z: np.ndarray) -> np.ndarray:
    """Reduce two-column scores to the margin ``s = z_1 - z_0`` (shift invariance)."""
    with np.errstate(invalid="ignore", over="ignore"):
        s = z[:, 1] - z[:, 0]
    # inf - inf is the only NaN source (input has no NaN): two equal infinite
    # scores are a tie.
    s[np.isnan(s)] = 0.0
    return s


#: Up to this many columns, a loop over the columns finds each row's maximum
#: (and up to ``_FEW_COLUMNS_SUM``, its sum) several times faster than numpy's
#: reduction along a short last axis: 2 000 rows of 5 columns, 8 against 79
#: microseconds for the maxima and 7 against 35 for the sums; most of a
#: small multiclass fit's evaluation went to them.
_FEW_COLUMNS_MAX = 32
_FEW_COLUMNS_SUM = 16


def row_max(values: np.ndarray) -> np.ndarray:
    """The largest entry of each row of ``(m, K)`` (the same values as
    ``values.max(axis=1)``)."""
    if values.shape[1] > _FEW_COLUMNS_MAX or values.shape[1] == 0:
        return values.max(axis=1)
    top = values[:, 0].copy()
    for j in range(1, values.shape[1]):
        np.maximum(top, values[:, j], out=top)
    return top


def row_sum(values: np.ndarray) -> np.ndarray:
    """The sum of each row of ``(m, K)``, column after column for few columns
    (elementwise additions: the same bits on every machine)."""
    if values.shape[1] > _FEW_COLUMNS_SUM or values.shape[1] == 0:
        return values.sum(axis=1)
    total = values[:, 0].copy()
    for j in range(1, values.shape[1]):
        total += values[:, j]
    return total


def _shift_by_row_max(z: np.ndarray) -> np.ndarray:
    """Return ``z - max(z)`` per row: entries in ``[-inf, 0]``, never NaN.

    Rows whose maximum is infinite would give ``inf - inf``; in them the entries
    equal to the maximum tie at 0 and the others are ``-inf`` (an all ``-inf`` row
    is a tie of every class).
    """
    top = row_max(z)[:, None]
    with np.errstate(invalid="ignore", over="ignore"):
        diff = z - top
    infinite_rows = ~np.isfinite(top[:, 0])
    if infinite_rows.any():
        zi = z[infinite_rows]
        diff[infinite_rows] = np.where(zi == top[infinite_rows], 0.0, -np.inf)
    return diff


def _softmax_of_shifted(v: np.ndarray, *, log: bool) -> np.ndarray:
    """Softmax of rows whose maximum is exactly 0; overwrites ``v`` when ``log``.

    For log-probabilities the normaliser is written ``log1p(mass off the top)``, so
    that the top class keeps a relative precision even when that mass is below the
    float epsilon (``log(1 + tiny)`` would round to 0).
    """
    e = np.exp(v)
    if not log:
        e /= row_sum(e)[:, None]
        return e
    rows = np.arange(v.shape[0])
    e[rows, np.argmax(v, axis=1)] = 0.0
    v -= np.log1p(row_sum(e))[:, None]
    return v


def _uniform(shape, dtype, *, log: bool) -> np.ndarray:
    k = shape[1]
    return np.full(shape, -math.log(k) if log else 1.0 / k, dtype=dtype)


def _stack_binary(col0: np.ndarray, col1: np.ndarray) -> np.ndarray:
    return np.stack([col0, col1], axis=1)


def top_two(values: np.ndarray):
    """The largest and second largest entry of each row of ``(m, K)``."""
    if values.shape[1] == 2:
        return top_probability(values), np.minimum(values[:, 0], values[:, 1])
    part = np.partition(values, -2, axis=1)
    return part[:, -1], part[:, -2]


def top_probability(values: np.ndarray) -> np.ndarray:
    """The largest entry of each row (of probabilities: the confidence)."""
    return row_max(values)


# --------------------------------------------------------------------------------------
# Forward kernels. ``z`` is a validated float array, ``n`` a real count.


def _gaussian_logit(s: np.ndarray, n) -> np.ndarray:
    """Two-class gaussian logit ``L * tanh(s / L)``; identically 0 for ``n = 2``."""
    big_l = log_n_minus_1(n)
    if big_l == 0.0:
        return np.zeros_like(s)
    # s / L overflows to +-inf for huge s and small L: tanh saturates there.
    with np.errstate(over="ignore"):
        t = np.divide(s, big_l)
    np.tanh(t, out=t)
    t *= big_l
    return t


def _binary_probabilities(logit: np.ndarray, *, log: bool) -> np.ndarray:
    """``(m, 2)`` probabilities of the logit of class 1, each column computed
    from its own side so that neither loses precision near 0 or 1."""
    if log:
        return _stack_binary(log_expit(-logit), log_expit(logit))
    # exp(-|t|) cannot overflow; the larger probability is 1 / (1 + e), the
    # smaller e / (1 + e). Cheaper than two expit calls on this hot path.
    e = np.abs(logit)
    np.negative(e, out=e)
    np.exp(e, out=e)
    larger = e + 1.0
    np.reciprocal(larger, out=larger)
    e *= larger
    positive = logit >= 0
    return _stack_binary(np.where(positive, e, larger), np.where(positive, larger, e))


def _gaussian_binary(s: np.ndarray, n) -> np.ndarray:
    """Two-class gaussian probabilities, the meta-estimator's hot path.

    ``e = (n - 1) ** -tanh(|s| / L)`` lies in ``[1/(n-1), 1]``, so it cannot
    overflow.
    """
    big_l = log_n_minus_1(n)
    if big_l == 0.0:
        return np.full((s.shape[0], 2), 0.5, dtype=s.dtype)
    # computed on |s| and mirrored, so that the two sides round alike: a
    # saturated top-class probability is then the same number for either
    # class, and predictions that tie at the bound tie exactly
    with np.errstate(over="ignore"):
        e = np.divide(np.abs(s), big_l)
    np.tanh(e, out=e)
    e *= -big_l
    np.exp(e, out=e)
    larger = e + 1.0
    np.reciprocal(larger, out=larger)
    e *= larger
    positive = s >= 0
    return _stack_binary(np.where(positive, e, larger), np.where(positive, larger, e))


def _linear_binary(s: np.ndarray, n, *, log: bool) -> np.ndarray:
    shrink = 1.0 - 2.0 / n
    if not log:
        return _stack_binary(1.0 / n + shrink * expit(-s), 1.0 / n + shrink * expit(s))
    floor, log_shrink = -math.log(n), _log_or_minus_inf(shrink)
    return _stack_binary(
        np.logaddexp(floor, log_shrink + log_expit(-s)),
        np.logaddexp(floor, log_shrink + log_expit(s)),
    )


def _log_or_minus_inf(x: float) -> float:
    return math.log(x) if x > 0 else -math.inf


def _vs_top(z: np.ndarray, n, *, log: bool) -> np.ndarray:
    big_l = log_n_minus_1(n)
    if big_l == 0.0:
        return _uniform(z.shape, z.dtype, log=log)
    d = _shift_by_row_max(z)
    d /= big_l
    np.tanh(d, out=d)
    d *= big_l
    return _softmax_of_shifted(d, log=log)


def _simplex_inner(diff: np.ndarray, n) -> np.ndarray:
    """The inner softmax ``sigma = softmax(K z / L)`` of row-max-shifted scores
    ``diff`` (overwritten)."""
    k = diff.shape[1]
    # K / L can be large (n = 3): diff * K / L may underflow to -inf, harmless.
    with np.errstate(over="ignore"):
        diff *= k / log_n_minus_1(n)
    return _softmax_of_shifted(diff, log=False)


def _simplex(z: np.ndarray, n, *, log: bool) -> np.ndarray:
    big_l = log_n_minus_1(n)
    if big_l == 0.0:
        return _uniform(z.shape, z.dtype, log=log)
    v = _simplex_inner(_shift_by_row_max(z), n)
    v *= big_l
    v -= row_max(v)[:, None]
    return _softmax_of_shifted(v, log=log)


def _softmax(z: np.ndarray, *, log: bool) -> np.ndarray:
    return _softmax_of_shifted(_shift_by_row_max(z), log=log)


def _linear(z: np.ndarray, n, *, log: bool) -> np.ndarray:
    k = z.shape[1]
    shrink = 1.0 - k / n
    if not log:
        q = _softmax(z, log=False)
        q *= shrink
        q += 1.0 / n
        return q
    log_q = _softmax(z, log=True)
    log_q += _log_or_minus_inf(shrink)
    return np.logaddexp(-math.log(n), log_q)


def link_proba(z: np.ndarray, n, link: str, multiclass: str, *, log: bool = False):
    """Probabilities (or log-probabilities) of validated scores under a link.

    ``z`` is ``(m,)`` binary margins or ``(m, K)`` logits; the result is always
    ``(m, K)`` with ``K >= 2``, has ``z``'s dtype and lies within the link's
    bounds (:func:`proba_bounds`) exactly.
    """
    if z.ndim == 2 and z.shape[1] == 2:
        z = binary_margin(z)
    if z.ndim == 1:
        if link == "gaussian":
            if log:
                p = _binary_probabilities(_gaussian_logit(z, n), log=True)
            else:
                p = _gaussian_binary(z, n)
        elif link == "linear":
            p = _linear_binary(z, n, log=log)
        else:
            p = _binary_probabilities(z, log=log)
    elif link == "gaussian":
        p = (
            _simplex(z, n, log=log)
            if multiclass == "simplex"
            else _vs_top(z, n, log=log)
        )
    elif link == "linear":
        p = _linear(z, n, log=log)
    else:
        p = _softmax(z, log=log)
    return clip_to_bounds(p, n, link, multiclass, log=log)


def proba_bounds(n, k: int, link: str, multiclass: str) -> tuple[float, float]:
    """The spec's bounds ``(low, high)`` of every probability of ``k`` classes.

    Written as in the spec, so that a float64 test of ``p <= high`` computes
    the same rounded number.
    """
    if link == "softmax":
        return 0.0, 1.0
    if link == "linear":
        return 1.0 / n, 1.0 - (k - 1) / n
    if multiclass == "simplex" or k == 2:
        return 1.0 / (n + k - 2), (n - 1) / (n + k - 2)
    return 1.0 / ((k - 1) * (n - 1) + 1), (n - 1) / (n + k - 2)


def _inward(low: float, high: float, dtype) -> tuple:
    """``low`` and ``high`` as ``dtype`` numbers rounded into ``[low, high]``."""
    lo, hi = dtype.type(low), dtype.type(high)
    # compared as Python floats: a float32 compared with a Python float is
    # compared in float32 (NEP 50), which would hide the rounding
    if float(lo) < low:
        lo = np.nextafter(lo, dtype.type(np.inf))
    if float(hi) > high:
        hi = np.nextafter(hi, dtype.type(-np.inf))
    return lo, hi


def clip_to_bounds(p: np.ndarray, n, link: str, multiclass: str, *, log: bool):
    """Clip probabilities (or their logs) in place to the link's bounds.

    The formulas keep every probability within the bounds, but their rounded
    evaluation can land a few ulps outside (``1 / (1 + 1/(n-1))`` above
    ``(n-1)/n``). A threshold set at the largest probability seen in fit
    must hold for every later one, so the bound is made exact in ``p``'s
    dtype; this moves an entry by a few ulps at most, never hides an error.
    """
    if link == "softmax":
        # softmax's own rounding keeps every entry in [0, 1]
        return p
    low, high = proba_bounds(n, p.shape[1], link, multiclass)
    if log:
        low, high = math.log(low), math.log(high)
    lo, hi = _inward(low, high, p.dtype)
    return np.clip(p, lo, hi, out=p)


# --------------------------------------------------------------------------------------
# Loss and gradient kernels for fitting. They return the per-row negative
# log-likelihood and its derivatives with respect to the scores.


def _nll_of_logit(x: np.ndarray) -> np.ndarray:
    """``-ln expit(x)`` of the label's logit ``x``, without overflow."""
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, 0.0)


def binary_ceiling_nll_grads(u: np.ndarray, sign: np.ndarray, big_l: float):
    """Per-row ``-ln p_y`` of binary margins ``u`` under the gaussian link
    with ceiling ``L`` (any ``L > 0``), its derivatives in ``u`` and in ``L``,
    and the second derivatives ``(uu, uL, LL)``: the binary fit of the ceiling
    (``vs_top_nll_grads`` for two classes, without its ``(m, 2)`` arrays).

    With ``l = L tanh(t)``, ``t = u / L``: ``dl/du = 1 - tanh**2``,
    ``dl/dL = tanh - t (1 - tanh**2)``, ``d2l/du2 = -2 tanh (1 - tanh**2) / L``,
    ``d2l/dudL = 2 t tanh (1 - tanh**2) / L`` and ``d2l/dL2 = -2 t**2 tanh
    (1 - tanh**2) / L``; every term with ``t`` is 0 at an infinite ``t``.
    """
    t = u / big_l
    th = np.tanh(t)
    x = sign * (big_l * th)  # the label's logit
    loss = _nll_of_logit(x)
    miss = expit(-x)
    d_logit = -sign * miss
    curvature = miss * (1.0 - miss)  # d2 loss / d logit2
    bend = 1.0 - th * th
    t = np.where(np.isfinite(t), t, 0.0)  # not inf * 0: bend is 0 there
    tb = t * bend
    l_u, l_big_l = bend, th - tb
    two_th_b = 2.0 * th * bend / big_l
    hessian = (
        curvature * l_u * l_u - d_logit * two_th_b,
        curvature * l_u * l_big_l + d_logit * two_th_b * t,
        curvature * l_big_l * l_big_l - d_logit * two_th_b * t * t,
    )
    return loss, d_logit * l_u, d_logit * l_big_l, hessian


def binary_nll_derivatives(u: np.ndarray, sign: np.ndarray, n, link: str, buffers=None):
    """Per-row ``-ln p_y`` of binary margins ``u`` and its first two derivatives.

    ``sign`` is +1.0 where the label is the second class and -1.0 where it is the
    first. Returns ``(loss, d1, d2)``, each of shape ``(m,)``; the derivatives are
    with respect to ``u``. At an infinite margin both derivatives are exactly 0 for
    the saturating links.

    This is the inner loop of the binary fit: ``buffers``, five arrays shaped
    like ``u`` that the caller reuses between calls (the results live in three
    of them), spare the allocation of fresh pages at every Newton step.
    """
    if link == "linear":
        shrink = 1.0 - 2.0 / n
        r_y = expit(sign * u)
        p_y = shrink * r_y
        p_y += 1.0 / n
        # d p_1 / du = shrink * r1 * r0, the same for either label.
        ratio = shrink * r_y * (1.0 - r_y) / p_y
        d1 = -sign * ratio
        # d/du of r_y (1 - r_y) is sign * r_y (1 - r_y) (1 - 2 r_y); sign**2 = 1.
        d2 = ratio * (ratio - (1.0 - 2.0 * r_y))
        return -np.log(p_y), d1, d2
    if link == "softmax":
        x = sign * u
        p_y = expit(x)
        loss = _nll_of_logit(x)
        miss = 1.0 - p_y
        return loss, -sign * miss, p_y * miss
    big_l = log_n_minus_1(n)
    if big_l == 0.0:
        zeros = np.zeros_like(u)
        return np.full_like(u, math.log(2.0)), zeros, zeros
    if buffers is None:
        buffers = [np.empty_like(u) for _ in range(5)]
    tau, miss, loss, p_y, d1 = buffers
    with np.errstate(over="ignore"):
        np.divide(u, big_l, out=tau)
    np.tanh(tau, out=tau)
    # The signed logit lies in [-L, L], so exp cannot overflow for any n < 1e300.
    np.multiply(sign, tau, out=miss)
    miss *= -big_l
    np.exp(miss, out=miss)  # exp(-signed logit)
    np.log1p(miss, out=loss)
    np.add(miss, 1.0, out=p_y)
    np.reciprocal(p_y, out=p_y)
    miss *= p_y  # 1 - p_y, computed from exp(-logit) without cancellation
    np.multiply(tau, tau, out=d1)
    np.subtract(1.0, d1, out=d1)  # the slope 1 - tau**2
    miss *= d1
    p_y *= d1
    np.multiply(sign, miss, out=d1)
    np.negative(d1, out=d1)
    # d2 = p1 p0 slope^2 + (p1 - y) f'', with f'' = -2 tau slope / L.
    tau *= sign
    tau *= 2.0 / big_l
    p_y += tau
    miss *= p_y
    return loss, d1, miss


def multiclass_nll_grad(z: np.ndarray, y: np.ndarray, n, link: str, multiclass: str):
    """Per-row ``-ln p_y`` of ``(m, K)`` logits and its gradient ``(m, K)``."""
    m, k = z.shape
    rows = np.arange(m)
    diff = _shift_by_row_max(z)
    if link == "gaussian":
        big_l = log_n_minus_1(n)
        if big_l == 0.0:
            return np.full(m, math.log(k), dtype=z.dtype), np.zeros_like(z)
        if multiclass == "simplex":
            return _simplex_nll_grad(diff, y, n, rows)
        return _vs_top_nll_grad(diff, y, big_l, rows)
    e = np.exp(diff)
    total = row_sum(e)
    q = e / total[:, None]
    if link == "softmax":
        loss = np.log(total) - diff[rows, y]
        q[rows, y] -= 1.0
        return loss, q
    shrink = 1.0 - k / n
    q_y = q[rows, y]
    p_y = 1.0 / n + shrink * q_y
    grad = q
    grad[rows, y] -= 1.0
    grad *= (shrink * q_y / p_y)[:, None]
    return -np.log(p_y), grad


def link_nll(z: np.ndarray, y: np.ndarray, n, link: str, multiclass: str):
    """Per-row ``-ln p_y`` of validated scores (binary margins or logits),
    without the gradient: what a profile of the loss over many parameter
    values needs."""
    log_p = link_proba(z, n, link, multiclass, log=True)
    return -log_p[np.arange(len(y)), y]


def _vs_top_nll_grad(diff, y, big_l, rows, *, ceiling: bool = False):
    top = np.argmax(diff, axis=1)
    tau = diff
    tau /= big_l
    if ceiling:
        # d_i = L tanh(t_i) with t_i = diff_i / L, so dd_i/dL is
        # tanh(t_i) - t_i (1 - tanh(t_i)**2), whose second term is 0 (not
        # inf * 0) at an infinite t_i
        t = tau.copy()
    np.tanh(tau, out=tau)
    d = big_l * tau
    e = np.exp(d)
    total = row_sum(e)
    loss = np.log(total) - d[rows, y]
    g = e / total[:, None]
    g[rows, y] -= 1.0
    if ceiling:
        with np.errstate(invalid="ignore"):
            slope = t * (1.0 - tau * tau)
        slope[~np.isfinite(t)] = 0.0
        d_big_l = np.einsum("ij,ij->i", g, tau - slope)
    tau *= tau
    np.subtract(1.0, tau, out=tau)
    g *= tau
    g[rows, top] -= row_sum(g)
    if ceiling:
        return loss, g, d_big_l
    return loss, g


def vs_top_nll_grads(z: np.ndarray, y: np.ndarray, big_l: float):
    """Per-row ``-ln p_y`` of the gaussian ``vs_top`` link with ceiling ``L``
    (``L = ln(n - 1)``, any ``L > 0``), its gradient ``(m, K)`` in ``z`` and its
    derivative in ``L`` ``(m,)``: what a fit of the ceiling needs."""
    return _vs_top_nll_grad(
        _shift_by_row_max(z), y, big_l, np.arange(z.shape[0]), ceiling=True
    )


def _simplex_nll_grad(diff, y, n, rows):
    k = diff.shape[1]
    sigma = _simplex_inner(diff, n)
    v = log_n_minus_1(n) * sigma
    v -= row_max(v)[:, None]
    e = np.exp(v)
    total = row_sum(e)
    loss = np.log(total) - v[rows, y]
    g = e / total[:, None]
    g[rows, y] -= 1.0
    inner = np.einsum("ij,ij->i", sigma, g)
    g -= inner[:, None]
    g *= sigma
    g *= k
    return loss, g


# --------------------------------------------------------------------------------------
# Public functions


def _check_log(log) -> bool:
    if not isinstance(log, bool | np.bool_):
        raise ValueError(f"log must be True or False, got {log!r}.")
    return bool(log)


def gaussian_softmax(
    scores, n_samples: int, *, multiclass: str = "vs_top", log: bool = False
) -> np.ndarray:
    r"""Class probabilities bounded by the sample count: the gaussian link.

    Two classes (``z = (0, s)``, ``L = \ln(n - 1)``):

    .. math::

        \operatorname{logit} p_1 = L \tanh(s / L),

    which agrees with the sigmoid near ``s = 0`` and saturates at ``\pm L``, so that
    ``p`` lies in ``[1/n, 1 - 1/n]``. For ``K >= 3`` classes, ``multiclass`` picks
    the form:

    * ``"vs_top"``: every class's odds against the leading class ``m`` follow the
      two-class formula, :math:`p = \operatorname{softmax}(d)` with
      :math:`d_i = L \tanh((z_i - z_m)/L)`;
    * ``"simplex"``: :math:`p = \operatorname{softmax}(L\,\sigma)` with
      :math:`\sigma = \operatorname{softmax}(K z / L)`.

    Parameters
    ----------
    scores : array-like of shape (m, K), (m,) or (m, 1)
        Logits of ``K >= 2`` classes, or binary decision scores ``s`` (positive
        means the second class), read as the rows ``(0, s)``. ``+inf`` and
        ``-inf`` are valid; NaN is not.
    n_samples : int
        The number of samples the scores' model was trained on; at least 2.
    multiclass : {"vs_top", "simplex"}, default="vs_top"
        The form for ``K >= 3`` classes; both equal the two-class formula at
        ``K = 2``.
    log : bool, default=False
        Return log-probabilities, computed directly rather than as the log of a
        rounded probability.

    Returns
    -------
    proba : ndarray of shape (m, K)
        Probabilities (rows sum to 1) or their logs; float32 for float32 scores,
        else float64.

    See Also
    --------
    linear_softmax : The linear bounded link.
    gaussian_softmax_nll_grad : Gradient of the negative log-likelihood.

    Examples
    --------
    >>> from sklearn_gsoftmax import gaussian_softmax
    >>> gaussian_softmax([-50.0, 0.0, 50.0], n_samples=1000).round(4)
    array([[0.999, 0.001],
           [0.5  , 0.5  ],
           [0.001, 0.999]])
    """
    z = check_scores(scores)
    multiclass = check_multiclass(multiclass)
    n = check_n_samples(n_samples, n_classes=n_classes_of(z), link="gaussian")
    return link_proba(z, n, "gaussian", multiclass, log=_check_log(log))


def linear_softmax(scores, n_samples: int, *, log: bool = False) -> np.ndarray:
    r"""Class probabilities bounded by the sample count: the linear link.

    .. math::

        p_i = \frac{1}{n} + \Bigl(1 - \frac{K}{n}\Bigr)\operatorname{softmax}(z)_i,

    which lies in ``[1/n, 1 - (K - 1)/n]``.

    Parameters
    ----------
    scores : array-like of shape (m, K), (m,) or (m, 1)
        Logits of ``K >= 2`` classes, or binary decision scores read as ``(0, s)``.
        ``+inf`` and ``-inf`` are valid; NaN is not.
    n_samples : int
        The number of training samples; at least ``max(2, K)``.
    log : bool, default=False
        Return log-probabilities, computed directly.

    Returns
    -------
    proba : ndarray of shape (m, K)
        Probabilities or their logs; float32 for float32 scores, else float64.

    See Also
    --------
    gaussian_softmax : The gaussian bounded link, which bends more smoothly.

    Examples
    --------
    >>> from sklearn_gsoftmax import linear_softmax
    >>> linear_softmax([[0.0, 0.0, 100.0]], n_samples=100).round(4)
    array([[0.01, 0.01, 0.98]])
    """
    z = check_scores(scores)
    n = check_n_samples(n_samples, n_classes=n_classes_of(z), link="linear")
    return link_proba(z, n, "linear", "vs_top", log=_check_log(log))


def link_nll_grad(z: np.ndarray, y: np.ndarray, n, link: str, multiclass: str):
    """Gradient of ``-ln p_y`` with respect to validated scores, shaped like them."""
    if z.ndim == 1:
        return binary_nll_derivatives(z, 2.0 * y - 1.0, n, link)[1]
    if z.shape[1] == 2:
        d1 = binary_nll_derivatives(binary_margin(z), 2.0 * y - 1.0, n, link)[1]
        return _stack_binary(-d1, d1)
    return multiclass_nll_grad(z, y, n, link, multiclass)[1]


def gaussian_softmax_nll_grad(
    scores, y, n_samples: int, *, multiclass: str = "vs_top"
) -> np.ndarray:
    r"""Gradient of the negative log-likelihood of the gaussian link.

    Returns :math:`\partial(-\ln p_{y})/\partial z` for every row, in closed form
    (for ``vs_top``: with ``g = p - e_y`` and ``t_i = 1 - \tanh^2((z_i - z_m)/L)``,
    the entries ``g_i t_i`` off the leading class ``m`` and minus their sum at it;
    for ``simplex``: :math:`K \sigma \odot (g - \langle \sigma, g \rangle)`).

    Parameters
    ----------
    scores : array-like of shape (m, K), (m,) or (m, 1)
        As in :func:`gaussian_softmax`.
    y : array-like of shape (m,)
        Integer class index of each row, in ``[0, K)``.
    n_samples : int
        The sample count, at least 2.
    multiclass : {"vs_top", "simplex"}, default="vs_top"
        The multiclass form.

    Returns
    -------
    grad : ndarray
        Shaped like the validated scores: ``(m,)`` (the derivative with respect to
        ``s``) for binary decision scores, else ``(m, K)``; each ``(m, K)`` row
        sums to 0.

    Examples
    --------
    >>> from sklearn_gsoftmax import gaussian_softmax_nll_grad
    >>> gaussian_softmax_nll_grad([[0.0, 1.0]], [0], n_samples=3).round(6)
    array([[-0.130255,  0.130255]])
    """
    z = check_scores(scores)
    multiclass = check_multiclass(multiclass)
    k = n_classes_of(z)
    n = check_n_samples(n_samples, n_classes=k, link="gaussian")
    y = check_class_indices(y, z.shape[0], k)
    return link_nll_grad(z, y, n, "gaussian", multiclass)


def linear_softmax_nll_grad(scores, y, n_samples: int) -> np.ndarray:
    r"""Gradient of the negative log-likelihood of the linear link.

    With :math:`q = \operatorname{softmax}(z)` and :math:`p = 1/n + (1 - K/n) q`:

    .. math::

        \frac{\partial(-\ln p_y)}{\partial z_j}
        = -\Bigl(1 - \frac{K}{n}\Bigr) \frac{q_y (\delta_{yj} - q_j)}{p_y}.

    Parameters
    ----------
    scores : array-like of shape (m, K), (m,) or (m, 1)
        As in :func:`linear_softmax`.
    y : array-like of shape (m,)
        Integer class index of each row, in ``[0, K)``.
    n_samples : int
        The sample count, at least ``max(2, K)``.

    Returns
    -------
    grad : ndarray
        ``(m,)`` for binary decision scores, else ``(m, K)``.

    Examples
    --------
    >>> from sklearn_gsoftmax import linear_softmax_nll_grad
    >>> linear_softmax_nll_grad([[0.0, 1.0]], [0], n_samples=3).round(6)
    array([[-0.154942,  0.154942]])
    """
    z = check_scores(scores)
    k = n_classes_of(z)
    n = check_n_samples(n_samples, n_classes=k, link="linear")
    y = check_class_indices(y, z.shape[0], k)
    return link_nll_grad(z, y, n, "linear", "vs_top")

"""Prototype calibrators for issue 12's research directions (benchmark only).

Each prototype calibrates one fold's held-out scores the way the library's
calibrator does (maximum likelihood under a bounded link, ``n`` the size of the
whole training set) but changes one thing: the score map, the link, or ``n``.
They are fitted by L-BFGS with numerical gradients on a handful of parameters,
so ``Affine`` (the library's own map and link refitted by this fitter) is the
baseline each direction is compared to, apples to apples.

All work in the ``vs_top`` form: with row-max-shifted scores ``d = z - max z``
(``d <= 0``), a link bends ``d`` into ``g(d)`` and the probabilities are
``softmax(g(d))``. Binary scores ``s`` are carried as ``z = (0, s)``.

``Affine``
    ``z = a * scores + b`` and ``g(d) = L tanh(d / L)``, ``L = ln(n - 1)``: the
    spec's map (the library's default before 0.2).
``BetaMap``
    For models that give probabilities only: ``z_k = a ln p_k + c ln(1 - p_k)
    + b_k`` (beta calibration's map, shared ``a, c``), same link.
``PerClassN``
    ``L`` of each row from the count of its leading class, ``ln(n_top - 1)``:
    a confident claim for class ``k`` rests on the ``n_k`` samples of class
    ``k`` (for two classes: ``p_0 >= 1/n_1`` and ``p_1 >= 1/n_0``).
``EvidenceBound``
    Softmax (``g(d) = d``) inside the range of the calibration set's fitted
    ``d``, bending to the floor only beyond it: ``g(d) = -c - (L - c)
    tanh((-d - c) / (L - c))`` for ``-d > c``, ``c`` the largest ``-d`` seen in
    calibration, capped at ``0.8 L``.
``FittedCeiling``
    The default map with ``L`` fitted too, at most ``ln(n - 1)``.
``SmoothedTargets``, ``SmoothedTrainingCounts``, ``SmoothedCeiling``
    Fitted to Platt's smoothed targets, one-vs-rest per class, from the
    calibration fold's class counts or the whole training set's; the last
    with the fitted ceiling as well.
``Sharpened``
    The default fit, its scale multiplied by a constant afterwards: the
    frontier between sharpness in- and out-of-distribution.
``VectorScaling``
    One scale per class, ``z_k = a_k scores_k + b_k``, with a ridge pulling
    the scales together.
``MatrixScaling``
    ``z = W scores + b`` with Dirichlet calibration's off-diagonal ridge
    (ODIR), optionally with the fitted ceiling, a ridge on the diagonal's
    spread, a ridge that weakens with the rows, or the cross terms clipped to
    the calibration range; fitted with analytic gradients. The library's
    ``score_map="matrix"`` came from it.
``MonotoneSpline``
    A monotone piecewise-linear map of each score, shared by the classes.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_softmax

from sklearn_gsoftmax._links import vs_top_nll_grads

_RIDGE = 1e-6
_FLOOR = 1e-300  # log of an exact zero probability stays finite for the beta map


def _as_two_columns(scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        return np.column_stack([np.zeros_like(scores), scores])
    return scores


def _tanh_bend(d: np.ndarray, big_l) -> np.ndarray:
    return big_l * np.tanh(d / big_l)


class Affine:
    """``z = a * scores + b`` under the gaussian ``vs_top`` link (the default)."""

    def __init__(self, n: int):
        self.n = n

    # --- the score map: features of the scores, parameters theta
    def _prepare(self, scores):
        z = _as_two_columns(scores)
        # -inf scores (log of a zero probability) would make a * z NaN at a = 0
        finite = np.where(np.isfinite(z), z, np.nan)
        low = np.nanmin(finite) if np.isfinite(finite).any() else 0.0
        return np.where(np.isneginf(z), low - 50.0, np.nan_to_num(z))

    def _map(self, theta, features):
        k = features.shape[1]
        return theta[0] * features + np.concatenate([[0.0], theta[1:k]])

    def _n_params(self, features):
        return features.shape[1]

    def _initial(self, features):
        return np.r_[1.0, np.zeros(features.shape[1] - 1)]

    # --- the link
    def _bend(self, d):
        return _tanh_bend(d, np.log(self.n - 1))

    def _log_proba_of_map(self, z):
        d = z - z.max(axis=1, keepdims=True)
        return log_softmax(self._bend(d), axis=1)

    def _unit(self, features):
        # standardised scores: one L-BFGS tolerance fits every model's scale
        return np.std(features) or 1.0

    def _targets(self, y, k):
        return np.eye(k)[y]

    def fit(self, scores, y):
        features = self._prepare(scores)
        self._scale = self._unit(features)
        features = features / self._scale
        y = np.asarray(y)

        targets = self._targets(y, features.shape[-1])

        def loss(theta):
            log_p = self._log_proba_of_map(self._map(theta, features))
            return -(targets * log_p).sum(axis=1).mean() + _RIDGE * theta @ theta

        self.theta_ = minimize(loss, self._initial(features), method="L-BFGS-B").x
        return self

    def predict_log_proba(self, scores):
        features = self._prepare(scores) / self._scale
        return self._log_proba_of_map(self._map(self.theta_, features))


class BetaMap(Affine):
    """``z_k = a ln p_k + c ln(1 - p_k) + b_k`` on probabilities (``scores``
    are ``ln p``, as the library takes them from ``predict_proba``)."""

    def _prepare(self, scores):
        p = np.exp(_as_two_columns(scores))
        with np.errstate(divide="ignore"):
            return np.stack(
                [np.log(np.maximum(p, _FLOOR)), np.log(np.maximum(1 - p, _FLOOR))]
            )

    def _unit(self, features):
        return 1.0

    def _map(self, theta, features):
        k = features.shape[2]
        intercept = np.concatenate([[0.0], theta[2 : k + 1]])
        return theta[0] * features[0] + theta[1] * features[1] + intercept

    def _initial(self, features):
        return np.r_[1.0, 0.0, np.zeros(features.shape[2] - 1)]


class PerClassN(Affine):
    """The default map; each row's ``L`` from its leading class's count."""

    def __init__(self, n: int, class_counts):
        super().__init__(n)
        self.class_counts = np.asarray(class_counts, dtype=np.float64)

    def _log_proba_of_map(self, z):
        top = np.argmax(z, axis=1)
        big_l = np.log(np.maximum(self.class_counts[top], 3.0) - 1)[:, None]
        d = z - z.max(axis=1, keepdims=True)
        return log_softmax(_tanh_bend(d, big_l), axis=1)


class EvidenceBound(Affine):
    """Softmax inside the calibration range, the gaussian bend beyond it."""

    def _bend(self, d):
        big_l = np.log(self.n - 1)
        c = min(getattr(self, "_reach", 0.8 * big_l), 0.8 * big_l)
        excess = -d - c
        bent = -c - (big_l - c) * np.tanh(np.maximum(excess, 0.0) / (big_l - c))
        return np.where(excess > 0, bent, d)

    def fit(self, scores, y):
        # the reach of the evidence: the calibration set's own range of d under
        # the default fit, then refitted with the softmax core inside it
        base = Affine(self.n).fit(scores, y)
        features = base._prepare(scores) / base._scale
        z = base._map(base.theta_, features)
        self._reach = float(-(z - z.max(axis=1, keepdims=True)).min())
        return super().fit(scores, y)


def average_proba(per_fold: list, *, space: str) -> np.ndarray:
    """The folds' probabilities averaged in probability space (``"proba"``, as
    the library and CalibratedClassifierCV do) or in log space (``"log"``,
    the renormalised geometric mean)."""
    if space == "proba":
        return np.mean(per_fold, axis=0)
    log_mean = np.mean(np.log(per_fold), axis=0)
    return np.exp(log_softmax(log_mean, axis=1))


class FittedCeiling(Affine):
    """The default map with ``L`` fitted too, ``0 < L <= ln(n - 1)``: the
    bound tightens where the calibration labels never reach ``1/n`` (label
    noise, overlapping classes)."""

    def _n_params(self, features):
        return features.shape[1] + 1

    def _initial(self, features):
        return np.r_[1.0, np.zeros(features.shape[1] - 1), 4.0]

    def _map(self, theta, features):
        self._big_l = np.log(self.n - 1) * expit(theta[-1])
        return super()._map(theta[:-1], features)

    def _bend(self, d):
        return _tanh_bend(d, self._big_l)


class SmoothedTargets(Affine):
    """The default map fitted to Platt's smoothed targets, one-vs-rest per
    class: ``(N_k + 1) / (N_k + 2)`` for the true class ``k``, ``1 / (N_j' + 2)``
    for each other class ``j`` (``N_j'`` the rows not of class ``j``), each row
    normalised to sum to 1."""

    # the counts' scale: 1 for the fold's own, n / len(y) for the training set's
    count_factor = 1.0

    def _targets(self, y, k):
        counts = self.count_factor * np.bincount(y, minlength=k).astype(float)
        others = self.count_factor * len(y) - counts
        targets = np.tile(1.0 / (others + 2.0), (len(y), 1))
        targets[np.arange(len(y)), y] = (counts[y] + 1.0) / (counts[y] + 2.0)
        return targets / targets.sum(axis=1, keepdims=True)


class SmoothedCeiling(FittedCeiling, SmoothedTargets):
    """Both: the fitted ceiling and the smoothed targets."""


class SmoothedTrainingCounts(SmoothedTargets):
    """Platt's targets from the class counts of the whole training set (``n``
    rows), not of the calibration fold."""

    def fit(self, scores, y):
        self.count_factor = self.n / len(y)
        return super().fit(scores, y)


class Sharpened(Affine):
    """The default fit with its scale multiplied by ``factor`` afterwards: a
    probe of the trade-off between sharpness in- and out-of-distribution."""

    def __init__(self, n: int, factor: float):
        super().__init__(n)
        self.factor = factor

    def fit(self, scores, y):
        super().fit(scores, y)
        self.theta_ = self.theta_ * np.r_[self.factor, np.ones(len(self.theta_) - 1)]
        return self


class VectorScaling(Affine):
    """``z_k = a_k * scores_k + b_k``, one scale per class, with a ridge
    ``lam * sum_k (a_k - mean(a))**2`` pulling the scales together (vector
    scaling; two classes: the default map)."""

    def __init__(self, n: int, lam: float = 1e-2):
        super().__init__(n)
        self.lam = lam

    def _initial(self, features):
        k = features.shape[1]
        return np.r_[np.ones(k), np.zeros(k - 1)]

    def _map(self, theta, features):
        k = features.shape[1]
        if k == 2:  # the zero column of binary scores has no scale of its own
            return Affine._map(self, np.r_[theta[1], theta[k:]], features)
        return theta[:k] * features + np.concatenate([[0.0], theta[k:]])

    def _penalty(self, theta, k):
        scales = theta[:k]
        return self.lam * ((scales - scales.mean()) ** 2).sum()

    def fit(self, scores, y):
        features = self._prepare(scores)
        self._scale = self._unit(features)
        features = features / self._scale
        targets = self._targets(np.asarray(y), features.shape[1])
        k = features.shape[1]

        def loss(theta):
            log_p = self._log_proba_of_map(self._map(theta, features))
            nll = -(targets * log_p).sum(axis=1).mean()
            return nll + self._penalty(theta, k) + _RIDGE * theta @ theta

        self.theta_ = minimize(loss, self._initial(features), method="L-BFGS-B").x
        return self


class MatrixScaling(Affine):
    """``z = W scores + b`` with Dirichlet calibration's off-diagonal ridge,
    ``lam * sum_{i != j} W_ij**2 / (K (K - 1))``, and ``lam * |b|**2 / K``
    (on ``ln p`` scores this is Dirichlet calibration under the bounded link).
    Fitted with the link's analytic gradient; two classes: the default map.
    ``ceiling=True`` fits ``L`` too, at most ``ln(n - 1)`` (as
    ``FittedCeiling``)."""

    def __init__(
        self,
        n: int,
        lam: float = 1e-2,
        ceiling: bool = False,
        *,
        diagonal: bool = False,
        per_row: bool = False,
        clip: bool = False,
    ):
        super().__init__(n)
        self.lam = lam
        self.ceiling = ceiling
        # diagonal: also pull the diagonal towards its mean (vector scaling's
        # ridge); per_row: lam is a total prior strength, lam / m on the mean
        self.diagonal = diagonal
        self.per_row = per_row
        # clip: the cross terms see scores clipped to the calibration range
        self.clip = clip

    def _prepare(self, scores):
        z = super()._prepare(scores)
        if z.shape[1] == 2:  # two score columns: only their difference counts
            return np.column_stack([np.zeros(len(z)), z[:, 1] - z[:, 0]])
        return z

    def _cross(self, features):
        return np.clip(features, *self._range) if self.clip else features

    @staticmethod
    def _mapped(features, cross, w, b):
        diagonal = np.diag(w)
        return cross @ w.T + (features - cross) * diagonal + b

    def _unpack(self, theta, k):
        if k == 2:
            w = np.array([[0.0, 0.0], [0.0, theta[0]]])
            b, rest = np.r_[0.0, theta[1]], theta[2:]
        else:
            w, b, rest = (
                theta[: k * k].reshape(k, k),
                theta[k * k : k * k + k],
                theta[k * k + k :],
            )
        big_l_max = np.log(self.n - 1)
        big_l = big_l_max * expit(rest[0]) if self.ceiling else big_l_max
        return w, b, big_l

    def fit(self, scores, y):
        features = self._prepare(scores)
        self._scale = self._unit(features)
        features = features / self._scale
        y = np.asarray(y)
        m, k = features.shape
        self._k = k
        self._range = features.min(axis=0), features.max(axis=0)
        cross = self._cross(features)
        off = ~np.eye(k, dtype=bool)
        lam = self.lam / m if self.per_row else self.lam
        lam_w, lam_b = (0.0, 0.0) if k == 2 else (lam / (k * (k - 1)), lam / k)
        lam_d = lam_w if self.diagonal else 0.0

        def loss_grad(theta):
            w, b, big_l = self._unpack(theta, k)
            z = self._mapped(features, cross, w, b)
            nll, g, d_big_l = vs_top_nll_grads(z, y, big_l)
            g /= m
            spread = np.diag(w) - np.diag(w).mean()
            grad_w = g.T @ cross + 2 * lam_w * np.where(off, w, 0.0)
            grad_w[np.diag_indices(k)] += (g * (features - cross)).sum(axis=0)
            grad_w[np.diag_indices(k)] += 2 * lam_d * spread
            grad_b = g.sum(axis=0) + 2 * lam_b * b
            value = nll.mean() + lam_w * (w[off] ** 2).sum() + lam_b * b @ b
            value += lam_d * spread @ spread
            if k == 2:
                grad = [grad_w[1, 1], grad_b[1]]
            else:
                grad = [grad_w.ravel(), grad_b]
            if self.ceiling:
                sig = expit(theta[-1])
                grad.append(d_big_l.mean() * np.log(self.n - 1) * sig * (1 - sig))
            grad = np.r_[tuple(np.atleast_1d(part) for part in grad)]
            return value + _RIDGE * theta @ theta, grad + 2 * _RIDGE * theta

        start = [1.0, 0.0] if k == 2 else [np.eye(k).ravel(), np.zeros(k)]
        if self.ceiling:
            start.append(4.0)
        start = np.r_[tuple(np.atleast_1d(part) for part in start)]
        self.theta_ = minimize(loss_grad, start, jac=True, method="L-BFGS-B").x
        return self

    def predict_log_proba(self, scores):
        features = self._prepare(scores) / self._scale
        w, b, big_l = self._unpack(self.theta_, self._k)
        z = self._mapped(features, self._cross(features), w, b)
        top = z.max(axis=1, keepdims=True)
        return log_softmax(_tanh_bend(z - top, big_l), axis=1)


class MonotoneSpline(Affine):
    """A monotone piecewise-linear map of each score, shared by the classes,
    plus per-class offsets: slopes ``exp(theta_j)`` between knots at the
    calibration scores' quantiles, the outer slopes continued beyond them."""

    def __init__(self, n: int, n_knots: int = 4):
        super().__init__(n)
        self.n_knots = n_knots

    def _prepare(self, scores):
        z = super()._prepare(scores)
        if not hasattr(self, "_knots"):
            spread = z[:, 1:] if z.shape[1] == 2 else z
            levels = np.linspace(0, 1, self.n_knots + 2)[1:-1]
            self._knots = np.quantile(spread, levels)
        return z

    def _unit(self, features):
        self._knots = self._knots / (np.std(features) or 1.0)
        return np.std(features) or 1.0

    def _initial(self, features):
        return np.r_[np.zeros(self.n_knots + 1), np.zeros(features.shape[1] - 1)]

    def _map(self, theta, features):
        slopes = np.exp(theta[: self.n_knots + 1])
        # f(x) = slope_0 x + sum_j (slope_{j+1} - slope_j) relu(x - knot_j)
        z = slopes[0] * features
        for j, knot in enumerate(self._knots):
            z = z + (slopes[j + 1] - slopes[j]) * np.maximum(features - knot, 0.0)
        return z + np.concatenate([[0.0], theta[self.n_knots + 1 :]])

"""The refinements of the affine fit: the matrix score map and the fitted ceiling.

Derivatives against central differences, the ceiling's bound (it only
tightens), the matrix map's clipping and infinite scores, what each option does
to the fit, and the parameter combinations that are errors.
"""

import math
import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.metrics import log_loss

from sklearn_gsoftmax import GaussianSoftmaxCalibrator, GaussianSoftmaxClassifier
from sklearn_gsoftmax._links import (
    multiclass_nll_grad,
    proba_bounds,
    vs_top_nll_grads,
)
from sklearn_gsoftmax._map import CalibrationMap
from sklearn_gsoftmax._objective import (
    MAP_RIDGE,
    MIN_CEILING,
    PRIOR_STRENGTH,
    Layout,
    Problem,
    finite_bounds,
    matrix_scores,
    settled,
)
from sklearn_gsoftmax._objective import objective as full_objective
from sklearn_gsoftmax._source import ArraySource

RNG = np.random.default_rng(12)


def finite_range(z):
    """Each column's smallest and largest finite score (0 without any)."""
    return settled(finite_bounds(z))


def objective(z, y, w, layout, link, form, low, high):
    """The refinement's penalised objective on standardised scores (unit 1),
    cross terms clipped to ``[low, high]``."""
    clip = None if low is None else np.vstack([low, high])
    problem = Problem(layout, link, form, 1.0, w.sum(), clip)
    return full_objective(ArraySource(z, y, w), problem)


STEP = 1e-6
FLAG_OFF = {"uncertainty_rules": ("low_confidence",)}


def _central(f, x, step=STEP):
    x = np.asarray(x, dtype=float)
    out = np.empty(x.size)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = step
        out[i] = (f(x + e) - f(x - e)) / (2 * step)
    return out


def _noisy_scores(m, k, *, noise=1.5, seed=0):
    rng = np.random.default_rng(seed)
    true = rng.normal(scale=3.0, size=(m, k))
    y = np.argmax(true + rng.gumbel(size=(m, k)) * noise, axis=1)
    return true, y


# ---------------------------------------------------------------- derivatives


@pytest.mark.parametrize("n", [3, 50, 1e4])
def test_vs_top_ceiling_derivative(n):
    """At L = ln(n - 1) the loss and gradient are the link's; the derivative
    in L matches central differences, also with infinite scores."""
    z = RNG.normal(scale=4.0, size=(30, 4))
    z[0, 2] = -np.inf
    z[1] = [np.inf, np.inf, 0.0, -np.inf]
    y = RNG.integers(0, 4, 30)
    big_l = np.log(n - 1)
    loss, g, d_big_l = vs_top_nll_grads(z.copy(), y, big_l)
    ref_loss, ref_g = multiclass_nll_grad(z.copy(), y, n, "gaussian", "vs_top")
    assert_allclose(loss, ref_loss, rtol=1e-12)
    assert_allclose(g, ref_g, rtol=1e-12, atol=1e-15)
    assert np.isfinite(d_big_l).all()

    def total(t):
        return vs_top_nll_grads(z.copy(), y, t[0])[0].sum()

    assert_allclose(d_big_l.sum(), _central(total, [big_l])[0], rtol=1e-6)


def _layout(k, matrix, fit_intercept, ceiling, *, n=200, penalty=0.3):
    return Layout(
        k,
        matrix=matrix,
        fit_intercept=fit_intercept,
        ceiling=ceiling,
        n=n,
        penalty=penalty,
    )


LAYOUTS = [
    # (classes, matrix, fit_intercept, ceiling)
    (2, False, True, True),
    (2, False, False, True),
    (4, False, True, True),
    (4, True, True, False),
    (4, True, True, True),
    (4, True, False, True),
]


@pytest.mark.parametrize(("k", "matrix", "fit_intercept", "ceiling"), LAYOUTS)
def test_objective_gradient(k, matrix, fit_intercept, ceiling):
    """The data term's gradient (map entries, offsets, ceiling) and the
    ridge's, against central differences; scores beyond the clip range and
    infinite ones included."""
    z = RNG.normal(scale=2.0, size=(60, k))
    if k == 2:
        z[:, 0] = 0.0
    z[3, 1] = -np.inf
    y = RNG.integers(0, k, 60)
    w = RNG.random(60)
    # the clip range is narrower than the scores, so clipping is exercised
    low, high = np.full(k, -1.5), np.full(k, 1.5)
    layout = _layout(k, matrix, fit_intercept, ceiling, penalty=0.7)
    data = objective(z, y, w, layout, "gaussian", "vs_top", low, high)
    theta = layout.start(1.3, RNG.normal(size=k))
    theta += RNG.normal(scale=0.2, size=theta.size)
    if matrix:  # the diagonal stays positive, off-diagonal entries any sign
        theta[: k * k] = np.abs(theta[: k * k]) * np.where(np.eye(k).ravel(), 1, -1)
    if ceiling:
        theta[-1] = 2.0

    def value(t):
        return data(t)[0]

    grad = data(theta)[1]
    assert_allclose(grad, _central(value, theta), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_binary_objective_hessian(fit_intercept):
    """The binary refinement runs Newton's method: its Hessian (scale,
    offset, ceiling) against central differences of its gradient."""
    s = np.r_[RNG.normal(scale=3.0, size=80), np.inf, -np.inf]
    z = np.column_stack([np.zeros_like(s), s])
    y = RNG.integers(0, 2, s.size)
    w = RNG.random(s.size)
    layout = _layout(2, False, fit_intercept, True, n=300)
    data = objective(z, y, w, layout, "gaussian", "vs_top", None, None)
    theta = layout.start(0.8, np.array([0.0, 0.4]))
    theta[-1] = 2.5
    value, grad, hess = data(theta)
    numeric = np.column_stack(
        [_central(lambda t, i=i: data(t)[1][i], theta) for i in range(theta.size)]
    )
    assert_allclose(hess, numeric, rtol=1e-5, atol=1e-8)


def test_layout_bounds_keep_the_ceiling_and_the_diagonal():
    layout = _layout(3, True, True, True, n=100)
    bounds = np.array(layout.bounds)
    assert_array_equal(bounds[[0, 4, 8], 0], 0.0)  # diagonal >= 0
    assert (bounds[[1, 2, 3, 5, 6, 7], 0] < 0).all()
    assert_allclose(bounds[-1], [MIN_CEILING, np.log(99)])
    assert layout.size == 9 + 3 + 1


# ------------------------------------------------------------ the ceiling


def test_ceiling_tightens_under_label_noise_and_never_loosens():
    """5 % of labels flipped on well separated scores: the ceiling comes down
    to about the noise level (a bound of 1/n is not what the labels show);
    every probability stays within the bounds for n."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 5000)
    scores = np.where(y == 1, 8.0, -8.0) + rng.normal(size=5000)
    flipped = rng.random(5000) < 0.05
    y_noisy = np.where(flipped, 1 - y, y)
    fitted = GaussianSoftmaxCalibrator(**FLAG_OFF).fit(scores, y_noisy)
    assert fitted.n_link_ < 50  # 1/n_link_ near the 5 % flip rate
    p = fitted.predict_proba(np.r_[-1e6, scores, 1e6])
    low, high = proba_bounds(fitted.n_samples_, 2, "gaussian", "vs_top")
    assert p.min() >= low and p.max() <= high
    assert p.min() > 0.02  # no longer 1/5000 at the far ends
    fixed = GaussianSoftmaxCalibrator(fit_ceiling=False, **FLAG_OFF)
    fixed.fit(scores, y_noisy)
    assert fixed.n_link_ == fixed.n_samples_ == 5000
    held_out = np.where(rng.random(5000) < 0.05, 1 - y, y)
    assert log_loss(held_out, fitted.predict_proba(scores)) < log_loss(
        held_out, fixed.predict_proba(scores)
    )


def test_ceiling_stays_at_n_on_clean_labels():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 3000)
    scores = np.where(y == 1, 1.0, -1.0) * rng.exponential(3.0, 3000)
    fitted = GaussianSoftmaxCalibrator(**FLAG_OFF).fit(scores, y)
    assert fitted.n_link_ == fitted.n_samples_


# ---------------------------------------------------------- the matrix map


def test_matrix_map_undoes_a_mixing_of_the_scores():
    """Scores that mix the true logits across classes: the matrix map fits
    them far better than one scale, on held-out rows."""
    true, y = _noisy_scores(6000, 4, noise=0.5)
    mixing = np.eye(4) + np.array(
        [[0, 0.8, 0, 0], [0, 0, 0, 0], [0, 0, 0, -0.6], [0.5, 0, 0, 0]]
    )
    scores = true @ np.linalg.inv(mixing).T
    train, test = slice(0, 3000), slice(3000, None)
    kwargs = {"fit_ceiling": False, **FLAG_OFF}
    matrix = GaussianSoftmaxCalibrator(score_map="matrix", **kwargs)
    affine = GaussianSoftmaxCalibrator(score_map="affine", **kwargs)
    matrix.fit(scores[train], y[train])
    affine.fit(scores[train], y[train])
    assert matrix.coef_.shape == (4, 4) and affine.coef_ is None
    assert (np.diag(matrix.coef_) >= 0).all()
    loss_matrix = log_loss(y[test], matrix.predict_proba(scores[test]))
    loss_affine = log_loss(y[test], affine.predict_proba(scores[test]))
    assert loss_matrix < 0.9 * loss_affine


def test_matrix_penalty_shrinks_the_off_diagonal():
    true, y = _noisy_scores(2000, 3)
    scores = true + 0.7 * true[:, [1, 2, 0]]
    off = ~np.eye(3, dtype=bool)
    spread = []
    for penalty in (0.0, 1e4):
        fitted = GaussianSoftmaxCalibrator(
            score_map="matrix", matrix_penalty=penalty, **FLAG_OFF
        ).fit(scores, y)
        spread.append(np.abs(fitted.coef_[off]).max())
    assert spread[1] < 1e-3 * spread[0]


def test_matrix_cross_terms_see_clipped_scores():
    """Beyond the fit's range, a score moves only its own class's logit: the
    other classes' logits stay where they were at the edge of the range."""
    true, y = _noisy_scores(1500, 3)
    fitted = GaussianSoftmaxCalibrator(**FLAG_OFF).fit(true, y)
    assert_allclose(fitted.clip_range_, finite_range(true))
    edge = np.array([[fitted.clip_range_[1, 0], 0.0, 0.0]])
    beyond = edge + [[50.0, 0.0, 0.0]]
    fitted_map = CalibrationMap.of(fitted)
    at_edge, far = fitted_map.mapped(edge), fitted_map.mapped(beyond)
    assert_allclose(far[:, 1:], at_edge[:, 1:])
    assert far[0, 0] > at_edge[0, 0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matrix_map_with_huge_and_infinite_scores(dtype):
    """Log-probabilities with exact zeros (-inf) in fit; in predict +-inf and
    +-1e38 scores: finite probabilities in the input's dtype, rows sum to 1."""
    true, y = _noisy_scores(1200, 3)
    scores = true - np.logaddexp.reduce(true, axis=1, keepdims=True)
    scores[scores < -6] = -np.inf
    fitted = GaussianSoftmaxCalibrator(**FLAG_OFF).fit(scores.astype(dtype), y)
    assert fitted.coef_ is not None
    extreme = np.array(
        [
            [np.inf, 0.0, -np.inf],
            [-np.inf, -np.inf, -np.inf],
            [1e38, -1e38, 0.0],
            [np.inf, np.inf, 1.0],
        ],
        dtype=dtype,
    )
    p = fitted.predict_proba(extreme)
    assert p.dtype == dtype
    assert np.isfinite(p).all()
    assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5 if dtype == np.float32 else 1e-12)
    low, high = proba_bounds(fitted.n_samples_, 3, "gaussian", "vs_top")
    assert p.min() >= low * (1 - 1e-6) and p.max() <= high * (1 + 1e-6)


def test_two_classes_use_the_affine_map():
    true, y = _noisy_scores(800, 2)
    fitted = GaussianSoftmaxCalibrator(score_map="matrix", **FLAG_OFF)
    fitted.fit(true[:, 1] - true[:, 0], y)
    assert fitted.coef_ is None and fitted.clip_range_ is None


# ------------------------------------------------------------ the options


def test_affine_without_ceiling_is_the_spec_fit():
    """score_map="affine", fit_ceiling=False: one scale, K - 1 offsets, the
    link of n_samples_ (the spec's calibrator)."""
    true, y = _noisy_scores(900, 3)
    fitted = GaussianSoftmaxCalibrator(
        score_map="affine", fit_ceiling=False, **FLAG_OFF
    ).fit(true, y)
    assert fitted.coef_ is None and fitted.n_link_ == fitted.n_samples_
    assert fitted.intercept_[0] == 0.0
    z = fitted.scale_ * true + fitted.intercept_
    from sklearn_gsoftmax import gaussian_softmax

    assert_allclose(fitted.predict_proba(true), gaussian_softmax(z, 900), rtol=1e-12)


def test_auto_options_follow_the_link():
    true, y = _noisy_scores(600, 3)
    softmax = GaussianSoftmaxCalibrator(link="softmax", **FLAG_OFF).fit(true, y)
    assert softmax.coef_ is None and softmax.n_link_ == softmax.n_samples_
    simplex = GaussianSoftmaxCalibrator(multiclass="simplex", **FLAG_OFF)
    simplex.fit(true, y)
    assert simplex.coef_ is not None and simplex.n_link_ == simplex.n_samples_
    linear = GaussianSoftmaxCalibrator(link="linear", **FLAG_OFF).fit(true, y)
    assert linear.coef_ is not None and linear.n_link_ == linear.n_samples_


@pytest.mark.parametrize(
    "params", [{"link": "linear"}, {"link": "softmax"}, {"multiclass": "simplex"}]
)
def test_fit_ceiling_true_where_there_is_no_ceiling(params):
    true, y = _noisy_scores(300, 3)
    calibrator = GaussianSoftmaxCalibrator(fit_ceiling=True, **params, **FLAG_OFF)
    with pytest.raises(ValueError, match="fit_ceiling=True needs the gaussian link"):
        calibrator.fit(true, y)


def test_classifier_passes_the_options_to_its_calibrators():
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model = GaussianSoftmaxClassifier(
        LogisticRegression(max_iter=1000), score_map="affine", fit_ceiling=False
    ).fit(X, y)
    for pair in model.calibrated_classifiers_:
        assert pair.calibrator.coef_ is None
        assert pair.calibrator.n_link_ == model.n_samples_


def test_state_of_format_1_loads_as_the_affine_fit(monkeypatch):
    """A model saved before the options existed keeps the map it was fitted
    with: affine, the ceiling of n (parameters and attributes filled in)."""
    true, y = _noisy_scores(700, 3)
    old = GaussianSoftmaxCalibrator(
        score_map="affine", fit_ceiling=False, **FLAG_OFF
    ).fit(true, y)
    state = old.__getstate__()
    for name in ("score_map", "matrix_penalty", "fit_ceiling", "n_link_", "coef_"):
        del state[name]
    del state["clip_range_"]
    state["_gsoftmax_state_format"] = 1
    loaded = GaussianSoftmaxCalibrator.__new__(GaussianSoftmaxCalibrator)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded.__setstate__(state)
    assert loaded.score_map == "affine" and loaded.fit_ceiling is False
    assert loaded.n_link_ == loaded.n_samples_
    assert_array_equal(loaded.predict_proba(true), old.predict_proba(true))
    again = pickle.loads(pickle.dumps(loaded))
    assert_array_equal(again.predict_proba(true), old.predict_proba(true))
    del state["scale_"]
    with pytest.raises(ValueError, match="^This GaussianSoftmaxCalibrator was saved"):
        GaussianSoftmaxCalibrator.__new__(GaussianSoftmaxCalibrator).__setstate__(state)


def test_rows_of_weight_zero_do_not_set_the_clip_range():
    """A zero weight removes a row: its extreme score must not widen the
    range the cross terms are clipped to (sample-weight equivalence)."""
    true, y = _noisy_scores(500, 3)
    extreme = np.vstack([true, [[60.0, -60.0, 0.0]]])
    weights = np.r_[np.ones(500), 0.0]
    weighted = GaussianSoftmaxCalibrator(**FLAG_OFF).fit(
        extreme, np.r_[y, 1], sample_weight=weights
    )
    removed = GaussianSoftmaxCalibrator(**FLAG_OFF).fit(true, y)
    assert_allclose(weighted.clip_range_, removed.clip_range_)
    assert_allclose(
        weighted.predict_proba(extreme), removed.predict_proba(extreme), rtol=1e-9
    )


def test_flag_of_a_single_matrix_calibrator_is_fitted_on_held_out_rows():
    """ensemble=False: one calibrator on every out-of-fold score. With a
    matrix map (K**2 parameters) its own probabilities of those rows are
    optimistic (accuracy claimed 4 to 7 points above new data's, at full
    coverage); the flag is fitted on cross-fitted ones, whose claim holds."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    for seed in range(3):
        X_fit, X_new, y_fit, y_new = train_test_split(
            X, y, train_size=500, random_state=seed, stratify=y
        )
        model = GaussianSoftmaxClassifier(
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)),
            ensemble=False,
            score_map="matrix",
            matrix_penalty=0.0,
            **FLAG_OFF,
        ).fit(X_fit, y_fit)
        accepted = ~model.predict_uncertain(X_new)
        accuracy = (model.predict(X_new)[accepted] == y_new[accepted]).mean()
        assert model.accepted_accuracy_ < accuracy + 0.03, seed


def test_auto_needs_ten_samples_per_parameter():
    """Three classes: the matrix map (12 parameters) from 120 samples, the
    ceiling with the affine map (4) from 40, two classes' ceiling (3) from 30;
    weights count as samples."""
    from sklearn_gsoftmax._calibrator import map_spec
    from sklearn_gsoftmax._refine import refinement_layout

    auto = GaussianSoftmaxCalibrator()
    for k, rows, expected in [
        (3, 39, None),
        (3, 40, (False, True)),
        (3, 119, (False, True)),
        (3, 120, (True, True)),
        (2, 29, None),
        (2, 30, (False, True)),
    ]:
        spec = map_spec(auto, k, 1000, rows, np.float64)
        layout = refinement_layout(spec, rows=rows)
        got = None if layout is None else (layout.matrix, layout.ceiling)
        assert got == expected, (k, rows)
    true, y = _noisy_scores(200, 3, seed=5)
    for rows, matrix in [(119, False), (120, True)]:
        fitted = GaussianSoftmaxCalibrator(**FLAG_OFF).fit(true[:rows], y[:rows])
        assert (fitted.coef_ is not None) == matrix, rows
        weighted = GaussianSoftmaxCalibrator(**FLAG_OFF).fit(
            true[:20], y[:20], sample_weight=np.full(20, rows / 20)
        )
        assert (weighted.coef_ is not None) == matrix, rows


def test_layout_starts_at_the_affine_fit_and_its_penalty_is_the_formula():
    layout = _layout(3, True, True, True, n=100, penalty=0.6)
    theta = layout.start(1.5, np.array([0.0, 0.4, -0.2]))
    assert_allclose(theta[:9], 1.5 * np.eye(3).ravel())
    assert_allclose(theta[9:12], [0.0, 0.4, -0.2])
    assert theta[-1] == math.log(99)  # the ceiling starts at ln(n - 1)
    w = np.array([[1.0, 0.5, 0.0], [-0.2, 2.0, 0.1], [0.0, 0.3, 1.0]])
    b = np.array([0.1, 0.1, 0.1])
    moved = np.r_[w.ravel(), b, 2.0]
    off = w[~np.eye(3, dtype=bool)]
    change = b - [0.0, 0.4, -0.2]
    expected = (
        0.6 / 6 * off @ off
        + 0.6 / 3 * change @ change
        + MAP_RIDGE * w.ravel() @ w.ravel()
        + 0.5 * PRIOR_STRENGTH * moved @ moved
    )
    assert layout.penalty_value_grad_hess(moved)[0] == pytest.approx(
        expected, rel=1e-12
    )


def test_zero_diagonal_entry_with_infinite_scores_gives_no_nan():
    """A class whose own score carries nothing (W_ii = 0): its infinite
    scores map to the clipped cross terms, not to 0 * inf."""
    z = np.array([[np.inf, 0.0, -np.inf], [-np.inf, 1.0, 2.0]])
    cross = np.clip(z, -3.0, 3.0)
    coef = np.array([[0.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.2, 0.0, 1.0]])
    u = matrix_scores(z, cross, coef, np.zeros(3))
    assert not np.isnan(u).any()
    assert_allclose(u[:, 0], cross @ coef[0])  # nothing from its own score
    assert u[0, 2] == -np.inf and u[1, 2] == pytest.approx(2.0 - 0.6)


def test_binary_ceiling_without_intercept():
    """fit_intercept=False with the fitted ceiling: the offset stays 0 and
    the probabilities are the gaussian link of n_link_ at scale_ * s."""
    rng = np.random.default_rng(8)
    s = rng.normal(scale=4.0, size=3000)
    y = (rng.random(3000) < 1 / (1 + np.exp(-s))).astype(int)
    y[rng.random(3000) < 0.05] ^= 1
    fitted = GaussianSoftmaxCalibrator(fit_intercept=False, **FLAG_OFF).fit(s, y)
    assert fitted.n_link_ < fitted.n_samples_ and fitted.intercept_[1] == 0.0
    # the spec's two-class formula at a real n
    p1 = 1 / (
        1
        + (fitted.n_link_ - 1)
        ** -np.tanh(fitted.scale_ * s / np.log(fitted.n_link_ - 1))
    )
    assert_allclose(fitted.predict_proba(s)[:, 1], p1, rtol=1e-10)

    def mean_loss(theta):  # the spec's loss at scale a, ceiling L, offset 0
        a, big_l = theta
        logit = big_l * np.tanh(a * s / big_l)
        return np.mean(np.logaddexp(0.0, np.where(y == 1, -logit, logit)))

    optimum = [fitted.scale_, np.log(fitted.n_link_ - 1)]
    slope_scale, slope_ceiling = _central(mean_loss, optimum)
    # the scale's slope is MAP_RIDGE's pull, 2e-5 per unit of standardised scale
    assert abs(slope_scale) < 1e-3 and abs(slope_ceiling) < 1e-6


def test_ceiling_keeps_a_sharp_fit_on_separable_scores():
    """Separable binary scores: the refinement must not shrink the (huge)
    standardised scale; the ceiling stays at n and the fit is the spec's."""
    rng = np.random.default_rng(9)
    s, s_new = rng.normal(scale=3.0, size=(2, 2000))
    y, y_new = (s > 0).astype(int), (s_new > 0).astype(int)
    default = GaussianSoftmaxCalibrator(**FLAG_OFF).fit(s, y)
    spec = GaussianSoftmaxCalibrator(fit_ceiling=False, **FLAG_OFF).fit(s, y)
    assert default.n_link_ == 2000
    assert log_loss(y_new, default.predict_proba(s_new)) <= 1.01 * log_loss(
        y_new, spec.predict_proba(s_new)
    )


@pytest.mark.parametrize("k", [2, 3])
def test_two_samples_leave_no_ceiling_to_fit(k):
    """n = 2: L = 0 and the link is uniform; the defaults still fit."""
    true, y = _noisy_scores(200, k)
    scores = true[:, 1] - true[:, 0] if k == 2 else true
    fitted = GaussianSoftmaxCalibrator(n_samples=2, **FLAG_OFF).fit(scores, y)
    assert fitted.n_link_ == 2
    assert_allclose(fitted.predict_proba(scores), 1 / k)


def test_float32_matrix_map_of_tiny_scores():
    """Scores of magnitude 1e-41: the matrix's entries do not fit float32;
    the map is computed in float64, as the affine map is."""
    true, y = _noisy_scores(1200, 3)
    scores = (true * 1e-41).astype(np.float32)
    scores[:3, 0] = -np.inf
    fitted = GaussianSoftmaxCalibrator(**FLAG_OFF).fit(scores, y)
    assert fitted.coef_ is not None
    p32 = fitted.predict_proba(scores)
    assert p32.dtype == np.float32
    p64 = CalibrationMap.of(fitted).proba(scores.astype(np.float64))
    assert_allclose(p32, p64, atol=1e-5)


def test_multiclass_fit_without_intercept():
    """fit_intercept=False with the gaussian link: the search's flat model
    fixes every parameter (scipy then reports no iteration count)."""
    true, y = _noisy_scores(600, 3)
    fitted = GaussianSoftmaxCalibrator(fit_intercept=False, **FLAG_OFF).fit(true, y)
    assert fitted.coef_ is not None
    assert_array_equal(fitted.intercept_, 0.0)

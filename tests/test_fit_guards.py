"""Guards on the fit that the behavioural tests let through (issue 15).

Each test here caught a bug planted in the code that the rest of the suite
missed: a wrong Hessian that still converges (slowly), a parameter frozen at
the box, the column of a class a fold never saw written at the wrong place,
a fold calibrator built on the fold size, and multiclass predictions checked
only with a zero intercept.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from sklearn_gsoftmax import GaussianSoftmaxCalibrator, GaussianSoftmaxClassifier
from sklearn_gsoftmax._fitting import score_unit
from sklearn_gsoftmax._links import LINKS, link_proba
from sklearn_gsoftmax._objective import (
    MAX_OFFSET,
    MAX_SCALE,
    PRIOR_STRENGTH,
    Layout,
    Problem,
    affine_scores,
    objective,
)
from sklearn_gsoftmax._optimise import (
    NEWTON_MAX_ITER,
    damped_newton,
    lbfgs,
    projected_gradient,
)
from sklearn_gsoftmax._source import ArraySource

BOX = [(-MAX_SCALE, MAX_SCALE), (-MAX_OFFSET, MAX_OFFSET)]


def _binary_objective(s_std, sign, w, n, link, n_params):
    """The fit's objective of standardised binary margins (scale, offset)."""
    layout = Layout(2, fit_intercept=n_params == 2, n=n)
    source = ArraySource(s_std, (sign > 0).astype(int), w)
    return objective(source, Problem(layout, link, "vs_top", 1.0, w.sum()))


def _score_unit(s, w):
    return score_unit(ArraySource(s, np.zeros(len(s), int), w))


def _logistic(seed, m=500):
    """Well-conditioned logistic data: standardised scores, labels, weights."""
    rng = np.random.default_rng(seed)
    s = rng.normal(scale=2.0, size=m)
    y = (rng.random(m) < 1 / (1 + np.exp(-(1.3 * s - 0.4)))).astype(int)
    w = np.full(m, 1 / m)
    return s / _score_unit(s, w), y, w


# --------------------------------------------------------------------------------------
# Newton's iteration count


@pytest.mark.parametrize(
    "link, n, bound",
    # Measured: at most 7 passes (10 for the strongly bent gaussian at n = 4).
    # A dropped Hessian cross term takes 9 to 14; a dropped second-derivative
    # term of the gaussian link 15 to 23 at n = 4.
    [(link, n, 8) for link in LINKS for n in (50, 1000)] + [("gaussian", 4, 12)],
)
def test_newton_converges_in_few_steps(link, n, bound):
    for seed in range(3):
        s_std, y, w = _logistic(seed)
        evaluate = _binary_objective(s_std, 2.0 * y - 1.0, w, n, link, 2)
        for start in ([0.0, 0.0], [1.0, 0.0]):
            fit = damped_newton(evaluate, np.array(start), BOX)
            assert fit.problem is None
            assert fit.n_iter <= bound, (seed, start, fit.n_iter)


def test_softmax_calibrator_reports_few_iterations():
    """Platt scaling from zero: 6 Newton steps (9 or more without the cross
    term of the Hessian)."""
    rng = np.random.default_rng(0)
    s = rng.normal(scale=2.0, size=2000)
    y = (rng.random(2000) < 1 / (1 + np.exp(-(1.3 * s - 0.4)))).astype(int)
    calibrator = GaussianSoftmaxCalibrator(link="softmax").fit(s, y)
    assert 1 <= calibrator.n_iter_ <= 7


# --------------------------------------------------------------------------------------
# The box, and an independent optimiser


def _scipy_optimum(objective, starts, bounds):
    best = None
    for start in starts:
        result = minimize(objective, start, method="L-BFGS-B", bounds=bounds)
        if best is None or result.fun < best.fun:
            best = result
    return best


# A box around the optimum (standardised scale about 2, offset about -0.3) and
# small enough that no corner saturates the bounded links: from a saturated
# corner the loss is flat and any optimiser stays.
SMALL_BOX = [(-4.0, 4.0), (-1.0, 1.0)]


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("corner", [(1, 1), (1, -1), (-1, 1), (-1, -1)])
def test_newton_leaves_the_box(link, corner):
    """Started at a corner of the box, where the gradient points inwards, the
    fit comes back to the optimum scipy finds: a parameter at a bound is held
    only while its gradient points out of the box."""
    s_std, y, w = _logistic(1, m=200)
    evaluate = _binary_objective(s_std, 2.0 * y - 1.0, w, 50, link, 2)
    start = np.array([corner[0] * 4.0, corner[1] * 1.0])
    fit = damped_newton(evaluate, start, SMALL_BOX)
    reference = _scipy_optimum(
        lambda theta: evaluate(theta)[0], [[0.0, 0.0], [1.0, 0.0]], SMALL_BOX
    )
    assert np.all(np.abs(reference.x) < [4.0, 1.0])  # inside
    assert fit.problem is None
    assert fit.value <= reference.fun + 1e-10
    assert_allclose(fit.theta, reference.x, atol=1e-3)


@pytest.mark.parametrize("corner", [(1, 1), (1, -1), (-1, 1), (-1, -1)])
def test_softmax_newton_leaves_the_outer_box(corner):
    """The convex loss from the corners of the real box."""
    s_std, y, w = _logistic(1, m=200)
    evaluate = _binary_objective(s_std, 2.0 * y - 1.0, w, 50, "softmax", 2)
    start = np.array([corner[0] * MAX_SCALE, corner[1] * MAX_OFFSET])
    fit = damped_newton(evaluate, start, BOX)
    reference = _scipy_optimum(lambda theta: evaluate(theta)[0], [[0.0, 0.0]], BOX)
    assert fit.problem is None
    assert_allclose(fit.theta, reference.x, atol=1e-3)


def _independent_loss(theta, s_std, y, n, link):
    """Mean ``-ln p_y`` from the forward link, plus the fit's prior."""
    log_p = link_proba(theta[0] * s_std + theta[1], n, link, "vs_top", log=True)
    return -log_p[np.arange(len(y)), y].mean() + 0.5 * PRIOR_STRENGTH * theta @ theta


def _tied_problem(seed):
    """20 samples of five tied score values."""
    rng = np.random.default_rng(seed)
    s = rng.integers(-2, 3, size=20).astype(float)
    y = (rng.random(20) < 1 / (1 + np.exp(-3 * s))).astype(int)
    return s, y


@pytest.mark.parametrize(
    "seed, link",
    [(seed, link) for seed in range(2) for link in LINKS]
    # Seed 23 found a silent wrong optimum of the linear link (loss 0.28681 at
    # standardised (3.19, 0.22) against 0.28630 at (18.4, -0.78)): the search
    # held the flat model's offset at every scale and passed that basin by.
    # It now also searches along lines of other offsets.
    + [(23, "linear"), (23, "gaussian")],
)
def test_fit_on_tied_scores_matches_scipy(seed, link):
    """On small problems of tied scores the fit is at the optimum scipy
    finds from many starts in the same box, or says it is not
    (ConvergenceWarning): never a silent wrong optimum."""
    s, y = _tied_problem(seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        calibrator = GaussianSoftmaxCalibrator(link=link, fit_ceiling=False)
        calibrator.fit(s, y)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        return
    unit = _score_unit(s, np.full(len(s), 1 / len(s)))
    theta = np.array([calibrator.scale_ * unit, calibrator.intercept_[1]])
    n = len(s)
    starts = [[a, b] for a in (-100.0, -3.0, 0.0, 3.0, 30.0, 1e3) for b in (-3, 0, 3)]
    reference = _scipy_optimum(
        lambda t: _independent_loss(t, s / unit, y, n, link), starts, BOX
    )
    fitted = _independent_loss(theta, s / unit, y, n, link)
    assert fitted <= reference.fun + 1e-7 * abs(reference.fun), (theta, reference.x)


# --------------------------------------------------------------------------------------
# The meta-estimator's folds


LABELS = np.array([10, 20, 30])


def _folds_missing(missing, m=90):
    """Two folds; the first one's training rows lack ``LABELS[missing]``."""
    rng = np.random.default_rng(missing)
    y_index = np.arange(m) % 3
    X = rng.normal(size=(m, 2)) + 2.0 * np.eye(3)[y_index][:, :2]
    X[y_index == 2] -= 2.0
    half = np.arange(m) < m // 2
    first_train = np.flatnonzero(half & (y_index != missing))
    cv = [
        (first_train, np.flatnonzero(~half)),
        (np.flatnonzero(~half), np.flatnonzero(half)),
    ]
    return X, LABELS[y_index], cv


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("missing", [0, 1, 2], ids=["first", "middle", "last"])
def test_class_missing_from_a_fold_at_every_position(link, missing):
    """The pair whose estimator never saw a class never predicts it: that
    class gets the link's smallest probability in every row (the floor 1/n
    of the linear link, 0 under softmax), and the pair ranks the other
    classes as its estimator does."""
    X, y, cv = _folds_missing(missing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = GaussianSoftmaxClassifier(LogisticRegression(), cv=cv, link=link)
        model.fit(X, y)
    pair = model.calibrated_classifiers_[0]
    estimator = pair.estimator
    assert LABELS[missing] not in estimator.classes_
    proba = pair.proba_and_scores(X)[0]
    assert proba.shape == (len(X), 3)
    assert_allclose(proba.sum(axis=1), 1.0)
    others = np.delete(proba, missing, axis=1)
    assert np.all(proba[:, missing] <= others.min(axis=1) * (1 + 1e-12))
    assert np.all(proba[:, missing] < others.max(axis=1))
    if link == "softmax":
        assert_array_equal(proba[:, missing], 0.0)
    elif link == "linear":
        assert_allclose(proba[:, missing], 1 / model.n_samples_, rtol=1e-12)
    # the pair's calibrator on the scores of the classes its estimator saw
    # (a two-class fit): the same ranking of those classes
    seen = pair.calibrator.predict_proba(estimator.decision_function(X))
    assert_array_equal(
        np.delete(LABELS, missing)[others.argmax(axis=1)],
        estimator.classes_[seen.argmax(axis=1)],
    )


@pytest.mark.parametrize("weighted", [False, True])
def test_every_fold_calibrator_counts_all_training_samples(weighted):
    """``n`` of each fold's calibrator is the whole training count (the sum of
    the weights), not the fold's: the bounds are those of the model trained
    on everything."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3))
    y = (X[:, 0] + rng.normal(size=90) > 0).astype(int)
    weights = rng.integers(1, 4, size=90).astype(float) if weighted else None
    model = GaussianSoftmaxClassifier(LogisticRegression(), cv=3)
    model.fit(X, y, sample_weight=weights)
    expected = 90.0 if weights is None else weights.sum()
    assert model.n_samples_ == expected
    assert len(model.calibrated_classifiers_) == 3
    for pair in model.calibrated_classifiers_:
        assert pair.calibrator.n_samples_ == expected


# --------------------------------------------------------------------------------------
# K >= 3 with a non-zero intercept


def _reference_proba(u, n, link, form):
    """The spec's formulas for calibrated logits ``u``, written out in numpy."""
    k = u.shape[1]
    if link == "softmax":
        e = np.exp(u - u.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if link == "linear":
        return 1 / n + (1 - k / n) * _reference_proba(u, n, "softmax", form)
    big_l = np.log(n - 1)
    if form == "vs_top":
        d = big_l * np.tanh((u - u.max(axis=1, keepdims=True)) / big_l)
        return _reference_proba(d, n, "softmax", form)
    sigma = _reference_proba(k * u / big_l, n, "softmax", form)
    return _reference_proba(big_l * sigma, n, "softmax", form)


@pytest.mark.parametrize(
    "link, form", [(link, "vs_top") for link in LINKS] + [("gaussian", "simplex")]
)
def test_multiclass_predictions_with_an_intercept(link, form):
    """Three classes of unequal frequency pull the offsets away from 0; the
    predictions equal the spec's formulas at ``scale * z + intercept``."""
    rng = np.random.default_rng(7)
    m = 600
    y = rng.choice(3, size=m, p=[0.6, 0.3, 0.1])
    z = rng.normal(size=(m, 3)) + 1.5 * np.eye(3)[y]
    calibrator = GaussianSoftmaxCalibrator(
        link=link, multiclass=form, score_map="affine", fit_ceiling=False
    ).fit(z, y)
    intercept = calibrator.intercept_
    assert intercept[0] == 0.0
    assert np.min(np.abs(intercept[1:])) > 0.2
    z_new = rng.normal(scale=2.0, size=(50, 3))
    u = calibrator.scale_ * z_new + intercept
    expected = _reference_proba(u, calibrator.n_samples_, link, form)
    assert_allclose(calibrator.predict_proba(z_new), expected, rtol=1e-10, atol=1e-14)
    assert_array_equal(calibrator.predict(z_new), expected.argmax(axis=1))


@pytest.mark.parametrize("scale", [1e-50, 1e50, 0.0])
def test_float32_scores_with_a_scale_outside_float32_never_give_nan(scale):
    """A fitted scale below float32's smallest number (scores of huge
    magnitude) rounds to 0 in float32, where inf * 0 is NaN (found by the
    fuzzer); one above its largest overflows. Both are computed in float64."""
    z = np.array([np.inf, 1.0, -np.inf], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = affine_scores(z, scale, np.float32(0.5))
    assert out.dtype == np.float32 and not np.isnan(out).any()
    expected = [0.5] * 3 if scale == 0.0 else [np.inf, 0.5 + scale, -np.inf]
    assert_allclose(out, np.array(expected, dtype=np.float32))


@pytest.mark.parametrize(
    "x, jac, expected",
    [
        # a slope pointing out of the box at a bound is the optimum there
        ([0.0, 1.0], [3.0, 2e-6], 2e-6),
        ([5.0, 1.0], [-3.0, 2e-6], 2e-6),
        # a slope pointing into the box is a step L-BFGS could still take
        ([0.0, 1.0], [-3.0, 2e-6], 3.0),
        ([5.0, 1.0], [3.0, 2e-6], 3.0),
        # inside the box every entry counts, whatever its sign
        ([2.0, 1.0], [0.5, -0.7], 0.7),
        ([2.0, 1.0], [-0.5, 0.2], 0.5),
    ],
)
def test_projected_gradient_ignores_only_slopes_out_of_the_box(x, jac, expected):
    # a stopped L-BFGS run at a bound is accepted only on this projection
    box = [(0.0, 5.0), (-10.0, 10.0)]
    assert projected_gradient(np.array(x), np.array(jac), box) == pytest.approx(
        expected
    )


def test_newton_creeping_down_a_flat_valley_reports_its_iterations():
    """exp(-x): every Newton step goes one unit further and the gradient never
    reaches the tolerance, but is small enough to call the fit converged."""

    def evaluate(theta):
        value = float(np.exp(-theta[0]))
        return value, np.array([-value]), np.array([[value]])

    fit = damped_newton(evaluate, np.array([0.0]), [(-1e3, 1e3)], tol=1e-300)
    assert fit.n_iter == NEWTON_MAX_ITER and fit.problem is None
    assert fit.theta[0] > 20  # crept down the valley


def test_lbfgs_that_cannot_descend_says_why():
    def loss_grad(theta):
        # a gradient pointing uphill: every line search fails
        return float(theta @ theta), -2.0 * theta

    fit = lbfgs(loss_grad, np.array([1.0, -2.0]), [(-10.0, 10.0)] * 2)
    assert fit.problem.startswith("L-BFGS stopped: ")
    assert "(projected gradient " in fit.problem


@pytest.mark.parametrize(
    "link, form",
    [("gaussian", "vs_top"), ("linear", "vs_top"), ("gaussian", "simplex")],
)
def test_matrix_predictions_follow_the_spec_formulas(link, form):
    """The default map and ceiling: the predictions equal the spec's formulas
    at ``W clip(z) + diag(W) (z - clip(z)) + b`` with ``n_link_``."""
    rng = np.random.default_rng(7)
    m = 600
    y = rng.choice(3, size=m, p=[0.6, 0.3, 0.1])
    z = rng.normal(size=(m, 3)) + 1.5 * np.eye(3)[y]
    z[:, 1] += 0.8 * z[:, 2]  # a mixing the matrix undoes
    calibrator = GaussianSoftmaxCalibrator(link=link, multiclass=form).fit(z, y)
    coef = calibrator.coef_
    assert np.abs(coef[~np.eye(3, dtype=bool)]).max() > 0.05
    z_new = rng.normal(scale=4.0, size=(50, 3))
    low, high = calibrator.clip_range_
    clipped = np.clip(z_new, low, high)
    u = clipped @ coef.T + (z_new - clipped) * np.diag(coef) + calibrator.intercept_
    expected = _reference_proba(u, calibrator.n_link_, link, form)
    assert_allclose(calibrator.predict_proba(z_new), expected, rtol=1e-10, atol=1e-14)

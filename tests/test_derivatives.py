"""The analytic derivatives of every fitted loss against finite differences.

A wrong Hessian does not stop the Newton fit from converging (issue 15: the
cross term or the gaussian link's second-derivative term dropped, it still
converged, in 15 steps instead of 6, to a scale off by 5e-6), and a wrong
gradient moves the optimum only a little: so each derivative is compared here
with central differences of the loss it belongs to, and each loss with
``-log`` of the link's forward probabilities, an independent code path.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import sklearn_gsoftmax._objective as objective_module
import sklearn_gsoftmax._source as source_module
from sklearn_gsoftmax._links import (
    LINKS,
    binary_nll_derivatives,
    link_nll_grad,
    link_proba,
    multiclass_nll_grad,
)
from sklearn_gsoftmax._objective import PRIOR_STRENGTH, Layout, Problem, objective
from sklearn_gsoftmax._optimise import (
    damped_newton,
    difference_hessian,
    with_difference_hessian,
)
from sklearn_gsoftmax._search import profile
from sklearn_gsoftmax._source import ArraySource

RNG = np.random.default_rng(15)
# margins of every regime of the saturating links: linear part, bend, saturation
U = np.concatenate([np.linspace(-9.0, 9.0, 37), RNG.normal(scale=3.0, size=23)])
SIGN = np.where(RNG.random(U.size) < 0.5, -1.0, 1.0)
# n = 3 has L = ln 2: the gaussian link bends within |u| < 1
N_VALUES = [3, 20, 1e4]
FORMS = ["vs_top", "simplex"]
STEP = 1e-5


def _binary_objective(s, sign, w, n, link, n_params):
    """The fit's objective of binary margins ``s`` (on standardised scores:
    unit 1) with ``n_params`` parameters: the scale and the offset."""
    layout = Layout(2, fit_intercept=n_params == 2, n=n)
    source = ArraySource(s, (sign > 0).astype(int), w)
    return objective(source, Problem(layout, link, "vs_top", 1.0, w.sum()))


def _multiclass_objective(z, y, w, n, link, form, n_params):
    """The fit's objective of logits: the scale, then the offsets."""
    layout = Layout(z.shape[1], fit_intercept=n_params > 1, n=n)
    source = ArraySource(z, y, w)
    return objective(source, Problem(layout, link, form, 1.0, w.sum()))


def _central(f, x, step=STEP):
    """Central differences of ``f`` (scalar or array valued) along each entry."""
    x = np.asarray(x, dtype=float)
    columns = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = step
        columns.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * step))
    return np.stack(columns, axis=-1)


def _binary_nll_forward(u, sign, n, link):
    """``-ln p_y`` from the forward link (log-probabilities of ``(m, 2)``)."""
    log_p = link_proba(u.copy(), n, link, "vs_top", log=True)
    return -np.where(sign > 0, log_p[:, 1], log_p[:, 0])


@pytest.mark.parametrize("n", N_VALUES)
@pytest.mark.parametrize("link", LINKS)
def test_binary_loss_and_its_two_derivatives(link, n):
    """Per row: the loss is the forward link's, d1 its slope, d2 d1's slope
    (the gaussian link's second-derivative term included)."""
    loss, d1, d2 = binary_nll_derivatives(U, SIGN, n, link)
    assert_allclose(loss, _binary_nll_forward(U, SIGN, n, link), rtol=1e-12, atol=1e-14)
    # rowwise: the derivative of row i depends only on u_i
    numeric_d1 = (
        binary_nll_derivatives(U + STEP, SIGN, n, link)[0]
        - binary_nll_derivatives(U - STEP, SIGN, n, link)[0]
    ) / (2 * STEP)
    numeric_d2 = (
        binary_nll_derivatives(U + STEP, SIGN, n, link)[1]
        - binary_nll_derivatives(U - STEP, SIGN, n, link)[1]
    ) / (2 * STEP)
    assert_allclose(d1, numeric_d1, rtol=1e-6, atol=1e-9)
    assert_allclose(d2, numeric_d2, rtol=1e-6, atol=1e-9)


def test_gaussian_second_derivative_term_matters():
    """Where the gaussian link bends, d2 differs from the Gauss-Newton term
    ``p1 p0 slope**2`` alone: the test above can tell them apart."""
    n = 3
    loss, d1, d2 = binary_nll_derivatives(U, SIGN, n, "gaussian")
    big_l = np.log(n - 1)
    tau = np.tanh(U / big_l)
    logit = big_l * tau
    p1 = 1 / (1 + np.exp(-logit))
    gauss_newton = p1 * (1 - p1) * (1 - tau**2) ** 2
    assert np.max(np.abs(d2 - gauss_newton)) > 1e-2


def test_binary_buffers_are_reused_without_changing_results():
    buffers = [np.empty_like(U) for _ in range(5)]
    first = [a.copy() for a in binary_nll_derivatives(U, SIGN, 20, "gaussian", buffers)]
    again = binary_nll_derivatives(U[::-1].copy(), SIGN[::-1], 20, "gaussian", buffers)
    fresh = binary_nll_derivatives(U[::-1].copy(), SIGN[::-1], 20, "gaussian")
    for a, b in zip(again, fresh):
        assert_allclose(a, b, rtol=0, atol=0)
    assert not np.array_equal(first[0], again[0])


def _binary_problem(seed=0, m=80):
    rng = np.random.default_rng(seed)
    s = rng.normal(scale=1.5, size=m)
    sign = np.where(rng.random(m) < 1 / (1 + np.exp(-2 * s + 0.7)), 1.0, -1.0)
    w = rng.uniform(0.5, 1.5, size=m)
    return s, sign, w / w.sum()


@pytest.mark.parametrize("n", N_VALUES)
@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("n_params", [1, 2])
def test_binary_objective_gradient_and_hessian(link, n, n_params):
    """The fit's 2x2 Hessian, cross term included, and its gradient, prior
    included, at points on and off the optimum."""
    s, sign, w = _binary_problem()
    evaluate = _binary_objective(s, sign, w, n, link, n_params)
    for theta in ([0.9, -0.6], [2.5, 1.3], [-0.4, 0.2]):
        theta = np.array(theta[:n_params])
        value, grad, hess = evaluate(theta)
        expected = (
            _binary_nll_forward(
                theta[0] * s + (theta[-1] if n_params == 2 else 0), sign, n, link
            )
            @ w
        )
        assert_allclose(
            value, expected + 0.5 * PRIOR_STRENGTH * theta @ theta, rtol=1e-12
        )
        assert_allclose(
            grad, _central(lambda t: evaluate(t)[0], theta), rtol=1e-6, atol=1e-9
        )
        numeric = _central(lambda t: evaluate(t)[1], theta)
        assert_allclose(hess, numeric, rtol=1e-6, atol=1e-9)
        assert_allclose(hess, hess.T, rtol=0, atol=0)
        if n_params == 2:
            # the cross term is far from 0 here: dropping it is caught above
            assert abs(hess[0, 1]) > 1e-3


@pytest.mark.parametrize("link", LINKS)
def test_difference_hessian_is_the_exact_one(link):
    """The held-out refits' Newton steps for logits take the Hessian from
    differences of the gradient: on binary margins, whose objective has the
    exact one, they agree, also where a parameter sits at its upper bound
    (the difference then steps back into the box)."""
    s, sign, w = _binary_problem()
    evaluate = _binary_objective(s, sign, w, 20, link, 2)

    def loss_grad(theta):
        return evaluate(theta)[:2]

    for theta in ([0.9, -0.6], [2.5, 1.3]):
        theta = np.array(theta)
        exact = evaluate(theta)[2]
        for bounds in ([(-9, 9), (-9, 9)], [(-9, 9), (-9, theta[1])]):
            numeric = difference_hessian(loss_grad, theta, bounds)
            assert_allclose(numeric, exact, rtol=1e-5, atol=1e-8)
        # with the Hessian by differences, Newton ends where the exact one does
        start = theta + 0.3
        exact_end = damped_newton(evaluate, start, [(-9, 9)] * 2, 1e-10)
        newton = with_difference_hessian(loss_grad, [(-9, 9)] * 2)
        differences_end = damped_newton(newton, start, [(-9, 9)] * 2, 1e-10)
        assert_allclose(differences_end.theta, exact_end.theta, atol=1e-8)


def _multiclass_rows(k, m=40, seed=1):
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.0, size=(m, k))
    z[0] = 0.0  # a full tie
    z[1, :2] = 5.0  # a tie at the top
    y = rng.integers(0, k, size=m)
    return z, y


def _multiclass_nll_forward(z, y, n, link, form):
    log_p = link_proba(z.copy(), n, link, form, log=True)
    return -log_p[np.arange(len(y)), y]


@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("n", N_VALUES)
@pytest.mark.parametrize(
    "link, form", [(link, "vs_top") for link in LINKS] + [("gaussian", "simplex")]
)
def test_multiclass_loss_and_gradient(link, form, n, k):
    """Per row, the loss is the forward link's and the gradient its slope in
    every score (rows 2 and up: away from the ties, where vs_top has kinks)."""
    if link == "linear" and n < k:
        pytest.skip("the linear link needs n >= K")
    z, y = _multiclass_rows(k)
    loss, grad = multiclass_nll_grad(z.copy(), y, n, link, form)
    assert_allclose(
        loss, _multiclass_nll_forward(z, y, n, link, form), rtol=1e-12, atol=1e-14
    )
    assert_allclose(grad.sum(axis=1), 0.0, atol=1e-12)  # shift invariance
    smooth = slice(2, None)
    numeric = np.empty_like(z)
    for j in range(k):
        e = np.zeros(k)
        e[j] = STEP
        numeric[:, j] = (
            multiclass_nll_grad(z + e, y, n, link, form)[0]
            - multiclass_nll_grad(z - e, y, n, link, form)[0]
        ) / (2 * STEP)
    assert_allclose(grad[smooth], numeric[smooth], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("n", [3, 1e4])
def test_two_column_gradient_is_the_binary_one(link, n):
    """``(m, 2)`` scores go through the margin: each column's gradient is the
    slope of the forward loss in that column."""
    z = np.column_stack([RNG.normal(size=30), RNG.normal(scale=3, size=30)])
    y = RNG.integers(0, 2, size=30)
    grad = link_nll_grad(z, y, n, link, "vs_top")
    for j in range(2):
        e = np.zeros(2)
        e[j] = STEP
        numeric = (
            _multiclass_nll_forward(z + e, y, n, link, "vs_top")
            - _multiclass_nll_forward(z - e, y, n, link, "vs_top")
        ) / (2 * STEP)
        assert_allclose(grad[:, j], numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("n", N_VALUES)
@pytest.mark.parametrize(
    "link, form", [(link, "vs_top") for link in LINKS] + [("gaussian", "simplex")]
)
@pytest.mark.parametrize("n_params", [1, 3])
def test_multiclass_objective_gradient(link, form, n, n_params):
    """The L-BFGS objective's gradient in the scale and the offsets (the
    first offset fixed at 0), prior included, against its loss; and the loss
    against the forward link."""
    z, y = _multiclass_rows(3, m=60, seed=2)
    z = z[2:]
    y = y[2:]
    w = np.random.default_rng(3).uniform(0.5, 1.5, size=len(y))
    w /= w.sum()
    loss_grad = _multiclass_objective(z, y, w, n, link, form, n_params)
    for theta in ([0.8, 0.5, -0.7], [2.0, -1.0, 0.3]):
        theta = np.array(theta[:n_params])
        value, grad = loss_grad(theta)
        offsets = np.zeros(3)
        offsets[1:] = theta[1:] if n_params > 1 else 0.0
        expected = _multiclass_nll_forward(theta[0] * z + offsets, y, n, link, form) @ w
        assert_allclose(
            value, expected + 0.5 * PRIOR_STRENGTH * theta @ theta, rtol=1e-12
        )
        numeric = _central(lambda t: loss_grad(t)[0], theta)
        assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("link", LINKS)
def test_prior_derivatives(link, monkeypatch):
    """The prior's terms, made large enough to see (it is 1e-9 in the fit)."""
    monkeypatch.setattr(objective_module, "PRIOR_STRENGTH", 0.3)
    s, sign, w = _binary_problem(seed=4)
    evaluate = _binary_objective(s, sign, w, 20, link, 2)
    theta = np.array([1.7, -0.8])
    value, grad, hess = evaluate(theta)
    forward = _binary_nll_forward(theta[0] * s + theta[1], sign, 20, link) @ w
    assert_allclose(value, forward + 0.15 * theta @ theta, rtol=1e-12)
    assert_allclose(grad, _central(lambda t: evaluate(t)[0], theta), rtol=1e-6)
    assert_allclose(hess, _central(lambda t: evaluate(t)[1], theta), rtol=1e-6)
    z, y = _multiclass_rows(3, m=30, seed=5)
    loss_grad = _multiclass_objective(
        z[2:], y[2:], w[:28] / w[:28].sum(), 20, link, "vs_top", 3
    )
    theta = np.array([1.2, 0.4, -0.9])
    assert_allclose(
        loss_grad(theta)[1], _central(lambda t: loss_grad(t)[0], theta), rtol=1e-6
    )


@pytest.mark.parametrize("link", ["gaussian", "linear"])
def test_multiclass_objective_with_infinite_scores(link):
    """log(predict_proba) of zero probabilities: -inf scores stay at the
    floor whatever the (positive) scale, and add nothing to its derivative."""
    z, y = _multiclass_rows(3, m=60, seed=2)
    z[::4, 0] = -np.inf
    y[::4] = 1  # the -inf class is never the label
    # rows of tied infinities: no scale or offset moves them
    z[1] = -np.inf
    z[5, :2] = np.inf
    w = np.full(len(y), 1 / len(y))
    loss_grad = _multiclass_objective(z, y, w, 20, link, "vs_top", 3)
    for theta in ([0.8, 0.5, -0.7], [0.0, 0.2, 0.1]):
        theta = np.array(theta)
        value, grad = loss_grad(theta)
        assert np.all(np.isfinite(grad))
        # at scale 0 the scores carry no information: -inf ones too map to
        # the offsets (see affine_scores)
        scaled = theta[0] * z if theta[0] > 0 else np.zeros_like(z)
        u = scaled + np.r_[0, theta[1:]]
        expected = _multiclass_nll_forward(u, y, 20, link, "vs_top") @ w
        assert_allclose(value, expected + 0.5 * PRIOR_STRENGTH * theta @ theta)
        if theta[0] > 0:
            numeric = _central(lambda t: loss_grad(t)[0], theta)
            assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("link", LINKS)
def test_binary_grid_losses_at_scale_zero(link):
    """The search's grid: at scale 0 every score, infinite ones too, maps to
    the offset."""
    s, sign, w = _binary_problem()
    s = np.r_[s, np.inf, -np.inf]
    sign = np.r_[sign, 1.0, -1.0]
    w = np.r_[w, w[:2]] / np.r_[w, w[:2]].sum()
    grid = np.array([[0.0, 0.3], [0.7, -0.2]])
    source = ArraySource(s, (sign > 0).astype(int), w)
    losses = profile(source, Layout(2, n=20), link, "vs_top", 1.0)(grid)
    for (scale, offset), loss in zip(grid, losses):
        u = np.full_like(s, offset) if scale == 0 else scale * s + offset
        expected = _binary_nll_forward(u, sign, 20, link) @ w
        assert loss == pytest.approx(
            expected + 0.5 * PRIOR_STRENGTH * (scale**2 + offset**2)
        )


def test_values_at_several_points_in_one_pass(monkeypatch):
    """``evaluate.values`` (the search's two final candidates judged on all
    rows: one round trip on a cluster) gives each point's penalised value, on
    rows split in several blocks, binary and logits."""
    monkeypatch.setattr(source_module, "BLOCK_ENTRIES", 64)
    s, sign, w = _binary_problem()
    binary = _binary_objective(s, sign, w, 20, "gaussian", 2)
    z, y = _multiclass_rows(4)
    logits = _multiclass_objective(z, y, np.ones(len(y)), 20, "gaussian", "vs_top", 4)
    for evaluate, size in ((binary, 2), (logits, 4)):
        thetas = [np.linspace(0.5, -0.5, size), np.linspace(1.5, 0.2, size)]
        expected = [evaluate(theta)[0] for theta in thetas]
        assert_allclose(evaluate.values(thetas), expected, rtol=1e-13)

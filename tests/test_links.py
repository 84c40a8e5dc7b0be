"""The link functions against the spec: reference values, properties, gradients."""

import math
import warnings
from decimal import Decimal, getcontext

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import check_grad
from scipy.special import softmax

from sklearn_gsoftmax import (
    gaussian_softmax,
    gaussian_softmax_nll_grad,
    linear_softmax,
    linear_softmax_nll_grad,
)
from sklearn_gsoftmax._links import row_max, row_sum

getcontext().prec = 60
RTOL, ATOL = 1e-10, 1e-15

FORMS = {
    "gaussian": lambda z, n, **kw: gaussian_softmax(z, n, **kw),
    "gaussian_simplex": lambda z, n, **kw: gaussian_softmax(
        z, n, multiclass="simplex", **kw
    ),
    "linear": lambda z, n, **kw: linear_softmax(z, n, **kw),
}
GRADIENTS = {
    "gaussian": lambda z, y, n: gaussian_softmax_nll_grad(z, y, n),
    "gaussian_simplex": lambda z, y, n: gaussian_softmax_nll_grad(
        z, y, n, multiclass="simplex"
    ),
    "linear": lambda z, y, n: linear_softmax_nll_grad(z, y, n),
}


def bounds(form, n, k):
    """The spec's bounds of every probability, per form."""
    if form == "linear":
        return 1 / n, 1 - (k - 1) / n
    if form == "gaussian_simplex" or k == 2:
        return 1 / (n + k - 2), (n - 1) / (n + k - 2)
    return 1 / ((k - 1) * (n - 1) + 1), (n - 1) / (n + k - 2)


def _cases_with(key, vectors):
    return [(c, form) for c in vectors for form in FORMS if form in c.get(key, {})]


# --------------------------------------------------------------------------------------
# Reference values


@pytest.mark.parametrize("form", sorted(FORMS))
def test_reference_values(link_vectors, form):
    checked = 0
    for case in link_vectors:
        expected = np.array([float(v) for v in case[form]])
        got = FORMS[form](np.array([case["z"]]), case["n"])[0]
        np.testing.assert_allclose(
            got, expected, rtol=RTOL, atol=ATOL, err_msg=f"{form} n={case['n']}"
        )
        checked += 1
    assert checked == len(link_vectors) > 50


@pytest.mark.parametrize("form", sorted(FORMS))
def test_reference_log_values(link_vectors, form):
    """log=True agrees with the log of the high-precision values, including for
    probabilities so close to 1 that their float64 log would round to 0."""
    for case in link_vectors:
        expected = np.array([float(Decimal(v).ln()) for v in case[form]])
        got = FORMS[form](np.array([case["z"]]), case["n"], log=True)[0]
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("form", sorted(GRADIENTS))
def test_reference_gradients(link_vectors, form):
    cases = [c for c in link_vectors if form in c.get("grad_nll_y0", {})]
    assert len(cases) > 10
    for case in cases:
        expected = np.array([float(v) for v in case["grad_nll_y0"][form]])
        got = GRADIENTS[form](np.array([case["z"]]), [0], case["n"])[0]
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


def test_binary_score_forms_agree():
    s = np.array([-700.0, -3.0, 0.0, 0.5, 40.0, np.inf, -np.inf])
    two_columns = np.column_stack([np.zeros_like(s), s])
    for link in FORMS.values():
        expected = link(two_columns, 50)
        np.testing.assert_allclose(link(s, 50), expected, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(link(s[:, None], 50), expected, rtol=RTOL)
        np.testing.assert_allclose(link(list(s), 50), expected, rtol=RTOL)
        np.testing.assert_allclose(link(pd.Series(s), 50), expected, rtol=RTOL)


def test_pandas_dataframe_accepted():
    z = pd.DataFrame({"a": [0.0, 1.0], "b": [2.0, -1.0], "c": [0.5, 0.5]})
    np.testing.assert_allclose(
        gaussian_softmax(z, 10), gaussian_softmax(z.to_numpy(), 10)
    )


# --------------------------------------------------------------------------------------
# Properties 1 to 4, by hypothesis

_values = st.one_of(
    st.floats(-1e3, 1e3),
    st.sampled_from([np.inf, -np.inf, 1e308, -1e308, 0.0, 5e-324]),
)


@st.composite
def scores_and_n(draw, *, finite=False, max_abs=None):
    k = draw(st.integers(1, 6))
    m = draw(st.integers(1, 5))
    elements = st.floats(-max_abs, max_abs) if max_abs else _values
    if finite and not max_abs:
        elements = st.floats(-1e308, 1e308)
    z = draw(arrays(np.float64, (m,) if k == 1 else (m, k), elements=elements))
    n = draw(st.one_of(st.integers(2, 50), st.integers(2, 10**12)))
    form = draw(st.sampled_from(sorted(FORMS)))
    if form == "linear":
        n = max(n, 1 if k == 1 else k)
        n = max(n, 2)
    return z, n, form


@settings(max_examples=300, deadline=None)
@given(scores_and_n())
def test_rows_sum_to_one_and_respect_bounds(case):
    z, n, form = case
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = FORMS[form](z, n)
        log_p = FORMS[form](z, n, log=True)
    k = p.shape[1]
    assert p.shape == (z.shape[0], k)
    assert np.all(np.isfinite(p)) and np.all(np.isfinite(log_p))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    low, high = bounds(form, n, k)
    assert np.all(p >= low * (1 - 1e-12)), (p.min(), low)
    assert np.all(p <= high * (1 + 1e-12)), (p.max(), high)
    np.testing.assert_allclose(np.exp(log_p), p, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("k", [1, 3, 6])
def test_bounds_hold_exactly_in_the_output_dtype(rng, form, k, dtype):
    """Issue 9: rounding put saturated probabilities a few ulps above the
    upper bound (and below the lower one); a threshold at the largest
    probability seen in fit must hold for every later one. No slack here."""
    shape = (300,) if k == 1 else (300, k)
    z = rng.normal(size=shape) * rng.choice(
        [1.0, 30.0, 1e3, np.inf], size=(300,) + (1,) * (len(shape) - 1)
    )
    for n in [7, 10, 100, 539, 1000, 12_345, 10**6, 10**9]:
        p = FORMS[form](z.astype(dtype), n)
        assert p.dtype == dtype
        low, high = bounds(form, n, p.shape[1])
        p64 = p.astype(np.float64)
        assert p64.max() <= high and p64.min() >= low, (n, p64.max() - high)
        log_p = FORMS[form](z.astype(dtype), n, log=True).astype(np.float64)
        assert log_p.max() <= math.log(high) and log_p.min() >= math.log(low)
        np.testing.assert_allclose(
            p64.sum(axis=1), 1.0, rtol=0, atol=1e-12 if dtype == np.float64 else 1e-6
        )


@settings(max_examples=200, deadline=None)
@given(scores_and_n(max_abs=1e3), st.integers(0, 5), st.floats(1e-3, 50.0))
def test_order_preserved_and_monotone(case, column, step):
    z, n, form = case
    z2 = z.reshape(z.shape[0], -1) if z.ndim == 2 else np.column_stack([0 * z, z])
    p = FORMS[form](z2, n)
    # the top-scoring class has the largest probability (scores within rounding
    # of each other may tie in probability)
    top = np.argmax(z2, axis=1)
    np.testing.assert_array_equal(p[np.arange(len(top)), top], p.max(axis=1))
    column %= z2.shape[1]
    raised = z2.copy()
    raised[:, column] += step
    assert np.all(FORMS[form](raised, n)[:, column] >= p[:, column] - 1e-15)


@settings(max_examples=200, deadline=None)
@given(scores_and_n(max_abs=1e3), st.floats(-1e3, 1e3))
def test_shift_invariance(case, shift):
    z, n, form = case
    z2 = z if z.ndim == 2 else np.column_stack([0 * z, z])
    np.testing.assert_allclose(
        FORMS[form](z2 + shift, n), FORMS[form](z2, n), rtol=1e-9, atol=1e-12
    )


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize(
    "row",
    [
        [1e308, -1e308, 0.0],
        [np.inf, 0.0, 0.0],
        [np.inf, np.inf, 0.0],
        [-np.inf, -np.inf, -np.inf],
        [-np.inf, 0.0, 1.0],
        [np.inf, -np.inf, 3.0],
    ],
)
def test_huge_and_infinite_scores_are_bounds(form, row):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = FORMS[form](np.array([row]), 100)[0]
    assert np.all(np.isfinite(p)) and abs(p.sum() - 1) < 1e-12
    low, high = bounds(form, 100, 3)
    assert p.min() >= low * (1 - 1e-12) and p.max() <= high * (1 + 1e-12)
    top = np.flatnonzero(np.array(row) == max(row))
    np.testing.assert_allclose(p[top], p.max())


def test_all_minus_inf_row_is_uniform():
    for link in FORMS.values():
        np.testing.assert_allclose(link(np.full((1, 4), -np.inf), 100), 0.25)


# --------------------------------------------------------------------------------------
# Properties 5 to 9


@pytest.mark.parametrize("n", [2, 3, 10, 1000, 10**9])
def test_binary_formula(n):
    s = np.linspace(-60, 60, 121)
    big_l = math.log(n - 1)
    t = np.tanh(s / big_l) if n > 2 else 0 * s
    expected = 1 / (1 + (n - 1) ** (-t))
    np.testing.assert_allclose(gaussian_softmax(s, n)[:, 1], expected, rtol=1e-12)
    np.testing.assert_allclose(
        gaussian_softmax(s, n, multiclass="simplex")[:, 1], expected, rtol=1e-12
    )


def _jacobian(f, z, h=1e-6):
    return np.column_stack(
        [(f(z + h * e) - f(z - h * e)) / (2 * h) for e in np.eye(len(z))]
    )


@pytest.mark.parametrize("k", [3, 4, 7])
@pytest.mark.parametrize("n", [3, 10, 10**6])
def test_jacobian_at_zero(k, n):
    softmax_jacobian = (np.eye(k) - np.ones((k, k)) / k) / k

    def simplex(z):
        return gaussian_softmax(z[None], n, multiclass="simplex")[0]

    def linear(z):
        return linear_softmax(z[None], max(n, k))[0]

    np.testing.assert_allclose(
        _jacobian(simplex, np.zeros(k)), softmax_jacobian, atol=1e-9
    )
    np.testing.assert_allclose(
        _jacobian(linear, np.zeros(k)),
        (1 - k / max(n, k)) * softmax_jacobian,
        atol=1e-9,
    )


@pytest.mark.parametrize("n", [3, 10, 10**6])
@pytest.mark.parametrize("form", sorted(FORMS))
def test_binary_logit_slope_is_one_at_zero(n, form):
    h = 1e-6

    def logit(s):
        p = FORMS[form](np.array([s]), n)[0]
        return math.log(p[1] / p[0])

    slope = (logit(h) - logit(-h)) / (2 * h)
    expected = 1.0 if form != "linear" else None
    if form == "linear":
        # the linear link shrinks the sigmoid by (1 - 2/n); its logit slope at 0
        # is that factor
        expected = 1 - 2 / n
    assert slope == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_tends_to_softmax_as_n_grows(form, rng):
    # The approach is slow (like 1/ln(n)**2 for vs_top, 1/ln(n) for simplex), so
    # n goes up to 10**300, a Python integer; linear is exact once 1/n underflows.
    z = rng.normal(size=(20, 4))
    errors = [
        np.max(np.abs(FORMS[form](z, n) - softmax(z, axis=1)))
        for n in (10**3, 10**12, 10**100, 10**300)
    ]
    assert all(a >= b for a, b in zip(errors, errors[1:]))
    assert errors[-1] < min(errors[0] / 50, 2e-3)


def test_worked_example_of_the_source_article():
    # inner sigma_A = 0 needs z_A = -inf; the other ten classes tie at 0.1.
    z = np.array([[-np.inf] + [0.0] * 10])
    for n in (100, 10_000, 10**6):
        p = gaussian_softmax(z, n, multiclass="simplex")[0]
        expected_a = 1 / (1 + 10 * (n - 1) ** 0.1)
        assert p[0] == pytest.approx(expected_a, rel=1e-12)
        np.testing.assert_allclose(p[1:], (1 - expected_a) / 10, rtol=1e-12)
    p = gaussian_softmax(z, 10_000, multiclass="simplex")[0]
    assert p[0] == pytest.approx(0.038, abs=5e-4)
    assert p[1] == pytest.approx(0.096, abs=5e-4)
    assert p[0] == pytest.approx(1 / (10 * 10_000**0.1), rel=0.05)


def _distance_to_floor(link, n):
    """Smallest |s| at which p_1(-|s|) has come within a factor 2 of 1/n."""
    low, high = 0.0, 1e4
    for _ in range(200):
        mid = (low + high) / 2
        if link(np.array([-mid]), n)[0, 1] <= 2 / n:
            high = mid
        else:
            low = mid
    return high


def test_gaussian_reaches_the_floor_about_twice_as_far_as_linear():
    n = 10**6
    linear_distance = _distance_to_floor(linear_softmax, n)
    gaussian_distance = _distance_to_floor(gaussian_softmax, n)
    assert linear_distance == pytest.approx(math.log(n), rel=0.05)
    assert 1.5 < gaussian_distance / linear_distance < 2.5


# --------------------------------------------------------------------------------------
# dtypes and log


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("shape", [(50,), (50, 2), (50, 5)])
def test_float32_is_preserved(form, shape, rng):
    z = rng.normal(scale=5, size=shape)
    p64 = FORMS[form](z, 1000)
    p32 = FORMS[form](z.astype(np.float32), 1000)
    assert p64.dtype == np.float64 and p32.dtype == np.float32
    np.testing.assert_allclose(p32, p64, rtol=1e-5, atol=1e-7)
    assert FORMS[form](z.astype(np.float32), 1000, log=True).dtype == np.float32


@pytest.mark.parametrize("form", ["gaussian", "gaussian_simplex"])
@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_two_samples_give_uniform_rows_in_the_input_dtype(form, log, dtype):
    # n = 2 is computed by its own branch (L = 0): it must keep the dtype too
    z = np.array([[0.0, 5.0, -1.0], [np.inf, 0.0, 1.0]], dtype=dtype)
    p = FORMS[form](z, 2, log=log)
    assert p.dtype == dtype
    np.testing.assert_allclose(p, -np.log(3) if log else 1 / 3, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.int64, np.float16, object, bool])
def test_other_real_dtypes_become_float64(dtype):
    z = np.array([[0, 1, 1], [1, 0, 0]]).astype(dtype)
    p = gaussian_softmax(z, 10)
    assert p.dtype == np.float64
    np.testing.assert_allclose(p, gaussian_softmax(z.astype(float), 10))


def test_log_keeps_precision_near_one():
    # p_1 = 1 - 1.4e-20: its float64 value is exactly 1, but the log is not 0.
    log_p = gaussian_softmax([60.0], 10**20, log=True)[0]
    big_l = math.log(10**20 - 1)
    expected = -math.log1p((10**20 - 1) ** (-math.tanh(60 / big_l)))
    assert log_p[1] == pytest.approx(expected, rel=1e-12)
    assert log_p[1] < 0


# --------------------------------------------------------------------------------------
# Gradients against finite differences


@pytest.mark.parametrize("form", sorted(GRADIENTS))
@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("n", [3, 50, 10**5])
def test_gradient_matches_finite_differences(form, k, n, rng):
    if form == "linear":
        n = max(n, k)
    for trial in range(5):
        z0 = rng.normal(scale=2.0, size=k)
        y = int(rng.integers(max(k, 2)))

        def nll(z):
            scores = z if k == 1 else z[None]
            return -FORMS[form](scores, n, log=True)[0, y]

        def grad(z):
            scores = z if k == 1 else z[None]
            g = GRADIENTS[form](scores, [y], n)
            return g if k == 1 else g[0]

        error = check_grad(nll, grad, z0, epsilon=1e-7)
        assert error < 1e-6 * max(1.0, np.linalg.norm(grad(z0))), (trial, error)


@pytest.mark.parametrize("form", sorted(GRADIENTS))
def test_gradient_rows_sum_to_zero_and_vanish_at_infinity(form, rng):
    z = rng.normal(size=(30, 4))
    y = rng.integers(4, size=30)
    g = GRADIENTS[form](z, y, 100)
    np.testing.assert_allclose(g.sum(axis=1), 0.0, atol=1e-14)
    g_inf = GRADIENTS[form](np.array([[np.inf, 0.0, 1.0, -np.inf]]), [1], 100)
    assert np.all(np.isfinite(g_inf))
    np.testing.assert_allclose(g_inf, 0.0, atol=1e-300)


# --------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    "scores, n, kwargs, error, match",
    [
        ([[0.0, np.nan]], 10, {}, ValueError, "NaN"),
        ([0.0, 1.0], 1, {}, ValueError, "at least 2"),
        ([0.0, 1.0], 0, {}, ValueError, "at least 2"),
        ([0.0, 1.0], -5, {}, ValueError, "at least 2"),
        ([0.0, 1.0], 2.5, {}, ValueError, "must be an integer"),
        ([0.0, 1.0], 10.0, {}, ValueError, "must be an integer"),
        ([0.0, 1.0], True, {}, ValueError, "must be an integer"),
        (
            [0.0, 1.0],
            "10",
            {},
            ValueError,
            r"must be an integer .*, got '10' of type str\.",
        ),
        (np.zeros((2, 2, 2)), 10, {}, ValueError, "3 dimensions"),
        (np.float64(1.0), 10, {}, ValueError, "0 dimensions"),
        ([], 10, {}, ValueError, "empty"),
        (np.zeros((3, 0)), 10, {}, ValueError, "0 columns"),
        ([[0.0, 1.0]], 10, {"multiclass": "ovr"}, ValueError, "multiclass must be"),
        ([["a", "b"]], 10, {}, TypeError, "must hold numbers"),
        ([[0.0, None]], 10, {}, TypeError, "contain None"),
        ([[1j, 0]], 10, {}, TypeError, "complex"),
        ([[0.0, 1.0]], 10, {"log": "yes"}, ValueError, "log must be"),
    ],
)
def test_bad_input_names_the_problem(scores, n, kwargs, error, match):
    with pytest.raises(error, match=match):
        gaussian_softmax(scores, n, **kwargs)


def test_linear_needs_n_at_least_k():
    with pytest.raises(ValueError, match=r"n >= K = 4"):
        linear_softmax(np.zeros((1, 4)), 3)
    with pytest.raises(ValueError, match=r"n >= K = 4"):
        linear_softmax_nll_grad(np.zeros((1, 4)), [0], 3)
    np.testing.assert_allclose(linear_softmax(np.arange(4.0)[None], 4), 0.25)


@pytest.mark.parametrize(
    "y, match", [([3], r"\[0, 2\)"), ([0, 1], "1 class indices"), ([0.5], "integer")]
)
def test_gradient_checks_labels(y, match):
    with pytest.raises(ValueError, match=match):
        linear_softmax_nll_grad([[0.0, 1.0]], y, 10)
    with pytest.raises(ValueError, match=match):
        gaussian_softmax_nll_grad([[0.0, 1.0]], y, 10)


@pytest.mark.parametrize("form", sorted(GRADIENTS))
@pytest.mark.parametrize(
    "n, match", [(1, "at least 2|n >= K = 3"), (2.5, "must be an integer")]
)
def test_gradient_checks_n_samples(form, n, match):
    with pytest.raises(ValueError, match=match):
        GRADIENTS[form](np.zeros((1, 3)), [0], n)


def test_class_indices_given_as_whole_floats_are_accepted():
    z = [[0.0, 1.0], [1.0, 0.0]]
    np.testing.assert_array_equal(
        gaussian_softmax_nll_grad(z, np.array([0.0, 1.0]), 10),
        gaussian_softmax_nll_grad(z, [0, 1], 10),
    )
    for bad in ([0.5, 1.0], [np.nan, 1.0], [np.inf, 0.0]):
        with pytest.raises(ValueError, match="integer class indices"):
            gaussian_softmax_nll_grad(z, np.array(bad), 10)


def test_n_samples_errors_name_the_parameter():
    with pytest.raises(ValueError, match=r"^n_samples must be at least 2"):
        gaussian_softmax([0.0, 1.0], 1)


@pytest.mark.parametrize("k", [1, 2, 5, 16, 17, 32, 33, 40])
def test_row_reductions_are_numpys(k):
    """The column loops that reduce rows of few columns (``row_max``,
    ``row_sum``) give numpy's row maxima exactly and its row sums to
    rounding, infinite entries included, on either side of the number of
    columns where they switch to numpy's reduction."""
    rng = np.random.default_rng(k)
    values = rng.normal(scale=10.0, size=(300, k))
    values[rng.random(values.shape) < 0.02] = np.inf
    values[rng.random(values.shape) < 0.02] = -np.inf
    values[0] = -np.inf
    before = values.copy()
    np.testing.assert_array_equal(row_max(values), values.max(axis=1))
    with np.errstate(invalid="ignore"):  # inf - inf: NaN on both sides
        expected, summed = values.sum(axis=1), row_sum(values)
    np.testing.assert_allclose(summed, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(values, before)  # the input is left alone
    float32 = values[1:].clip(-1e6, 1e6).astype(np.float32)
    assert row_max(float32).dtype == row_sum(float32).dtype == np.float32

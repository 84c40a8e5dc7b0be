"""The bounded links' fit finds the global optimum when a few extreme scores
carry the wrong label (issue 10).

Each test plants mislabelled extreme scores and compares the fitted objective
(mean negative log-likelihood plus the prior, on standardised scores) with an
independent reference: scipy's Nelder-Mead from many starts on the same
objective, evaluated through the public link functions.
"""

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import expit, softmax
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss

from sklearn_gsoftmax import (
    GaussianSoftmaxCalibrator,
    _search,
    gaussian_softmax,
    linear_softmax,
)
from sklearn_gsoftmax._fitting import score_unit
from sklearn_gsoftmax._objective import PRIOR_STRENGTH
from sklearn_gsoftmax._source import ArraySource

RTOL = 1e-6


def binary_problem(m, seed):
    """The issue's construction: scores ~ N(0, 2), labels drawn from expit."""
    rng = np.random.default_rng(seed)
    s = rng.normal(0, 2, m)
    return s, (rng.random(m) < expit(s)).astype(int)


def plant_binary(s, y, count, magnitude):
    """Push the ``count`` most extreme scores out to ``magnitude`` standard
    deviations and flip their labels."""
    s, y = s.copy(), y.copy()
    idx = np.argsort(-np.abs(s))[:count]
    s[idx] = np.sign(s[idx]) * magnitude * s.std()
    y[idx] = s[idx] < 0
    return s, y


def multiclass_problem(m, k, seed):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.5, (k, k))
    z = rng.normal(size=(m, k)) + centres[rng.integers(k, size=m)]
    cumulative = softmax(z, axis=1).cumsum(axis=1)
    y = np.minimum((rng.random((m, 1)) > cumulative).sum(axis=1), k - 1)
    return z, y


def plant_multiclass(z, y, count, magnitude):
    """Scale the ``count`` rows with the largest lead of their top class out to
    ``magnitude`` standard deviations and label them with their lowest class."""
    z, y = z.copy(), y.copy()
    top_two = np.sort(z, axis=1)[:, -2:]
    idx = np.argsort(top_two[:, 0] - top_two[:, 1])[:count]
    centred = z[idx] - z[idx].mean(axis=1, keepdims=True)
    z[idx] = centred / np.abs(centred).max(axis=1, keepdims=True) * magnitude * z.std()
    y[idx] = np.argmin(z[idx], axis=1)
    return z, y


def _score_unit(values, w):
    return score_unit(ArraySource(values, np.zeros(len(values), int), w))


def objective(z, y, link, multiclass="vs_top", weights=None):
    """The fit's objective as a function of standardised parameters
    ``(a, b_1, ..., b_{K-1})``; its standardising unit."""
    m = len(y)
    w = np.ones(m) if weights is None else weights
    w = w / w.sum()
    if z.ndim == 1:
        unit = _score_unit(z, w)
        logits = np.column_stack([np.zeros(m), z / unit])
    else:
        unit = _score_unit(
            (z - z.mean(axis=1, keepdims=True)).ravel(), np.repeat(w, z.shape[1])
        )
        logits = z / unit
    n = m if weights is None else int(round(weights.sum()))

    def value(theta):
        a, b = theta[0], np.concatenate([[0.0], theta[1:]])
        if z.ndim == 2:
            a = abs(a)  # the multiclass scale is constrained to a >= 0
        u = a * logits + b
        if z.ndim == 1:
            u[:, 0] = 0.0
        if link == "gaussian":
            log_p = gaussian_softmax(u, n, multiclass=multiclass, log=True)
        else:
            log_p = linear_softmax(u, n, log=True)
        nll = -log_p[np.arange(m), y] @ w
        return nll + 0.5 * PRIOR_STRENGTH * (theta @ theta)

    return value, unit


def fitted_theta(calibrator, unit, k):
    return np.concatenate([[calibrator.scale_ * unit], calibrator.intercept_[1:k]])


def reference_minimum(value, n_params, signed):
    """L-BFGS (finite-difference gradient) from scales of 0.01 to 30, both
    signs for binary scores; Nelder-Mead polishes the best end point."""
    scales = [0.01, 0.3, 30.0]
    starts = scales + [-a for a in scales] if signed else scales
    ends = [
        minimize(
            value, np.concatenate([[a], np.zeros(n_params - 1)]), method="L-BFGS-B"
        )
        for a in starts
    ]
    best = min(ends, key=lambda result: result.fun)
    polished = minimize(
        value,
        best.x,
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 1000 * n_params},
    )
    return min(best.fun, polished.fun)


#: The spec's fit, whose search these tests check against a global optimum of
#: its objective; the refinements that start from it are checked at the end.
# the spec's calibrator: the affine map with its offsets, no refinement (the
# reference optimum is over the same parameters)
SPEC_FIT = {"score_map": "affine", "fit_ceiling": False, "fit_intercept": True}


def fit(z, y, **params):
    with warnings.catch_warnings():
        # the flag's auto threshold on noisy labels: not what is tested here
        warnings.filterwarnings("ignore", "no confidence threshold reaches")
        warnings.simplefilter("error", ConvergenceWarning)
        return GaussianSoftmaxCalibrator(**{**SPEC_FIT, **params}).fit(z, y)


def assert_global_optimum(z, y, link, multiclass="vs_top", dtype=np.float64):
    z = z.astype(dtype)
    value, unit = objective(z.astype(np.float64), y, link, multiclass)
    k = 2 if z.ndim == 1 else z.shape[1]
    calibrator = fit(z, y, link=link, multiclass=multiclass)
    found = value(fitted_theta(calibrator, unit, k))
    reference = reference_minimum(value, k, signed=z.ndim == 1)
    assert found <= reference + RTOL * abs(reference), (found, reference)
    return calibrator


BINARY_CASES = [
    # (rows, outliers, magnitude in standard deviations)
    (500, 1, 1e3),
    (500, 1, 1e8),
    (2000, 20, 10.0),
    (2000, 20, 1e3),
    (2000, 20, 1e8),
    (2000, 100, 10.0),
    (2000, 100, 1e3),
    (2000, 100, 1e8),
]


@pytest.mark.parametrize("link", ["gaussian", "linear"])
@pytest.mark.parametrize(("m", "count", "magnitude"), BINARY_CASES)
def test_binary_fit_finds_global_optimum(link, m, count, magnitude):
    s, y = plant_binary(*binary_problem(m, seed=1), count, magnitude)
    dtype = np.float32 if magnitude == 1e3 else np.float64
    assert_global_optimum(s, y, link, dtype=dtype)


def test_issue_example_is_not_flat():
    """The issue's example: the optimum (NLL 0.547 at scale ~0.97), not the
    flat model (NLL 0.688) the single-start fit returned."""
    s, y = binary_problem(2000, seed=1)
    idx = np.argsort(-np.abs(s))[:20]
    s[idx] = np.sign(s[idx]) * 1e3
    y[idx] = s[idx] < 0
    calibrator = fit(s, y)
    assert 0.9 < calibrator.scale_ < 1.1
    proba = calibrator.predict_proba(s)
    assert -np.log(proba[np.arange(2000), y]).mean() < 0.56
    clean_s, clean_y = binary_problem(20000, seed=2)
    clean = calibrator.predict_proba(clean_s)[np.arange(20000), clean_y]
    assert -np.log(clean).mean() < 0.48


MULTICLASS_CASES = [
    # (classes, form, link, outliers of 600 rows, magnitude)
    (3, "vs_top", "gaussian", 1, 1e8),
    (3, "vs_top", "gaussian", 30, 1e3),
    (3, "simplex", "gaussian", 6, 10.0),
    (3, "vs_top", "linear", 30, 1e8),
    (5, "vs_top", "gaussian", 6, 1e3),
    (5, "simplex", "gaussian", 30, 1e8),
    (5, "vs_top", "linear", 1, 10.0),
]


@pytest.mark.parametrize(("k", "form", "link", "count", "magnitude"), MULTICLASS_CASES)
def test_multiclass_fit_finds_global_optimum(k, form, link, count, magnitude):
    z, y = plant_multiclass(*multiclass_problem(600, k, seed=k), count, magnitude)
    dtype = np.float32 if count == 6 else np.float64
    assert_global_optimum(z, y, link, form, dtype=dtype)


def test_multiclass_collapse_is_avoided():
    """Noisy scores (optimal scale well below 1 in robust units) and one
    mislabelled row at 1e3 standard deviations: started at scale 1, the old
    fit slid to the flat model (scale 0, loss 1.0824 against 1.0767)."""
    z, y = multiclass_problem(600, 3, seed=3)
    z += np.random.default_rng(5).normal(0, 10.0, z.shape)
    z, y = plant_multiclass(z, y, 1, 1e3)
    calibrator = assert_global_optimum(z, y, "gaussian")
    assert calibrator.scale_ > 0.0


def test_large_data_refines_on_all_rows():
    """More rows than the search's subsample, with heavy mislabelled rows
    placed where an evenly spaced subsample would miss them: the fit still
    ends at the optimum of all rows."""
    s, y = binary_problem(_search.SEARCH_ROWS + 1024, seed=3)
    weights = np.ones(len(s))
    rows = np.linspace(0, len(s) - 1, _search.SEARCH_ROWS).astype(int)
    skipped = np.setdiff1d(np.arange(len(s)), rows)[::8]
    s[skipped] = np.sign(s[skipped]) * 1e4
    y[skipped] = s[skipped] < 0
    weights[skipped] = 5.0
    value, unit = objective(s, y, "gaussian", weights=weights)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "no confidence threshold reaches")
        warnings.simplefilter("error", ConvergenceWarning)
        calibrator = GaussianSoftmaxCalibrator(**SPEC_FIT).fit(
            s, y, sample_weight=weights
        )
    found = value(fitted_theta(calibrator, unit, 2))
    reference = reference_minimum(value, 2, signed=True)
    assert found <= reference + RTOL * abs(reference)


@settings(max_examples=15, deadline=None)
@given(
    m=st.integers(100, 800),
    share=st.floats(0.0, 0.05),
    exponent=st.floats(1.0, 8.0),
    spread=st.floats(1.0, 5.0),
    link=st.sampled_from(["gaussian", "linear"]),
    seed=st.integers(0, 2**16),
)
def test_random_outlier_sets(m, share, exponent, spread, link, seed):
    """Outliers at random among the most extreme tenth, pushed out to random
    magnitudes, labels flipped."""
    s, y = binary_problem(m, seed)
    rng = np.random.default_rng(seed + 1)
    extreme = np.argsort(-np.abs(s))[: max(1, m // 10)]
    idx = rng.choice(extreme, size=max(1, int(share * m)), replace=False)
    scale = 10.0**exponent * s.std()
    s[idx] = np.sign(s[idx]) * scale * rng.uniform(1.0, spread, size=len(idx))
    y[idx] = s[idx] < 0
    assert_global_optimum(s, y, link)


# Where only a start of the profile reaches the best basin: a cheaper test of
# "the convex start is in doubt" (issue 24), whether a path from each minimum
# of the profile to the convex start's end point falls all the way, dropped
# the start in both (2 of about 3 400 random binary problems; on digits, a fold
# of a linear SVM's scores and one of naive Bayes').
BASIN_OF_A_PROFILE_START = np.array(
    [-13.7438, -2.7975, -0.7858, 4.463, 0.3396, 6.9811, -6.3464, -3.6079, -4.1129,
     -0.4271, -4.305, 2.6676, 13.2109, -2.9499, 11.0869, 15.8338, -5.0171, 2.4209,
     7.1822, -1.6113]
)  # fmt: skip
BASIN_OF_A_PROFILE_START_LABELS = np.array(
    [0, 0, 1, 1, 0, 1, 0, 0, 0, 1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 0]
)


def test_binary_basin_that_only_a_profile_start_reaches():
    """The saturated basin of these 20 scores (scale 32, a log-loss of
    0.1985) lies beyond a descent from the profile's minimum to the convex
    start's end point (scale 1.3, 0.2055)."""
    assert_global_optimum(
        BASIN_OF_A_PROFILE_START, BASIN_OF_A_PROFILE_START_LABELS, "gaussian"
    )


def test_logits_basin_that_only_a_profile_start_reaches():
    """A LinearSVC's held-out scores of digits (``tests/data/
    make_search_fold.py``): the fit from the convex start ends at a log-loss of
    0.1199; a start of the profile at scale 10 reaches 0.1047, beyond a rise
    of the loss that a fresh L-BFGS from its tenth iterate slid past."""
    data = np.load(Path(__file__).parent / "data" / "search_fold.npz")
    z, y = data["scores"], data["y"]
    calibrator = GaussianSoftmaxCalibrator(
        n_samples=int(data["n_samples"]), uncertainty_rules=()
    ).fit(z, y)
    assert log_loss(y, calibrator.predict_proba(z)) < 0.105


def test_single_start_is_caught(monkeypatch):
    """The old behaviour planted (one start, at scale 0): the fit lands in the
    wrong basin, and the check against the search grid says so."""
    s, y = plant_binary(*binary_problem(2000, seed=1), 20, 1e3)
    value, unit = objective(s, y, "gaussian")
    flat_index = len(_search.SEARCH_SCALES)  # scale 0 in the signed grid
    monkeypatch.setattr(
        _search, "_lowest_local_minima", lambda values, count: [flat_index]
    )
    # the search on all 2 000 rows: a subsample's fit has a second net (the
    # grid's best point on all rows), which this test does not plant away
    monkeypatch.setattr(_search, "SEARCH_ROWS", 4096)
    with pytest.warns(ConvergenceWarning, match="not at the optimum"):
        calibrator = GaussianSoftmaxCalibrator(**SPEC_FIT).fit(s, y)
    found = value(fitted_theta(calibrator, unit, 2))
    assert found > 1.1 * reference_minimum(value, 2, signed=True)


def test_softmax_stays_the_maximum_likelihood_fit():
    """For link="softmax" the collapse is the true optimum of a convex loss:
    the fit matches an independent logistic-loss minimisation."""
    s, y = plant_binary(*binary_problem(2000, seed=1), 20, 1e3)
    calibrator = fit(s, y, link="softmax")

    def logistic(theta):
        u = theta[0] * s + theta[1]
        return np.mean(np.logaddexp(0.0, u) - y * u)

    result = minimize(logistic, [0.0, 0.0], method="BFGS", options={"gtol": 1e-10})
    assert abs(calibrator.scale_) < 0.01  # collapsed, as maximum likelihood says
    np.testing.assert_allclose(calibrator.scale_, result.x[0], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(calibrator.intercept_[1], result.x[1], atol=1e-5)


@pytest.mark.parametrize("k", [2, 4])
def test_refinements_keep_the_robust_fit(k):
    """The defaults (matrix map, fitted ceiling) start from the searched fit:
    mislabelled rows at 1e3 standard deviations lower the ceiling (they are
    errors at the bound) but do not flatten the map; on clean data it stays
    close to the clean fit's log-loss."""
    if k == 2:
        z, y = plant_binary(*binary_problem(2000, seed=1), 20, 1e3)
        clean_z, clean_y = binary_problem(20000, seed=2)
    else:
        z, y = plant_multiclass(*multiclass_problem(2000, k, seed=1), 20, 1e3)
        clean_z, clean_y = multiclass_problem(20000, k, seed=2)
    rows = np.arange(len(clean_y))

    def clean_loss(model):
        return -np.log(model.predict_proba(clean_z)[rows, clean_y]).mean()

    planted = fit(z, y, score_map="auto", fit_ceiling="auto")
    assert planted.n_link_ < planted.n_samples_
    reference = fit(clean_z[:2000], clean_y[:2000], score_map="auto")
    flat = -np.log(np.bincount(clean_y) / len(clean_y))[clean_y].mean()
    assert clean_loss(planted) < clean_loss(reference) + 0.05 < flat

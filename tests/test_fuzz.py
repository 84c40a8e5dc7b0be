"""Property-based fuzzing of both estimators: whatever the shapes, dtypes and
values, predictions are never NaN, rows sum to 1, the bounds hold and no
warning escapes.

The warnings allowed are the informative one of an unreachable
``target_accuracy`` (random labels have no accurate subset) and a
ConvergenceWarning on degenerate draws."""

import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB

from sklearn_gsoftmax import GaussianSoftmaxCalibrator, GaussianSoftmaxClassifier

# the largest magnitudes float32 holds (1e308 is in the catalogue of
# test_bad_input.py for float64)
_BIG, _TINY = float(np.float32(3e38)), float(np.float32(1e-30))
EXTREMES = st.sampled_from([np.inf, -np.inf, _BIG, -_BIG, 0.0, _TINY])


def _strict_warnings():
    """Turn every warning raised from this library's code into an error (the
    wrapped scikit-learn estimators' own warnings are theirs to give)."""
    context = warnings.catch_warnings()
    context.__enter__()
    warnings.simplefilter("ignore")
    warnings.filterwarnings("error", module="sklearn_gsoftmax")
    warnings.filterwarnings("ignore", "no confidence threshold reaches")
    # degenerate draws (all scores tied) may stop the optimiser short, which it
    # reports; the probabilities must still be sound
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    return context


def _check_probabilities(proba, n, k, *, bounded):
    assert proba.shape[1] == k
    assert not np.isnan(proba).any()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    if bounded:
        floor = 1 / ((k - 1) * (n - 1) + 1)
        assert np.all(proba >= floor * (1 - 1e-5))


@st.composite
def calibration_problem(draw):
    k = draw(st.integers(2, 4))
    binary_1d = k == 2 and draw(st.booleans())
    m = draw(st.integers(2 * k, 40))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    shape = (m,) if binary_1d else (m, k)
    scores = draw(arrays(dtype, shape, elements=st.floats(-1e3, 1e3, width=32)))
    y = np.concatenate(
        [np.arange(k), draw(arrays(np.int64, m - k, elements=st.integers(0, k - 1)))]
    )
    new = draw(
        arrays(
            dtype,
            (5,) if binary_1d else (5, k),
            elements=st.one_of(st.floats(-1e4, 1e4, width=32), EXTREMES),
        )
    )
    link = draw(st.sampled_from(["gaussian", "linear", "softmax"]))
    multiclass = draw(st.sampled_from(["vs_top", "simplex"]))
    return scores, y, new, link, multiclass, k


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calibration_problem())
def test_calibrator_fuzz(problem):
    scores, y, new, link, multiclass, k = problem
    context = _strict_warnings()
    try:
        model = GaussianSoftmaxCalibrator(link=link, multiclass=multiclass).fit(
            scores, y
        )
        for data in (scores, new):
            proba = model.predict_proba(data)
            assert proba.dtype == scores.dtype
            _check_probabilities(proba, len(y), k, bounded=link != "softmax")
            assert model.predict_uncertain(data).shape == (len(data),)
            assert model.predict_set(data).shape == proba.shape
    finally:
        context.__exit__(None, None, None)
    assert np.isfinite(model.scale_) and np.all(np.isfinite(model.intercept_))


@st.composite
def classification_problem(draw):
    k = draw(st.integers(2, 3))
    m = draw(st.integers(3 * k * 3, 45))
    d = draw(st.integers(1, 4))
    X = draw(arrays(np.float64, (m, d), elements=st.floats(-100, 100)))
    # a constant feature breaks GaussianNB itself (0/0 variances), not us
    X += np.arange(m)[:, None] * 1e-2
    y = np.concatenate(
        [
            np.repeat(np.arange(k), 3),
            draw(arrays(np.int64, m - 3 * k, elements=st.integers(0, k - 1))),
        ]
    )
    scale = draw(st.sampled_from([1.0, 1e3, 1e6]))
    ensemble = draw(st.booleans())
    return X, y, scale, ensemble, k


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(classification_problem(), st.sampled_from(["lr", "nb"]))
def test_classifier_fuzz(problem, which):
    X, y, scale, ensemble, k = problem
    estimator = LogisticRegression() if which == "lr" else GaussianNB()
    context = _strict_warnings()
    try:
        model = GaussianSoftmaxClassifier(estimator, cv=3, ensemble=ensemble).fit(X, y)
        proba = model.predict_proba(np.vstack([X, X * scale]))
        _check_probabilities(proba, len(y), k, bounded=True)
        frame = model.predict_frame(X * scale)
        assert frame["uncertain"].dtype == bool and len(frame) == len(X)
    finally:
        context.__exit__(None, None, None)

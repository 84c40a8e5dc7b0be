"""Saving, loading and sharing fitted models: pickle, joblib, skops, threads."""

import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB

from sklearn_gsoftmax import (
    TRUSTED_TYPES,
    GaussianSoftmaxCalibrator,
    GaussianSoftmaxClassifier,
)
from sklearn_gsoftmax._persistence import STATE_FORMAT

X, Y = make_classification(
    n_samples=400, n_features=6, n_informative=4, n_classes=3, random_state=0
)


@pytest.fixture(scope="module", params=["classifier", "classifier-nb", "calibrator"])
def fitted(request):
    if request.param == "calibrator":
        scores = LogisticRegression().fit(X, Y).decision_function(X)
        return GaussianSoftmaxCalibrator().fit(scores, Y), scores
    estimator = (
        GaussianNB() if request.param == "classifier-nb" else LogisticRegression()
    )
    return GaussianSoftmaxClassifier(estimator, cv=3).fit(X, Y), X


def _same_predictions(a, b, data):
    np.testing.assert_array_equal(a.predict_proba(data), b.predict_proba(data))
    np.testing.assert_array_equal(a.predict_set(data), b.predict_set(data))
    np.testing.assert_array_equal(a.predict_uncertain(data), b.predict_uncertain(data))


def test_pickle_round_trip(fitted):
    model, data = fitted
    _same_predictions(model, pickle.loads(pickle.dumps(model)), data)


def test_joblib_round_trip(fitted, tmp_path):
    model, data = fitted
    joblib.dump(model, tmp_path / "model.joblib")
    _same_predictions(model, joblib.load(tmp_path / "model.joblib"), data)


def test_skops_needs_only_our_types(fitted, tmp_path):
    sio = pytest.importorskip("skops.io")
    model, data = fitted
    path = tmp_path / "model.skops"
    sio.dump(model, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert set(untrusted) <= set(TRUSTED_TYPES)
    _same_predictions(model, sio.load(path, trusted=TRUSTED_TYPES), data)
    with pytest.raises(Exception, match="[Uu]ntrusted"):
        sio.load(path)


def test_state_is_stamped_with_the_version(fitted):
    model, _ = fitted
    from sklearn_gsoftmax import __version__

    state = model.__getstate__()
    assert state["_gsoftmax_version"] == __version__
    assert state["_gsoftmax_state_format"] == STATE_FORMAT


def test_model_from_an_older_version_fails_clearly(fitted):
    """An older layout without an attribute this version needs fails on load
    with both versions named, not at the first prediction."""
    model, _ = fitted
    state = model.__getstate__()
    state["_gsoftmax_version"] = "0.0.1"
    state["_gsoftmax_state_format"] = 0
    del state[
        "classes_"
        if isinstance(model, GaussianSoftmaxCalibrator)
        else "calibrated_classifiers_"
    ]
    state["classes_"] = model.classes_
    restored = type(model).__new__(type(model))
    if isinstance(model, GaussianSoftmaxCalibrator):
        del state["scale_"]
    with pytest.raises(
        ValueError, match=r"saved by sklearn-gsoftmax 0\.0\.1 and lacks"
    ):
        restored.__setstate__(state)


def test_model_from_a_newer_format_fails_clearly(fitted):
    model, _ = fitted
    state = model.__getstate__()
    state["_gsoftmax_state_format"] = STATE_FORMAT + 1
    state["_gsoftmax_version"] = "9.0"
    with pytest.raises(ValueError, match=r"saved by sklearn-gsoftmax 9\.0.*Upgrade"):
        type(model).__new__(type(model)).__setstate__(state)


def test_unstamped_complete_state_loads(fitted):
    """A pickle from before the stamp existed loads when it has what we need."""
    model, data = fitted
    state = model.__getstate__()
    del state["_gsoftmax_version"], state["_gsoftmax_state_format"]
    restored = type(model).__new__(type(model))
    restored.__setstate__(state)
    _same_predictions(model, restored, data)


def test_predict_proba_from_many_threads(fitted):
    model, data = fitted
    expected = model.predict_proba(data)
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: model.predict_proba(data), range(32)))
    # concurrent BLAS calls may partition their work otherwise: equal to
    # rounding (a race would corrupt far more), decisions exactly
    for result in results:
        np.testing.assert_allclose(result, expected, rtol=1e-12, atol=0)
    with ThreadPoolExecutor(max_workers=4) as pool:
        frames = list(pool.map(lambda _: model.predict_frame(data), range(8)))
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frame, frames[0], check_exact=False, rtol=1e-12)


def test_calibrator_from_before_the_uncertain_flag():
    """A calibrator pickled before the flag existed (no uncertainty parameters
    or fitted state) loads, predicts, prints, and says what to do for the flag."""
    scores = LogisticRegression().fit(X, Y).decision_function(X)
    model = GaussianSoftmaxCalibrator().fit(scores, Y)
    state = model.__getstate__()
    for name in (
        "uncertainty_rules",
        "uncertainty_threshold",
        "target_accuracy",
        "ambiguity_ratio",
        "conformal_alpha",
        "uncertainty_threshold_",
        "coverage_",
        "accepted_accuracy_",
        "_uncertainty_rules",
        "_conformal_references",
        "_gsoftmax_version",
        "_gsoftmax_state_format",
    ):
        del state[name]
    old = GaussianSoftmaxCalibrator.__new__(GaussianSoftmaxCalibrator)
    old.__setstate__(state)
    np.testing.assert_array_equal(
        old.predict_proba(scores), model.predict_proba(scores)
    )
    assert "GaussianSoftmaxCalibrator" in repr(old)
    # parameters added since take the current defaults
    assert old.get_params()["uncertainty_rules"] == ("low_confidence", "novelty")
    with pytest.raises(ValueError, match="no fitted uncertain-flag state"):
        old.predict_uncertain(scores)
    with pytest.raises(ValueError, match="Refit it"):
        old.predict_set(scores)


OLD_MODELS = Path(__file__).parent / "data" / "models_0.2.0"


def _saved_with():
    lines = (OLD_MODELS / "VERSIONS").read_text().splitlines()
    return dict(line.split(" ", 1) for line in lines)


def _same_minor(installed, saved):
    return installed.split(".")[:2] == saved.split(".")[:2]


@pytest.mark.skipif(
    not _same_minor(sklearn.__version__, _saved_with()["scikit-learn"])
    or not _same_minor(np.__version__, _saved_with()["numpy"]),
    reason="a pickle holds scikit-learn's and numpy's own objects, which load "
    "only in the versions that saved them",
)
@pytest.mark.parametrize(
    "name", ["calibrator_binary", "calibrator_3class", "classifier_3class"]
)
def test_models_saved_by_version_0_2_still_predict_the_same(name):
    # made by make_models.py with sklearn-gsoftmax 0.2.0 (the state layout of
    # format 2, before the modules were split); the fitted state is private, so
    # only a saved file shows whether a rename broke loading
    model = pickle.loads((OLD_MODELS / f"{name}.pkl").read_bytes())
    expected = np.load(OLD_MODELS / "expected.npz")
    data = expected[f"{name}__input"]
    np.testing.assert_allclose(
        model.predict_proba(data), expected[f"{name}__proba"], rtol=1e-12, atol=0
    )
    np.testing.assert_array_equal(model.predict(data), expected[f"{name}__predict"])
    np.testing.assert_array_equal(
        model.predict_uncertain(data), expected[f"{name}__uncertain"]
    )
    np.testing.assert_array_equal(model.predict_set(data), expected[f"{name}__set"])
    report = model.shift_report(np.concatenate([data] * 3))
    np.testing.assert_allclose(
        report.select_dtypes("number").to_numpy(float),
        expected[f"{name}__report"],
        rtol=1e-9,
        equal_nan=True,
    )

"""GaussianSoftmaxClassifier: parity with CalibratedClassifierCV and drop-in use."""

import math
import pickle

import numpy as np
import pytest
import sklearn
from scipy.optimize import minimize
from scipy.sparse import csr_matrix
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import (
    load_breast_cancer,
    load_iris,
    load_wine,
    make_classification,
)
from sklearn.ensemble import RandomForestClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_html_repr
from sklearn.utils.fixes import parse_version

from sklearn_gsoftmax import GaussianSoftmaxCalibrator, GaussianSoftmaxClassifier

SKLEARN_HAS_TEMPERATURE = parse_version(sklearn.__version__) >= parse_version("1.8")


def _lr():
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.05))


@pytest.fixture(scope="module")
def binary_data():
    return load_breast_cancer(return_X_y=True)


def _noisy(n_classes):
    """Label noise keeps every fold's scores from being separable: on separable
    scores any large enough slope is a maximum of the likelihood, so two
    optimisers stop at different, equally good, points (ours is pinned by its
    1e-9 ridge prior), and parity is not defined there."""
    return make_classification(
        n_samples=1500,
        n_features=10,
        n_informative=5,
        n_classes=n_classes,
        flip_y=0.1,
        random_state=0,
    )


@pytest.fixture(scope="module")
def multiclass_data():
    return load_wine(return_X_y=True)


def _sigmoid_calibration_without_smoothing(
    predictions, y, sample_weight=None, max_abs_prediction_threshold=30
):
    """scikit-learn's Platt fit with its smoothed targets replaced by the labels:
    the same model, P(y=1) = expit(-(a f + b)), by plain maximum likelihood."""
    f = np.asarray(predictions, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    w = np.ones_like(f) if sample_weight is None else np.asarray(sample_weight)

    def loss_grad(ab):
        raw = ab[0] * f + ab[1]
        loss = w @ (y * np.logaddexp(0, raw) + (1 - y) * np.logaddexp(0, -raw))
        g = w * (y - expit(-raw))
        return loss, np.array([g @ f, g.sum()])

    result = minimize(
        loss_grad,
        [0.0, 0.0],
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-12, "ftol": 1e-15},
    )
    return result.x[0], result.x[1]


@pytest.mark.parametrize("ensemble", [True, False])
def test_softmax_link_matches_sigmoid_calibration(monkeypatch, ensemble):
    """Same cv and ensemble as CalibratedClassifierCV(method="sigmoid") with
    Platt's target smoothing removed (we fit the labels; see test_calibrator.py
    for the calibrator's parity with the smoothing reproduced)."""
    monkeypatch.setattr(
        sklearn.calibration,
        "_sigmoid_calibration",
        _sigmoid_calibration_without_smoothing,
    )
    X, y = _noisy(2)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    reference = CalibratedClassifierCV(
        _lr(), method="sigmoid", cv=cv, ensemble=ensemble
    )
    ours = GaussianSoftmaxClassifier(_lr(), link="softmax", cv=cv, ensemble=ensemble)
    expected = reference.fit(X, y).predict_proba(X)
    np.testing.assert_allclose(ours.fit(X, y).predict_proba(X), expected, atol=1e-4)
    assert len(ours.calibrated_classifiers_) == (5 if ensemble else 1)


@pytest.mark.skipif(not SKLEARN_HAS_TEMPERATURE, reason="temperature needs sklearn 1.8")
@pytest.mark.parametrize("ensemble", [True, False])
def test_softmax_without_intercept_matches_temperature(ensemble):
    X, y = _noisy(3)
    cv = StratifiedKFold(4, shuffle=True, random_state=1)
    reference = CalibratedClassifierCV(
        _lr(), method="temperature", cv=cv, ensemble=ensemble
    )
    ours = GaussianSoftmaxClassifier(
        _lr(), link="softmax", fit_intercept=False, cv=cv, ensemble=ensemble
    )
    expected = reference.fit(X, y).predict_proba(X)
    np.testing.assert_allclose(ours.fit(X, y).predict_proba(X), expected, atol=1e-4)


# --------------------------------------------------------------------------------------
# n and the bounds


@pytest.mark.parametrize("ensemble", [True, False])
@pytest.mark.parametrize("link", ["gaussian", "linear"])
def test_probabilities_within_bounds_far_from_the_data(binary_data, ensemble, link):
    X, y = binary_data
    model = GaussianSoftmaxClassifier(_lr(), link=link, ensemble=ensemble).fit(X, y)
    assert model.n_samples_ == len(y)
    far = np.vstack([X * 50, -X * 50, X])
    proba = model.predict_proba(far)
    n = len(y)
    assert proba.min() >= (1 / n) * (1 - 1e-9)
    assert proba.max() <= (1 - 1 / n) * (1 + 1e-12)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_array_equal(model.predict(far), model.classes_[proba.argmax(1)])
    assert model.score(X, y) == np.mean(model.predict(X) == y)
    assert np.all(np.isfinite(model.predict_log_proba(far)))


def test_multiclass_bounds(multiclass_data):
    X, y = multiclass_data
    model = GaussianSoftmaxClassifier(_lr()).fit(X, y)
    n, k = len(y), 3
    proba = model.predict_proba(np.vstack([X * 100, X]))
    assert proba.min() >= 1 / ((k - 1) * (n - 1) + 1) * (1 - 1e-9)
    assert proba.max() <= (n - 1) / (n + k - 2) * (1 + 1e-12)


def test_prefit_frozen_estimator_calibrates_on_all_data(binary_data):
    X, y = binary_data
    prefit = _lr().fit(X[:300], y[:300])
    coef = prefit[-1].coef_.copy()
    model = GaussianSoftmaxClassifier(FrozenEstimator(prefit)).fit(X[300:], y[300:])
    assert len(model.calibrated_classifiers_) == 1
    assert model.n_samples_ == len(y) - 300
    np.testing.assert_array_equal(prefit[-1].coef_, coef)
    scores = prefit.decision_function(X[300:])
    calibrator = model.calibrated_classifiers_[0].calibrator
    assert calibrator.score_range_[0, 0] == scores.min()
    assert calibrator.score_range_[1, 0] == scores.max()
    ensembled = GaussianSoftmaxClassifier(FrozenEstimator(prefit), ensemble=True, cv=3)
    assert len(ensembled.fit(X[300:], y[300:]).calibrated_classifiers_) == 3


def test_prefit_rejects_unknown_labels(binary_data):
    X, y = binary_data
    prefit = _lr().fit(X, y)
    with pytest.raises(ValueError, match="does not know"):
        GaussianSoftmaxClassifier(FrozenEstimator(prefit)).fit(X[:50], y[:50] + 5)
    pd = pytest.importorskip("pandas")
    strings = pd.Series(np.where(y[:50] == 1, "a", "b"), dtype=object)
    with pytest.raises(ValueError, match=r"labels \['a', 'b'\] that the prefit"):
        GaussianSoftmaxClassifier(FrozenEstimator(prefit)).fit(X[:50], strings)


def test_n_samples_overrides(binary_data):
    X, y = binary_data
    model = GaussianSoftmaxClassifier(_lr(), n_samples=100).fit(X, y)
    assert model.n_samples_ == 100
    assert model.predict_proba(X * 100).min() >= 1 / 100 * (1 - 1e-9)


# --------------------------------------------------------------------------------------
# Labels, inputs, weights


@pytest.mark.parametrize(
    "labels",
    [np.array(["no", "yes"]), np.array([-1, 7]), np.array([False, True])],
    ids=["str", "int", "bool"],
)
def test_label_types(binary_data, labels):
    X, y = binary_data
    y_labels = labels[y]
    model = GaussianSoftmaxClassifier(_lr()).fit(X, y_labels)
    np.testing.assert_array_equal(model.classes_, labels)
    assert model.predict(X).dtype == labels.dtype
    assert model.score(X, y_labels) > 0.9


def test_string_multiclass_and_classes_order():
    X, y = load_iris(return_X_y=True)
    names = np.array(["virginica", "setosa", "versicolor"])[y]
    model = GaussianSoftmaxClassifier(_lr(), cv=3).fit(X, names)
    np.testing.assert_array_equal(
        model.classes_, model.calibrated_classifiers_[0].estimator.classes_
    )
    np.testing.assert_array_equal(model.classes_, ["setosa", "versicolor", "virginica"])


def test_dataframe_and_sparse_input(binary_data):
    pd = pytest.importorskip("pandas")
    X, y = binary_data
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    model = GaussianSoftmaxClassifier(_lr()).fit(frame, y)
    np.testing.assert_array_equal(model.feature_names_in_, frame.columns)
    assert model.n_features_in_ == X.shape[1]
    sparse_model = GaussianSoftmaxClassifier(LogisticRegression(max_iter=2000)).fit(
        csr_matrix(X / X.max(axis=0)), y
    )
    assert sparse_model.predict_proba(csr_matrix(X / X.max(axis=0))).shape == (
        len(y),
        2,
    )


class _WeightRecorder(ClassifierMixin, BaseEstimator):
    """Records the sample_weight its fit received; predicts with a logistic
    regression."""

    def fit(self, X, y, sample_weight=None):
        self.received_ = sample_weight
        self.model_ = LogisticRegression().fit(X, y, sample_weight=sample_weight)
        self.classes_ = self.model_.classes_
        return self

    def decision_function(self, X):
        return self.model_.decision_function(X)


def test_sample_weight_reaches_estimator_and_calibrator(binary_data):
    X, y = binary_data
    X = StandardScaler().fit_transform(X)
    weights = np.random.default_rng(0).integers(1, 4, size=len(y)).astype(float)
    model = GaussianSoftmaxClassifier(_WeightRecorder(), cv=3, ensemble=False)
    model.fit(X, y, sample_weight=weights)
    pair = model.calibrated_classifiers_[0]
    np.testing.assert_array_equal(pair.estimator.received_, weights)
    assert model.n_samples_ == weights.sum()
    # the calibrator fitted the weighted out-of-fold scores: the same as a
    # calibrator fitted on those scores with those weights
    unweighted = GaussianSoftmaxClassifier(_WeightRecorder(), cv=3, ensemble=False)
    unweighted.fit(X, y)
    assert (
        pair.calibrator.scale_
        != unweighted.calibrated_classifiers_[0].calibrator.scale_
    )
    folds = list(StratifiedKFold(3).split(X, y))
    scores = np.empty(len(y))
    for train, test in folds:
        fold = _WeightRecorder().fit(X[train], y[train], sample_weight=weights[train])
        scores[test] = fold.decision_function(X[test])
    direct = GaussianSoftmaxCalibrator(n_samples=None).fit(
        scores, y, sample_weight=weights
    )
    assert pair.calibrator.scale_ == pytest.approx(direct.scale_, rel=1e-9)
    np.testing.assert_allclose(pair.calibrator.intercept_, direct.intercept_, rtol=1e-9)


def test_sample_weight_through_metadata_routing(binary_data):
    X, y = binary_data
    X = StandardScaler().fit_transform(X)
    weights = np.linspace(1, 2, len(y))
    with sklearn.config_context(enable_metadata_routing=True):
        inner = _WeightRecorder().set_fit_request(sample_weight=True)
        model = GaussianSoftmaxClassifier(inner, cv=3)
        model.fit(X, y, sample_weight=weights)
        for pair in model.calibrated_classifiers_:
            assert pair.estimator.received_ is not None
            assert len(pair.estimator.received_) < len(y)
        unrequested = GaussianSoftmaxClassifier(
            _WeightRecorder().set_fit_request(sample_weight=False), cv=3
        )
        unrequested.fit(X, y, sample_weight=weights)
        assert unrequested.calibrated_classifiers_[0].estimator.received_ is None
        assert unrequested.n_samples_ == pytest.approx(weights.sum())


def test_estimator_without_sample_weight_warns(binary_data):
    X, y = binary_data

    class NoWeights(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.model_ = GaussianNB().fit(X, y)
            self.classes_ = self.model_.classes_
            return self

        def predict_proba(self, X):
            return self.model_.predict_proba(X)

    with pytest.warns(UserWarning, match="does not accept sample_weight"):
        GaussianSoftmaxClassifier(NoWeights(), cv=3).fit(
            X, y, sample_weight=np.ones(len(y))
        )


@pytest.mark.parametrize(
    "estimator", [GaussianNB(), RandomForestClassifier(n_estimators=20, random_state=0)]
)
def test_estimators_without_decision_function(multiclass_data, estimator):
    """log(predict_proba) scores, with -inf for exact zeros."""
    X, y = multiclass_data
    model = GaussianSoftmaxClassifier(estimator, cv=3).fit(X, y)
    proba = model.predict_proba(np.vstack([X, X * 10]))
    assert np.all(np.isfinite(proba)) and proba.min() >= 1 / (2 * (len(y) - 1) + 1) * (
        1 - 1e-9
    )
    assert model.score(X, y) > 0.8
    # softmax takes log(max(p, 1e-12)), as CalibratedClassifierCV does; the
    # calibrator itself still refuses -inf scores under softmax
    softmax = GaussianSoftmaxClassifier(clone(estimator), link="softmax", cv=3)
    assert np.all(np.isfinite(softmax.fit(X, y).predict_log_proba(X)))
    with np.errstate(divide="ignore"):
        log_proba = np.log(estimator.fit(X, y).predict_proba(X * 10))
    with pytest.raises(ValueError, match="infinite log-loss"):
        GaussianSoftmaxCalibrator(link="softmax").fit(log_proba, y)


def test_bad_cv_and_labels(binary_data):
    X, y = binary_data
    from sklearn.model_selection import LeaveOneOut

    with pytest.raises(ValueError, match="Requesting 5-fold"):
        GaussianSoftmaxClassifier(_lr()).fit(X[:6], np.array([0, 0, 0, 0, 1, 1]))
    # scikit-learn's opening words, which code matching its message relies on
    with pytest.raises(
        ValueError, match="^LeaveOneOut cross-validation does not allow"
    ):
        GaussianSoftmaxClassifier(_lr(), cv=LeaveOneOut()).fit(X, y)
    with pytest.raises(ValueError, match="one class only"):
        GaussianSoftmaxClassifier(_lr()).fit(X, np.zeros(len(y)))


def test_parallel_folds_give_the_same_model(binary_data):
    X, y = binary_data
    serial = GaussianSoftmaxClassifier(_lr(), n_jobs=1).fit(X, y).predict_proba(X)
    parallel = GaussianSoftmaxClassifier(_lr(), n_jobs=2).fit(X, y).predict_proba(X)
    np.testing.assert_allclose(parallel, serial, rtol=1e-12)


# --------------------------------------------------------------------------------------
# Where users put it


def test_in_pipeline_and_grid_search():
    X, y = make_classification(n_samples=400, n_features=8, random_state=0)
    pipe = make_pipeline(
        StandardScaler(), GaussianSoftmaxClassifier(LogisticRegression(), cv=3)
    )
    search = GridSearchCV(
        pipe,
        {
            "gaussiansoftmaxclassifier__estimator__C": [0.01, 1.0],
            "gaussiansoftmaxclassifier__link": ["gaussian", "softmax"],
        },
        scoring="neg_log_loss",
        cv=3,
        error_score="raise",
    )
    search.fit(X, y)
    assert np.isfinite(search.best_score_)
    assert search.best_estimator_.predict_proba(X).shape == (400, 2)
    scores = cross_val_score(
        GaussianSoftmaxClassifier(LogisticRegression(), cv=3),
        X,
        y,
        scoring="neg_log_loss",
        cv=3,
    )
    assert np.all(np.isfinite(scores))


def test_clone_pickle_and_html_repr(binary_data):
    X, y = binary_data
    model = GaussianSoftmaxClassifier(_lr(), link="linear", cv=3)
    clone_ = clone(model)
    assert clone_.get_params()["link"] == "linear" and clone_ is not model
    model.fit(X, y)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    html = estimator_html_repr(model)
    assert "GaussianSoftmaxClassifier" in html and "LogisticRegression" in html


@pytest.mark.parametrize("ensemble", [True, False])
@pytest.mark.parametrize("link", ["gaussian", "softmax"])
def test_log_proba_is_computed_in_log_space(binary_data, ensemble, link):
    X, y = binary_data
    model = GaussianSoftmaxClassifier(_lr(), link=link, ensemble=ensemble).fit(X, y)
    far = np.vstack([X, X * 100])
    log_proba = model.predict_log_proba(far)
    proba = model.predict_proba(far)
    np.testing.assert_allclose(np.exp(log_proba), proba, rtol=1e-9, atol=1e-300)
    if link == "gaussian":
        assert np.all(np.isfinite(log_proba))
    else:
        # softmax probabilities round to 0 and 1 far out; their logs do not
        assert np.all(np.isfinite(log_proba)) and np.any(proba == 0.0)


@pytest.mark.parametrize("link", ["gaussian", "linear"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bounds_hold_exactly_after_averaging_the_folds(binary_data, link, dtype):
    """Issue 9: the mean of three pairs' probabilities at the bound rounded
    an ulp above it. Far-out samples saturate every pair."""
    X, y = binary_data
    X = X.astype(dtype)
    model = GaussianSoftmaxClassifier(
        _lr(), link=link, cv=3, uncertainty_rules=("low_confidence",)
    ).fit(X, y)
    far = np.vstack([X, 1e3 * X, -1e3 * X]).astype(dtype)
    proba = model.predict_proba(far).astype(np.float64)
    n = model.n_samples_
    high = (n - 1) / n if link == "gaussian" else 1 - 1 / n
    assert proba.max() <= high and proba.min() >= 1 / n
    log_proba = model.predict_log_proba(far).astype(np.float64)
    # the bound's log as the code takes it (np.log may differ by an ulp)
    assert log_proba.max() <= math.log(high)


def test_ensemble_false_needs_every_sample_in_one_test_fold():
    X, y = make_classification(n_samples=60, random_state=0)
    index = np.arange(60)
    folds = [(index[20:], index[:20]), (index[:40], index[40:50])]  # 50.. unscored
    model = GaussianSoftmaxClassifier(LogisticRegression(), cv=folds, ensemble=False)
    with pytest.raises(ValueError) as info:
        model.fit(X, y)
    assert str(info.value) == (
        "cv must put every sample in exactly one test fold when ensemble=False, to "
        "give each an out-of-fold score."
    )

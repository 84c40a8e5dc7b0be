"""Drop-in for CalibratedClassifierCV: scikit-learn's own calibration tests.

Each test here follows a test of ``CalibratedClassifierCV`` in scikit-learn's
``sklearn/tests/test_calibration.py`` (BSD-3-Clause, copyright the
scikit-learn developers), named in its docstring, rewritten for this library
and run with every link (and, where it applies, with the calibrator on decision
scores). Where our semantics differ on purpose, the test says why in one line:

* no isotonic method: the links are parametric (a scale and offsets);
* ``link="softmax"`` is Platt scaling without Platt's smoothed targets, so it
  does not reproduce ``method="sigmoid"`` to the last digit;
* several classes get one joint fit, not one-vs-rest sigmoids renormalised.
"""

import numpy as np
import pytest
import sklearn
from numpy.testing import assert_allclose, assert_array_equal
from scipy.sparse import csr_matrix
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_iris, make_blobs, make_classification
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier, VotingClassifier
from sklearn.feature_extraction import DictVectorizer
from sklearn.frozen import FrozenEstimator
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.metrics import brier_score_loss
from sklearn.model_selection import (
    KFold,
    LeaveOneOut,
    cross_val_predict,
    cross_val_score,
    train_test_split,
)
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils._mocking import CheckingClassifier

from sklearn_gsoftmax import GaussianSoftmaxCalibrator, GaussianSoftmaxClassifier

LINKS = ["gaussian", "linear", "softmax"]
N_SAMPLES = 200


@pytest.fixture(scope="module")
def data():
    return make_classification(n_samples=N_SAMPLES, n_features=6, random_state=42)


def _weights(n):
    return np.random.RandomState(42).uniform(size=n)


def _multiclass_brier(y, proba):
    return np.sum((np.eye(proba.shape[1])[y] - proba) ** 2) / len(y)


def _fast(estimator=None, **params):
    """The classifier without the novelty rule: its detectors (tested in
    test_novelty.py) double a fit's time and play no part in calibration."""
    return GaussianSoftmaxClassifier(
        estimator, uncertainty_rules=("low_confidence",), **params
    )


# --------------------------------------------------------------------------------------
# Parameters, cv and ensemble


def test_unknown_link_raises(data):
    """test_calibration_method_raises (our ``link`` is their ``method``)."""
    with pytest.raises(ValueError, match="link"):
        GaussianSoftmaxClassifier(link="isotonic").fit(*data)


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("ensemble", [True, False])
def test_calibration_improves_and_ignores_label_names(data, link, ensemble):
    """test_calibration: better Brier score than the raw model, probabilities
    invariant under relabelling, and flipped when the labels are swapped."""
    X, y = data
    X = X - X.min()  # MultinomialNB needs non-negative features
    sw = _weights(len(y))
    half = N_SAMPLES // 2
    X_train, y_train, sw_train = X[:half], y[:half], sw[:half]
    X_test, y_test = X[half:], y[half:]
    raw = MultinomialNB().fit(X_train, y_train, sample_weight=sw_train)
    raw_brier = brier_score_loss(y_test, raw.predict_proba(X_test)[:, 1])
    with pytest.raises(ValueError, match="Requesting 201-fold"):
        _fast(raw, cv=y.size + 1, ensemble=ensemble).fit(X, y)
    model = _fast(raw, link=link, cv=5, ensemble=ensemble)
    for train, test in [(X_train, X_test), (csr_matrix(X_train), csr_matrix(X_test))]:
        proba = model.fit(train, y_train, sample_weight=sw_train).predict_proba(test)
        assert brier_score_loss(y_test, proba[:, 1]) < raw_brier
        for relabelled in (y_train + 1, 2 * y_train - 1):
            model.fit(train, relabelled, sample_weight=sw_train)
            assert_allclose(model.predict_proba(test), proba, atol=1e-6)
        model.fit(train, 1 - y_train, sample_weight=sw_train)
        assert_allclose(model.predict_proba(test)[:, ::-1], proba, atol=1e-6)


def test_default_estimator_is_linear_svc(data):
    """test_calibration_default_estimator."""
    model = GaussianSoftmaxClassifier(cv=2).fit(*data)
    assert isinstance(model.calibrated_classifiers_[0].estimator, LinearSVC)


@pytest.mark.parametrize("ensemble", [True, False])
def test_cv_splitter(data, ensemble):
    """test_calibration_cv_splitter."""
    model = GaussianSoftmaxClassifier(cv=KFold(n_splits=5), ensemble=ensemble)
    assert len(model.fit(*data).calibrated_classifiers_) == (5 if ensemble else 1)


@pytest.mark.parametrize("ensemble", [True, False])
def test_cv_iterable_of_splits(data, ensemble):
    """cv as an iterable of (train, test) pairs, as CalibratedClassifierCV
    takes it."""
    X, y = data
    splits = list(KFold(n_splits=3).split(X))
    model = _fast(cv=splits, ensemble=ensemble).fit(X, y)
    assert len(model.calibrated_classifiers_) == (3 if ensemble else 1)
    same = _fast(cv=KFold(3), ensemble=ensemble).fit(X, y)
    assert_allclose(model.predict_proba(X), same.predict_proba(X))


def test_too_many_folds_and_leave_one_out(data):
    """test_calibration_cv_nfold: scikit-learn's messages, which code matches
    (issue 9: LeaveOneOut's is scikit-learn's opening words)."""
    with pytest.raises(ValueError, match="Requesting 101-fold cross-validation"):
        GaussianSoftmaxClassifier(cv=KFold(n_splits=101)).fit(*data)
    with pytest.raises(ValueError) as info:
        GaussianSoftmaxClassifier(cv=LeaveOneOut()).fit(*data)
    assert str(info.value) == (
        "LeaveOneOut cross-validation does not allow all classes to be present in "
        "test splits. Use a splitter that keeps every class in each test fold, such "
        "as StratifiedKFold."
    )


def test_default_folds_take_a_rare_class_like_scikit_learn():
    """Issue 9: with the default cv a class with fewer samples than folds is
    allowed (StratifiedKFold warns), as in CalibratedClassifierCV, which is
    what check_fit2d_1feature needs; a number of folds the user asked for, or
    data no split can serve, still gets the fold-size error."""
    rng = np.random.RandomState(0)
    X = 3 * rng.uniform(size=(10, 1))
    y = X[:, 0].astype(int)  # classes of 7 and 3 samples
    with pytest.warns(UserWarning, match="least populated class"):
        expected = CalibratedClassifierCV(LogisticRegression()).fit(X, y)
    with pytest.warns(UserWarning, match="least populated class"):
        model = GaussianSoftmaxClassifier(LogisticRegression()).fit(X, y)
    assert_array_equal(model.classes_, expected.classes_)
    with pytest.raises(ValueError, match="Requesting 5-fold"):
        GaussianSoftmaxClassifier(LogisticRegression(), cv=5).fit(X, y)
    with pytest.raises(ValueError, match="Requesting 5-fold"):
        GaussianSoftmaxClassifier(LogisticRegression()).fit(X[:6], [0] * 4 + [1] * 2)


def test_fewer_samples_per_class_than_default_folds_with_strings():
    """test_error_less_class_samples_than_folds: string labels, cv=3."""
    X = np.random.RandomState(0).normal(size=(20, 3))
    y = np.array(["a"] * 10 + ["b"] * 10)
    model = GaussianSoftmaxClassifier(cv=3).fit(X, y)
    assert set(model.predict(X)) <= {"a", "b"}


# --------------------------------------------------------------------------------------
# Sample weights, fit parameters and metadata routing


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("ensemble", [True, False])
def test_sample_weight_changes_the_calibration(data, link, ensemble):
    """test_sample_weight."""
    X, y = data
    half = N_SAMPLES // 2
    model = _fast(LinearSVC(random_state=42), link=link, ensemble=ensemble)
    weighted = model.fit(X[:half], y[:half], sample_weight=_weights(half))
    with_weights = weighted.predict_proba(X[half:])
    without = model.fit(X[:half], y[:half]).predict_proba(X[half:])
    assert np.linalg.norm(with_weights - without) > 0.1


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("ensemble", [True, False])
def test_weight_two_equals_rows_twice(link, ensemble):
    """test_calibrated_classifier_cv_double_sample_weights_equivalence; n is
    the sum of the weights, so the bounds agree too."""
    X, y = load_iris(return_X_y=True)
    X, y = StandardScaler().fit_transform(X)[:100], y[:100]
    # interlaced, so that 2-fold stratified splits see the same rows
    X_twice, y_twice = np.repeat(X, 2, axis=0), np.repeat(y, 2)
    model = _fast(LogisticRegression(), link=link, ensemble=ensemble, cv=2)
    weighted = clone(model).fit(X, y, sample_weight=np.full(len(y), 2.0))
    twice = clone(model).fit(X_twice, y_twice)
    assert weighted.n_samples_ == twice.n_samples_ == 200
    for a, b in zip(weighted.calibrated_classifiers_, twice.calibrated_classifiers_):
        assert_allclose(a.estimator.coef_, b.estimator.coef_)
    assert_allclose(weighted.predict_proba(X), twice.predict_proba(X), rtol=1e-6)


@pytest.mark.parametrize("link", LINKS)
def test_calibrator_weight_two_equals_rows_twice(rng, link):
    """The same property for the calibrator on decision scores."""
    z = rng.normal(scale=2.0, size=150)
    y = rng.random(150) < 1 / (1 + np.exp(-z))
    weighted = GaussianSoftmaxCalibrator(link=link).fit(
        z, y, sample_weight=np.full(150, 2.0)
    )
    twice = GaussianSoftmaxCalibrator(link=link).fit(np.repeat(z, 2), np.repeat(y, 2))
    assert_allclose(weighted.predict_proba(z), twice.predict_proba(z), rtol=1e-7)


@pytest.mark.parametrize("container", [list, np.asarray])
def test_fit_params_reach_the_estimator(data, container):
    """test_calibration_with_fit_params."""
    X, y = data
    checking = CheckingClassifier(expected_fit_params=["a", "b"])
    GaussianSoftmaxClassifier(checking).fit(X, y, a=container(y), b=container(y))


@pytest.mark.parametrize("sample_weight", [[1.0] * N_SAMPLES, np.ones(N_SAMPLES)])
def test_sample_weight_reaches_the_estimator(data, sample_weight):
    """test_calibration_with_sample_weight_estimator."""
    checking = CheckingClassifier(expected_sample_weight=True)
    GaussianSoftmaxClassifier(checking).fit(*data, sample_weight=sample_weight)


def test_estimator_without_sample_weight_warns(data):
    """test_calibration_without_sample_weight_estimator."""

    class NoWeights(CheckingClassifier):
        def fit(self, X, y, **fit_params):
            assert "sample_weight" not in fit_params
            return super().fit(X, y, **fit_params)

    with pytest.warns(UserWarning, match="does not accept sample_weight"):
        GaussianSoftmaxClassifier(NoWeights()).fit(
            *data, sample_weight=np.ones(N_SAMPLES)
        )


def test_fit_param_need_not_align_with_samples(data):
    """test_calibration_with_non_sample_aligned_fit_param."""

    class TakesAnything(LogisticRegression):
        def fit(self, X, y, sample_weight=None, fit_param=None):
            assert fit_param is not None
            return super().fit(X, y, sample_weight=sample_weight)

    GaussianSoftmaxClassifier(TakesAnything()).fit(
        *data, fit_param=np.ones(N_SAMPLES + 1)
    )


class _Recording(ClassifierMixin, BaseEstimator):
    """A classifier that records the metadata its fit receives."""

    def fit(self, X, y, sample_weight=None, group=None):
        self.received_ = (sample_weight, group)
        self.model_ = LogisticRegression().fit(X, y, sample_weight=sample_weight)
        self.classes_ = self.model_.classes_
        return self

    def decision_function(self, X):
        return self.model_.decision_function(X)


def test_metadata_routing(data):
    """Metadata routing (scikit-learn's routing tests of its meta-estimators):
    requested metadata reaches each fold's fit, indexed like its rows, and
    sample_weight also weighs the calibration."""
    X, y = data
    sw, group = _weights(N_SAMPLES), np.arange(N_SAMPLES)
    with sklearn.config_context(enable_metadata_routing=True):
        inner = _Recording().set_fit_request(sample_weight=True, group=True)
        model = GaussianSoftmaxClassifier(inner, cv=KFold(3))
        model.fit(X, y, sample_weight=sw, group=group)
        for pair, (train, _) in zip(model.calibrated_classifiers_, KFold(3).split(X)):
            got_weights, got_group = pair.estimator.received_
            assert_array_equal(got_group, train)
            assert_array_equal(got_weights, sw[train])
        unrequested = GaussianSoftmaxClassifier(_Recording(), cv=3)
        with pytest.raises(ValueError, match="group"):
            unrequested.fit(X, y, group=group)


# --------------------------------------------------------------------------------------
# Multiclass, missing classes, infinite scores


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("ensemble", [True, False])
def test_multiclass_calibration(link, ensemble):
    """test_calibration_multiclass (one joint fit instead of one-vs-rest):
    accuracy kept, Brier score no worse than the softmax of the raw scores."""
    X, y = make_blobs(
        n_samples=500, n_features=100, random_state=0, centers=10, cluster_std=15.0
    )
    y[y > 2] = 2  # unbalanced: eight clusters in one class
    X_train, y_train, X_test, y_test = X[::2], y[::2], X[1::2], y[1::2]
    svc = LinearSVC(random_state=7).fit(X_train, y_train)
    model = _fast(svc, link=link, cv=5, ensemble=ensemble)
    proba = model.fit(X_train, y_train).predict_proba(X_test)
    assert_allclose(proba.sum(axis=1), 1.0)
    assert 0.65 < svc.score(X_test, y_test) < 0.95
    assert model.score(X_test, y_test) > 0.95 * svc.score(X_test, y_test)
    scores = svc.decision_function(X_test)
    raw = np.exp(scores - scores.max(axis=1, keepdims=True))
    raw /= raw.sum(axis=1, keepdims=True)
    assert _multiclass_brier(y_test, proba) < 1.1 * _multiclass_brier(y_test, raw)
    if not ensemble:
        return  # (for time) a forest's scores take no other path without ensemble
    forest = RandomForestClassifier(n_estimators=30, random_state=42)
    raw = forest.fit(X_train, y_train).predict_proba(X_test)
    model = _fast(forest, link=link, cv=5, ensemble=ensemble)
    proba = model.fit(X_train, y_train).predict_proba(X_test)
    assert _multiclass_brier(y_test, proba) < 1.1 * _multiclass_brier(y_test, raw)


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("ensemble", [True, False])
def test_test_folds_with_one_class(link, ensemble):
    """test_calibration_prob_sum: first and last test folds hold one class."""
    X, _ = make_classification(n_samples=10, n_features=5, random_state=0)
    y = [1] * 5 + [0] * 5
    model = _fast(LinearSVC(random_state=7), link=link, cv=KFold(3), ensemble=ensemble)
    assert_allclose(model.fit(X, y).predict_proba(X).sum(axis=1), 1.0)


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("ensemble", [True, False])
def test_training_folds_missing_a_class(link, ensemble):
    """test_calibration_less_classes: a class a fold's model never saw is
    never predicted by that model. Under softmax it gets probability 0, as in
    CalibratedClassifierCV; the bounded links give it their floor (issue 9:
    it used to get up to 0.6, its labels pulling the fold's scale to 0)."""
    X = np.random.RandomState(0).randn(12, 5)
    y = np.array([0, 0, 0, 1] + [1, 1, 2, 2] + [2, 3, 3, 3])
    model = _fast(
        DecisionTreeClassifier(random_state=7),
        link=link,
        cv=KFold(3),
        ensemble=ensemble,
    ).fit(X, y)
    assert_allclose(model.predict_proba(X).sum(axis=1), 1.0)
    if not ensemble:
        return
    for pair, unseen in zip(model.calibrated_classifiers_[::2], [0, 3]):
        proba = pair.proba_and_scores(X)[0]
        assert_allclose(proba.sum(axis=1), 1.0)
        others = np.delete(proba, unseen, axis=1)
        assert np.all(others > 0)
        if link == "softmax":
            assert_array_equal(proba[:, unseen], 0.0)
        else:
            assert np.all(proba[:, unseen] < others.max(axis=1))
            assert np.all(proba[:, unseen] <= others.min(axis=1) + 1e-12)


@pytest.mark.parametrize("link", LINKS)
def test_forest_scores_with_zero_probabilities(link):
    """Issue 9: log(predict_proba) of a forest holds -inf; every link fits
    (softmax on log(max(p, 1e-12)), as CalibratedClassifierCV)."""
    X, y = make_classification(200, random_state=0)
    forest = RandomForestClassifier(n_estimators=10, random_state=0)
    model = _fast(forest, link=link).fit(X, y)
    proba = model.predict_proba(X)
    assert np.all(np.isfinite(proba)) and model.score(X, y) > 0.9
    reference = CalibratedClassifierCV(forest).fit(X, y)
    assert np.mean(model.predict(X) == reference.predict(X)) > 0.95


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("ensemble", [True, False])
def test_nan_through_an_imputer(link, ensemble):
    """test_calibration_nan_imputer: a one-tree forest behind an imputer,
    whose probabilities are all 0 or 1."""
    X, y = make_classification(
        n_samples=10, n_features=2, n_informative=2, n_redundant=0, random_state=42
    )
    X[0, 0] = np.nan
    forest = Pipeline(
        [("imputer", SimpleImputer()), ("rf", RandomForestClassifier(n_estimators=1))]
    )
    model = _fast(forest, link=link, cv=2, ensemble=ensemble)
    assert np.all(np.isfinite(model.fit(X, y).predict_proba(X)))
    model.predict(X)


def test_large_confidence_scores():
    """test_calibrated_classifier_cv_works_with_large_confidence_scores: an
    SGD model with scores beyond 1e4 ranks the samples as well calibrated."""
    y = np.array([1] * 134 + [0] * 66)
    X = 1e5 * y.reshape(-1, 1) + np.random.default_rng(0).normal(size=200)
    # few epochs: the scores are beyond 1e4 after the first
    sgd = SGDClassifier(loss="squared_hinge", tol=1e-2, max_iter=5, random_state=0)
    expected = cross_val_score(
        CalibratedClassifierCV(clone(sgd), method="isotonic", cv=3),
        X,
        y,
        scoring="roc_auc",
        cv=3,
    )
    for link in LINKS:
        model = _fast(clone(sgd), link=link, cv=3)
        got = cross_val_score(model, X, y, scoring="roc_auc", cv=3)
        assert_allclose(got, expected)


# --------------------------------------------------------------------------------------
# Prefit models and other inputs


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("container", [np.asarray, csr_matrix])
def test_frozen_estimator(link, container):
    """test_calibration_frozen."""
    X, y = make_classification(n_samples=150, n_features=6, random_state=42)
    X -= X.min()
    sw = _weights(150)
    nb = MultinomialNB().fit(X[:50], y[:50], sample_weight=sw[:50])
    raw_brier = brier_score_loss(y[100:], nb.predict_proba(X[100:])[:, 1])
    model = _fast(FrozenEstimator(nb), link=link)
    for weights in [sw[50:100], None]:
        model.fit(container(X[50:100]), y[50:100], sample_weight=weights)
        proba = model.predict_proba(container(X[100:]))
        assert_array_equal(model.predict(container(X[100:])), proba.argmax(axis=1))
        assert brier_score_loss(y[100:], proba[:, 1]) < raw_brier


@pytest.mark.parametrize("link", LINKS)
def test_ensemble_false_is_one_calibrator_on_out_of_fold_scores(data, link):
    """test_calibration_ensemble_false, with the calibrator standing in for
    scikit-learn's: cross_val_predict's scores, the model refitted on all."""
    X, y = data
    svc = LinearSVC(random_state=7)
    model = _fast(svc, link=link, cv=3, ensemble=False).fit(X, y)
    scores = cross_val_predict(svc, X, y, cv=3, method="decision_function")
    calibrator = GaussianSoftmaxCalibrator(link=link).fit(scores, y)
    expected = calibrator.predict_proba(clone(svc).fit(X, y).decision_function(X))
    assert_allclose(model.predict_proba(X), expected)


@pytest.mark.parametrize("shape", [(15, 5, 2), (15, 5, 2, 6)])
def test_n_dimensional_input(shape):
    """test_calibration_accepts_ndarray."""

    class TensorClassifier(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = np.unique(y)
            return self

        def decision_function(self, X):
            return X.reshape(X.shape[0], -1).sum(axis=1)

    X = np.random.RandomState(42).randn(*shape)
    y = [1, 0, 0, 1, 1, 0, 1, 1, 0, 0, 1, 0, 0, 1, 0]
    GaussianSoftmaxClassifier(TensorClassifier()).fit(X, y)


def test_dict_input_pipeline():
    """test_calibration_dict_pipeline: a prefit pipeline taking dicts."""
    X = [
        {"state": "NY", "age": "adult"},
        {"state": "TX", "age": "adult"},
        {"state": "VT", "age": "child"},
        {"state": "CT", "age": "adult"},
        {"state": "BR", "age": "child"},
    ]
    y = [1, 0, 1, 1, 0]
    pipeline = Pipeline(
        [("vectorizer", DictVectorizer()), ("clf", RandomForestClassifier())]
    ).fit(X, y)
    model = GaussianSoftmaxClassifier(FrozenEstimator(pipeline), cv=2).fit(X, y)
    assert_array_equal(model.classes_, pipeline.classes_)
    assert not hasattr(pipeline, "n_features_in_")
    assert not hasattr(model, "n_features_in_")
    model.predict(X)
    model.predict_proba(X)


def test_attributes():
    """test_calibration_attributes."""
    X, y = make_classification(n_samples=10, n_features=5, random_state=7)
    model = GaussianSoftmaxClassifier(LinearSVC(C=1), cv=2).fit(X, y)
    assert_array_equal(model.classes_, np.unique(y))
    assert model.n_features_in_ == 5


def test_prefit_model_with_other_features():
    """test_calibration_inconsistent_prefit_n_features_in."""
    X, y = make_classification(n_samples=10, n_features=5, random_state=7)
    model = GaussianSoftmaxClassifier(FrozenEstimator(LinearSVC(C=1).fit(X, y)))
    with pytest.raises(ValueError, match="X has 3 features, but LinearSVC is"):
        model.fit(X[:, :3], y)


def test_voting_classifier():
    """test_calibration_votingclassifier: predict_proba exists only for soft
    voting."""
    X, y = make_classification(n_samples=10, n_features=5, random_state=7)
    vote = VotingClassifier(
        [(f"lr{i}", LogisticRegression()) for i in range(3)], voting="soft"
    ).fit(X, y)
    GaussianSoftmaxClassifier(FrozenEstimator(vote)).fit(X, y).predict_proba(X)


@pytest.mark.parametrize("link", LINKS)
@pytest.mark.parametrize("use_sample_weight", [True, False])
def test_float32_probabilities(data, link, use_sample_weight):
    """test_float32_predict_proba: float32 predict_proba, float64 weights."""

    class Dummy32(DummyClassifier):
        def predict_proba(self, X):
            return super().predict_proba(X).astype(np.float32)

    sw = np.ones(N_SAMPLES) if use_sample_weight else None
    GaussianSoftmaxClassifier(Dummy32(), link=link).fit(*data, sample_weight=sw)
    frozen = FrozenEstimator(Dummy32().fit(*data, sample_weight=sw))
    GaussianSoftmaxClassifier(frozen, link=link).fit(*data, sample_weight=sw)


@pytest.mark.parametrize("link", LINKS)
def test_calibrator_keeps_float32_and_string_labels(rng, link):
    """float32 and string labels, for the calibrator on decision scores."""
    z = rng.normal(scale=2.0, size=200).astype(np.float32)
    y = np.where(rng.random(200) < 1 / (1 + np.exp(-z)), "spam", "ham")
    calibrator = GaussianSoftmaxCalibrator(link=link).fit(z, y)
    assert calibrator.predict_proba(z).dtype == np.float32
    assert set(calibrator.predict(z)) <= {"ham", "spam"}
    flipped = GaussianSoftmaxCalibrator(link=link).fit(-z, y)
    assert_allclose(flipped.predict_proba(-z), calibrator.predict_proba(z), atol=1e-5)


@pytest.mark.parametrize(("link", "ensemble"), [("gaussian", True), ("softmax", False)])
def test_parallel_folds_equal_serial(data, link, ensemble):
    """test_parallel_execution."""
    X_train, X_test, y_train, _ = train_test_split(*data, random_state=42)
    svc = make_pipeline(StandardScaler(), LinearSVC(random_state=42))
    models = [_fast(svc, link=link, n_jobs=jobs, ensemble=ensemble) for jobs in (2, 1)]
    parallel, serial = (m.fit(X_train, y_train).predict_proba(X_test) for m in models)
    assert_allclose(parallel, serial)

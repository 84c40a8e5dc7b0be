"""GaussianSoftmaxCalibrator: recovery, parity with scikit-learn, weights, errors."""

import pickle

import numpy as np
import pytest
import sklearn
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.fixes import parse_version

from sklearn_gsoftmax import (
    GaussianSoftmaxCalibrator,
    gaussian_softmax,
    gaussian_softmax_nll_grad,
)

SKLEARN_HAS_TEMPERATURE = parse_version(sklearn.__version__) >= parse_version("1.8")


def _sample_labels(proba, rng):
    return (proba.cumsum(axis=1) > rng.random(len(proba))[:, None]).argmax(axis=1)


def _standard_errors(z, y, scale, intercept, n):
    """Standard errors of (scale, intercept[1:]) from the observed information:
    the Hessian of the total negative log-likelihood, by central differences of
    the analytic gradient."""
    z2 = z if z.ndim == 2 else np.column_stack([np.zeros_like(z), z])

    def gradient(theta):
        b = np.concatenate([[0.0], theta[1:]])
        g = gaussian_softmax_nll_grad(theta[0] * z2 + b, y, n)
        return np.concatenate([[np.sum(g * z2)], g[:, 1:].sum(axis=0)])

    theta = np.concatenate([[scale], intercept[1:]])
    h = 1e-5
    hessian = np.column_stack(
        [
            (gradient(theta + h * e) - gradient(theta - h * e)) / (2 * h)
            for e in np.eye(len(theta))
        ]
    )
    return np.sqrt(np.diag(np.linalg.inv(hessian)))


@pytest.mark.parametrize(
    "n_classes, scale, intercept",
    [(2, 2.0, [0.0, -1.0]), (4, 1.5, [0.0, 0.5, -0.5, 1.0])],
)
def test_recovers_known_parameters(n_classes, scale, intercept):
    """Labels drawn from the model itself; the estimate must lie within four
    standard errors (from the observed information) of the truth. Four standard
    errors fail by chance with probability about 6e-5 per parameter, and with the
    fixed seed the test is deterministic."""
    rng = np.random.default_rng(42)
    n = 20_000
    intercept = np.array(intercept)
    z = rng.normal(scale=2.0, size=n if n_classes == 2 else (n, n_classes))
    z2 = z if z.ndim == 2 else np.column_stack([np.zeros(n), z])
    y = _sample_labels(gaussian_softmax(scale * z2 + intercept, n), rng)
    # the spec's fit: the model the labels were drawn from
    calibrator = GaussianSoftmaxCalibrator(score_map="affine", fit_ceiling=False)
    calibrator.fit(z, y)
    assert calibrator.n_samples_ == n
    errors = _standard_errors(z, y, calibrator.scale_, calibrator.intercept_, n)
    estimate = np.concatenate([[calibrator.scale_], calibrator.intercept_[1:]])
    truth = np.concatenate([[scale], intercept[1:]])
    assert np.all(errors < 0.1), errors
    assert np.all(np.abs(estimate - truth) < 4 * errors), (estimate, truth, errors)
    assert calibrator.intercept_[0] == 0.0


@pytest.fixture(scope="module")
def breast_cancer_scores():
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_rest, y_train, y_rest = train_test_split(
        X, y, test_size=0.6, random_state=0, stratify=y
    )
    X_cal, X_test, y_cal, y_test = train_test_split(
        X_rest, y_rest, test_size=0.5, random_state=0, stratify=y_rest
    )
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.01)).fit(
        X_train, y_train
    )
    return clf, X_cal, y_cal, X_test


def _platt_targets_as_weights(scores, y):
    """Platt's smoothed targets T_i as weights: each row once as class 1 with
    weight T_i and once as class 0 with weight 1 - T_i."""
    n_pos, n_neg = np.sum(y == 1), np.sum(y == 0)
    target = np.where(y == 1, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    scores2 = np.concatenate([scores, scores])
    labels = np.concatenate([np.ones_like(y), np.zeros_like(y)])
    return scores2, labels, np.concatenate([target, 1 - target])


def test_softmax_link_is_platt_scaling(breast_cancer_scores):
    clf, X_cal, y_cal, X_test = breast_cancer_scores
    reference = CalibratedClassifierCV(FrozenEstimator(clf), method="sigmoid")
    expected = reference.fit(X_cal, y_cal).predict_proba(X_test)

    scores, labels, weights = _platt_targets_as_weights(
        clf.decision_function(X_cal), y_cal
    )
    platt = GaussianSoftmaxCalibrator(link="softmax", n_samples=len(y_cal))
    platt.fit(scores, labels, sample_weight=weights)
    got = platt.predict_proba(clf.decision_function(X_test))
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_plain_likelihood_differs_from_platt_smoothing_on_purpose(breast_cancer_scores):
    """We fit the labels themselves, not Platt's smoothed targets, which pull the
    fit towards 1/2 (strongly on nearly separable scores like these). So the
    probabilities differ, and ours have the higher likelihood of the labels."""
    from sklearn.metrics import log_loss

    clf, X_cal, y_cal, X_test = breast_cancer_scores
    reference = CalibratedClassifierCV(FrozenEstimator(clf), method="sigmoid")
    reference.fit(X_cal, y_cal)
    plain = GaussianSoftmaxCalibrator(link="softmax")
    plain.fit(clf.decision_function(X_cal), y_cal)
    ours = plain.predict_proba(clf.decision_function(X_test))
    assert np.max(np.abs(ours - reference.predict_proba(X_test))) > 1e-3
    own_loss = log_loss(y_cal, plain.predict_proba(clf.decision_function(X_cal)))
    assert own_loss < log_loss(y_cal, reference.predict_proba(X_cal))


@pytest.mark.skipif(not SKLEARN_HAS_TEMPERATURE, reason="temperature needs sklearn 1.8")
def test_softmax_without_intercept_is_temperature_scaling():
    X, y = load_digits(return_X_y=True)
    X_train, X_rest, y_train, y_rest = train_test_split(
        X, y, test_size=0.6, random_state=0
    )
    X_cal, X_test, y_cal, _ = train_test_split(
        X_rest, y_rest, test_size=0.5, random_state=0
    )
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0)).fit(
        X_train, y_train
    )
    reference = CalibratedClassifierCV(FrozenEstimator(clf), method="temperature")
    expected = reference.fit(X_cal, y_cal).predict_proba(X_test)
    temperature = GaussianSoftmaxCalibrator(link="softmax", fit_intercept=False)
    temperature.fit(clf.decision_function(X_cal), y_cal)
    got = temperature.predict_proba(clf.decision_function(X_test))
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert temperature.scale_ == pytest.approx(
        reference.calibrated_classifiers_[0].calibrators[0].beta_, rel=1e-3
    )


# --------------------------------------------------------------------------------------
# Weights and n


@pytest.mark.parametrize("link", ["gaussian", "linear", "softmax"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_integer_weights_equal_repeated_rows(link, n_classes, rng):
    m = 60
    z = rng.normal(size=m if n_classes == 2 else (m, n_classes))
    y = rng.integers(n_classes, size=m)
    weights = rng.integers(0, 4, size=m)
    weighted = GaussianSoftmaxCalibrator(link=link).fit(z, y, sample_weight=weights)
    repeated = GaussianSoftmaxCalibrator(link=link).fit(
        np.repeat(z, weights, axis=0), np.repeat(y, weights)
    )
    assert weighted.n_samples_ == repeated.n_samples_ == weights.sum()
    np.testing.assert_allclose(
        weighted.predict_proba(z), repeated.predict_proba(z), rtol=1e-7
    )


def test_n_samples_parameter_sets_the_bounds(rng):
    s = rng.normal(scale=3, size=200)
    y = (rng.random(200) < 1 / (1 + np.exp(-s))).astype(int)
    for n, expected_n in [(None, 200), (10_000, 10_000)]:
        calibrator = GaussianSoftmaxCalibrator(n_samples=n, fit_ceiling=False)
        calibrator.fit(s, y)
        assert calibrator.n_samples_ == expected_n
        proba = calibrator.predict_proba([-np.inf, -1e300, 0.0, 1e300, np.inf])
        assert proba.min() >= 1 / expected_n * (1 - 1e-12)
        assert proba[0, 0] == pytest.approx(1 - 1 / expected_n, rel=1e-12)


@pytest.mark.parametrize("link", ["gaussian", "linear"])
def test_infinite_scores_fit_with_saturating_links(link, rng):
    """log(predict_proba) of a classifier with exact zeros gives -inf scores."""
    proba = rng.dirichlet([0.3, 0.3, 0.3], size=300)
    proba[proba < 0.05] = 0.0
    proba /= proba.sum(axis=1, keepdims=True)
    y = _sample_labels(
        np.clip(proba, 0.01, None) / np.clip(proba, 0.01, None).sum(1, keepdims=True),
        rng,
    )
    with np.errstate(divide="ignore"):
        scores = np.log(proba)
    assert np.isinf(scores).any()
    calibrator = GaussianSoftmaxCalibrator(link=link).fit(scores, y)
    out = calibrator.predict_proba(scores)
    assert np.all(np.isfinite(out)) and np.all(out > 0)
    assert np.isfinite(calibrator.scale_) and calibrator.scale_ > 0


def test_softmax_link_rejects_infinite_scores():
    with pytest.raises(ValueError, match="infinite log-loss under link='softmax'"):
        GaussianSoftmaxCalibrator(link="softmax").fit([0.0, -np.inf, 1.0], [0, 0, 1])


def test_separable_scores_fit_is_unique(rng):
    s = np.concatenate([rng.uniform(-5, -1, 50), rng.uniform(1, 5, 50)])
    y = np.repeat([0, 1], 50)
    order = rng.permutation(100)
    for link in ("gaussian", "linear", "softmax"):
        first = GaussianSoftmaxCalibrator(link=link).fit(s, y)
        second = GaussianSoftmaxCalibrator(link=link).fit(s[order], y[order])
        assert np.isfinite(first.scale_)
        np.testing.assert_allclose(
            first.predict_proba(s), second.predict_proba(s), rtol=1e-6
        )


# --------------------------------------------------------------------------------------
# Labels, shapes, dtypes, persistence


def test_string_labels_and_classes_order(rng):
    z = rng.normal(size=(90, 3))
    labels = np.array(["cat", "dog", "ship"])
    y = labels[np.argmax(z + rng.normal(size=(90, 3)), axis=1)]
    calibrator = GaussianSoftmaxCalibrator().fit(z, y)
    np.testing.assert_array_equal(calibrator.classes_, labels)
    assert set(calibrator.predict(z)) <= set(labels)
    assert calibrator.score(z, y) > 0.5
    assert calibrator.score_range_.shape == (2, 3)
    np.testing.assert_array_equal(calibrator.score_range_, [z.min(0), z.max(0)])
    assert calibrator.n_features_in_ == 3
    assert calibrator.scale_ > 0


def test_binary_score_shapes_agree(rng):
    s = rng.normal(scale=2, size=120)
    y = np.where(s + rng.normal(size=120) > 0, "yes", "no")
    one_d = GaussianSoftmaxCalibrator().fit(s, y)
    column = GaussianSoftmaxCalibrator().fit(s[:, None], y)
    two = GaussianSoftmaxCalibrator().fit(np.column_stack([-s / 2, s / 2]), y)
    expected = one_d.predict_proba(s)
    np.testing.assert_allclose(column.predict_proba(s[:, None]), expected, rtol=1e-9)
    np.testing.assert_allclose(
        two.predict_proba(np.column_stack([-s / 2, s / 2])), expected, rtol=1e-9
    )
    assert one_d.n_features_in_ == 1 and one_d.score_range_.shape == (2, 1)


def test_float32_scores_give_float32_probabilities(rng):
    z = rng.normal(size=(100, 3))
    y = rng.integers(3, size=100)
    calibrator = GaussianSoftmaxCalibrator().fit(z.astype(np.float32), y)
    proba32 = calibrator.predict_proba(z.astype(np.float32))
    assert proba32.dtype == np.float32
    np.testing.assert_allclose(proba32, calibrator.predict_proba(z), rtol=1e-5)


def test_log_proba_is_log_of_proba(rng):
    z = rng.normal(scale=10, size=(100, 4))
    y = rng.integers(4, size=100)
    calibrator = GaussianSoftmaxCalibrator(multiclass="simplex").fit(z, y)
    np.testing.assert_allclose(
        np.exp(calibrator.predict_log_proba(z)), calibrator.predict_proba(z), rtol=1e-12
    )


def test_pickle_round_trip(rng):
    z = rng.normal(size=(100, 3))
    y = rng.integers(3, size=100)
    calibrator = GaussianSoftmaxCalibrator().fit(z, y)
    restored = pickle.loads(pickle.dumps(calibrator))
    np.testing.assert_array_equal(
        restored.predict_proba(z), calibrator.predict_proba(z)
    )


def test_dataframe_scores_keep_feature_names(rng):
    pd = pytest.importorskip("pandas")
    z = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    y = rng.integers(3, size=60)
    calibrator = GaussianSoftmaxCalibrator().fit(z, y)
    np.testing.assert_array_equal(calibrator.feature_names_in_, ["a", "b", "c"])
    with pytest.warns(UserWarning, match="feature names"):
        calibrator.predict_proba(z.to_numpy())


@pytest.mark.parametrize(
    "params, scores, y, match",
    [
        ({}, np.zeros((4, 3)), [0, 1, 0, 1], "3 column\\(s\\) but y has 2 classes"),
        ({}, np.zeros(4), [0, 1, 2, 0], "1 column\\(s\\) but y has 3 classes"),
        ({}, np.zeros(4), [1, 1, 1, 1], "one class only"),
        ({}, np.zeros(3), [0, 1], "different lengths"),
        ({}, [0.0, np.nan, 1.0], [0, 1, 1], "NaN"),
        ({}, [0.0, 1.0], None, "requires y to be passed"),
        ({"n_samples": 1}, [0.0, 1.0], [0, 1], "n_samples"),
        ({"n_samples": 2.5}, [0.0, 1.0], [0, 1], "n_samples"),
        ({"link": "probit"}, [0.0, 1.0], [0, 1], "link"),
        ({"multiclass": "ovr"}, [0.0, 1.0], [0, 1], "multiclass"),
        ({"link": "linear", "n_samples": 2}, np.zeros((3, 3)), [0, 1, 2], "n >= K = 3"),
    ],
)
def test_bad_fit_input(params, scores, y, match):
    with pytest.raises(ValueError, match=match):
        GaussianSoftmaxCalibrator(**params).fit(scores, y)


@pytest.mark.parametrize(
    "weights, match",
    [
        ([1.0, -1.0, 1.0, 1.0], "non-negative|negative"),
        ([0.0, 0.0, 0.0, 0.0], "zero"),
        ([0.5, 0.5, 0.2, 0.2], "sum of sample_weight"),
        ([1.0, np.nan, 1.0, 1.0], "NaN"),
    ],
)
def test_bad_sample_weight(weights, match):
    with pytest.raises(ValueError, match=match):
        GaussianSoftmaxCalibrator().fit(
            [0.0, 1.0, -1.0, 2.0], [0, 1, 0, 1], sample_weight=weights
        )


def test_bad_predict_input(rng):
    calibrator = GaussianSoftmaxCalibrator().fit(
        rng.normal(size=(30, 3)), rng.integers(3, size=30)
    )
    with pytest.raises(ValueError, match="Reshape your data"):
        calibrator.predict_proba(np.zeros(5))
    with pytest.raises(ValueError, match="4 features"):
        calibrator.predict_proba(np.zeros((5, 4)))
    with pytest.raises(ValueError, match="NaN"):
        calibrator.predict_proba([[0.0, np.nan, 1.0]])
    with pytest.raises(TypeError, match="sparse"):
        from scipy.sparse import csr_matrix

        calibrator.predict_proba(csr_matrix(np.eye(3)))


def test_degenerate_tied_scores_give_sound_probabilities():
    """Rows of exact ties put vs_top on its kinks, where L-BFGS may stop short:
    it may say so with a ConvergenceWarning, and the probabilities stay sound."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    z = np.ones((10, 4))
    z[[0, 3], 0] = 0.0
    y = np.array([0, 1, 2, 3, 0, 0, 0, 0, 0, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        warnings.filterwarnings("ignore", "no confidence threshold reaches")
        calibrator = GaussianSoftmaxCalibrator().fit(z, y)
        proba = calibrator.predict_proba(z)
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1.0)
    assert proba.min() >= 1 / (3 * 9 + 1) * (1 - 1e-9)
    # class 0 holds 7 of the 10 labels: the fit must see that
    assert proba[:, 0].mean() > 0.4


def test_sparse_scores_name_the_fix():
    from scipy.sparse import csr_matrix

    with pytest.raises(TypeError) as info:
        GaussianSoftmaxCalibrator().fit(csr_matrix(np.eye(4)), [0, 1, 2, 3])
    assert str(info.value) == (
        "sparse scores are not supported: decision scores are dense; pass a dense "
        "array (e.g. scores.toarray())."
    )


def _total_log_likelihood(model, z, y):
    proba = model.predict_proba(z)
    return float(np.sum(np.log(proba[np.arange(len(y)), y])))


@pytest.mark.parametrize("class_bias", [0.0, 1.5])
def test_auto_offsets_follow_akaikes_criterion(class_bias):
    """``fit_intercept="auto"`` with three or more classes is the fit with
    offsets where they raise the log-likelihood by more than one nat each,
    else the scale-only fit: recomputed here from the two explicit fits.
    Scores without a class bias give offsets that only fit noise (dropped);
    a bias of 1.5 logits on one class pays (kept)."""
    rng = np.random.default_rng(7)
    k, m = 6, 500
    y = rng.integers(0, k, m)
    z = rng.normal(size=(m, k)) + 2.0 * np.eye(k)[y]
    z[:, 0] -= class_bias  # class 0 under-scored by the model
    spec = {"score_map": "affine", "fit_ceiling": False, "uncertainty_rules": ()}
    auto = GaussianSoftmaxCalibrator(**spec).fit(z, y)
    with_offsets = GaussianSoftmaxCalibrator(fit_intercept=True, **spec).fit(z, y)
    scale_only = GaussianSoftmaxCalibrator(fit_intercept=False, **spec).fit(z, y)
    gain = _total_log_likelihood(with_offsets, z, y) - _total_log_likelihood(
        scale_only, z, y
    )
    expected = with_offsets if gain > k - 1 else scale_only
    assert (gain > k - 1) == (class_bias > 0)
    np.testing.assert_allclose(
        auto.predict_proba(z), expected.predict_proba(z), rtol=1e-6, atol=1e-9
    )
    if expected is scale_only:
        assert np.all(auto.intercept_ == 0.0)


def test_auto_offsets_always_kept_for_binary_margins():
    """Two classes keep Platt's intercept under ``"auto"``: the fit equals
    ``fit_intercept=True``'s even where the offset is tiny."""
    rng = np.random.default_rng(8)
    s = rng.normal(size=400) * 2
    y = (s + rng.normal(size=400) > 0).astype(int)
    auto = GaussianSoftmaxCalibrator(uncertainty_rules=()).fit(s, y)
    explicit = GaussianSoftmaxCalibrator(fit_intercept=True, uncertainty_rules=()).fit(
        s, y
    )
    np.testing.assert_array_equal(auto.intercept_, explicit.intercept_)

"""A catalogue of bad and extreme input to every public function and estimator.

Each row either raises ``ValueError`` or ``TypeError`` with a message naming the
problem, or (for valid extremes) returns finite probabilities inside the bounds.
"""

import warnings

import numpy as np
import pytest
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression

from sklearn_gsoftmax import (
    GaussianSoftmaxCalibrator,
    GaussianSoftmaxClassifier,
    gaussian_softmax,
    gaussian_softmax_nll_grad,
    linear_softmax,
    linear_softmax_nll_grad,
)
from sklearn_gsoftmax.metrics import (
    calibration_report,
    risk_coverage_auc,
    risk_coverage_curve,
    sample_log_loss,
)

RNG = np.random.default_rng(0)
Z3_64 = RNG.normal(size=(60, 3))
Y3 = np.argmax(3 * Z3_64 + RNG.normal(size=(60, 3)), axis=1)
S1_64 = RNG.normal(scale=2, size=60)
Y2 = (S1_64 + RNG.normal(size=60) > 0).astype(int)
X_64 = RNG.normal(size=(80, 4))
YX = (X_64[:, 0] + 0.5 * RNG.normal(size=80) > 0).astype(int)
# Every case runs on float64 and float32 data: a check skipped for one dtype
# (the NaN check of float32 scores, issue 15) is then caught.
DTYPES = [np.float64, np.float32]


def with_nan(a, where=(0, 1)):
    """``a`` with a NaN, keeping a float dtype (float32 stays float32)."""
    a = np.array(a)
    a = a.astype(a.dtype if a.dtype.kind == "f" else np.float64)
    a[where] = np.nan
    return a


def valid(n, k=3):
    """A valid extreme: finite probabilities within about [1/((k-1)(n-1)+1), 1]."""
    return ("valid", n, k)


def raises(error, match):
    return ("raises", error, match)


OBJECT_NUMBERS = np.array([[1, 2.5, -3], [0, 1, 2]], dtype=object)
FLOAT16 = Z3_64.astype(np.float16)
INTS = np.round(Z3_64).astype(int)
EXTREME_64 = np.array([[1e308, -1e308, 0.0], [np.inf, 0.0, -np.inf], [-np.inf] * 3])


def make_cases(dtype):
    """The catalogue, with its float data (scores, features, weights) in ``dtype``."""
    Z3, S1, X = (a.astype(dtype) for a in (Z3_64, S1_64, X_64))
    with np.errstate(over="ignore"):
        # 1e308 overflows float32 to inf: still a valid extreme
        EXTREME = EXTREME_64.astype(dtype)
    ones = np.ones(60, dtype=dtype)

    def calibrator(**params):
        return GaussianSoftmaxCalibrator(**params).fit(Z3, Y3)

    def classifier(**params):
        return GaussianSoftmaxClassifier(LogisticRegression(), cv=3, **params).fit(
            X, YX
        )

    return {
        # ---- the links --------------------------------------------------------------
        "link NaN score": (
            lambda: gaussian_softmax(with_nan(Z3), 10),
            raises(ValueError, "NaN"),
        ),
        "link None score": (
            lambda: gaussian_softmax([[0.0, None]], 10),
            raises(TypeError, "contain None"),
        ),
        "link string score": (
            lambda: linear_softmax([["a", 1.0]], 10),
            raises(TypeError, "must hold numbers"),
        ),
        "link empty": (lambda: gaussian_softmax([], 10), raises(ValueError, "empty")),
        "link empty rows": (
            lambda: gaussian_softmax(np.zeros((0, 3)), 10),
            raises(ValueError, "empty"),
        ),
        "link 3-D": (
            lambda: gaussian_softmax(np.zeros((2, 2, 2)), 10),
            raises(ValueError, "3 dimensions"),
        ),
        "link n=0": (lambda: gaussian_softmax(Z3, 0), raises(ValueError, "at least 2")),
        "link n=1": (lambda: gaussian_softmax(Z3, 1), raises(ValueError, "at least 2")),
        "link n<0": (lambda: linear_softmax(Z3, -4), raises(ValueError, "at least 3")),
        "link n float": (
            lambda: gaussian_softmax(Z3, 10.0),
            raises(ValueError, "integer"),
        ),
        "link n bool": (
            lambda: gaussian_softmax(Z3, True),
            raises(ValueError, "integer"),
        ),
        "link n beyond int64": (lambda: gaussian_softmax(Z3, 2**70), valid(2**70)),
        "link n beyond float": (
            lambda: gaussian_softmax(Z3, 10**400),
            raises(ValueError, "too large"),
        ),
        "link linear n<K": (
            lambda: linear_softmax(Z3, 2),
            raises(ValueError, "n >= K = 3"),
        ),
        "link +-1e308 and inf": (lambda: gaussian_softmax(EXTREME, 50), valid(50)),
        "link simplex extremes": (
            lambda: gaussian_softmax(EXTREME, 50, multiclass="simplex"),
            valid(50),
        ),
        "link linear extremes": (lambda: linear_softmax(EXTREME, 50), valid(50)),
        "link float16": (lambda: gaussian_softmax(FLOAT16, 50), valid(50)),
        "link int": (lambda: linear_softmax(INTS, 50), valid(50)),
        "link object numbers": (
            lambda: gaussian_softmax(OBJECT_NUMBERS, 50),
            valid(50),
        ),
        "grad mismatched lengths": (
            lambda: gaussian_softmax_nll_grad(Z3, Y3[:10], 50),
            raises(ValueError, "60 class indices"),
        ),
        "grad label out of range": (
            lambda: linear_softmax_nll_grad(Z3, Y3 + 1, 50),
            raises(ValueError, r"\[0, 3\)"),
        ),
        # ---- the calibrator ---------------------------------------------------------
        "calibrator NaN score": (
            lambda: GaussianSoftmaxCalibrator().fit(with_nan(Z3), Y3),
            raises(ValueError, "NaN"),
        ),
        "calibrator None score": (
            lambda: GaussianSoftmaxCalibrator().fit([0.0, None, 1.0], [0, 1, 1]),
            raises(TypeError, "contain None"),
        ),
        "calibrator string score": (
            lambda: GaussianSoftmaxCalibrator().fit([["a", "b"], ["c", "d"]], [0, 1]),
            raises(ValueError, "could not convert string"),
        ),
        "calibrator empty": (
            lambda: GaussianSoftmaxCalibrator().fit(np.zeros((0, 3)), []),
            raises(ValueError, "0 sample"),
        ),
        "calibrator 3-D": (
            lambda: GaussianSoftmaxCalibrator().fit(np.zeros((4, 3, 2)), [0, 1, 2, 0]),
            raises(ValueError, "dim 3"),
        ),
        "calibrator wrong column count": (
            lambda: GaussianSoftmaxCalibrator().fit(Z3[:, :2].repeat(2, axis=1), Y3),
            raises(ValueError, "4 column"),
        ),
        "calibrator mismatched lengths": (
            lambda: GaussianSoftmaxCalibrator().fit(Z3, Y3[:-1]),
            raises(ValueError, "different lengths"),
        ),
        "calibrator n_samples=0": (
            lambda: calibrator(n_samples=0),
            raises(ValueError, "n_samples"),
        ),
        "calibrator n_samples=1": (
            lambda: calibrator(n_samples=1),
            raises(ValueError, "n_samples"),
        ),
        "calibrator n_samples<0": (
            lambda: calibrator(n_samples=-3),
            raises(ValueError, "n_samples"),
        ),
        "calibrator n_samples float": (
            lambda: calibrator(n_samples=100.0),
            raises(ValueError, "n_samples"),
        ),
        "calibrator n_samples bool": (
            lambda: calibrator(n_samples=True),
            raises(ValueError, "n_samples"),
        ),
        "calibrator n_samples beyond int64": (
            lambda: calibrator(n_samples=2**70).predict_proba(EXTREME),
            valid(2**70),
        ),
        "calibrator single class": (
            lambda: GaussianSoftmaxCalibrator().fit(S1, np.ones(60)),
            raises(ValueError, "one class only"),
        ),
        "calibrator negative weight": (
            lambda: GaussianSoftmaxCalibrator().fit(S1, Y2, sample_weight=-ones),
            raises(ValueError, "negative"),
        ),
        "calibrator NaN weight": (
            lambda: GaussianSoftmaxCalibrator().fit(
                S1, Y2, sample_weight=with_nan(ones, 3)
            ),
            raises(ValueError, "NaN"),
        ),
        "calibrator zero weights": (
            lambda: GaussianSoftmaxCalibrator().fit(S1, Y2, sample_weight=0 * ones),
            raises(ValueError, "zero"),
        ),
        "calibrator predict wrong columns": (
            lambda: calibrator().predict_proba(np.zeros((3, 4))),
            raises(ValueError, "4 features"),
        ),
        "calibrator predict NaN": (
            lambda: calibrator().predict_proba(with_nan(Z3)),
            raises(ValueError, "NaN"),
        ),
        "calibrator predict extremes": (
            lambda: calibrator().predict_proba(EXTREME),
            valid(60),
        ),
        "calibrator float16": (
            lambda: GaussianSoftmaxCalibrator().fit(FLOAT16, Y3).predict_proba(FLOAT16),
            valid(60),
        ),
        "calibrator int": (
            lambda: GaussianSoftmaxCalibrator().fit(INTS, Y3).predict_proba(INTS),
            valid(60),
        ),
        "calibrator object numbers": (
            lambda: calibrator().predict_proba(OBJECT_NUMBERS),
            valid(60),
        ),
        "calibrator fit on extreme scores": (
            lambda: (
                GaussianSoftmaxCalibrator()
                .fit(np.append(S1, [1e308, -1e308, np.inf]), np.append(Y2, [1, 0, 1]))
                .predict_proba(S1)
            ),
            valid(63, 2),
        ),
        "calibrator multiclass fit on extreme scores": (
            lambda: (
                GaussianSoftmaxCalibrator()
                .fit(np.vstack([Z3, EXTREME]), np.append(Y3, [0, 0, 1]))
                .predict_proba(Z3)
            ),
            valid(63),
        ),
        "calibrator binary extremes": (
            lambda: (
                GaussianSoftmaxCalibrator()
                .fit(S1, Y2)
                .predict_proba([1e308, -1e308, np.inf, -np.inf])
            ),
            valid(60, 2),
        ),
        # ---- the meta-estimator -----------------------------------------------------
        "classifier NaN feature": (
            lambda: GaussianSoftmaxClassifier(LogisticRegression()).fit(
                with_nan(X), YX
            ),
            raises(ValueError, "NaN"),
        ),
        "classifier empty": (
            lambda: GaussianSoftmaxClassifier(LogisticRegression()).fit(
                np.zeros((0, 4)), []
            ),
            raises(ValueError, "0 sample"),
        ),
        "classifier mismatched lengths": (
            lambda: GaussianSoftmaxClassifier(LogisticRegression()).fit(X, YX[:-3]),
            raises(ValueError, "inconsistent numbers of samples"),
        ),
        "classifier single class": (
            lambda: GaussianSoftmaxClassifier(LogisticRegression()).fit(
                X, np.zeros(80)
            ),
            raises(ValueError, "one class only"),
        ),
        "classifier n_samples=1": (
            lambda: classifier(n_samples=1),
            raises(ValueError, "n_samples"),
        ),
        "classifier negative weight": (
            lambda: GaussianSoftmaxClassifier(LogisticRegression()).fit(
                X, YX, sample_weight=-np.ones(80)
            ),
            raises(ValueError, "negative"),
        ),
        "classifier zero weights": (
            lambda: GaussianSoftmaxClassifier(LogisticRegression()).fit(
                X, YX, sample_weight=np.zeros(80)
            ),
            raises(ValueError, "zero"),
        ),
        "classifier labels unknown to prefit": (
            lambda: GaussianSoftmaxClassifier(
                FrozenEstimator(LogisticRegression().fit(X, YX))
            ).fit(X, YX + 2),
            raises(ValueError, "does not know"),
        ),
        "classifier predict wrong columns": (
            lambda: classifier().predict_proba(X[:, :3]),
            raises(ValueError, "features"),
        ),
        "classifier predict huge features": (
            lambda: classifier().predict_proba(
                np.vstack([X_64 * 1e150, -X_64 * 1e150])
            ),
            valid(80, 2),
        ),
        "classifier bad rule": (
            lambda: classifier(uncertainty_rules=("vibes",)),
            raises(ValueError, "unknown uncertainty rule"),
        ),
        "classifier bad alpha": (
            lambda: classifier().predict_set(X, alpha=1.5),
            raises(ValueError, "alpha must lie in"),
        ),
        # ---- metrics ----------------------------------------------------------------
        "metric labels unseen in fit": (
            lambda: calibration_report(
                YX + 5, classifier().predict_proba(X), labels=[0, 1]
            ),
            raises(ValueError, "not in labels"),
        ),
        "metric NaN probability": (
            lambda: sample_log_loss([0, 1], with_nan([[0.5, 0.5], [0.5, 0.5]])),
            raises(ValueError, "NaN"),
        ),
        "metric probability above 1": (
            lambda: risk_coverage_curve([0, 1], [[1.5, -0.5], [0.5, 0.5]]),
            raises(ValueError, r"\[0, 1\]"),
        ),
        "metric wrong column count": (
            lambda: risk_coverage_auc([0, 1], [[0.2, 0.3, 0.5], [0.5, 0.2, 0.3]]),
            raises(ValueError, "3 columns but there are 2 labels"),
        ),
    }


CASES = {dtype: make_cases(dtype) for dtype in DTYPES}


@pytest.mark.parametrize("dtype", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("case", sorted(CASES[np.float64]))
def test_bad_and_extreme_input(case, dtype):
    call, expectation = CASES[dtype][case]
    if expectation[0] == "raises":
        _, error, match = expectation
        with pytest.raises(error, match=match):
            call()
        return
    _, n, k = expectation
    with warnings.catch_warnings():
        # only our own warnings are checked here; sklearn's may differ by version
        warnings.filterwarnings("error", module="sklearn_gsoftmax")
        warnings.filterwarnings("ignore", "no confidence threshold reaches")
        proba = np.asarray(call())
    assert proba.ndim == 2 and proba.shape[1] == k
    assert np.all(np.isfinite(proba))
    eps = np.finfo(proba.dtype).eps
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e4 * eps)
    floor = 1 / ((k - 1) * (float(n) - 1) + 1)
    assert np.all(proba >= floor * (1 - 1e3 * eps))
    assert np.all(proba <= 1.0)


def test_score_counts_labels_unseen_in_fit_as_errors():
    """As in scikit-learn, accuracy with labels the model never saw counts them
    as wrong (the metrics functions, which need the label's column, raise)."""
    model = GaussianSoftmaxClassifier(LogisticRegression(), cv=3).fit(X_64, YX)
    unseen = np.where(np.arange(80) < 20, 7, YX)
    expected = np.mean(model.predict(X_64) == unseen)
    assert model.score(X_64, unseen) == expected < model.score(X_64, YX)

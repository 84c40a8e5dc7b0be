"""Every public estimator through scikit-learn's estimator checks."""

import re

import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.utils.estimator_checks import (
    estimator_checks_generator,
    parametrize_with_checks,
)

from sklearn_gsoftmax import GaussianSoftmaxCalibrator, GaussianSoftmaxClassifier

# A score calibrator takes one score column per class (or one column of binary
# decision scores). These checks feed feature matrices whose width has nothing to
# do with the number of classes, which the calibrator rejects by design with a
# ValueError naming the mismatch. What they test with valid scores is covered in
# test_calibrator.py (pickling, weights, dtypes, classes, fit returning self).
#
# They are not marked xfail: scikit-learn's marks (1.6 to 1.9) are not strict and
# carry no ``raises=``, so such a check could fail for any other reason, or pass,
# unnoticed. Each runs below and must raise the width error: a check that passes,
# or fails otherwise, fails the test. The value is the exception the check raises:
# the width ValueError itself, or sklearn's AssertionError wrapping it.
WIDTH_ERROR = r"column\(s\) but y has \d+ classes"
CALIBRATOR_EXPECTED_FAILURES = {
    "check_estimators_dtypes": ValueError,
    "check_dtype_object": ValueError,
    "check_estimators_fit_returns_self": ValueError,
    "check_readonly_memmap_input": ValueError,
    "check_pipeline_consistency": ValueError,
    "check_estimators_nan_inf": ValueError,
    "check_estimators_overwrite_params": ValueError,
    "check_estimators_pickle": ValueError,
    "check_classifiers_train": ValueError,
    "check_classifiers_classes": ValueError,
    "check_n_features_in_after_fitting": ValueError,
    # sklearn re-raises the width error as "raised ValueError unexpectedly"
    "check_positive_only_tag_during_fit": AssertionError,
    "check_sample_weight_equivalence_on_dense_data": ValueError,
}
CALIBRATORS = [GaussianSoftmaxCalibrator(), GaussianSoftmaxCalibrator(link="linear")]


def _check_name(check) -> str:
    return getattr(check, "func", check).__name__


def _calibrator_checks() -> list:
    # a list, not a generator: a second collection in the same process (as
    # mutmut runs the suite) would find an exhausted generator and no tests
    return [
        pytest.param(estimator, check, id=f"{estimator!r}-{_check_name(check)}")
        for calibrator in CALIBRATORS
        for estimator, check in estimator_checks_generator(calibrator, mark=None)
    ]


@pytest.mark.parametrize("estimator, check", _calibrator_checks())
def test_sklearn_compatible_calibrator(estimator, check):
    expected = CALIBRATOR_EXPECTED_FAILURES.get(_check_name(check))
    if expected is None:
        check(estimator)
        return
    with pytest.raises(expected) as info:
        check(estimator)
    # the width error itself, or the one sklearn's assertion wraps
    error = info.value
    messages = [str(error), str(error.__cause__), str(error.__context__)]
    assert any(re.search(WIDTH_ERROR, message) for message in messages), messages


# The meta-estimator has no expected failures. Its instances cover a classifier
# with decision_function, ones with predict_proba only (whose log gives -inf
# scores), both ensemble modes and the linear link. The forest is not
# bootstrapped: bootstrap resampling is not equivalent to frequency weights, so
# the forest itself would fail the sample-weight equivalence check.
CLASSIFIERS = [
    # default cv, as a user swapping in for CalibratedClassifierCV writes it
    GaussianSoftmaxClassifier(LogisticRegression()),
    GaussianSoftmaxClassifier(LogisticRegression(), cv=3),
    GaussianSoftmaxClassifier(
        LogisticRegression(), cv=3, ensemble=False, link="linear"
    ),
    GaussianSoftmaxClassifier(GaussianNB(), cv=3),
    GaussianSoftmaxClassifier(
        RandomForestClassifier(n_estimators=10, bootstrap=False, random_state=0), cv=3
    ),
]


@parametrize_with_checks(CLASSIFIERS)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)

"""Every public estimator through scikit-learn's estimator checks."""

from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_gsoftmax import GaussianSoftmaxCalibrator, GaussianSoftmaxClassifier

# A score calibrator takes one score column per class (or one column of binary
# decision scores). These checks feed feature matrices whose width has nothing to
# do with the number of classes, which the calibrator rejects by design with a
# ValueError naming the mismatch. What they test with valid scores is covered in
# test_calibrator.py (pickling, weights, dtypes, classes, fit returning self).
_WIDTH = "feeds a feature matrix whose width is not the number of classes"
CALIBRATOR_EXPECTED_FAILURES = dict.fromkeys(
    [
        "check_estimators_dtypes",
        "check_dtype_object",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_pipeline_consistency",
        "check_estimators_nan_inf",
        "check_estimators_overwrite_params",
        "check_estimators_pickle",
        "check_classifiers_train",
        "check_classifiers_classes",
        "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit",
        "check_sample_weight_equivalence_on_dense_data",
    ],
    _WIDTH,
)


def _expected_failed_checks(estimator):
    if isinstance(estimator, GaussianSoftmaxCalibrator):
        return CALIBRATOR_EXPECTED_FAILURES
    return {}


# The meta-estimator has no expected failures. Its instances cover a classifier
# with decision_function, ones with predict_proba only (whose log gives -inf
# scores), both ensemble modes and the linear link. The forest is not
# bootstrapped: bootstrap resampling is not equivalent to frequency weights, so
# the forest itself would fail the sample-weight equivalence check.
CLASSIFIERS = [
    GaussianSoftmaxClassifier(LogisticRegression(), cv=3),
    GaussianSoftmaxClassifier(
        LogisticRegression(), cv=3, ensemble=False, link="linear"
    ),
    GaussianSoftmaxClassifier(GaussianNB(), cv=3),
    GaussianSoftmaxClassifier(
        RandomForestClassifier(n_estimators=10, bootstrap=False, random_state=0), cv=3
    ),
]


@parametrize_with_checks(
    [
        GaussianSoftmaxCalibrator(),
        GaussianSoftmaxCalibrator(link="linear"),
        *CLASSIFIERS,
    ],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)

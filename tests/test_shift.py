"""shift_report: the checks, their tests, and the verdict on real shifts."""

import numpy as np
import pytest
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_gsoftmax import GaussianSoftmaxCalibrator, GaussianSoftmaxClassifier
from sklearn_gsoftmax._demo import ShiftedSplit
from sklearn_gsoftmax._shift import (
    Batch,
    held_out_summary,
    shift_report,
    summary_parts,
)


@pytest.fixture(scope="module")
def digits_model():
    split = ShiftedSplit("digits", shifted_fraction=0.3, seed=0)
    model = GaussianSoftmaxClassifier(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    ).fit(split.X_train, split.y_train)
    return model, split


def _batches(X, y, n_batches=20, size=200, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n_batches):
        rows = rng.choice(len(y), size, replace=False)
        yield X[rows], y[rows]


@pytest.mark.parametrize("with_labels", [False, True])
def test_in_distribution_batches_are_rarely_called_shifted(digits_model, with_labels):
    model, split = digits_model
    verdicts = [
        model.shift_report(X, y if with_labels else None).attrs["shifted"]
        for X, y in _batches(split.X_test, split.y_test)
    ]
    assert sum(verdicts) <= 1


@pytest.mark.parametrize("with_labels", [False, True])
def test_batches_from_the_shifted_region_are_called_shifted(digits_model, with_labels):
    model, split = digits_model
    verdicts = [
        model.shift_report(X, y if with_labels else None).attrs["shifted"]
        for X, y in _batches(split.X_shifted, split.y_shifted)
    ]
    assert sum(verdicts) >= 19


def test_report_has_one_row_per_check(digits_model):
    model, split = digits_model
    report = model.shift_report(split.X_shifted[:100], split.y_shifted[:100])
    assert list(report.columns) == [
        "observed",
        "expected",
        "p_value",
        "shifted",
        "test",
    ]
    assert list(report.index) == [
        "flag rate: low_confidence",
        "flag rate: novelty",
        "mean top-class probability",
        "accuracy",
        "accuracy of accepted predictions",
        "log-loss",
    ] + [f"class proportion: {label}" for label in model.classes_]
    assert report.attrs["shifted"] == bool(report["shifted"].any())
    unlabelled = model.shift_report(split.X_shifted[:100])
    assert "log-loss" not in unlabelled.index
    # the novelty rule's expected rate is its held-out one: about alpha
    assert report.loc["flag rate: novelty", "expected"] == pytest.approx(0.05, abs=0.01)


def test_checks_use_the_stated_tests_and_bonferroni():
    held_out = Batch(
        {"low_confidence": np.array([False, False, False, True] * 25)},
        confidence=np.array([0.8, 0.9, 1.0, 0.9] * 25),
        accepted=np.array([True, True, True, False] * 25),
        correct=np.array([True, True, False, True] * 25),
        loss=np.array([0.1, 0.2, 0.3, 0.2] * 25),
    )
    summary = held_out_summary(
        {"low_confidence": 0.1}, summary_parts(held_out, np.ones(100))
    )
    assert summary["accepted_accuracy"] == pytest.approx(2 / 3)
    assert summary["accuracy"] == pytest.approx(0.75)
    assert summary["n"] == 100 and summary["n_accepted"] == 75
    rng = np.random.default_rng(0)
    mask = np.zeros(50, bool)
    mask[:12] = True
    correct = np.ones(50, bool)
    correct[:20] = False
    batch = Batch(
        {"low_confidence": mask},
        confidence=rng.uniform(0.8, 1.0, 50),
        accepted=~mask,
        correct=correct,
        loss=rng.uniform(0, 0.5, 50),
    )
    # one model: the batch is its own assigned predictions
    report = shift_report(summary, batch, batch, alpha=0.05)
    # flag rate: 12 of 50 against 10 of the 100 held-out samples
    assert report.loc["flag rate: low_confidence", "p_value"] == pytest.approx(
        stats.fisher_exact([[12, 38], [10, 90]]).pvalue
    )
    # accuracy: 30 of 50 against 75 of 100, one-sided
    assert report.loc["accuracy", "p_value"] == pytest.approx(
        stats.fisher_exact([[30, 20], [75, 25]], alternative="less").pvalue
    )
    # accepted: the 38 unflagged, 30 of them right, against 50 of 75, one-sided
    assert report.loc["accuracy of accepted predictions", "p_value"] == pytest.approx(
        stats.fisher_exact([[30, 8], [50, 25]], alternative="less").pvalue
    )
    mean, std = summary["confidence"]
    se = np.sqrt(batch.confidence.var() / 50 + std**2 / 100)
    z = (batch.confidence.mean() - mean) / se
    assert report.loc["mean top-class probability", "p_value"] == pytest.approx(
        2 * stats.norm.sf(abs(z))
    )
    np.testing.assert_array_equal(report["shifted"], report["p_value"] < 0.05 / 5)
    assert report["test"].to_dict() == {
        "flag rate: low_confidence": "Fisher's exact, two-sided",
        "mean top-class probability": "Welch's z-test, two-sided",
        "accuracy": "Fisher's exact, one-sided (lower)",
        "accuracy of accepted predictions": "Fisher's exact, one-sided (lower)",
        "log-loss": "Welch's z-test, one-sided (higher)",
    }
    # one model: what is expected is the held-out value itself
    np.testing.assert_allclose(
        report["expected"],
        [0.1, mean, 0.75, 2 / 3, summary["loss"][0]],
    )


def test_tests_see_one_model_per_sample_and_expected_follows_the_average():
    """The p-values come from the samples each predicted by one model (the
    assigned batch), the observed column from the average; expected is the
    held-out value moved by their difference."""
    held_out = Batch(
        {"low_confidence": np.zeros(100, bool)},
        confidence=np.full(100, 0.9),
        accepted=np.ones(100, bool),
        correct=np.ones(100, bool),
        loss=np.full(100, 0.1),
    )
    summary = held_out_summary(
        {"low_confidence": 0.0}, summary_parts(held_out, np.ones(100))
    )
    assigned = Batch(
        {"low_confidence": np.zeros(40, bool)},
        confidence=np.full(40, 0.9),
        accepted=np.ones(40, bool),
        correct=np.ones(40, bool),
        loss=np.full(40, 0.1),
    )
    averaged = assigned._replace(confidence=np.full(40, 0.8))
    report = shift_report(summary, averaged, assigned)
    row = report.loc["mean top-class probability"]
    assert row["observed"] == pytest.approx(0.8)
    assert row["expected"] == pytest.approx(0.8)
    assert row["p_value"] == 1.0 and not report.attrs["shifted"]


def test_nothing_accepted_is_a_shift_not_a_nan():
    """Issue 22: when every prediction is flagged the accepted accuracy has
    nothing to average; the row says how unlikely that is, and fires."""
    held_out = Batch(
        {"low_confidence": np.array([False] * 90 + [True] * 10)},
        confidence=np.full(100, 0.9),
        accepted=np.array([True] * 90 + [False] * 10),
        correct=np.ones(100, bool),
        loss=np.full(100, 0.1),
    )
    summary = held_out_summary(
        {"low_confidence": 0.1}, summary_parts(held_out, np.ones(100))
    )
    batch = Batch(
        {"low_confidence": np.ones(30, bool)},
        confidence=np.full(30, 0.5),
        accepted=np.zeros(30, bool),
        correct=np.arange(30) < 9,
        loss=np.full(30, 1.0),
    )
    report = shift_report(summary, batch, batch)
    row = report.loc["accuracy of accepted predictions"]
    assert np.isnan(row["observed"]) and row["expected"] == pytest.approx(1.0)
    assert row["p_value"] == pytest.approx(0.1**30) and row["shifted"]
    assert report.loc["accuracy", "shifted"]


def test_calibrator_reports_shifted_scores():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=2000)
    y = (rng.random(2000) < 1 / (1 + np.exp(-2 * scores))).astype(int)
    calibrator = GaussianSoftmaxCalibrator().fit(scores, y)
    same = rng.normal(size=300)
    assert not calibrator.shift_report(same).attrs["shifted"]
    assert calibrator.shift_report(3 * same).attrs["shifted"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_small_batches_and_bad_labels_are_refused(dtype):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(300, 3)).astype(dtype)
    y = np.arange(300) % 3
    calibrator = GaussianSoftmaxCalibrator().fit(scores, y)
    with pytest.raises(ValueError, match="at least 20 samples"):
        calibrator.shift_report(scores[:19])
    with pytest.raises(ValueError, match="unseen in fit"):
        calibrator.shift_report(scores[:30], np.full(30, 7))
    with pytest.raises(ValueError, match="different lengths"):
        calibrator.shift_report(scores[:30], y[:29])
    with pytest.raises(ValueError, match="alpha"):
        calibrator.shift_report(scores[:30], alpha=2.0)


def test_in_distribution_batches_of_boosted_trees_are_rarely_called_shifted():
    """Issue 22: tested against the averaged ensemble, which is less confident
    than any one fold's pair, 7 of these 10 in-distribution batches of
    gradient-boosted trees were called shifted (the low_confidence rate and
    the mean probability). Each batch sample is now tested as predicted by one
    pair."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = make_classification(
        n_samples=14_000, n_features=20, n_informative=8, n_classes=4, random_state=1
    )
    model = GaussianSoftmaxClassifier(
        HistGradientBoostingClassifier(random_state=0)
    ).fit(X[:2_000], y[:2_000])
    verdicts = [
        model.shift_report(X[start : start + 2_000]).attrs["shifted"]
        for start in range(2_000, 14_000, 2_000)
    ]
    assert sum(verdicts) <= 1

"""The probability metrics: values, and errors that name the problem."""

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss

from sklearn_gsoftmax.metrics import probability_report, sample_log_loss


def test_report_agrees_with_scikit_learn(rng):
    proba = rng.dirichlet([1, 1, 1], size=200)
    y = rng.integers(3, size=200)
    report = probability_report(y, proba)
    assert report["log_loss"] == pytest.approx(log_loss(y, proba))
    assert report["max_log_loss"] == pytest.approx(sample_log_loss(y, proba).max())
    assert report["min_proba"] == proba.min()
    assert report["accuracy"] == np.mean(proba.argmax(1) == y)
    binary = proba[:, :2] / proba[:, :2].sum(1, keepdims=True)
    y2 = y % 2
    # scikit-learn's binary Brier is the squared error of p_1; ours sums both
    # classes, which is twice that
    assert probability_report(y2, binary)["brier"] == pytest.approx(
        2 * brier_score_loss(y2, binary[:, 1])
    )


def test_labels_order_and_unclipped_infinite_loss():
    proba = np.array([[0.0, 1.0], [0.3, 0.7]])
    losses = sample_log_loss(["b", "b"], proba, labels=["a", "b"])
    np.testing.assert_allclose(losses, [0.0, -np.log(0.7)])
    swapped = sample_log_loss(["a", "b"], proba[:, ::-1], labels=["b", "a"])
    assert np.isinf(swapped[0]) and swapped[1] == pytest.approx(-np.log(0.7))


@pytest.mark.parametrize(
    "y, proba, labels, match",
    [
        ([0, 1], [[0.5, 0.5]], None, "inconsistent numbers of samples"),
        ([0, 1], [[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]], None, "3 columns but there are 2"),
        ([0, 5], [[0.5, 0.5], [0.5, 0.5]], [0, 1], r"labels \[5\]"),
        ([0, 1], [[1.5, -0.5], [0.5, 0.5]], None, r"probabilities in \[0, 1\]"),
        ([0, 1], [[np.nan, 0.5], [0.5, 0.5]], None, "NaN"),
    ],
)
def test_bad_input(y, proba, labels, match):
    with pytest.raises(ValueError, match=match):
        probability_report(y, proba, labels=labels)

"""The probability metrics: values worked out by hand, agreement with
scikit-learn, invariances, and errors that name the problem."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_gsoftmax.metrics import (
    calibration_report,
    expected_calibration_error,
    probability_report,
    risk_coverage_curve,
    sample_log_loss,
)

# Three samples, three classes: top-class probabilities 0.6 (right), 0.7
# (wrong) and 0.4 (right).
Y3 = np.array([0, 2, 2])
P3 = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])


@pytest.mark.parametrize(
    "options, expected",
    [
        # bins (0, .5] and (.5, 1]: {0.4, right} gap .6 on 1/3 of the samples,
        # {0.6 right, 0.7 wrong} mean .65 against accuracy .5 on 2/3
        ({"n_bins": 2}, 0.6 / 3 + 0.15 * 2 / 3),
        ({"n_bins": 2, "norm": "l2"}, np.sqrt(0.36 / 3 + 0.0225 * 2 / 3)),
        ({"n_bins": 2, "norm": "max"}, 0.6),
        # quantile edges (0, .4], (.4, .6], (.6, 1]: one sample per bin
        ({"n_bins": 3, "strategy": "quantile"}, (0.6 + 0.4 + 0.7) / 3),
        # one bin: mean confidence 17/30 against accuracy 2/3
        ({"n_bins": 1}, 2 / 3 - 1.7 / 3),
    ],
)
def test_top_label_ece_by_hand(options, expected):
    ece = expected_calibration_error(Y3, P3, labels=[0, 1, 2], **options)
    assert ece == pytest.approx(expected)


@pytest.mark.parametrize(
    "norm, expected",
    [
        # class 1 (probabilities .1 .3 | .6 .8, outcomes 0 0 | 1 1): gaps .2
        # and .3 on half the samples each; class 0 mirrors it (.3 and .2)
        ("l1", 0.25),
        ("l2", np.sqrt(0.5 * 0.04 + 0.5 * 0.09)),
        ("max", 0.3),
    ],
)
def test_classwise_ece_by_hand(norm, expected):
    y, p1 = [0, 0, 1, 1], [0.1, 0.3, 0.6, 0.8]
    ece = expected_calibration_error(y, p1, n_bins=2, kind="classwise", norm=norm)
    assert ece == pytest.approx(expected)


def test_classwise_ece_averages_classes_by_hand():
    # class 0: .2 .3 never true | .6 true: bins (0,.5] gap .25 on 2/3,
    # (.5,1] gap .4 on 1/3 -> .3; class 1, never true: .3 .3 | .7: gap .3 on
    # 2/3, .7 on 1/3 -> 1.3/3; class 2: .1 .1 .4, true twice: one bin, mean
    # .2 against 2/3 -> 1.4/3
    expected = (0.3 + 1.3 / 3 + 1.4 / 3) / 3
    ece = expected_calibration_error(
        Y3, P3, n_bins=2, kind="classwise", labels=[0, 1, 2]
    )
    assert ece == pytest.approx(expected)


@pytest.mark.parametrize("n_bins", [1, 5, 10])
def test_binary_classwise_ece_agrees_with_calibration_curve(rng, n_bins):
    p1 = rng.beta(0.5, 0.5, size=500)
    y = (rng.random(500) < p1**1.5).astype(int)
    prob_true, prob_pred = calibration_curve(y, p1, n_bins=n_bins)
    edges = np.linspace(0, 1, n_bins + 1)
    counts = np.histogram(p1, edges)[0]
    share = counts[counts > 0] / len(y)
    gaps = np.abs(prob_true - prob_pred)
    ece = expected_calibration_error
    assert ece(y, p1, n_bins=n_bins, kind="classwise") == pytest.approx(share @ gaps)
    assert ece(y, p1, n_bins=n_bins, kind="classwise", norm="max") == pytest.approx(
        gaps.max()
    )


@pytest.mark.parametrize("kind", ["top_label", "classwise"])
@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_ece_invariant_to_sample_order_and_class_names(rng, kind, strategy, norm):
    proba = rng.dirichlet([0.3, 0.3, 0.3], size=300)
    y = np.where(rng.random(300) < 0.7, proba.argmax(1), rng.integers(3, size=300))
    options = {"kind": kind, "strategy": strategy, "norm": norm, "n_bins": 7}
    reference = expected_calibration_error(y, proba, **options)
    order = rng.permutation(300)
    assert expected_calibration_error(
        y[order], proba[order], **options
    ) == pytest.approx(reference)
    # rename the classes and put the columns in another order
    names = np.array(["cat", "ant", "bee"])
    columns = [2, 0, 1]
    relabelled = expected_calibration_error(
        names[y], proba[:, columns], labels=names[columns], **options
    )
    assert relabelled == pytest.approx(reference)


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_integer_weights_count_like_repeated_samples(rng, strategy):
    proba = rng.dirichlet([1, 1, 1], size=60)
    y = rng.integers(3, size=60)
    weights = rng.integers(0, 4, size=60)
    repeated = np.repeat(np.arange(60), weights)
    options = {"strategy": strategy, "n_bins": 5}
    for kind in ("top_label", "classwise"):
        weighted = expected_calibration_error(
            y, proba, sample_weight=weights, kind=kind, **options
        )
        plain = expected_calibration_error(
            y[repeated], proba[repeated], kind=kind, labels=[0, 1, 2], **options
        )
        assert weighted == pytest.approx(plain)
    report = calibration_report(y, proba, sample_weight=weights, **options)
    expected = calibration_report(y[repeated], proba[repeated], **options)
    assert report == pytest.approx(expected)


@given(
    st.lists(st.floats(0, 1), min_size=1, max_size=40),
    st.integers(1, 20),
    st.sampled_from(["uniform", "quantile"]),
)
def test_norms_are_ordered_and_bounded(p1, n_bins, strategy):
    p1 = np.array(p1)
    y = (np.arange(len(p1)) % 3 == 0).astype(int)
    values = [
        expected_calibration_error(
            y, p1, n_bins=n_bins, strategy=strategy, norm=norm, labels=[0, 1]
        )
        for norm in ("l1", "l2", "max")
    ]
    # a weighted mean of the gaps is at most their root mean square, which is
    # at most their maximum
    assert 0 <= values[0] <= values[1] + 1e-12
    assert values[1] <= values[2] + 1e-12 <= 1 + 1e-12


def test_report_agrees_with_scikit_learn(rng):
    proba = rng.dirichlet([1, 1, 1], size=200)
    y = rng.integers(3, size=200)
    report = calibration_report(y, proba)
    assert report["log_loss"] == pytest.approx(log_loss(y, proba))
    onehot = np.eye(3)[y]
    assert report["brier"] == pytest.approx(np.mean(np.sum((proba - onehot) ** 2, 1)))
    assert report["max_log_loss"] == pytest.approx(sample_log_loss(y, proba).max())
    assert report["min_proba"] == proba.min()
    assert report["accuracy"] == np.mean(proba.argmax(1) == y)
    assert report["ece"] == expected_calibration_error(y, proba)
    binary = proba[:, :2] / proba[:, :2].sum(1, keepdims=True)
    y2 = y % 2
    # scikit-learn's binary Brier is the squared error of p_1; ours sums both
    # classes, which is twice that
    assert calibration_report(y2, binary)["brier"] == pytest.approx(
        2 * brier_score_loss(y2, binary[:, 1])
    )


def test_report_of_several_models_by_hand():
    y = ["no", "yes", "yes"]
    models = {"sure": [0.0001, 0.9, 0.0005], "unsure": [0.4, 0.6, 0.6]}
    table = calibration_report(y, models)
    assert isinstance(table, pd.DataFrame)
    assert list(table.index) == ["sure", "unsure"]
    # true-class probabilities .9999, .9 and .0005: one confident error
    assert table.loc["sure", "confident_errors"] == pytest.approx(1 / 3)
    assert table.loc["sure", "max_log_loss"] == pytest.approx(-np.log(0.0005))
    assert table.loc["sure", "min_proba"] == 0.0001
    assert table.loc["sure", "accuracy"] == pytest.approx(2 / 3)
    assert table.loc["unsure", "confident_errors"] == 0.0
    assert table.loc["unsure", "brier"] == pytest.approx(2 * (0.16 + 0.16 + 0.16) / 3)
    single = calibration_report(y, models["unsure"])
    assert single == pytest.approx(table.loc["unsure"].to_dict())


def test_confident_errors_are_ones_a_bounded_model_can_make():
    """Issue 22: a wrong prediction at 0.96 is a confident error whatever the
    smallest probability the model can give; the old count (true class below
    1e-3) is out of reach of a model bounded at 1/n with n < 1 000."""
    y = [0, 0, 1, 1]
    bounded = [0.004, 0.96, 0.96, 0.5]  # the second sample wrong at 0.96
    report = calibration_report(y, bounded)
    assert report["confident_errors"] == pytest.approx(1 / 4)
    assert calibration_report(y, bounded, confident_above=0.97)[
        "confident_errors"
    ] == pytest.approx(0.0)
    with pytest.warns(FutureWarning, match="confident_below is deprecated"):
        old = calibration_report(y, bounded, confident_below=1e-3)
    assert old["confident_errors"] == 0.0


def test_binary_as_one_column_or_two(rng):
    p1 = rng.random(50)
    y = rng.integers(2, size=50)
    two = np.column_stack([1 - p1, p1])
    assert calibration_report(y, p1) == pytest.approx(calibration_report(y, two))
    np.testing.assert_allclose(sample_log_loss(y, p1), sample_log_loss(y, two))


def test_probability_report_is_deprecated(rng):
    proba = rng.dirichlet([1, 1], size=20)
    y = rng.integers(2, size=20)
    with pytest.warns(FutureWarning, match="use calibration_report"):
        old = probability_report(y, proba)
    new = calibration_report(y, proba)
    assert old == {key: new[key] for key in old}


def test_labels_order_and_unclipped_infinite_loss():
    proba = np.array([[0.0, 1.0], [0.3, 0.7]])
    losses = sample_log_loss(["b", "b"], proba, labels=["a", "b"])
    np.testing.assert_allclose(losses, [0.0, -np.log(0.7)])
    swapped = sample_log_loss(["a", "b"], proba[:, ::-1], labels=["b", "a"])
    assert np.isinf(swapped[0]) and swapped[1] == pytest.approx(-np.log(0.7))
    report = calibration_report(["a", "b"], proba[:, ::-1], labels=["b", "a"])
    assert np.isinf(report["max_log_loss"]) and report["confident_errors"] == 0.5


@pytest.mark.parametrize(
    "y, proba, labels, match",
    [
        ([0, 1], [[0.5, 0.5]], None, "inconsistent numbers of samples"),
        ([0, 1], [[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]], None, "3 columns but there are 2"),
        ([0, 5], [[0.5, 0.5], [0.5, 0.5]], [0, 1], r"labels \[5\]"),
        ([0, 1], [[1.5, -0.5], [0.5, 0.5]], None, r"probabilities in \[0, 1\]"),
        ([0, 1], [[np.nan, 0.5], [0.5, 0.5]], None, "NaN"),
        ([0, 1, 2], [0.5, 0.5, 0.5], None, "1-D y_prob .* pass labels="),
        ([1, 1], [0.5, 0.5], None, "1-D y_prob .* 1 labels"),
    ],
)
@pytest.mark.parametrize("metric", [calibration_report, expected_calibration_error])
def test_bad_input(metric, y, proba, labels, match):
    with pytest.raises(ValueError, match=match):
        metric(y, proba, labels=labels)


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"n_bins": 0}, InvalidParameterError, "n_bins"),
        ({"strategy": "width"}, InvalidParameterError, "strategy"),
        ({"kind": "toplabel"}, InvalidParameterError, "kind"),
        ({"norm": "l3"}, InvalidParameterError, "norm"),
        ({"sample_weight": [1, -1]}, ValueError, "non-negative"),
        ({"sample_weight": [0, 0]}, ValueError, "positive sum"),
        ({"sample_weight": [1, 1, 1]}, ValueError, r"one weight per sample"),
    ],
)
def test_bad_options(options, error, match):
    with pytest.raises(error, match=match):
        expected_calibration_error([0, 1], [0.2, 0.7], **options)


@pytest.mark.parametrize(
    "norm, combine",
    [
        ("l1", np.mean),
        ("l2", lambda e: np.sqrt(np.mean(np.square(e)))),
        ("max", np.max),
    ],
)
def test_classwise_error_combines_the_classes_in_its_norm(norm, combine):
    """Class-wise: each class's one-vs-rest error, combined over the classes
    in the same norm (here the three classes' errors all differ)."""
    rng = np.random.default_rng(0)
    proba = rng.dirichlet([1, 1, 1], size=300)
    y = rng.integers(3, size=300)
    per_class = [
        expected_calibration_error(
            (y == k).astype(int),
            np.column_stack([1 - proba[:, k], proba[:, k]]),
            kind="classwise",
            norm=norm,
        )
        for k in range(3)
    ]
    assert len(set(per_class)) == 3
    combined = expected_calibration_error(y, proba, kind="classwise", norm=norm)
    assert combined == pytest.approx(combine(per_class))


def test_equal_infinite_margins_are_one_tie():
    """Saturated predictions whose calibrated margins are both infinite tie
    (equal values are equal, infinite ones too): they are accepted together,
    one point of the curve, and the finite margin after them."""
    y_prob = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    coverage, accuracy, thresholds = risk_coverage_curve(
        [0, 1, 0, 1], y_prob, margin=[np.inf, np.inf, 5.0, np.inf]
    )
    np.testing.assert_allclose(coverage, [0.75, 1.0])
    np.testing.assert_allclose(accuracy, [2 / 3, 0.75])
    np.testing.assert_array_equal(thresholds, [1.0, 1.0])

"""The displays draw the data they should: line arrays, bands, markers."""

import subprocess
import sys

import numpy as np
import pytest
from scipy.special import expit
from sklearn.calibration import calibration_curve
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_gsoftmax import GaussianSoftmaxClassifier, gaussian_softmax
from sklearn_gsoftmax.plotting import (
    LinkDisplay,
    ReliabilityDisplay,
    RiskCoverageDisplay,
)

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
plt = pytest.importorskip("matplotlib.pyplot")

Y3 = np.array([0, 2, 2])
P3 = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(
        n_samples=240, n_classes=3, n_informative=4, random_state=0
    )
    return X[:150], y[:150], X[150:], y[150:]


def span_x(patch):
    """The x-extent of an axvspan patch in data coordinates (a Polygon before
    matplotlib 3.9, a Rectangle since)."""
    x = patch.get_patch_transform().transform(patch.get_path().vertices)[:, 0]
    return x.min(), x.max()


def test_top_label_diagram_by_hand():
    display = ReliabilityDisplay.from_predictions(Y3, P3, labels=[0, 1, 2], n_bins=2)
    # bins (0, .5]: {.4, right}; (.5, 1]: {.6 right, .7 wrong}
    np.testing.assert_allclose(display.line_.get_xdata(), [0.4, 0.65])
    np.testing.assert_allclose(display.line_.get_ydata(), [1.0, 0.5])
    values, edges = display.hist_.get_data()[:2]
    np.testing.assert_allclose(values, [1, 2])
    np.testing.assert_allclose(edges, [0, 0.5, 1])
    assert display.hist_ax_ is not display.ax_
    assert display.ax_.get_ylabel() == "accuracy"
    assert display.bounds_band_ == []


def test_classwise_diagram_agrees_with_calibration_curve(rng):
    p1 = rng.random(400)
    y = np.where(rng.random(400) < p1**2, "yes", "no")
    prob_true, prob_pred = calibration_curve(y, p1, n_bins=8, pos_label="yes")
    display = ReliabilityDisplay.from_predictions(
        y, np.column_stack([1 - p1, p1]), kind="classwise", n_bins=8
    )
    assert display.pos_label == "yes"
    np.testing.assert_allclose(display.line_.get_xdata(), prob_pred)
    np.testing.assert_allclose(display.line_.get_ydata(), prob_true)
    # the other class, from 1-D probabilities
    other = ReliabilityDisplay.from_predictions(
        y, p1, kind="classwise", pos_label="no", n_bins=8
    )
    np.testing.assert_allclose(other.line_.get_xdata(), 1 - prob_pred[::-1])


@pytest.mark.parametrize("link", ["gaussian", "linear"])
def test_band_marks_the_fitted_bounds(data, link):
    X, y, X_test, y_test = data
    model = GaussianSoftmaxClassifier(
        LogisticRegression(max_iter=1000), link=link, cv=3
    ).fit(X, y)
    n = model.n_samples_
    assert n == 150
    display = ReliabilityDisplay.from_estimator(model, X_test, y_test)
    expected = {
        # the spec's bounds for three classes
        "gaussian": (1 / (2 * (n - 1) + 1), (n - 1) / (n + 1)),
        "linear": (1 / n, 1 - 2 / n),
    }[link]
    assert display.bounds == pytest.approx(expected)
    low, high = display.bounds_band_
    assert span_x(low) == pytest.approx((0, expected[0]))
    assert span_x(high) == pytest.approx((expected[1], 1))
    assert display.line_.get_label() == "GaussianSoftmaxClassifier"


def test_no_band_for_softmax_and_plain_classifiers(data):
    X, y, X_test, y_test = data
    pipe = make_pipeline(
        StandardScaler(),
        GaussianSoftmaxClassifier(LogisticRegression(), link="softmax", cv=3),
    ).fit(X, y)
    assert ReliabilityDisplay.from_estimator(pipe, X_test, y_test).bounds is None
    plain = LogisticRegression(max_iter=1000).fit(X, y)
    display = ReliabilityDisplay.from_estimator(plain, X_test, y_test, name="lr")
    assert display.bounds is None and display.line_.get_label() == "lr"


def test_several_diagrams_on_one_axes(rng):
    y = rng.integers(3, size=100)
    first = ReliabilityDisplay.from_predictions(
        y, rng.dirichlet([1, 1, 1], size=100), name="a"
    )
    second = ReliabilityDisplay.from_predictions(
        y,
        rng.dirichlet([2, 2, 2], size=100),
        name="b",
        ax=first.ax_,
        hist_ax=first.hist_ax_,
    )
    assert second.ax_ is first.ax_ and second.figure_ is first.figure_
    labels = [line.get_label() for line in first.ax_.get_lines()]
    assert labels == ["perfectly calibrated", "a", "b"]
    assert len(first.hist_ax_.patches) == 2


def test_diagram_bad_input():
    with pytest.raises(ValueError, match="pos_label='c' is not one of the labels"):
        ReliabilityDisplay.from_predictions(
            ["a", "b"], [0.2, 0.6], kind="classwise", pos_label="c"
        )
    with pytest.raises(ValueError, match='pass kind="classwise"'):
        ReliabilityDisplay.from_predictions(["a", "b"], [0.2, 0.6], pos_label="a")


def test_risk_coverage_curve_and_threshold_by_hand():
    y = [0, 1, 1, 0]
    proba = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]]
    display = RiskCoverageDisplay.from_predictions(y, proba, threshold=0.6, name="m")
    np.testing.assert_allclose(display.line_.get_xdata(), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(display.line_.get_ydata(), [1, 1, 1, 2 / 3, 0.5])
    # confidences .9 .8 .6 .55: threshold .6 accepts three of four
    assert display.threshold_coverage_ == 0.75
    np.testing.assert_allclose(display.threshold_line_.get_xdata(), [0.75, 0.75])
    assert display.line_.get_label() == "m (area 0.792)"
    risk = RiskCoverageDisplay.from_predictions(y, proba, risk=True)
    np.testing.assert_allclose(risk.line_.get_ydata(), [0, 0, 0, 1 / 3, 0.5])
    assert risk.threshold_line_ is None


def test_risk_coverage_marks_the_fitted_threshold(data):
    X, y, X_test, y_test = data
    model = GaussianSoftmaxClassifier(
        LogisticRegression(max_iter=1000),
        cv=3,
        uncertainty_rules=("low_confidence",),
        target_accuracy=0.8,
    ).fit(X, y)
    display = RiskCoverageDisplay.from_estimator(model, X_test, y_test)
    assert display.threshold == model.uncertainty_threshold_
    # the low_confidence rule accepts what the marked coverage accepts
    accepted = 1 - model.predict_uncertain(X_test).mean()
    assert display.threshold_coverage_ == pytest.approx(accepted)
    assert display.threshold_line_.get_xdata()[0] == pytest.approx(accepted)


def test_link_figures_plot_the_links():
    display = LinkDisplay.from_links(10**6, links=("softmax", "gaussian", "linear"))
    s = display.scores
    lines = display.lines_
    assert list(lines) == [
        "softmax",
        "gaussian, n = 1,000,000",
        "linear, n = 1,000,000",
    ]
    np.testing.assert_allclose(lines["softmax"].get_ydata(), expit(s))
    np.testing.assert_allclose(
        lines["gaussian, n = 1,000,000"].get_ydata(), gaussian_softmax(s, 10**6)[:, 1]
    )
    # softmax falls far below 1e-12, the gaussian levels off near 1e-6
    assert lines["softmax"].get_ydata().min() < 1e-12
    gaussian = lines["gaussian, n = 1,000,000"].get_ydata()
    assert 1e-6 <= gaussian.min() < 2e-6
    # the linear link reaches (twice) its floor about half as far out
    linear = lines["linear, n = 1,000,000"].get_ydata()
    reach_linear = -s[np.flatnonzero(linear <= 2e-6)[-1]]
    reach_gaussian = -s[np.flatnonzero(gaussian <= 2e-6)[-1]]
    assert 1.5 < reach_gaussian / reach_linear < 2.5


def test_link_displays_share_an_axes_and_scale():
    first = LinkDisplay.from_links(50, yscale="log")
    LinkDisplay.from_links(500, links=("gaussian",), ax=first.ax_, scores=[-5, 0, 5])
    labels = [line.get_label() for line in first.ax_.get_lines()]
    assert labels == ["softmax", "gaussian, n = 50", "gaussian, n = 500"]
    assert first.ax_.get_yscale() == "log"
    with pytest.raises(ValueError, match="unknown links"):
        LinkDisplay.from_links(50, links=("probit",))


def test_link_of_a_fitted_estimator(data):
    X, y = data[:2]
    model = GaussianSoftmaxClassifier(
        LogisticRegression(max_iter=1000), link="linear", cv=3
    ).fit(X, y)
    display = LinkDisplay.from_estimator(model)
    assert list(display.lines_) == ["softmax", "linear, n = 150"]
    with pytest.raises(ValueError, match="has no n_samples_"):
        LinkDisplay.from_estimator(LogisticRegression())


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"sklearn-gsoftmax\[plot\]"):
        LinkDisplay.from_links(50)


def test_importing_the_package_does_not_import_matplotlib():
    code = (
        "import sys, sklearn_gsoftmax, sklearn_gsoftmax.plotting; "
        "assert 'matplotlib' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _legend_texts(ax):
    return [text.get_text() for text in ax.get_legend().get_texts()]


def test_reliability_figure_is_what_the_reader_sees():
    display = ReliabilityDisplay.from_predictions(
        Y3, P3, labels=[0, 1, 2], n_bins=2, name="model", bounds=(0.05, 0.9)
    )
    ax, hist_ax = display.ax_, display.hist_ax_
    # the curve above, the counts below, one x axis
    assert tuple(display.figure_.get_size_inches()) == (5.5, 6)
    assert ax.get_shared_x_axes().joined(ax, hist_ax)
    reference, curve = ax.get_lines()
    assert reference.get_label() == "perfectly calibrated"
    assert reference.get_linestyle() == ":" and reference.get_color() == "k"
    np.testing.assert_array_equal(reference.get_xydata(), [[0, 0], [1, 1]])
    assert curve is display.line_
    assert (curve.get_marker(), curve.get_linestyle()) == ("s", "-")
    low, high = display.bounds_band_
    color = matplotlib.colors.to_rgba(curve.get_color(), alpha=0.15)
    for band in (low, high):
        assert band.get_facecolor() == pytest.approx(color)
        assert band.get_linewidth() == 0
    assert low.get_label() == "" and high.get_label() == "beyond model bounds"
    assert _legend_texts(ax) == ["perfectly calibrated", "model", "beyond model bounds"]
    assert ax.get_legend()._loc == 2  # upper left
    assert ax.get_xlim() == ax.get_ylim() == pytest.approx((-0.02, 1.02))
    assert (ax.get_ylabel(), hist_ax.get_ylabel()) == ("accuracy", "count")
    assert hist_ax.get_xlabel() == "top-class probability"
    assert display.hist_.get_edgecolor() == pytest.approx(
        matplotlib.colors.to_rgba(curve.get_color())
    )


def test_reliability_labels_of_a_classwise_diagram_on_given_axes():
    _, ax = plt.subplots()
    display = ReliabilityDisplay.from_predictions(
        Y3,
        P3,
        labels=[0, 1, 2],
        kind="classwise",
        pos_label=2,
        bounds=(0.1, 0.8),
        ax=ax,
    )
    # without a histogram axes the x label goes on the curve's axes
    assert display.hist_ is None and display.hist_ax_ is None
    assert ax.get_xlabel() == "predicted probability of class 2"
    assert ax.get_ylabel() == "share of class 2"
    assert display.bounds_band_[1].get_label() == "beyond the bounds"
    # no name: no legend entry of its own, so no legend
    assert ax.get_legend() is None


def test_risk_coverage_figure_is_what_the_reader_sees():
    y = ["b", "a", "a", "b"]
    # columns in the order of labels: "b" first
    proba = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]]
    display = RiskCoverageDisplay.from_predictions(
        y, proba, labels=["b", "a"], threshold=0.6, name="m"
    )
    ax = display.ax_
    np.testing.assert_allclose(display.line_.get_ydata(), [1, 1, 1, 2 / 3, 0.5])
    assert display.line_.get_label() == "m (area 0.792)"
    line = display.threshold_line_
    assert (
        line.get_linestyle() == "--" and line.get_color() == display.line_.get_color()
    )
    assert _legend_texts(ax) == ["m (area 0.792)", "threshold 0.6"]
    assert ax.get_legend()._loc == 3  # lower left
    assert ax.get_xlabel() == "coverage (share accepted)"
    assert ax.get_ylabel() == "accuracy of the accepted"
    assert ax.get_xlim() == pytest.approx((0, 1.02))
    risk = RiskCoverageDisplay.from_predictions(y, proba, labels=["b", "a"], risk=True)
    assert risk.ax_.get_ylabel() == "risk (error rate) of the accepted"
    assert risk.ax_.get_legend()._loc == 1  # upper right
    assert risk.line_.get_label() == "area 0.792"  # the area of the accuracy


def test_risk_coverage_of_an_estimator_draws_on_the_given_axes(data):
    X, y, X_test, y_test = data
    model = GaussianSoftmaxClassifier(LogisticRegression(max_iter=1000), cv=3).fit(X, y)
    _, ax = plt.subplots()
    display = RiskCoverageDisplay.from_estimator(model, X_test, y_test, ax=ax)
    assert display.ax_ is ax
    assert display.line_.get_label().startswith("GaussianSoftmaxClassifier (area ")


def test_link_figure_is_what_the_reader_sees():
    display = LinkDisplay.from_links(10**6, links=("gaussian",))
    ax = display.ax_
    # 1001 scores on [-s_max, s_max], s_max = 2.2 ln n (above 10)
    s_max = 2.2 * np.log(10**6)
    np.testing.assert_allclose(display.scores, np.linspace(-s_max, s_max, 1001))
    line = display.lines_["gaussian, n = 1,000,000"]
    np.testing.assert_array_equal(line.get_xdata(), display.scores)
    assert ax.get_xlabel() == "decision score s"
    assert ax.get_ylabel() == "probability of the class"
    assert _legend_texts(ax) == ["gaussian, n = 1,000,000"]
    small = LinkDisplay.from_links(3, links=("linear",))
    assert small.scores[[0, -1]] == pytest.approx([-10, 10])  # s_max at least 10
    assert list(small.lines_) == ["linear, n = 3"]
    assert list(LinkDisplay.from_links(2.5, links=("linear",)).lines_) == [
        "linear, n = 2.5"
    ]
    with pytest.raises(ValueError) as info:
        LinkDisplay.from_links(50, links=("probit", "logit"))
    assert str(info.value) == (
        "unknown links ['logit', 'probit']; pick from 'softmax', 'gaussian' and "
        "'linear'."
    )
    with pytest.raises(ValueError) as info:
        LinkDisplay.from_estimator(
            make_pipeline(StandardScaler(), LogisticRegression())
        )
    assert str(info.value) == (
        "LogisticRegression has no n_samples_; pass a fitted "
        "GaussianSoftmaxCalibrator or GaussianSoftmaxClassifier."
    )


@pytest.mark.parametrize("multiclass", ["vs_top", "simplex"])
def test_band_follows_the_multiclass_form(data, multiclass):
    X, y, X_test, y_test = data
    model = GaussianSoftmaxClassifier(
        LogisticRegression(max_iter=1000), multiclass=multiclass, cv=3
    ).fit(X, y)
    n = 150
    display = ReliabilityDisplay.from_estimator(model, X_test, y_test)
    expected = {
        "vs_top": (1 / (2 * (n - 1) + 1), (n - 1) / (n + 1)),
        "simplex": (1 / (n + 1), (n - 1) / (n + 1)),
    }[multiclass]
    assert display.bounds == pytest.approx(expected)


def test_diagram_passes_line_options_on():
    display = ReliabilityDisplay.from_predictions(
        Y3, P3, labels=[0, 1, 2], ref_line=False, color="tab:red"
    )
    assert display.ax_.get_lines() == [display.line_]
    assert display.line_.get_color() == "tab:red"


def test_risk_coverage_area_breaks_ties_by_the_margin():
    # four saturated predictions: the margin ranks the two right ones first
    y = [0, 1, 0, 1]
    proba = [[0.99, 0.01]] * 4
    margin = [5.0, 1.0, 4.0, 2.0]
    with_margin = RiskCoverageDisplay.from_predictions(y, proba, margin=margin)
    # accuracy 1, 1, 2/3, 1/2 at coverage 1/4 .. 1: area (1 + 1 + 2/3 + 1/2) / 4
    assert with_margin.line_.get_label() == "area 0.792"
    plain = RiskCoverageDisplay.from_predictions(y, proba)
    assert plain.line_.get_label() != with_margin.line_.get_label()

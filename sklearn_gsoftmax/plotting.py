"""Figures in scikit-learn's Display style: reliability diagrams, risk-coverage
curves and the link functions.

Each display keeps the computed data as attributes, draws with :meth:`plot`
(which returns the display and keeps the artists as attributes ending in ``_``)
and is built by class methods such as ``from_estimator`` and
``from_predictions``. Several displays can share one axes (pass ``ax=``).

matplotlib is an optional dependency, imported only when a figure is drawn:
``pip install "sklearn-gsoftmax[plot]"``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from ._links import link_proba, proba_bounds
from ._ties import below
from .metrics import (
    _binned_targets,
    _check_probabilities,
    _check_weights,
    _reliability_bins,
    risk_coverage_auc,
    risk_coverage_curve,
)

__all__ = ["LinkDisplay", "ReliabilityDisplay", "RiskCoverageDisplay"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError(
            "sklearn_gsoftmax.plotting needs matplotlib; install it with "
            'pip install "sklearn-gsoftmax[plot]".'
        ) from error
    return plt


def _axes(ax):
    if ax is None:
        _, ax = _pyplot().subplots()
    return ax


def _final_step(estimator):
    """The last step of a pipeline, or the estimator itself."""
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def _estimator_bounds(estimator, n_classes: int):
    """The ``(lowest, highest)`` probability of a fitted estimator's link, or
    ``None`` for softmax and for estimators without ``n_samples_``."""
    final = _final_step(estimator)
    n = getattr(final, "n_samples_", None)
    link = getattr(final, "link", None)
    if n is None or link not in ("gaussian", "linear"):
        return None
    return proba_bounds(float(n), n_classes, link, final.multiclass)


def _count_label(n) -> str:
    return f"{int(n):,}" if float(n).is_integer() else f"{float(n):,.1f}"


class ReliabilityDisplay:
    """Reliability diagram: observed frequency against predicted probability,
    for two **or more** classes, with the bin counts and the probability bounds.

    scikit-learn's :class:`~sklearn.calibration.CalibrationDisplay` draws the
    positive class of a binary classifier only. This display draws either the
    top-label diagram (the accuracy of the predictions against their top-class
    probability, ``kind="top_label"``) or one class's diagram (how often
    ``pos_label`` is the true class against its predicted probability,
    ``kind="classwise"``), for any number of classes. Under it, a histogram
    shows how many samples each bin holds; a shaded band marks the
    probabilities beyond the bounds of the model's link (for a model fitted
    on ``n`` samples, ``[1/n, 1 - 1/n]`` for two classes, wider for more),
    which it cannot give.

    Build it with :meth:`from_estimator` or :meth:`from_predictions`.

    Parameters
    ----------
    prob_true : ndarray of shape (n_filled_bins,)
        Observed frequency in each non-empty bin: the accuracy (top label) or
        the share of ``pos_label`` (class-wise).
    prob_pred : ndarray of shape (n_filled_bins,)
        Mean predicted probability in each non-empty bin.
    bin_counts : ndarray of shape (n_bins,)
        The (weighted) number of samples in every bin.
    bin_edges : ndarray of shape (n_bins + 1,)
        The bin edges.
    kind : {"top_label", "classwise"}, default="top_label"
        Which diagram the data describe.
    pos_label : int, float, bool or str, default=None
        The class of a class-wise diagram.
    bounds : tuple of float, default=None
        The link's ``(lowest, highest)`` probability, drawn as a band; ``None``
        draws none.
    estimator_name : str, default=None
        Name in the legend.

    Attributes
    ----------
    line_ : matplotlib Line2D
        The reliability curve.
    ax_ : matplotlib Axes
        The axes of the curve.
    hist_ : matplotlib StepPatch or None
        The histogram of the bin counts.
    hist_ax_ : matplotlib Axes or None
        The axes of the histogram.
    bounds_band_ : list of matplotlib patches
        The shaded regions below and above the bounds.
    figure_ : matplotlib Figure
        The figure.

    See Also
    --------
    sklearn_gsoftmax.metrics.expected_calibration_error : The diagram's gaps as
        one number.
    sklearn.calibration.CalibrationDisplay : The binary reliability diagram.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn_gsoftmax import GaussianSoftmaxClassifier
    >>> from sklearn_gsoftmax.plotting import ReliabilityDisplay
    >>> X, y = load_iris(return_X_y=True)
    >>> model = GaussianSoftmaxClassifier(LogisticRegression(max_iter=1000)).fit(X, y)
    >>> display = ReliabilityDisplay.from_estimator(model, X, y, n_bins=5)
    >>> [round(bound, 4) for bound in display.bounds]  # 1/299 and 149/151
    [0.0033, 0.9868]
    """

    def __init__(
        self,
        prob_true,
        prob_pred,
        bin_counts,
        bin_edges,
        *,
        kind="top_label",
        pos_label=None,
        bounds=None,
        estimator_name=None,
    ):
        self.prob_true = prob_true
        self.prob_pred = prob_pred
        self.bin_counts = bin_counts
        self.bin_edges = bin_edges
        self.kind = kind
        self.pos_label = pos_label
        self.bounds = bounds
        self.estimator_name = estimator_name

    def plot(
        self, ax=None, *, name=None, hist_ax=None, ref_line=True, **kwargs
    ) -> ReliabilityDisplay:
        """Draw the diagram.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            Axes of the curve. ``None`` makes a figure with the curve above and
            the histogram of the bin counts below.
        name : str, default=None
            Name in the legend; ``None`` uses ``estimator_name``.
        hist_ax : matplotlib Axes, default=None
            Axes of the histogram, when ``ax`` is given (pass another display's
            ``hist_ax_`` to draw several on one). With ``ax`` given and
            ``hist_ax=None`` no histogram is drawn.
        ref_line : bool, default=True
            Draw the diagonal of perfect calibration (once per axes).
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot` for the curve.

        Returns
        -------
        display : ReliabilityDisplay
        """
        plt = _pyplot()
        if ax is None:
            self.figure_, (ax, hist_ax) = plt.subplots(
                2, 1, sharex=True, height_ratios=[3, 1], figsize=(5.5, 6)
            )
        name = self.estimator_name if name is None else name
        if ref_line and not any(
            line.get_label() == "perfectly calibrated" for line in ax.get_lines()
        ):
            ax.plot([0, 1], [0, 1], "k:", label="perfectly calibrated")
        self.line_ = ax.plot(
            self.prob_pred, self.prob_true, "s-", **{"label": name, **kwargs}
        )[0]
        self.bounds_band_ = []
        if self.bounds is not None:
            low, high = self.bounds
            style = {"color": self.line_.get_color(), "alpha": 0.15, "lw": 0}
            self.bounds_band_ = [
                ax.axvspan(0, low, **style),
                ax.axvspan(high, 1, label=f"beyond {name or 'the'} bounds", **style),
            ]
        if self.kind == "top_label":
            xlabel, ylabel = "top-class probability", "accuracy"
        else:
            xlabel = f"predicted probability of class {self.pos_label}"
            ylabel = f"share of class {self.pos_label}"
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), ylabel=ylabel)
        self.hist_, self.hist_ax_ = None, hist_ax
        if hist_ax is not None:
            self.hist_ = hist_ax.stairs(
                self.bin_counts, self.bin_edges, color=self.line_.get_color()
            )
            hist_ax.set(xlabel=xlabel, ylabel="count")
        else:
            ax.set_xlabel(xlabel)
        if name is not None:
            ax.legend(loc="upper left")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    def from_predictions(
        cls,
        y_true,
        y_prob,
        *,
        n_bins=10,
        strategy="uniform",
        kind="top_label",
        pos_label=None,
        labels=None,
        sample_weight=None,
        bounds=None,
        name=None,
        ax=None,
        hist_ax=None,
        **kwargs,
    ) -> ReliabilityDisplay:
        """Reliability diagram of given probabilities.

        Parameters
        ----------
        y_true : array-like of shape (m,)
            True labels.
        y_prob : array-like of shape (m, n_classes) or (m,)
            Predicted probabilities, columns in the order of ``labels``; for
            two classes also the probability of the second label alone.
        n_bins : int, default=10
            Number of bins.
        strategy : {"uniform", "quantile"}, default="uniform"
            Equal-width or equal-mass bins, as in
            :func:`~sklearn_gsoftmax.metrics.expected_calibration_error`.
        kind : {"top_label", "classwise"}, default="top_label"
            The top-label diagram, or the one of class ``pos_label``.
        pos_label : int, float, bool or str, default=None
            The class of a class-wise diagram; ``None`` takes the last label
            (the positive class of a binary problem).
        labels : array-like of shape (n_classes,), default=None
            The label of each column; ``None`` takes the sorted unique
            ``y_true``.
        sample_weight : array-like of shape (m,), default=None
            Sample weights.
        bounds : tuple of float, default=None
            The ``(lowest, highest)`` probability to mark as a band.
        name : str, default=None
            Name in the legend.
        ax, hist_ax : matplotlib Axes, default=None
            See :meth:`plot`.
        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : ReliabilityDisplay
        """
        if kind not in ("top_label", "classwise"):
            raise ValueError(f'kind must be "top_label" or "classwise", got {kind!r}.')
        y_prob, index, labels = _check_probabilities(y_true, y_prob, labels)
        weights = _check_weights(sample_weight, len(index))
        column = None
        if kind == "classwise":
            pos_label = labels[-1] if pos_label is None else pos_label
            matches = np.flatnonzero(labels == pos_label)
            if matches.size == 0:
                raise ValueError(
                    f"pos_label={pos_label!r} is not one of the labels "
                    f"{labels.tolist()}."
                )
            column = int(matches[0])
        elif pos_label is not None:
            raise ValueError(
                'pos_label picks the class of kind="classwise"; pass '
                'kind="classwise" with it, or drop it for the top-label diagram.'
            )
        prob, hit = _binned_targets(y_prob, index, kind, column)
        edges, counts, mean_prob, frequency = _reliability_bins(
            prob, hit, weights, n_bins, strategy
        )
        filled = counts > 0
        display = cls(
            frequency[filled],
            mean_prob[filled],
            counts,
            edges,
            kind=kind,
            pos_label=pos_label,
            bounds=bounds,
            estimator_name=name,
        )
        return display.plot(ax=ax, hist_ax=hist_ax, **kwargs)

    @classmethod
    def from_estimator(
        cls, estimator, X, y, *, name=None, **kwargs
    ) -> ReliabilityDisplay:
        """Reliability diagram of a fitted classifier's probabilities on ``X``.

        The band marks the bounds of the estimator's link for its fitted
        ``n_samples_`` (a :class:`~sklearn_gsoftmax.GaussianSoftmaxClassifier`
        or :class:`~sklearn_gsoftmax.GaussianSoftmaxCalibrator`, also as the
        last step of a pipeline); other classifiers get no band.

        Parameters
        ----------
        estimator : fitted classifier
            With ``predict_proba`` and ``classes_``.
        X : array-like of shape (m, n_features)
            Input of ``predict_proba``.
        y : array-like of shape (m,)
            True labels.
        name : str, default=None
            Name in the legend; ``None`` uses the estimator's class name.
        **kwargs : dict
            Passed to :meth:`from_predictions` (``n_bins``, ``strategy``,
            ``kind``, ``pos_label``, ``sample_weight``, ``ax``, ...).

        Returns
        -------
        display : ReliabilityDisplay
        """
        classes = np.asarray(estimator.classes_)
        kwargs.setdefault("bounds", _estimator_bounds(estimator, len(classes)))
        return cls.from_predictions(
            y,
            estimator.predict_proba(X),
            labels=classes,
            name=type(_final_step(estimator)).__name__ if name is None else name,
            **kwargs,
        )


class RiskCoverageDisplay:
    """Accuracy (or risk) of the accepted predictions against coverage.

    Accepting the predictions whose top-class probability reaches a threshold,
    from the most confident down, the curve shows the accuracy of what is
    accepted against the share accepted; a model whose confidence ranks its
    errors last stays high down to low coverage. A vertical line marks the
    coverage of a fitted ``uncertainty_threshold_`` (the ``low_confidence``
    rule of :meth:`~sklearn_gsoftmax.GaussianSoftmaxClassifier.predict_uncertain`).

    Parameters
    ----------
    coverage : ndarray
        Share of the samples accepted, increasing to 1.
    accuracy : ndarray
        Accuracy of the accepted samples.
    thresholds : ndarray
        The confidence threshold of each point, decreasing.
    threshold : float, default=None
        The threshold to mark; ``None`` marks none.
    area : float, default=None
        The area under the curve, shown in the legend.
    estimator_name : str, default=None
        Name in the legend.

    Attributes
    ----------
    line_ : matplotlib Line2D
        The curve, drawn as steps.
    threshold_line_ : matplotlib Line2D or None
        The vertical line at the coverage of ``threshold``.
    threshold_coverage_ : float or None
        That coverage: the share of the samples whose confidence reaches
        ``threshold``.
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    See Also
    --------
    sklearn_gsoftmax.metrics.risk_coverage_curve : The curve's data.
    sklearn_gsoftmax.metrics.risk_coverage_auc : The area under it.
    """

    def __init__(
        self,
        coverage,
        accuracy,
        thresholds,
        *,
        threshold=None,
        area=None,
        estimator_name=None,
    ):
        self.coverage = coverage
        self.accuracy = accuracy
        self.thresholds = thresholds
        self.threshold = threshold
        self.area = area
        self.estimator_name = estimator_name

    def plot(self, ax=None, *, name=None, risk=False, **kwargs) -> RiskCoverageDisplay:
        """Draw the curve.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            ``None`` makes a new figure.
        name : str, default=None
            Name in the legend; ``None`` uses ``estimator_name``.
        risk : bool, default=False
            Plot the error rate of the accepted predictions (the risk) rather
            than their accuracy.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.step`.

        Returns
        -------
        display : RiskCoverageDisplay
        """
        ax = _axes(ax)
        name = self.estimator_name if name is None else name
        label = name
        if self.area is not None:
            area = f"area {self.area:.3f}"
            label = area if name is None else f"{name} ({area})"
        accuracy = np.asarray(self.accuracy, dtype=float)
        y = 1 - accuracy if risk else accuracy
        # start at coverage 0 so that the first step is drawn
        x = np.concatenate([[0.0], self.coverage])
        y = np.concatenate([y[:1], y])
        self.line_ = ax.step(x, y, where="pre", **{"label": label, **kwargs})[0]
        self.threshold_line_ = self.threshold_coverage_ = None
        if self.threshold is not None:
            accepted = np.flatnonzero(
                ~below(np.asarray(self.thresholds), self.threshold)
            )
            self.threshold_coverage_ = (
                float(self.coverage[accepted[-1]]) if accepted.size else 0.0
            )
            self.threshold_line_ = ax.axvline(
                self.threshold_coverage_,
                color=self.line_.get_color(),
                ls="--",
                label=f"threshold {self.threshold:.3g}",
            )
        what = "risk (error rate)" if risk else "accuracy"
        ax.set(
            xlabel="coverage (share accepted)",
            ylabel=f"{what} of the accepted",
            xlim=(0, 1.02),
        )
        if label is not None:
            ax.legend(loc="upper right" if risk else "lower left")
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_predictions(
        cls,
        y_true,
        y_prob,
        *,
        labels=None,
        margin=None,
        threshold=None,
        name=None,
        ax=None,
        **kwargs,
    ) -> RiskCoverageDisplay:
        """Risk-coverage curve of given probabilities.

        Parameters
        ----------
        y_true : array-like of shape (m,)
            True labels.
        y_prob : array-like of shape (m, n_classes) or (m,)
            Predicted probabilities, columns in the order of ``labels``.
        labels : array-like of shape (n_classes,), default=None
            The label of each column.
        margin : array-like of shape (m,), default=None
            Breaks ties in the top-class probability (an estimator's
            ``confidence_margin(X)``); see
            :func:`~sklearn_gsoftmax.metrics.risk_coverage_curve`.
        threshold : float, default=None
            A confidence threshold to mark.
        name : str, default=None
            Name in the legend.
        ax : matplotlib Axes, default=None
            ``None`` makes a new figure.
        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : RiskCoverageDisplay
        """
        coverage, accuracy, thresholds = risk_coverage_curve(
            y_true, y_prob, labels=labels, margin=margin
        )
        display = cls(
            coverage,
            accuracy,
            thresholds,
            threshold=threshold,
            area=risk_coverage_auc(y_true, y_prob, labels=labels, margin=margin),
            estimator_name=name,
        )
        return display.plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(
        cls, estimator, X, y, *, name=None, ax=None, **kwargs
    ) -> RiskCoverageDisplay:
        """Risk-coverage curve of a fitted classifier on ``X``, with its
        ``uncertainty_threshold_`` marked when it has one.

        Parameters
        ----------
        estimator : fitted classifier
            With ``predict_proba`` and ``classes_`` (also as the last step of
            a pipeline, for the threshold).
        X : array-like of shape (m, n_features)
            Input of ``predict_proba``.
        y : array-like of shape (m,)
            True labels.
        name : str, default=None
            Name in the legend; ``None`` uses the estimator's class name.
        ax : matplotlib Axes, default=None
            ``None`` makes a new figure.
        **kwargs : dict
            Passed to :meth:`plot` (``risk=True``, line style).

        Returns
        -------
        display : RiskCoverageDisplay
        """
        final = _final_step(estimator)
        # ties among saturated probabilities are broken by the calibrated
        # margin, as the estimator's own threshold breaks them
        margin = (
            estimator.confidence_margin(X)
            if hasattr(estimator, "confidence_margin")
            else None
        )
        return cls.from_predictions(
            y,
            estimator.predict_proba(X),
            labels=estimator.classes_,
            margin=margin,
            threshold=getattr(final, "uncertainty_threshold_", None),
            name=type(final).__name__ if name is None else name,
            ax=ax,
            **kwargs,
        )


class LinkDisplay:
    """The link functions: the probability of the second of two classes
    against the decision score ``s`` (the scores ``z = (0, s)``).

    Softmax (the sigmoid) falls exponentially; the bounded links level off at
    ``1/n``. On a linear axis the gaussian and linear links look alike; on a
    log axis the gaussian bends later and more smoothly (with ``n = 10**6``
    the linear link reaches its floor at about ``s = -ln n``, the gaussian
    about twice as far).

    Parameters
    ----------
    scores : ndarray of shape (m,)
        The decision scores.
    probabilities : dict of str to ndarray of shape (m,)
        Each curve's name and its probabilities at ``scores``.

    Attributes
    ----------
    lines_ : dict of str to matplotlib Line2D
        The curves, by name.
    ax_ : matplotlib Axes
    figure_ : matplotlib Figure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sklearn_gsoftmax.plotting import LinkDisplay
    >>> display = LinkDisplay.from_links(10**6, yscale="log")
    >>> sorted(display.lines_)
    ['gaussian, n = 1,000,000', 'softmax']
    """

    def __init__(self, scores, probabilities):
        self.scores = scores
        self.probabilities = probabilities

    def plot(self, ax=None, *, yscale=None, **kwargs) -> LinkDisplay:
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib Axes, default=None
            ``None`` makes a new figure.
        yscale : {"linear", "log"}, default=None
            Scale of the probability axis; ``None`` leaves the axes' scale.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot` for every curve.

        Returns
        -------
        display : LinkDisplay
        """
        ax = _axes(ax)
        self.lines_ = {
            name: ax.plot(self.scores, proba, label=name, **kwargs)[0]
            for name, proba in self.probabilities.items()
        }
        if yscale is not None:
            ax.set_yscale(yscale)
        ax.set(xlabel="decision score s", ylabel="probability of the class")
        ax.legend()
        self.ax_, self.figure_ = ax, ax.figure
        return self

    @classmethod
    def from_links(
        cls,
        n_samples,
        *,
        links=("softmax", "gaussian"),
        scores=None,
        ax=None,
        **kwargs,
    ) -> LinkDisplay:
        """The curves of given links for a sample count ``n_samples``.

        Parameters
        ----------
        n_samples : int or float
            The sample count ``n`` of the bounded links.
        links : tuple of {"softmax", "gaussian", "linear"}, \
default=("softmax", "gaussian")
            The links to draw.
        scores : array-like of shape (m,), default=None
            The decision scores; ``None`` takes 1001 points on
            ``[-s_max, s_max]``, ``s_max = max(10, 2.2 ln n)``, where the
            gaussian link has reached its bound.
        ax : matplotlib Axes, default=None
            ``None`` makes a new figure.
        **kwargs : dict
            Passed to :meth:`plot` (``yscale="log"``, line style).

        Returns
        -------
        display : LinkDisplay
        """
        unknown = set(links) - {"softmax", "gaussian", "linear"}
        if unknown:
            raise ValueError(
                f"unknown links {sorted(unknown)}; pick from 'softmax', "
                "'gaussian' and 'linear'."
            )
        if scores is None:
            s_max = max(10.0, 2.2 * np.log(n_samples))
            scores = np.linspace(-s_max, s_max, 1001)
        scores = np.asarray(scores, dtype=np.float64)
        probabilities = {}
        for link in links:
            if link == "softmax":
                probabilities["softmax"] = expit(scores)
            else:
                z = np.column_stack([np.zeros_like(scores), scores])
                name = f"{link}, n = {_count_label(n_samples)}"
                probabilities[name] = link_proba(z, n_samples, link, "vs_top")[:, 1]
        return cls(scores, probabilities).plot(ax=ax, **kwargs)

    @classmethod
    def from_estimator(cls, estimator, *, scores=None, ax=None, **kwargs):
        """The link of a fitted :class:`~sklearn_gsoftmax.GaussianSoftmaxCalibrator`
        or :class:`~sklearn_gsoftmax.GaussianSoftmaxClassifier` (also as the
        last step of a pipeline) for its ``n_samples_``, next to softmax.

        Parameters
        ----------
        estimator : fitted estimator
            With ``link`` and ``n_samples_``.
        scores : array-like of shape (m,), default=None
            See :meth:`from_links`.
        ax : matplotlib Axes, default=None
            ``None`` makes a new figure.
        **kwargs : dict
            Passed to :meth:`plot`.

        Returns
        -------
        display : LinkDisplay
        """
        final = _final_step(estimator)
        if not hasattr(final, "n_samples_"):
            raise ValueError(
                f"{type(final).__name__} has no n_samples_; pass a fitted "
                "GaussianSoftmaxCalibrator or GaussianSoftmaxClassifier."
            )
        links = tuple(dict.fromkeys(("softmax", final.link)))
        return cls.from_links(
            final.n_samples_, links=links, scores=scores, ax=ax, **kwargs
        )

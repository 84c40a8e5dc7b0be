"""GaussianSoftmaxCalibrator: decision scores -> probabilities bounded by ``n``.

The estimator is a thin orchestrator: it validates the scores, reads them
through a ``_source.Source`` (the rows in memory, or the blocks of a lazy
collection: a Dask array on a cluster), fits the calibration map
(``_map.fit_map``) and the uncertain flag's state (``_uncertainty``), and
applies the map.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.model_selection import KFold
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from ._fitting import SearchRows, score_unit, unit_values_summary
from ._flag import DEFAULT_RULES, check_rules, held_out_rows, outside_range
from ._links import LINKS
from ._map import (
    CalibrationMap,
    MapSpec,
    fit_map,
    held_out_predictions,
    needs_held_out_refits,
)
from ._novelty import check_detector, fit_pooled
from ._persistence import VersionedStateMixin
from ._source import (
    ArraySource,
    Chunk,
    QuantileSummary,
    lazily,
    lazy_handler,
    merge_dicts,
    merge_ranges,
    rows_per_block,
)
from ._ties import first_index_of_max, no_spread
from ._uncertainty import Predictions, UncertaintyMixin
from ._validation import (
    MULTICLASS_FORMS,
    check_scores,
    check_weights,
    class_labels,
    distinct_labels,
    reject_none,
    sample_count,
)

#: The uncertain flag's parameters, shared by both estimators.
UNCERTAINTY_CONSTRAINTS = {
    "uncertainty_rules": [tuple, list],
    "uncertainty_threshold": [
        Interval(Real, 0, 1, closed="neither"),
        StrOptions({"auto"}),
    ],
    "target_accuracy": [Interval(Real, 0, 1, closed="neither")],
    "ambiguity_ratio": [Interval(Real, 1, None, closed="neither")],
    "conformal_alpha": [Interval(Real, 0, 1, closed="neither")],
    "novelty_detector": [HasMethods(["fit"]), None],
    "novelty_alpha": [Interval(Real, 0, 1, closed="neither")],
}

#: The score map's parameters, shared by both estimators.
MAP_CONSTRAINTS = {
    "score_map": [StrOptions({"auto", "affine", "matrix"})],
    "matrix_penalty": [Interval(Real, 0, None, closed="left")],
    "fit_ceiling": ["boolean", StrOptions({"auto"})],
}


#: Scores the calibrator's novelty rule is fitted on, at most (a random subset
#: beyond): 5 folds of 20 000 training and 5 000 held-out rows each, of which
#: the rule keeps 10 000 held-out scores in all.
NOVELTY_ROWS = 25_000

#: Bound of the calibrator's novelty features: arcsinh of the largest float64 is
#: about 710, so infinite scores stand beyond every finite one.
NOVELTY_CLIP = 800.0

#: With more score columns than this, the novelty detector sees a summary of
#: each row instead: its this many largest scores, less the row's mean. The
#: detector's cost per sample then does not grow with the number of classes
#: (a network's 1 000 logits), and a row unlike the training rows shows in how
#: its top scores stand against each other and the rest.
NOVELTY_COLUMNS = 8


def map_spec(calibrator, n_classes: int, n: float, total: float, dtype) -> MapSpec:
    """What :func:`~._map.fit_map` needs of a calibrator's parameters."""
    return MapSpec(
        n_classes,
        calibrator.link,
        calibrator.multiclass,
        calibrator.fit_intercept,
        calibrator.score_map,
        calibrator.matrix_penalty,
        calibrator.fit_ceiling,
        n,
        total,
        np.dtype(dtype),
    )


def fit_calibration_map(calibrator, source, classes, n: float, summary=None):
    """Fit ``calibrator``'s map on ``source`` (scores and indices into
    ``classes``; ``summary``, its :func:`summarise` when known) and store it;
    return the spec and the ``MapFit``.

    The meta-estimator enters here: its folds' labels may lack a class of
    ``classes``, and it sets ``n`` to its whole training count.
    """
    summary = summarise(source) if summary is None else summary
    n_classes = len(classes)
    n_columns = summary["range"].shape[1]
    if n_columns not in (1, n_classes) or (n_columns == 1 and n_classes != 2):
        raise ValueError(
            f"scores have {n_columns} column(s) but y has {n_classes} classes; "
            "pass one score column per class (or a single column of decision "
            "scores for two classes)."
        )
    # read in the validating pass; not kept through the fit (the margins of
    # binary scores: the size of the scores)
    spec = map_spec(calibrator, n_classes, n, summary["weight"], summary["dtype"])
    # the search's extreme rows read in the unit's pass
    rows = SearchRows(source, spec)
    unit = score_unit(source, summary.pop("unit_values"), alongside=rows)
    fitted = fit_map(source, spec, unit, rows)
    calibrator.classes_ = classes
    calibrator.n_samples_ = n
    if not hasattr(calibrator, "n_features_in_"):
        calibrator.n_features_in_ = n_columns
    fitted_map = fitted.map
    calibrator.n_link_ = fitted_map.n_link
    calibrator.scale_ = fitted_map.scale
    calibrator.coef_ = fitted_map.coef
    calibrator.intercept_ = fitted_map.intercept
    calibrator.clip_range_ = fitted_map.clip_range
    calibrator.n_iter_ = fitted.n_iter
    calibrator.score_range_ = summary["range"]
    return spec, fitted


def summarise(source) -> dict:
    """One pass over the rows of ``source``, validating them (a chunk's bad
    value is named with its chunk): their count, weight, distinct labels,
    score range and dtype, and the first summary of their unit
    (``_fitting.unit_values_summary``)."""
    return source.map_reduce(_chunk_summary, _MERGE_SUMMARIES)


def _score_range(z: np.ndarray) -> np.ndarray:
    """``(2, columns)``: each score column's minimum and maximum."""
    z = z.reshape(len(z), -1)
    return np.vstack(
        [z.min(axis=0, initial=np.inf), z.max(axis=0, initial=-np.inf)]
    ).astype(np.float64)


def _chunk_summary(chunk) -> dict:
    """One pass over the rows, validating them (a chunk's bad value is named
    with its chunk): their count, weight, distinct labels and score range."""
    z = check_scores(chunk.z)
    if (chunk.w < 0).any():
        raise ValueError("sample_weight must be non-negative.")
    return {
        "rows": len(z),
        "weight": float(chunk.w.sum()),
        "labels": distinct_labels(chunk.y),
        "range": _score_range(z),
        "dtype": z.dtype,
        "unit_values": unit_values_summary(chunk._replace(z=z)),
    }


_MERGE_SUMMARIES = merge_dicts(
    {
        "labels": np.union1d,
        "range": merge_ranges,
        "dtype": lambda a, b: a,
        "unit_values": QuantileSummary.merge,
    }
)


def novelty_columns(z: np.ndarray) -> np.ndarray:
    """The score columns the novelty detector sees, in float64: all of them,
    or beyond ``NOVELTY_COLUMNS`` the row's largest, less its mean."""
    z = z.reshape(len(z), -1)
    if z.shape[1] <= NOVELTY_COLUMNS:
        return z.astype(np.float64)
    # in row blocks: the float64 temporaries of a network's (m, K) logits
    # would be several times their size
    step = rows_per_block(z)
    if len(z) == 0:
        return np.empty((0, NOVELTY_COLUMNS))
    return np.concatenate(
        [_top_less_mean(z[i : i + step]) for i in range(0, len(z), step)]
    )


def _top_less_mean(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.float64)
    top = -np.partition(-z, NOVELTY_COLUMNS - 1, axis=1)[:, :NOVELTY_COLUMNS]
    top = -np.sort(-top, axis=1)
    finite = np.where(np.isfinite(z), z, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows without a finite score
        mean = np.nan_to_num(np.nanmean(finite, axis=1))
    with np.errstate(invalid="ignore"):
        return top - mean[:, None]


def fit_score_novelty(detector, source):
    """The novelty detector of a calibrator, cross-fitted on 5 folds of (a
    random subset of at most ``NOVELTY_ROWS`` of) the scores, and the scaling
    of its features (:func:`score_features`)."""
    rows = np.arange(source.n_rows)
    if source.n_rows > NOVELTY_ROWS:
        rng = np.random.default_rng(0)
        rows = np.sort(rng.choice(source.n_rows, NOVELTY_ROWS, replace=False))
    chunk = source.gather(rows)
    columns = novelty_columns(chunk.z)
    finite = np.where(np.isfinite(columns), columns, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-infinite columns
        centre = np.nan_to_num(np.nanmedian(finite, axis=0))
        with np.errstate(over="ignore", invalid="ignore"):
            unit = np.nanmedian(np.abs(finite - centre), axis=0)
    # a deviation of a few ulps is that of equal scores (see _ties)
    unit = np.where(np.isfinite(unit) & ~no_spread(unit, centre), unit, 1.0)
    scaling = np.vstack([centre, unit])
    features = _features_of_columns(scaling, columns)
    folds = KFold(min(5, len(rows)), shuffle=True, random_state=0)
    model = fit_pooled(detector, features, list(folds.split(features)), chunk.w)
    return model, scaling


def score_features(scaling: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The novelty detector's features of scores: the columns of
    :func:`novelty_columns`, robustly standardised by ``scaling`` (centre and
    unit) through ``arcsinh``: linear near the centre, logarithmic far out, so
    that scores of 1e300 (or infinite, clipped at ``NOVELTY_CLIP``, beyond
    arcsinh of the largest float) keep their order without overflowing the
    detector's distances."""
    return _features_of_columns(scaling, novelty_columns(z))


def _features_of_columns(scaling: np.ndarray, columns: np.ndarray) -> np.ndarray:
    centre, unit = scaling
    with np.errstate(over="ignore", invalid="ignore"):
        standardised = (columns - centre) / unit
    # the centre is finite: a NaN comes only from a row without a finite
    # score in its summary, the most novel
    standardised = np.nan_to_num(standardised, nan=np.inf)
    return np.clip(np.arcsinh(standardised), -NOVELTY_CLIP, NOVELTY_CLIP)


class GaussianSoftmaxCalibrator(
    VersionedStateMixin, UncertaintyMixin, ClassifierMixin, BaseEstimator
):
    """Map a classifier's decision scores to probabilities bounded by ``n``.

    Fits ``p = link_n(a * z + b)``: a scale ``a`` and a per-class offset ``b``
    (first entry 0) by maximising the weighted likelihood of the labels, where
    ``link_n`` is one of the links of :func:`gaussian_softmax`. With the gaussian
    or linear link every probability lies in ``[1/n, 1 - 1/n]`` for two
    classes, so a single confident mistake costs at most ``ln(n)`` of
    log-loss; with ``K`` classes the gaussian link's (``vs_top``) bounds are
    ``1/((K-1)(n-1) + 1)`` and ``(n-1)/(n+K-2)`` and the loss at most
    ``ln((K-1)(n-1) + 1)`` (see the math page for every form).

    By default, given 10 samples per parameter, two refinements follow that fit (see
    the user guide's "Score map and ceiling"): for three or more classes, a
    matrix ``u = W z + b`` (Dirichlet calibration's map, ``score_map``), and
    with the gaussian link, its ceiling ``L = ln(n - 1)`` fitted as well, at
    most its value for ``n`` (``fit_ceiling``): the bound tightens where the
    labels never come as close to it, and never loosens.

    Parameters
    ----------
    link : {"gaussian", "linear", "softmax"}, default="gaussian"
        The link. ``"softmax"`` is the unbounded baseline: with binary scores it is
        Platt scaling (without Platt's smoothed targets), with multiclass scores
        and ``fit_intercept=False`` it is temperature scaling.
    multiclass : {"vs_top", "simplex"}, default="vs_top"
        Form of the gaussian link for three or more classes.
    n_samples : int, default=None
        The sample count ``n`` that bounds the probabilities, usually the number of
        samples the scoring model was trained on. ``None`` uses the number of
        samples passed to :meth:`fit` (the sum of ``sample_weight`` when given:
        weights are frequency weights).
    fit_intercept : bool or "auto", default="auto"
        Whether to fit the per-class offset ``b``; ``False`` fits the scale
        only. ``"auto"``: binary margins keep their offset (Platt's
        intercept); with three or more classes the offsets are kept where they
        raise the calibration rows' log-likelihood by more than one nat each
        (Akaike's criterion, an estimate of their gain on new data), else the
        scale alone is fitted (``intercept_`` is then 0). Offsets that only
        fit noise move the argmax: on a network's logits (an MLP on digits,
        449 calibration rows) they lowered its accuracy from 97.4 % to 96.9 %.
    score_map : {"auto", "affine", "matrix"}, default="auto"
        The map from scores to the link's logits for three or more classes.
        ``"affine"``: ``a * z + b``, one scale. ``"matrix"``: ``W z + b``, a
        ``K x K`` matrix started at the affine fit, with Dirichlet
        calibration's ridge on its off-diagonal entries and offsets (strength
        ``matrix_penalty``); its off-diagonal terms see each score clipped to
        the range it had in :meth:`fit`. ``"auto"``: ``"matrix"`` given at
        least 10 samples (the sum of ``sample_weight``) per parameter of the
        matrix (``K**2 + K``), else ``"affine"``, and ``"affine"`` for
        ``link="softmax"`` (which stays Platt and temperature scaling). Two
        classes always use the affine map.
    matrix_penalty : float >= 0, default=0.3
        Strength of the matrix map's ridge, on the mean log-loss:
        ``matrix_penalty * (sum_{i != j} W_ij**2 / (K (K - 1)) + |b - b0|**2 / K)``,
        ``b0`` the affine fit's offsets.
    fit_ceiling : bool or "auto", default="auto"
        Whether to fit the gaussian link's ceiling ``L`` (in ``(0, ln(n - 1)]``)
        with the map: the link is then that of ``n_link_ <= n_samples_``.
        ``"auto"``: where it applies (the gaussian link, two classes or
        ``multiclass="vs_top"``) given at least 10 samples (the sum of
        ``sample_weight``) per parameter of the affine map and ceiling
        (``K + 1``); ``True`` where it does not apply is an error.
    uncertainty_rules : tuple of str, default=("low_confidence", "novelty")
        The rules of :meth:`predict_uncertain`, any of ``"low_confidence"``,
        ``"ambiguous"``, ``"out_of_range"``, ``"conformal"`` and ``"novelty"``
        (see the user guide for what each catches).
    uncertainty_threshold : float in (0, 1) or "auto", default="auto"
        ``low_confidence`` flags a top-class probability below it. ``"auto"``
        picks the smallest threshold whose accepted predictions on the fitted
        scores reach ``target_accuracy``; that is a held-out choice when the
        scores are (as they should be) out-of-fold scores of the classifier.
    target_accuracy : float in (0, 1), default=0.95
        The accuracy the accepted predictions should reach, for
        ``uncertainty_threshold="auto"``.
    ambiguity_ratio : float > 1, default=2.0
        ``ambiguous`` flags a top class less than this many times as probable as
        the runner-up.
    conformal_alpha : float in (0, 1), default=0.1
        Miscoverage level of the ``conformal`` rule and the default of
        :meth:`predict_set`.
    novelty_detector : outlier detector, default=None
        The ``novelty`` rule's detector, run on the scores: any scikit-learn
        outlier detector with ``score_samples`` or ``decision_function``
        (higher: more normal). ``None`` uses the mean distance to the 5 nearest
        of at most 1 000 reference scores. It is cross-fitted on 5 folds of the
        scores so that each has a held-out novelty score.
    novelty_alpha : float in (0, 1), default=0.05
        The ``novelty`` rule flags a sample whose conformal novelty p-value is
        at most this: in-distribution, at most about this share is flagged.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels; score column ``k`` belongs to ``classes_[k]``.
    n_samples_ : float
        The sample count ``n`` that bounds the probabilities.
    n_link_ : float
        The ``n`` of the link: ``n_samples_``, or less where the ceiling was
        fitted (every probability then lies within the bounds for
        ``n_link_``, which are inside those for ``n_samples_``).
    scale_ : float
        The fitted scale ``a``. Free in sign for binary scores, at least 0 for
        multiclass scores. With the matrix map, the mean of its diagonal.
    coef_ : ndarray of shape (n_classes, n_classes) or None
        The matrix ``W`` of the matrix map; ``None`` for the affine map.
    intercept_ : ndarray of shape (n_classes,)
        The fitted offsets ``b``; ``intercept_[0] == 0`` for the affine map.
        For binary decision scores ``s`` the model is
        ``z = (0, scale_ * s + intercept_[1])``.
    clip_range_ : ndarray of shape (2, n_classes) or None
        The smallest (row 0) and largest (row 1) finite score of each class in
        fit, which the matrix map's off-diagonal terms clip scores to; ``None``
        for the affine map.
    score_range_ : ndarray of shape (2, n_features_in_)
        Minimum (row 0) and maximum (row 1) of each score column seen in fit.
    n_features_in_ : int
        Number of score columns seen in fit (1 for binary decision scores).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names of the scores, when they were a DataFrame with string names.
    n_iter_ : int
        Iterations of the optimiser.
    uncertainty_threshold_ : float
        The threshold of the ``low_confidence`` rule; ``inf`` when no threshold
        reaches ``target_accuracy`` (every prediction is flagged).
    uncertainty_margin_threshold_ : float
        Top-class probabilities that tie with ``uncertainty_threshold_`` (as
        at the bound) with a :meth:`confidence_margin` below this are flagged
        too: the smallest margin of the accepted fitted predictions that tie
        with it; ``-inf`` with a fixed threshold, or none reaching the target.
    coverage_ : float
        Share of the fitted samples whose prediction the threshold accepts.
    accepted_accuracy_ : float
        Accuracy of those accepted predictions.
    conformity_scores_ : ndarray of shape (n_held_out,)
        ``1 - p_true`` of the held-out predictions of the fitted samples
        (rows of weight 0 left out), sorted: the nonconformity scores of
        :meth:`predict_set`.
    training_priors_ : ndarray of shape (n_classes,)
        The class proportions the fitted probabilities assume: the mean of the
        held-out probabilities of fit (the training class frequencies, as far
        as the model is calibrated). :meth:`adapt_priors` reweights from them.
    class_priors_ : ndarray of shape (n_classes,)
        Only on a copy made by :meth:`adapt_priors`: the proportions it is
        adapted to (``class_mix_pvalue_``: the p-value of the test of
        unchanged proportions on the batch they were estimated from; NaN for
        given ones).

    See Also
    --------
    gaussian_softmax : The link function.
    sklearn.calibration.CalibratedClassifierCV : Sigmoid, isotonic and
        temperature calibration of a classifier.

    Notes
    -----
    The maximum-likelihood fit standardises the scores by a robust scale, adds a
    very weak ridge prior (strength 1e-9 on the parameters of standardised
    scores) and keeps the parameters in a box beyond which every link is
    saturated, so that the optimum is unique and finite on separable scores,
    where a saturating link's likelihood is flat in the scale. On degenerate
    scores the optimiser may stop short and says so with a ConvergenceWarning.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_gsoftmax import GaussianSoftmaxCalibrator
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.normal(scale=3.0, size=500)
    >>> y = rng.random(500) < 1 / (1 + np.exp(-scores))
    >>> calibrator = GaussianSoftmaxCalibrator().fit(scores, y)
    >>> proba = calibrator.predict_proba([-1e6, 0.0, 1e6])
    >>> round(float(proba.min()) * 500, 9)  # saturates at 1/n, n = 500
    1.0
    """

    _parameter_constraints: dict = {
        "link": [StrOptions(set(LINKS))],
        "multiclass": [StrOptions(set(MULTICLASS_FORMS))],
        "n_samples": [Interval(Integral, 2, None, closed="left"), None],
        "fit_intercept": ["boolean", StrOptions({"auto"})],
        **MAP_CONSTRAINTS,
        **UNCERTAINTY_CONSTRAINTS,
    }

    _required_fitted_attributes = (
        "classes_",
        "n_samples_",
        "n_link_",
        "scale_",
        "coef_",
        "intercept_",
        "clip_range_",
        "score_range_",
    )

    @staticmethod
    def _upgrade_to_map_options(state: dict) -> None:
        if "n_samples_" in state:
            state.setdefault("n_link_", state["n_samples_"])
        state.setdefault("coef_", None)
        state.setdefault("clip_range_", None)

    def __init__(
        self,
        *,
        link="gaussian",
        multiclass="vs_top",
        n_samples=None,
        fit_intercept="auto",
        score_map="auto",
        matrix_penalty=0.3,
        fit_ceiling="auto",
        uncertainty_rules=DEFAULT_RULES,
        uncertainty_threshold="auto",
        target_accuracy=0.95,
        ambiguity_ratio=2.0,
        conformal_alpha=0.1,
        novelty_detector=None,
        novelty_alpha=0.05,
    ):
        self.link = link
        self.multiclass = multiclass
        self.n_samples = n_samples
        self.fit_intercept = fit_intercept
        self.score_map = score_map
        self.matrix_penalty = matrix_penalty
        self.fit_ceiling = fit_ceiling
        self.uncertainty_rules = uncertainty_rules
        self.uncertainty_threshold = uncertainty_threshold
        self.target_accuracy = target_accuracy
        self.ambiguity_ratio = ambiguity_ratio
        self.conformal_alpha = conformal_alpha
        self.novelty_detector = novelty_detector
        self.novelty_alpha = novelty_alpha

    def _validate_scores(self, scores, *, reset: bool) -> np.ndarray:
        """Validate scores as ``(m,)`` margins or ``(m, K)`` logits."""
        if issparse(scores):
            raise TypeError(
                "sparse scores are not supported: decision scores are dense; pass "
                "a dense array (e.g. scores.toarray())."
            )
        reject_none(np.asarray(scores), "scores")
        if np.asarray(scores).ndim == 1:
            if not reset and self.n_features_in_ != 1:
                raise ValueError(
                    f"scores are 1-D, but {type(self).__name__} was fitted on "
                    f"{self.n_features_in_} score columns. Reshape your data to "
                    f"(m, {self.n_features_in_})."
                )
            # One column of binary decision scores, so that n_features_in_ is 1.
            scores = np.asarray(scores).reshape(-1, 1)
        scores = validate_data(
            self,
            scores,
            reset=reset,
            ensure_all_finite=False,
            dtype=[np.float64, np.float32],
        )
        return check_scores(scores)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, scores, y, sample_weight=None):
        """Fit the scale and offsets on decision scores and labels.

        Parameters
        ----------
        scores : array-like of shape (m,), (m, 1) or (m, n_classes)
            Binary decision scores (positive means the second class of the sorted
            labels) or one logit column per class. Infinite scores are allowed
            (e.g. the log of a zero probability) except with ``link="softmax"``.
            A Dask array or DataFrame is fitted on its cluster.
        y : array-like of shape (m,)
            Labels; at least two classes.
        sample_weight : array-like of shape (m,), default=None
            Non-negative frequency weights.

        Returns
        -------
        self : object
            The fitted calibrator.
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is "
                "None; pass the labels the scores should predict."
            )
        rules = check_rules(self.uncertainty_rules)
        source = self._source(scores, y, sample_weight)
        summary = summarise(source)
        classes = class_labels(summary["labels"], n_rows=summary["rows"])
        if len(classes) < 2:
            raise ValueError(
                f"y holds one class only ({classes[0]!r}); a calibrator needs "
                "labels of at least two classes."
            )
        if sample_weight is not None and not summary["weight"] > 0:
            raise ValueError(
                "sample_weight are all zero; at least one weight must be positive."
            )
        if self.link == "softmax" and not np.isfinite(summary["range"]).all():
            raise ValueError(
                "scores contain infinite values, which give an infinite log-loss "
                "under link='softmax'; use link='gaussian' or 'linear', which bound "
                "them, or pass finite scores."
            )
        n = sample_count(
            None if sample_weight is None else summary["weight"],
            summary["rows"],
            self.n_samples,
            n_classes=len(classes),
            link=self.link,
        )
        encoded = source.map(
            lambda chunk: chunk._replace(y=np.searchsorted(classes, chunk.y))
        )
        spec, fitted = fit_calibration_map(self, encoded, classes, n, summary)
        held = self._held_out(encoded, spec, fitted, summary["weight"])
        novelty = self._fit_novelty(encoded) if "novelty" in rules else None
        self._fit_uncertainty(held, [held], novelty)
        return self

    def _source(self, scores, y, sample_weight):
        """The rows to fit on: in memory, validated; on a cluster, validated
        chunk by chunk as they are read (here: one row, for the widths, dtypes
        and feature names)."""
        handler = lazy_handler(scores, y)
        if handler is not None:
            source = handler.source(scores, y, sample_weight)
            self._validate_scores(source.one_row_like(), reset=True)
            return source
        z = self._validate_scores(scores, reset=True)
        y = column_or_1d(y, warn=True)
        if y.shape[0] != z.shape[0]:
            raise ValueError(
                f"scores and y have different lengths: {z.shape[0]} and {y.shape[0]}."
            )
        return ArraySource(z, y, check_weights(sample_weight, z))

    def _held_out(self, source, spec, fitted, total):
        """The calibrator's held-out predictions of its rows: its own, or
        where it has few rows per parameter, those of copies fitted on the
        other rows (in memory)."""
        fitted_map = fitted.map
        if isinstance(source, ArraySource) and needs_held_out_refits(total, fitted):
            z, y, w, _ = source.chunk
            keep = np.ones(len(z), dtype=bool)
            proba, margin = held_out_predictions(z, y, w, keep, spec, fitted)
            return held_out_rows(proba, margin, y, w)

        def own(chunk):
            z = chunk.z
            rows = np.column_stack([fitted_map.proba(z), fitted_map.margin(z)])
            return Chunk(rows, chunk.y, chunk.w, chunk.start)

        return source.map(own)

    def _fit_novelty(self, source):
        """The ``novelty`` rule's detector on the scores (see
        :func:`fit_score_novelty`)."""
        novelty, self._novelty_scaling = fit_score_novelty(
            check_detector(self.novelty_detector), source
        )
        return novelty

    def _score_columns(self) -> int:
        return self.n_features_in_

    def _link_bounds(self) -> tuple:
        return self.n_samples_, self.link, self.multiclass

    def _novelty_features(self, scores) -> list:
        return [score_features(self._novelty_scaling, self._validated(scores))]

    def _validated(self, scores) -> np.ndarray:
        check_is_fitted(self)
        return self._validate_scores(scores, reset=False)

    def _predictions(self, scores, *, with_range=True):
        z = self._validated(scores)
        fitted_map = CalibrationMap.of(self)
        proba = fitted_map.proba(z)
        margin = fitted_map.margin(z)
        return Predictions(
            proba,
            [proba],
            outside_range(z, self.score_range_) if with_range else None,
            margin,
            [margin],
        )

    @lazily
    def predict_proba(self, scores) -> np.ndarray:
        """Probabilities of each class, bounded by ``n_samples_``.

        Parameters
        ----------
        scores : array-like of shape (m,), (m, 1) or (m, n_classes)
            Scores shaped as in :meth:`fit`.

        Returns
        -------
        proba : ndarray of shape (m, n_classes)
            Rows sum to 1; float32 for float32 scores.
        """
        z = self._validated(scores)
        return self._adapted(CalibrationMap.of(self).proba(z))

    @lazily
    def predict_log_proba(self, scores) -> np.ndarray:
        """Log-probabilities of each class, computed without rounding to ``p``.

        Parameters
        ----------
        scores : array-like of shape (m,), (m, 1) or (m, n_classes)
            Scores shaped as in :meth:`fit`.

        Returns
        -------
        log_proba : ndarray of shape (m, n_classes)
            The logs of :meth:`predict_proba`.
        """
        z = self._validated(scores)
        return self._adapted(CalibrationMap.of(self).proba(z, log=True), log=True)

    @lazily
    def predict(self, scores) -> np.ndarray:
        """The most probable class of each row.

        Parameters
        ----------
        scores : array-like of shape (m,), (m, 1) or (m, n_classes)
            Scores shaped as in :meth:`fit`.

        Returns
        -------
        labels : ndarray of shape (m,)
            Entries of ``classes_``.
        """
        proba = self.predict_proba(scores)
        return self.classes_[first_index_of_max(proba)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

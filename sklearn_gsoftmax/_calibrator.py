"""GaussianSoftmaxCalibrator: decision scores -> probabilities bounded by ``n``."""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import numpy as np
from scipy.sparse import issparse
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.model_selection import KFold
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from . import _dask
from ._fitting import affine_scores, fit_binary, fit_multiclass
from ._links import LINKS, binary_margin, link_proba
from ._novelty import check_detector, fit_pooled
from ._persistence import VersionedStateMixin
from ._refine import (
    MIN_CEILING,
    Layout,
    clipped_scores,
    finite_range,
    matrix_scores,
    refine_in_memory,
)
from ._ties import first_index_of_max
from ._uncertainty import (
    DEFAULT_RULES,
    HeldOut,
    Predictions,
    UncertaintyMixin,
    check_rules,
    outside_range,
    top_two,
)
from ._validation import (
    MULTICLASS_FORMS,
    check_real_n,
    check_scores,
    class_labels,
    reject_none,
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


#: The ``"auto"`` refinements need at least this many samples (the sum of the
#: weights) per parameter they fit: the matrix map ``K**2 + K``, the ceiling with
#: the affine map ``K + 1`` (three for two classes). On the quality benchmark
#: the matrix map won where it had this many (5 classes, 1 960 rows a fold) and
#: lost where it had fewer: wine and iris (12 parameters on 21 to 25 rows:
#: in-distribution log-loss 2.7 times the best scikit-learn method's against
#: 1.4) and digits (110 on 176 to 251 rows: the flag caught 26 % of the
#: main job's in-distribution errors against 68 %).
AUTO_ROWS_PER_PARAMETER = 10


def refinement_layout(estimator, n_classes: int, n, *, rows: float):
    """The :class:`~._refine.Layout` of the refinement that ``score_map``
    and ``fit_ceiling`` ask of ``estimator`` (a calibrator's parameters) on
    ``rows`` samples (the weights' sum), or ``None`` when the affine fit is
    the answer."""
    link, form = estimator.link, estimator.multiclass
    k = n_classes

    def enough(n_params):
        return rows >= AUTO_ROWS_PER_PARAMETER * n_params

    # at n = 2 (L = 0) the link is uniform: no ceiling left to fit
    has_ceiling = (
        link == "gaussian"
        and (n_classes == 2 or form == "vs_top")
        and math.log(n - 1) > MIN_CEILING
    )
    if estimator.fit_ceiling is True and not has_ceiling:
        raise ValueError(
            "fit_ceiling=True needs the gaussian link with two classes or "
            f"multiclass='vs_top' (its ceiling L = ln(n - 1) is what is fitted); "
            f"got link={link!r}, multiclass={form!r} with {n_classes} classes. "
            "Use fit_ceiling='auto' or False."
        )
    ceiling = has_ceiling and (
        estimator.fit_ceiling is True
        or (estimator.fit_ceiling == "auto" and enough(k + 1))
    )
    score_map = estimator.score_map
    if score_map == "auto":
        matrix_ok = link != "softmax" and enough(k * k + k)
        score_map = "matrix" if matrix_ok else "affine"
    matrix = score_map == "matrix" and n_classes > 2
    if not (matrix or ceiling):
        return None
    return Layout(
        k,
        matrix=matrix,
        fit_intercept=estimator.fit_intercept,
        ceiling=ceiling,
        n=n,
        penalty=estimator.matrix_penalty,
    )


#: Scores the calibrator's novelty rule is fitted on, at most (a random subset
#: beyond): 5 folds of 20 000 training and 5 000 held-out rows each, of which
#: the rule keeps 10 000 held-out scores in all.
NOVELTY_ROWS = 25_000

#: Bound of the calibrator's novelty features: arcsinh of the largest float64 is
#: about 710, so infinite scores stand beyond every finite one.
NOVELTY_CLIP = 800.0


def sample_count(sample_weight, n_rows: int, n_samples, *, n_classes: int, link: str):
    """The ``n`` the links are built on: ``n_samples`` if given, else the sum of
    the sample weights (the number of rows without weights).

    Weights are read as frequency weights: a weight of 3 stands for three copies of
    a row, which is what scikit-learn's weighted fits assume too; so the count is
    their sum, and fitting with integer weights equals fitting on repeated rows.
    """
    if n_samples is not None:
        return check_real_n(n_samples, n_classes=n_classes, link=link, name="n_samples")
    if sample_weight is None:
        n = float(n_rows)
        name = "the number of samples"
    else:
        n = float(sample_weight.sum())
        name = (
            "the sum of sample_weight (weights are read as frequency weights, so "
            "they count samples; set n_samples to override)"
        )
    return check_real_n(n, n_classes=n_classes, link=link, name=name)


def check_weights(sample_weight, z) -> np.ndarray:
    """Validated float64 frequency weights (ones when ``None``)."""
    weights = _check_sample_weight(sample_weight, z, dtype=np.float64)
    if sample_weight is not None and (weights < 0).any():
        raise ValueError("sample_weight must be non-negative.")
    if sample_weight is not None and not np.any(weights > 0):
        raise ValueError(
            "sample_weight are all zero; at least one weight must be positive."
        )
    return weights


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
    fit_intercept : bool, default=True
        Whether to fit the per-class offset ``b``; ``False`` fits the scale only.
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
        Where top-class probabilities tie at ``uncertainty_threshold_`` (they
        saturate at the bound), those with a calibrated score margin
        (:meth:`confidence_margin`) below this are flagged too; ``-inf`` when
        no tie needs breaking.
    coverage_ : float
        Share of the fitted samples whose prediction the threshold accepts.
    accepted_accuracy_ : float
        Accuracy of those accepted predictions.
    conformity_scores_ : ndarray of shape (m,)
        ``1 - p_true`` of each fitted sample, the nonconformity scores of
        :meth:`predict_set`.

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
        "fit_intercept": ["boolean"],
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
        fit_intercept=True,
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
        y : array-like of shape (m,)
            Labels; at least two classes.
        sample_weight : array-like of shape (m,), default=None
            Non-negative frequency weights.

        Returns
        -------
        self : object
            The fitted calibrator.
        """
        if _dask.is_dask_collection(scores) or _dask.is_dask_collection(y):
            return _dask.fit_calibrator(self, scores, y, sample_weight)
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is "
                "None; pass the labels the scores should predict."
            )
        rules = check_rules(self.uncertainty_rules)
        z = self._validate_scores(scores, reset=True)
        y = column_or_1d(y, warn=True)
        if y.shape[0] != z.shape[0]:
            raise ValueError(
                f"scores and y have different lengths: {z.shape[0]} and {y.shape[0]}."
            )
        self.classes_ = class_labels(y)
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                f"y holds one class only ({self.classes_[0]!r}); a calibrator needs "
                "labels of at least two classes."
            )
        weights = check_weights(sample_weight, z)
        n_samples = sample_count(
            None if sample_weight is None else weights,
            z.shape[0],
            self.n_samples,
            n_classes=n_classes,
            link=self.link,
        )
        y_index = np.searchsorted(self.classes_, y)
        self._fit_encoded(z, y_index, weights, n_samples, self.classes_)
        # The calibrator has a scale and K - 1 offsets: its probabilities on the
        # data it was fitted on are nearly held-out ones.
        novelty = None
        if "novelty" in rules:
            # The rule needs no more rows than it keeps (MAX_ROWS to fit a
            # detector per fold, MAX_HELD_OUT held-out scores): a random subset
            # spares passes over 10^6 scores.
            rows = np.arange(len(z))
            if len(z) > NOVELTY_ROWS:
                rng = np.random.default_rng(0)
                rows = np.sort(rng.choice(len(z), NOVELTY_ROWS, replace=False))
            features = self._novelty_fit_features(z[rows])
            folds = KFold(min(5, len(rows)), shuffle=True, random_state=0)
            novelty = fit_pooled(
                check_detector(self.novelty_detector),
                features,
                list(folds.split(features)),
                weights[rows],
            )
        self._fit_uncertainty(
            HeldOut.of_one_model(
                self._proba_of_validated(z),
                self._margin_of_validated(z),
                y_index,
                weights,
            ),
            novelty=novelty,
        )
        return self

    def _novelty_fit_features(self, z: np.ndarray) -> np.ndarray:
        """Scores as features of the novelty detector, with the centre and
        unit of each column learnt from ``z``."""
        z = z.astype(np.float64).reshape(len(z), -1)
        finite = np.where(np.isfinite(z), z, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-infinite columns
            centre = np.nan_to_num(np.nanmedian(finite, axis=0))
            with np.errstate(over="ignore", invalid="ignore"):
                unit = np.nanmedian(np.abs(finite - centre), axis=0)
        unit = np.where(np.isfinite(unit) & (unit > 0), unit, 1.0)
        self._novelty_scaling = np.vstack([centre, unit])
        return self._novelty_features_of(z)

    def _novelty_features_of(self, z: np.ndarray) -> np.ndarray:
        """Robustly standardised scores through ``arcsinh``: linear near the
        centre, logarithmic far out, so that scores of 1e300 (or infinite,
        clipped at ``NOVELTY_CLIP``, beyond arcsinh of the largest float) keep
        their order without overflowing the detector's distances."""
        centre, unit = self._novelty_scaling
        with np.errstate(over="ignore", invalid="ignore"):
            standardised = (z.astype(np.float64).reshape(len(z), -1) - centre) / unit
        # inf - inf cannot arise: the centre is finite
        return np.clip(np.arcsinh(standardised), -NOVELTY_CLIP, NOVELTY_CLIP)

    def _score_columns(self) -> int:
        return self.n_features_in_

    def _novelty_features(self, scores) -> list:
        return [self._novelty_features_of(self._validated(scores))]

    def _fit_encoded(self, z, y_index, weights, n_samples, classes):
        """Fit on validated scores and indices ``y_index`` into ``classes``.

        The meta-estimator enters here: its folds' labels may lack a class of
        ``classes``, and it sets ``n`` to its whole training count.
        """
        self.classes_ = classes
        n_classes = len(self.classes_)
        n_columns = 1 if z.ndim == 1 else z.shape[1]
        if n_columns not in (1, n_classes) or (n_columns == 1 and n_classes != 2):
            raise ValueError(
                f"scores have {n_columns} column(s) but y has {n_classes} classes; "
                "pass one score column per class (or a single column of decision "
                "scores for two classes)."
            )
        if self.link == "softmax" and not np.isfinite(z).all():
            raise ValueError(
                "scores contain infinite values, which give an infinite log-loss "
                "under link='softmax'; use link='gaussian' or 'linear', which bound "
                "them, or pass finite scores."
            )
        self.n_samples_ = n_samples
        if not hasattr(self, "n_features_in_"):
            self.n_features_in_ = n_columns
        self.score_range_ = np.vstack([z.min(axis=0), z.max(axis=0)]).reshape(2, -1)
        z64 = z.astype(np.float64, copy=False)
        if n_classes == 2:
            z64 = z64 if z64.ndim == 1 else binary_margin(z64)
            result = fit_binary(
                z64, y_index, weights, n_samples, self.link, self.fit_intercept
            )
        else:
            result = fit_multiclass(
                z64,
                y_index,
                weights,
                n_samples,
                self.link,
                self.multiclass,
                self.fit_intercept,
            )
        self._refine_and_store(
            result,
            rows=weights.sum(),
            # rows of weight 0 are not in the fit (as if removed)
            clip_range_of=lambda: finite_range(z64[weights > 0]),
            refine=lambda layout, clip_range: refine_in_memory(
                z64,
                y_index,
                weights,
                layout,
                self.link,
                self.multiclass,
                result,
                clip_range,
            ),
        )
        return self

    def _refine_and_store(self, result, *, rows, clip_range_of, refine):
        """Store the affine fit ``result`` as the fitted map, refined where
        ``score_map`` and ``fit_ceiling`` ask for it on ``rows`` samples:
        ``clip_range_of()`` gives the matrix's clip range and ``refine(layout,
        clip_range)`` the refined map (in memory or on Dask)."""
        n = self.n_samples_
        layout = refinement_layout(self, len(self.classes_), n, rows=rows)
        clip_range = clip_range_of() if layout is not None and layout.matrix else None
        refined = None if layout is None else refine(layout, clip_range)
        fit = result if refined is None else refined
        self.n_link_ = n if refined is None else refined.n_link
        self.scale_ = fit.scale
        self.coef_ = None if refined is None else refined.coef
        self.intercept_ = fit.intercept
        self.clip_range_ = clip_range
        self.n_iter_ = result.n_iter + (0 if refined is None else refined.n_iter)

    def _validated(self, scores) -> np.ndarray:
        check_is_fitted(self)
        return self._validate_scores(scores, reset=False)

    def _mapped(self, z: np.ndarray) -> np.ndarray:
        """The link's logits of validated scores: ``W z + b`` or ``a z + b``."""
        if self.coef_ is not None:
            low, high = self.clip_range_.astype(z.dtype)
            cross = clipped_scores(z, low, high)
            return matrix_scores(z, cross, self.coef_, self.intercept_)
        # Python floats and a cast intercept keep float32 scores float32 (a
        # numpy float64 scalar would promote them).
        scale = float(self.scale_)
        if z.ndim == 1:
            return affine_scores(z, scale, float(self.intercept_[1]))
        return affine_scores(z, scale, self.intercept_.astype(z.dtype))

    def _proba_of_validated(self, z: np.ndarray, *, log: bool = False) -> np.ndarray:
        """predict_proba (or its log) for scores already validated."""
        return link_proba(
            self._mapped(z), self.n_link_, self.link, self.multiclass, log=log
        )

    def _margin_of_validated(self, z: np.ndarray) -> np.ndarray:
        """The calibrated score margin: the top class's mapped score minus the
        runner-up's (for binary scores, ``|scale_ * s + intercept_[1]|``)."""
        affine = self._mapped(z)
        if affine.ndim == 1:
            margin = np.abs(affine)
        else:
            top, runner_up = top_two(affine)
            # huge scores may give an infinite margin, which still ranks
            with np.errstate(invalid="ignore", over="ignore"):
                margin = top - runner_up
        # inf - inf: the top two tie at a bound, a margin of 0
        margin = np.nan_to_num(margin, nan=0.0, posinf=np.inf, neginf=-np.inf)
        return margin.astype(np.float64, copy=False)

    def _predictions(self, scores, *, with_range=True):
        z = self._validated(scores)
        proba = self._proba_of_validated(z)
        margin = self._margin_of_validated(z)
        return Predictions(
            proba,
            [proba],
            outside_range(z, self.score_range_) if with_range else None,
            margin,
            [margin],
        )

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
        if _dask.is_dask_collection(scores):
            return _dask.predict(self, "predict_proba", scores)
        return self._proba_of_validated(self._validated(scores))

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
        if _dask.is_dask_collection(scores):
            return _dask.predict(self, "predict_log_proba", scores)
        return self._proba_of_validated(self._validated(scores), log=True)

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
        if _dask.is_dask_collection(scores):
            return _dask.predict(self, "predict", scores)
        proba = self.predict_proba(scores)
        return self.classes_[first_index_of_max(proba)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

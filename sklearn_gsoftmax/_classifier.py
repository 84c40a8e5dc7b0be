"""GaussianSoftmaxClassifier: wrap any classifier for n-bounded probabilities.

A thin orchestrator, like scikit-learn's ``CalibratedClassifierCV`` over its
``_fit_classifier_calibrator_pair``: it splits the data (``cv``), fits the
(estimator, calibrator) pairs (``_pairs``), the novelty detector, and the
uncertain flag's state from the pairs' held-out predictions
(``_uncertainty``), and averages the pairs' probabilities.
"""

from __future__ import annotations

import warnings
from inspect import signature
from numbers import Integral

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    MetaEstimatorMixin,
    _fit_context,
    clone,
)
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import KFold, LeaveOneOut, check_cv
from sklearn.svm import LinearSVC
from sklearn.utils import Bunch, _safe_indexing, get_tags, indexable
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ._calibrator import (
    MAP_CONSTRAINTS,
    UNCERTAINTY_CONSTRAINTS,
    GaussianSoftmaxCalibrator,
)
from ._flag import DEFAULT_RULES, check_rules, outside_range
from ._links import LINKS, clip_to_bounds
from ._novelty import check_detector, fit_pooled
from ._pairs import (
    CalibratedPair,
    FoldFit,
    calibrate,
    decision_scores,
    fit_and_score,
    fit_pair,
    held_out,
    novelty_input,
)
from ._persistence import VersionedStateMixin
from ._source import lazily
from ._ties import first_index_of_max
from ._uncertainty import Predictions, UncertaintyMixin
from ._validation import (
    MULTICLASS_FORMS,
    check_weights,
    class_labels,
    sample_count,
)

#: The class of a fitted pair under its name before 0.3, for the models
#: pickled then (pickle finds it here by that name).
_CalibratedPair = CalibratedPair


def _average(per_pair: list, calibrator) -> np.ndarray:
    """The mean of the pairs' probabilities (the only pair's, unchanged)."""
    if len(per_pair) == 1:
        return per_pair[0]
    proba = per_pair[0].copy()
    for pair_proba in per_pair[1:]:
        proba += pair_proba
    proba /= len(per_pair)
    # the rounded mean of probabilities at the link's bound can land an ulp
    # beyond it (sum then divide): keep the bound exact, as each pair's is
    return _clip_like(proba, calibrator, log=False)


def _clip_like(proba, calibrator, *, log):
    return clip_to_bounds(
        proba, calibrator.n_samples_, calibrator.link, calibrator.multiclass, log=log
    )


def pair_predictions(pairs: list, X, with_range: bool) -> Predictions:
    """Average probabilities of the pairs and each pair's own, the average
    calibrated score margin and each pair's own, and with ``with_range``
    whether any pair's scores of a sample leave its calibrator's
    ``score_range_``."""
    per_pair, margins, outside = [], [], None
    for pair in pairs:
        scores = pair.scores(X)
        per_pair.append(pair.proba_of_scores(scores))
        margins.append(pair.margin_of_scores(scores))
        if with_range:
            pair_outside = outside_range(scores, pair.calibrator.score_range_)
            outside = pair_outside if outside is None else outside | pair_outside
    # huge margins may add up to inf: still the largest, as they rank
    with np.errstate(over="ignore"):
        margin = sum(margins[1:], margins[0].copy()) / len(margins)
    return Predictions(
        _average(per_pair, pairs[0].calibrator), per_pair, outside, margin, margins
    )


def encoded_labels(classes, y) -> np.ndarray:
    """Positions in ``classes`` of labels ``y``, which must all be known."""
    # membership first: labels of another type than classes_ (strings for
    # a model fitted on integers) cannot even be sorted against them
    known = set(classes.tolist())
    unseen = [label for label in np.unique(y).tolist() if label not in known]
    if unseen:
        raise ValueError(
            f"y holds labels {unseen} that the prefit estimator does not know "
            f"(its classes_ are {classes.tolist()}); calibrate on data of "
            "those classes only."
        )
    return np.searchsorted(classes, y)


def routed_fit_params(model, estimator, sample_weight, fit_params):
    """The fit parameters of the wrapped estimator and the splitter: routed
    when metadata routing is enabled, else ``sample_weight`` passed to the
    estimator where its ``fit`` takes it."""
    if _routing_enabled():
        return process_routing(model, "fit", sample_weight=sample_weight, **fit_params)
    fit_kwargs = dict(fit_params)
    if sample_weight is not None:
        if "sample_weight" in signature(estimator.fit).parameters:
            fit_kwargs["sample_weight"] = sample_weight
        else:
            warnings.warn(
                f"{type(estimator).__name__}.fit does not accept sample_weight; "
                "the weights are used by the calibrator only.",
                UserWarning,
                stacklevel=3,
            )
    return Bunch(estimator=Bunch(fit=fit_kwargs), splitter=Bunch(split={}))


def cv_folds(cv, X, y, routed) -> list:
    """The ``(train, test)`` folds of ``cv``, checked as
    ``CalibratedClassifierCV`` checks them."""
    if isinstance(cv, LeaveOneOut):
        # worded as CalibratedClassifierCV's, which code may match
        raise ValueError(
            "LeaveOneOut cross-validation does not allow all classes to be "
            "present in test splits. Use a splitter that keeps every class "
            "in each test fold, such as StratifiedKFold."
        )
    splitter = check_cv(cv, y, classifier=True)
    n_folds = getattr(splitter, "n_splits", None)
    if isinstance(n_folds, int):
        counts = np.unique(y, return_counts=True)[1]
        # As in CalibratedClassifierCV: a number of folds the user asked
        # for must fit every class; the default folds may leave a rare
        # class out of some (StratifiedKFold warns), unless no class fills
        # them, where StratifiedKFold cannot split at all.
        short = counts < n_folds
        if short.all() or (cv is not None and short.any()):
            raise ValueError(
                f"Requesting {n_folds}-fold cross-validation but provided less "
                f"than {n_folds} examples for at least one class; lower cv or "
                "collect more samples of the rare classes."
            )
    return list(splitter.split(X, y, **routed.splitter.split))


def out_of_fold_scores(model, estimator, X, y_index, folds, routed):
    """Every sample's score by a clone of ``estimator`` fitted on the other
    folds (``ensemble=False``)."""
    fold_scores = Parallel(n_jobs=model.n_jobs)(
        delayed(fit_and_score)(
            clone(estimator),
            X,
            y_index,
            model.classes_,
            train,
            test,
            routed.estimator.fit,
            model.link == "softmax",
        )
        for train, test in folds
    )
    first = fold_scores[0]
    scores = np.full((len(y_index),) + first.shape[1:], np.nan, dtype=first.dtype)
    for (_, test), fold in zip(folds, fold_scores):
        scores[test] = fold
    if np.isnan(scores).any():
        raise ValueError(
            "cv must put every sample in exactly one test fold when "
            "ensemble=False, to give each an out-of-fold score."
        )
    return scores


def fit_on_all(model, estimator, X, y_index, weights, scores) -> FoldFit:
    """One calibrator on scores of every sample (out-of-fold ones, or a
    prefit model's), with its held-out probabilities of those samples."""
    if scores is None:
        scores = decision_scores(
            estimator, X, model.classes_, finite=model.link == "softmax"
        )
    pair = CalibratedPair(estimator, make_calibrator(model))
    keep = np.ones(len(y_index), dtype=bool)
    proba, margin = calibrate(
        pair, scores, y_index, weights, keep, model.n_samples_, model.classes_
    )
    return FoldFit(pair, np.arange(len(y_index)), proba, margin, scores)


def fit_pairs(model, estimator, X, y, y_index, weights, routed, folds, ensemble):
    """The fitted pairs, as :class:`~._pairs.FoldFit`: one per fold with
    ``ensemble=True``; else one, on out-of-fold scores (on ``X`` itself for a
    prefit estimator, ``folds`` None)."""
    if folds is None:
        return [fit_on_all(model, estimator, X, y_index, weights, None)]
    if not ensemble:
        scores = out_of_fold_scores(model, estimator, X, y_index, folds, routed)
        final = clone(estimator).fit(X, y, **routed.estimator.fit)
        return [fit_on_all(model, final, X, y_index, weights, scores)]
    return Parallel(n_jobs=model.n_jobs)(
        delayed(fit_pair)(
            clone(estimator),
            X,
            y_index,
            model.classes_,
            train,
            test,
            weights,
            model.n_samples_,
            routed.estimator.fit,
            make_calibrator(model),
        )
        for train, test in folds
    )


def make_calibrator(model) -> GaussianSoftmaxCalibrator:
    """An unfitted calibrator with the map parameters of ``model``."""
    return GaussianSoftmaxCalibrator(
        link=model.link,
        multiclass=model.multiclass,
        fit_intercept=model.fit_intercept,
        score_map=model.score_map,
        matrix_penalty=model.matrix_penalty,
        fit_ceiling=model.fit_ceiling,
    )


def fit_novelty(model, X, pairs, folds, weights):
    """The ``novelty`` rule's detectors, on the same folds as the pairs.

    One detector per fold is fitted on the features of its training rows
    and scores its held-out rows; the held-out scores are pooled, and the
    first fold's detector scores new samples. With one pair per fold, each
    fold's features come from that pair's estimator; with one pair (or a
    prefit estimator, with 5 folds of ``X``), from that pair's.
    """
    detector = check_detector(model.novelty_detector)
    try:
        if len(pairs) > 1:
            # each fold's rows through that fold's own preprocessing
            def fold_features(index, train, test):
                estimator = pairs[index].estimator
                return (
                    novelty_input(estimator, _safe_indexing(X, train)),
                    novelty_input(estimator, _safe_indexing(X, test)),
                )

            return fit_pooled(detector, fold_features, folds, weights)
        if folds is None:
            splitter = KFold(min(5, len(weights)), shuffle=True, random_state=0)
            folds = list(splitter.split(weights))
        features = novelty_input(pairs[0].estimator, X)
        return fit_pooled(detector, features, folds, weights)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"the novelty rule's detector ({type(detector).__name__}) could not "
            f"be fitted: {exc} It runs on the features the wrapped estimator's "
            "last step sees (X itself unless the estimator is a Pipeline). Put "
            "the preprocessing in a Pipeline, pass a novelty_detector that "
            "handles these features (e.g. a Pipeline ending in an outlier "
            "detector), or drop 'novelty' from uncertainty_rules."
        ) from exc


class GaussianSoftmaxClassifier(
    VersionedStateMixin,
    UncertaintyMixin,
    MetaEstimatorMixin,
    ClassifierMixin,
    BaseEstimator,
):
    """Wrap any classifier so that its probabilities are bounded by ``n``.

    Like :class:`~sklearn.calibration.CalibratedClassifierCV`, it calibrates the
    wrapped classifier's scores on data the classifier did not see (by
    cross-validation, or on the data passed to ``fit`` for a prefit model in a
    :class:`~sklearn.frozen.FrozenEstimator`), but with a
    :class:`GaussianSoftmaxCalibrator`: every probability lies in
    ``[1/n, 1 - 1/n]`` for two classes, ``n`` the number of training
    samples (with ``K`` classes in ``[1/((K-1)(n-1) + 1), (n-1)/(n+K-2)]``
    under the default link).

    Parameters
    ----------
    estimator : estimator instance, default=None
        The classifier whose scores are calibrated: any scikit-learn classifier
        with ``decision_function`` or ``predict_proba``. ``None`` uses
        ``LinearSVC(random_state=0)``, as ``CalibratedClassifierCV`` does. Wrap a
        prefit model in :class:`~sklearn.frozen.FrozenEstimator` to calibrate it
        on the data passed to :meth:`fit` without refitting it.
    link : {"gaussian", "linear", "softmax"}, default="gaussian"
        The link; ``"softmax"`` is the unbounded baseline (Platt scaling for two
        classes, temperature scaling with ``fit_intercept=False``).
    multiclass : {"vs_top", "simplex"}, default="vs_top"
        Form of the gaussian link for three or more classes.
    cv : int, cross-validation generator or iterable, default=None
        How the training data are split into fitting and calibration parts, as in
        ``CalibratedClassifierCV``: ``None`` is 5-fold stratified, an int that
        many stratified folds; a splitter or an iterable of (train, test) index
        pairs as given. Ignored for a ``FrozenEstimator`` with ``ensemble=False``.
    ensemble : bool or "auto", default="auto"
        ``True``: one (estimator, calibrator) pair per fold, each calibrator fitted
        on its fold's held-out scores, probabilities averaged. ``False``: one
        calibrator on the out-of-fold scores of all samples and the estimator
        refitted on all data. ``"auto"``: ``False`` for a ``FrozenEstimator``,
        else ``True``.
    n_samples : int, default=None
        The sample count ``n`` that bounds the probabilities. ``None`` uses the
        number of samples passed to :meth:`fit` (the sum of ``sample_weight``
        when given: weights are frequency weights). See Notes.
    fit_intercept : bool or "auto", default="auto"
        Whether the calibrator fits per-class offsets (``"auto"``: where they
        pay, see :class:`GaussianSoftmaxCalibrator`).
    score_map : {"auto", "affine", "matrix"}, default="auto"
        The calibrator's map from scores to the link's logits for three or
        more classes: ``"affine"`` (``a * z + b``) or ``"matrix"`` (``W z + b``,
        Dirichlet calibration's map with its off-diagonal ridge);
        ``"auto"`` is ``"matrix"`` where a calibrator has at least 10 samples
        per parameter (``K**2 + K``), except for ``link="softmax"``. See
        :class:`GaussianSoftmaxCalibrator`.
    matrix_penalty : float >= 0, default=0.3
        Strength of the matrix map's ridge on the mean log-loss.
    fit_ceiling : bool or "auto", default="auto"
        Whether each calibrator fits the gaussian link's ceiling too (at most
        its value for ``n``: the bound only tightens); ``"auto"`` where it
        applies (the gaussian link, two classes or ``multiclass="vs_top"``)
        and a calibrator has at least 10 samples per parameter (``K + 1``).
    n_jobs : int, default=None
        Number of jobs fitting the folds in parallel (joblib); ``None`` means 1
        unless in a :func:`joblib.parallel_backend` context.
    uncertainty_rules : tuple of str, default=("low_confidence", "novelty")
        The rules of :meth:`predict_uncertain`: any of ``"low_confidence"``,
        ``"ambiguous"``, ``"out_of_range"``, ``"conformal"`` and ``"novelty"``.
        See Notes.
    uncertainty_threshold : float in (0, 1) or "auto", default="auto"
        ``low_confidence`` flags a top-class probability below it. ``"auto"``
        picks it on the held-out (out-of-fold) predictions: the smallest
        threshold whose accepted predictions reach ``target_accuracy``.
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
        The ``novelty`` rule's detector: any scikit-learn outlier detector with
        ``score_samples`` or ``decision_function`` (higher: more normal), e.g.
        ``IsolationForest()`` or ``LocalOutlierFactor(novelty=True)``. It sees
        the features the wrapped estimator's last step sees: ``X`` transformed
        by the fitted preprocessing of a Pipeline, else ``X``. ``None`` uses the
        mean distance to the 5 nearest of at most 1 000 training samples, on
        standardised features. Fitted on the same folds as the estimator.
    novelty_alpha : float in (0, 1), default=0.05
        The ``novelty`` rule flags a sample whose conformal novelty p-value is
        at most this: in-distribution, at most about this share is flagged.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, in the order of the wrapped estimator's ``classes_``.
    calibrated_classifiers_ : list of objects
        The fitted (estimator, calibrator) pairs, one per fold with
        ``ensemble=True``, else one. Each has ``estimator`` and ``calibrator``
        attributes.
    n_samples_ : float
        The ``n`` the probabilities are bounded by.
    n_features_in_ : int
        Number of features seen in fit (when the wrapped estimator records it).
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names seen in fit (when the wrapped estimator records them).
    uncertainty_threshold_ : float
        The threshold of the ``low_confidence`` rule; ``inf`` when no threshold
        reaches ``target_accuracy`` (every prediction is flagged).
    uncertainty_margin_threshold_ : float
        Top-class probabilities that tie with ``uncertainty_threshold_`` (as
        at the bound) with a :meth:`confidence_margin` below this are flagged
        too: the smallest margin of the accepted held-out predictions that tie
        with it; ``-inf`` with a fixed threshold, or none reaching the target.
    coverage_ : float
        Share of the held-out predictions the threshold accepts.
    accepted_accuracy_ : float
        Accuracy of those accepted held-out predictions.
    conformity_scores_ : ndarray of shape (n_held_out,)
        ``1 - p_true`` of each held-out prediction (rows of weight 0 left
        out), sorted within each model's part: the nonconformity scores of
        :meth:`predict_set`.
    training_priors_ : ndarray of shape (n_classes,)
        The class proportions the probabilities assume (the mean held-out
        probability); :meth:`adapt_priors` reweights from them.
    class_priors_ : ndarray of shape (n_classes,)
        On a copy made by :meth:`adapt_priors` only: its proportions.

    See Also
    --------
    GaussianSoftmaxCalibrator : The calibrator, for scores you compute yourself.
    sklearn.calibration.CalibratedClassifierCV : Sigmoid, isotonic and
        temperature calibration, with the same ``cv`` and ``ensemble`` semantics.

    Notes
    -----
    **Why n is the number of training samples.** A probability of ``1/n`` is the
    smallest that ``n`` observations can support: the fitted map from scores to
    probabilities has seen at most ``n`` labelled outcomes. With cross-validation
    every training sample is scored once by a model that did not see it, so the
    calibration evidence is all ``n`` samples, also with ``ensemble=True``, where
    each fold's calibrator sees only its fold but the averaged prediction rests on
    all of them (and an average of probabilities within the bounds for ``n``
    stays there). With a ``FrozenEstimator`` the calibration evidence is the data passed
    to :meth:`fit`, so ``n`` is its size, not the size of the set the prefit model
    was trained on; pass ``n_samples`` if you know better. Sample weights are
    frequency weights (a weight of 3 counts as three samples), so ``n`` is their
    sum, which makes fitting with integer weights equal to fitting on repeated
    rows.

    **The uncertain flag** (user guide, "Flagging predictions not to trust"):
    its threshold, conformal references and shift summary come from held-out
    predictions, made by pairs that did not see the sample (the threshold's
    from every pair's calibrator on the held-out estimator's scores, as the
    ensemble averages); a new sample's conformal score is ranked against the
    held-out scores of the same pair (cross-conformal prediction). On new data
    of the same distribution the accepted predictions reach ``target_accuracy``
    approximately; on shifted data there is no guarantee, and
    :meth:`shift_report` tells when a batch no longer looks like the training
    data.

    Scores are taken from ``decision_function`` where the estimator has it, else
    from ``log(predict_proba)``: exact zero probabilities become ``-inf`` scores,
    which the bounded links take as bounds; ``link="softmax"``, which cannot,
    takes ``log(max(p, 1e-12))`` as ``CalibratedClassifierCV`` does. A class
    missing from a fold's training part is never predicted by that fold's
    model: its calibrator covers the classes the model saw, and the missing
    class gets the link's floor probability (0 under ``link="softmax"``).

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sklearn_gsoftmax import GaussianSoftmaxClassifier
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> clf = make_pipeline(StandardScaler(), LogisticRegression())
    >>> model = GaussianSoftmaxClassifier(clf).fit(X, y)
    >>> proba = model.predict_proba(X)
    >>> bool(proba.min() >= 1 / len(y) * (1 - 1e-9))
    True
    """

    _parameter_constraints: dict = {
        "estimator": [
            HasMethods(["fit", "predict_proba"]),
            HasMethods(["fit", "decision_function"]),
            None,
        ],
        "link": [StrOptions(set(LINKS))],
        "multiclass": [StrOptions(set(MULTICLASS_FORMS))],
        "cv": ["cv_object"],
        "ensemble": ["boolean", StrOptions({"auto"})],
        "n_samples": [Interval(Integral, 2, None, closed="left"), None],
        "fit_intercept": ["boolean", StrOptions({"auto"})],
        **MAP_CONSTRAINTS,
        "n_jobs": [Integral, None],
        **UNCERTAINTY_CONSTRAINTS,
    }

    _required_fitted_attributes = (
        "classes_",
        "n_samples_",
        "calibrated_classifiers_",
        "uncertainty_threshold_",
        "_conformal_references",
    )

    def __init__(
        self,
        estimator=None,
        *,
        link="gaussian",
        multiclass="vs_top",
        cv=None,
        ensemble="auto",
        n_samples=None,
        fit_intercept="auto",
        score_map="auto",
        matrix_penalty=0.3,
        fit_ceiling="auto",
        n_jobs=None,
        uncertainty_rules=DEFAULT_RULES,
        uncertainty_threshold="auto",
        target_accuracy=0.95,
        ambiguity_ratio=2.0,
        conformal_alpha=0.1,
        novelty_detector=None,
        novelty_alpha=0.05,
    ):
        self.estimator = estimator
        self.link = link
        self.multiclass = multiclass
        self.cv = cv
        self.ensemble = ensemble
        self.n_samples = n_samples
        self.fit_intercept = fit_intercept
        self.score_map = score_map
        self.matrix_penalty = matrix_penalty
        self.fit_ceiling = fit_ceiling
        self.n_jobs = n_jobs
        self.uncertainty_rules = uncertainty_rules
        self.uncertainty_threshold = uncertainty_threshold
        self.target_accuracy = target_accuracy
        self.ambiguity_ratio = ambiguity_ratio
        self.conformal_alpha = conformal_alpha
        self.novelty_detector = novelty_detector
        self.novelty_alpha = novelty_alpha

    def _get_estimator(self):
        if self.estimator is None:
            # deterministic, like CalibratedClassifierCV's default
            estimator = LinearSVC(random_state=0)
            if _routing_enabled():
                estimator.set_fit_request(sample_weight=True)
            return estimator
        return self.estimator

    @_fit_context(
        # the wrapped estimator is validated by its own fit
        prefer_skip_nested_validation=False
    )
    def fit(self, X, y, sample_weight=None, **fit_params):
        """Fit the classifier(s) and calibrate their scores.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (n_samples, n_features)
            Training data, in any form the wrapped estimator accepts.
        y : array-like of shape (n_samples,)
            Labels: strings, integers or booleans.
        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights, used by the calibrator and passed to the
            estimator's ``fit`` when it accepts them (or as metadata routing
            requests).
        **fit_params : dict
            Further parameters for the estimator's ``fit`` (routed when metadata
            routing is enabled).

        Returns
        -------
        self : object
            The fitted classifier.
        """
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is "
                "None."
            )
        check_rules(self.uncertainty_rules)
        X, y = indexable(X, column_or_1d(y, warn=True))
        if len(y) == 0:
            raise ValueError(
                "Found array with 0 sample(s) (shape of X: "
                f"{getattr(X, 'shape', None)}); fit needs labelled samples."
            )
        labels = class_labels(y)
        estimator = self._get_estimator()
        frozen = isinstance(estimator, FrozenEstimator)
        ensemble = (not frozen) if self.ensemble == "auto" else self.ensemble
        self.classes_ = np.asarray(estimator.classes_) if frozen else labels
        y_index = encoded_labels(self.classes_, y)
        if len(self.classes_) < 2:
            raise ValueError(
                f"y holds one class only ({self.classes_[0]!r}); calibrated "
                "probabilities need at least two classes."
            )
        weights = check_weights(sample_weight, y_index.reshape(-1, 1))
        self.n_samples_ = sample_count(
            None if sample_weight is None else weights.sum(),
            len(y_index),
            self.n_samples,
            n_classes=len(self.classes_),
            link=self.link,
        )
        routed = routed_fit_params(self, estimator, sample_weight, fit_params)

        folds = None if frozen and not ensemble else cv_folds(self.cv, X, y, routed)
        results = fit_pairs(
            self, estimator, X, y, y_index, weights, routed, folds, ensemble
        )
        pairs = [fit.pair for fit in results]
        novelty = None
        if "novelty" in check_rules(self.uncertainty_rules):
            novelty = fit_novelty(self, X, pairs, folds, weights)
        self.calibrated_classifiers_ = pairs
        self._fit_uncertainty(*held_out(results, y_index, weights), novelty=novelty)
        first = pairs[0].estimator
        for attribute in ("n_features_in_", "feature_names_in_"):
            if hasattr(first, attribute):
                setattr(self, attribute, getattr(first, attribute))
        return self

    def _score_columns(self) -> int:
        return self.calibrated_classifiers_[0].calibrator.n_features_in_

    def _link_bounds(self) -> tuple:
        first = self.calibrated_classifiers_[0].calibrator
        return first.n_samples_, first.link, first.multiclass

    def _novelty_features(self, X) -> list:
        # the novelty model's detector belongs to the first pair's fold
        return [novelty_input(self.calibrated_classifiers_[0].estimator, X)]

    def _predictions(self, X, *, with_range=True):
        check_is_fitted(self)
        return pair_predictions(self.calibrated_classifiers_, X, with_range)

    @lazily
    def predict_proba(self, X) -> np.ndarray:
        """Probabilities of each class, bounded by ``n_samples_``.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (m, n_features)
            Samples, in any form the wrapped estimator accepts.

        Returns
        -------
        proba : ndarray of shape (m, n_classes)
            The average over ``calibrated_classifiers_`` of their probabilities.
        """
        check_is_fitted(self)
        pairs = self.calibrated_classifiers_
        proba = _average(
            [pair.proba_of_scores(pair.scores(X)) for pair in pairs],
            pairs[0].calibrator,
        )
        return self._adapted(proba)

    @lazily
    def predict_log_proba(self, X) -> np.ndarray:
        """Logs of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (m, n_features)
            Samples.

        Returns
        -------
        log_proba : ndarray of shape (m, n_classes)
            Computed in log space from each pair's log-probabilities, so that it
            keeps its precision near 0 and 1; finite for the bounded links.
        """
        check_is_fitted(self)
        logs = [
            pair.proba_of_scores(pair.scores(X), log=True)
            for pair in self.calibrated_classifiers_
        ]
        if len(logs) == 1:
            return self._adapted(logs[0], log=True)
        # the log of the average of the pairs' probabilities
        log_mean = np.logaddexp.reduce(np.stack(logs), axis=0) - np.log(len(logs))
        first = self.calibrated_classifiers_[0].calibrator
        return self._adapted(_clip_like(log_mean, first, log=True), log=True)

    @lazily
    def predict(self, X) -> np.ndarray:
        """The most probable class of each sample.

        Parameters
        ----------
        X : array-like or sparse matrix of shape (m, n_features)
            Samples.

        Returns
        -------
        labels : ndarray of shape (m,)
            Entries of ``classes_``.
        """
        proba = self.predict_proba(X)
        return self.classes_[first_index_of_max(proba)]

    def get_metadata_routing(self):
        """Routing of ``sample_weight`` and other fit metadata.

        ``sample_weight`` is consumed by this estimator (for the calibrator) and
        routed to the wrapped estimator's ``fit`` and the splitter's ``split``
        where they request it.

        Returns
        -------
        routing : MetadataRouter
            The routing information.
        """
        return (
            MetadataRouter(owner=self)
            .add_self_request(self)
            .add(
                estimator=self._get_estimator(),
                method_mapping=MethodMapping().add(caller="fit", callee="fit"),
            )
            .add(
                splitter=self.cv,
                method_mapping=MethodMapping().add(caller="fit", callee="split"),
            )
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        inner = get_tags(self._get_estimator())
        tags.input_tags.sparse = inner.input_tags.sparse
        tags.input_tags.allow_nan = inner.input_tags.allow_nan
        return tags

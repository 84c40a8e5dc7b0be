"""GaussianSoftmaxClassifier: wrap any classifier for n-bounded probabilities."""

from __future__ import annotations

import warnings
from inspect import signature
from numbers import Integral
from typing import NamedTuple

import numpy as np
from joblib import Parallel, delayed
from scipy.special import logsumexp
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    MetaEstimatorMixin,
    _fit_context,
    clone,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import KFold, LeaveOneOut, check_cv
from sklearn.pipeline import Pipeline
from sklearn.svm import LinearSVC
from sklearn.utils import Bunch, _safe_indexing, get_tags, indexable
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.validation import (
    _check_method_params,
    check_is_fitted,
    column_or_1d,
)

from . import _dask
from ._calibrator import (
    MAP_CONSTRAINTS,
    UNCERTAINTY_CONSTRAINTS,
    GaussianSoftmaxCalibrator,
    check_weights,
    sample_count,
)
from ._links import LINKS, clip_to_bounds, link_proba
from ._novelty import check_detector, fit_pooled
from ._persistence import VersionedStateMixin
from ._ties import first_index_of_max
from ._uncertainty import (
    DEFAULT_RULES,
    HeldOut,
    Predictions,
    UncertaintyMixin,
    check_rules,
    outside_range,
)
from ._validation import MULTICLASS_FORMS, check_scores, class_labels

#: The smallest probability whose log ``link="softmax"`` is given: as in
#: ``CalibratedClassifierCV`` (``log(p + 1e-12)``), since softmax turns a
#: ``-inf`` score into an infinite log-loss where the bounded links take it
#: as a bound.
PROBA_FLOOR = 1e-12


def decision_scores(estimator, X, classes: np.ndarray, *, finite=False) -> np.ndarray:
    """Scores of a fitted classifier, one column per class of ``classes``.

    ``decision_function`` where the estimator has it, else ``log(predict_proba)``
    (an exact zero probability becomes a ``-inf`` score, which the bounded
    links take as a bound). Binary decision scores stay 1-D. A class the
    estimator never saw (a cross-validation fold without it) gets a ``-inf``
    column: that estimator never predicts it.

    With ``finite`` (for ``link="softmax"``) the scores are finite instead: a
    probability is raised to ``PROBA_FLOOR`` before its log, and a class the
    estimator never saw gets the score of probability ``PROBA_FLOOR``.
    """
    if hasattr(estimator, "decision_function"):
        scores = np.asarray(estimator.decision_function(X))
    else:
        proba = np.asarray(estimator.predict_proba(X), dtype=np.float64)
        if finite:
            proba = np.maximum(proba, PROBA_FLOOR)
        with np.errstate(divide="ignore"):
            scores = np.log(proba)
    scores = check_scores(scores, name=f"scores of {type(estimator).__name__}")
    seen = np.asarray(estimator.classes_)
    if len(seen) == len(classes):
        return scores
    if scores.ndim == 1:
        scores = np.column_stack([-scores / 2, scores / 2])
    unseen = -np.inf
    if finite:
        # the score of probability PROBA_FLOOR against the seen classes
        unseen = (logsumexp(scores, axis=1) + np.log(PROBA_FLOOR))[:, None]
    full = np.empty((scores.shape[0], len(classes)), dtype=scores.dtype)
    full[:] = unseen
    full[:, np.searchsorted(classes, seen)] = scores
    return full


def novelty_input(estimator, X):
    """What the ``novelty`` rule's detector sees of ``X``: the features the
    last step of a Pipeline sees (its fitted preprocessing applied), else ``X``."""
    if isinstance(estimator, FrozenEstimator):
        estimator = estimator.estimator
    if isinstance(estimator, Pipeline) and len(estimator) > 1:
        return estimator[:-1].transform(X)
    if getattr(X, "ndim", 2) > 2:
        # images and other n-dimensional samples: one feature per entry
        return X.reshape(X.shape[0], -1)
    return X


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


class _CalibratedPair:
    """A fitted estimator and the calibrator of its scores.

    ``columns`` is None when the calibrator covers every class of the
    classifier, else the indices of the classes it covers, those its estimator
    saw: the others get ``-inf`` calibrated scores, so the link's floor
    probability (0 under ``link="softmax"``), as in ``_fit_pair``.
    """

    # pairs saved before columns existed cover every class
    columns = None

    def __init__(self, estimator, calibrator, columns=None, n_classes=None):
        self.estimator = estimator
        self.calibrator = calibrator
        self.columns = columns
        self.n_classes = n_classes

    def proba_and_scores(self, X, *, log=False):
        calibrator = self.calibrator
        scores = decision_scores(
            self.estimator, X, calibrator.classes_, finite=calibrator.link == "softmax"
        )
        return self.proba_of_scores(scores, log=log), scores

    def proba_of_scores(self, scores, *, log=False):
        """Probabilities of every class from validated scores of the calibrator."""
        calibrator = self.calibrator
        if self.columns is None:
            return calibrator._proba_of_validated(scores, log=log)
        calibrated = calibrator._mapped(scores)
        if calibrated.ndim == 1:
            calibrated = np.column_stack([np.zeros_like(calibrated), calibrated])
        full = np.full(
            (calibrated.shape[0], self.n_classes), -np.inf, dtype=calibrated.dtype
        )
        full[:, self.columns] = calibrated
        return link_proba(
            full, calibrator.n_link_, calibrator.link, calibrator.multiclass, log=log
        )


def _fit_on_train(estimator, X, y_index, classes, train, fit_params):
    estimator.fit(
        _safe_indexing(X, train),
        classes[y_index[train]],
        **_check_method_params(X, params=fit_params, indices=train),
    )
    return estimator


def _fit_and_score(estimator, X, y_index, classes, train, test, fit_params, finite):
    """Fit ``estimator`` on the ``train`` rows; return its scores of ``test``."""
    _fit_on_train(estimator, X, y_index, classes, train, fit_params)
    return decision_scores(estimator, _safe_indexing(X, test), classes, finite=finite)


def _fit_pair(
    estimator, X, y_index, classes, train, test, weights, n, fit_params, calibrator
):
    """Fit ``estimator`` on ``train``; fit ``calibrator`` on the estimator's
    scores of ``test``.

    A class missing from ``train`` is never predicted by that estimator, as in
    ``CalibratedClassifierCV``: the calibrator covers the classes the
    estimator saw and is fitted on the test samples of those classes, and the
    pair gives the other classes a ``-inf`` calibrated score, which is the
    link's floor probability (0 under ``link="softmax"``).
    """
    _fit_on_train(estimator, X, y_index, classes, train, fit_params)
    X_test, y_test, w_test = _safe_indexing(X, test), y_index[test], weights[test]
    finite = calibrator.link == "softmax"
    seen = np.searchsorted(classes, estimator.classes_)
    if len(seen) == len(classes):
        scores = decision_scores(estimator, X_test, classes, finite=finite)
        keep, y_fit, fit_classes = np.ones(len(test), bool), y_test, classes
        pair = _CalibratedPair(estimator, calibrator)
    else:
        position = np.full(len(classes), -1)
        position[seen] = np.arange(len(seen))
        keep = position[y_test] >= 0
        scores = decision_scores(estimator, X_test, classes[seen], finite=finite)
        y_fit, fit_classes = position[y_test], classes[seen]
        pair = _CalibratedPair(estimator, calibrator, seen, len(classes))
    calibrator._fit_encoded(scores[keep], y_fit[keep], w_test[keep], n, fit_classes)
    proba, margin = _cross_fitted(pair, scores, y_fit, w_test, keep, n, fit_classes)
    return FoldFit(pair, test, proba, margin, scores)


def _cross_fitted(pair, scores, y_fit, weights, keep, n, fit_classes):
    """Held-out probabilities and margins of the rows a pair's calibrator was
    fitted on: each row's from a copy fitted on the other rows (5-fold).

    The calibrator's own probabilities of its fitting rows are optimistic when
    a fold holds few rows per parameter (digits, 5 folds: a mean top-class
    probability of 0.975 against 0.946 on new data), and the uncertain flag's
    threshold, conformal references and shift summary need held-out ones.
    """
    inner = KFold(_INNER_FOLDS, shuffle=True, random_state=0)
    if keep.sum() < 2 * _INNER_FOLDS * len(fit_classes):
        # too few rows to leave any out: the calibrator's own probabilities
        return pair.proba_of_scores(scores), pair.calibrator._margin_of_validated(
            scores
        )
    proba = np.empty((len(scores), pair.n_classes or len(fit_classes)))
    margin = np.empty(len(scores))
    for inner_train, inner_test in inner.split(scores):
        inner_train = inner_train[keep[inner_train]]
        copy = clone(pair.calibrator)
        with warnings.catch_warnings():
            # a class missing from the inner rows pushes its offset to the box
            warnings.simplefilter("ignore", ConvergenceWarning)
            copy._fit_encoded(
                scores[inner_train],
                y_fit[inner_train],
                weights[inner_train],
                n,
                fit_classes,
            )
        held = _CalibratedPair(None, copy, pair.columns, pair.n_classes)
        proba[inner_test] = held.proba_of_scores(scores[inner_test])
        margin[inner_test] = copy._margin_of_validated(scores[inner_test])
    return proba, margin


#: Folds of the cross-fitted held-out probabilities within each fold.
_INNER_FOLDS = 5


class FoldFit(NamedTuple):
    """A fitted pair, the rows it held out (``test``), its own held-out
    probabilities and margins of them, and its estimator's scores of them."""

    pair: _CalibratedPair
    test: np.ndarray
    proba: np.ndarray
    margin: np.ndarray
    scores: np.ndarray


def _as_the_ensemble_predicts(fits: list) -> list:
    """Each pair's held-out probabilities and margins as the ensemble makes
    them: every pair's calibrator on the scores of the estimator that did not
    see the rows, averaged (the pair's own, its held-out ones).

    The ensemble averages its pairs, which makes it less confident than any
    one of them, the more so the more their calibrators differ (fitted
    ceilings of different folds): a threshold learnt from single pairs'
    probabilities accepted 4.7 % of the held-out digits at a target of 0.99
    and none of a test set, against 92 % and 90 % with these. The other
    pairs' calibrators never saw these rows. Their estimators did, so the
    estimator's own spread between folds is not in the average: for forests
    and boosted trees the ensemble is then a little less confident (and more
    accurate) than these predictions (user guide, "The flag of an
    ensemble"). A pair missing a class scores other columns: it keeps its own.
    """
    complete = [fit for fit in fits if fit.pair.columns is None]
    out = []
    for fit in fits:
        if fit.pair.columns is not None or len(complete) < 2:
            out.append((fit.proba, fit.margin))
            continue
        proba, margin = fit.proba.copy(), fit.margin.copy()
        for other in complete:
            if other is fit:
                continue
            proba += other.pair.proba_of_scores(fit.scores)
            margin += other.pair.calibrator._margin_of_validated(fit.scores)
        out.append((proba / len(complete), margin / len(complete)))
    return out


def _held_out(fits: list, y_index, weights) -> HeldOut:
    """What the uncertain flag is fitted on: the held-out rows' probabilities
    as the ensemble makes them (:func:`_as_the_ensemble_predicts`; averaged
    over the folds that held a row out, when several did) and each pair's own
    held-out predictions of the rows its estimator did not see."""
    n_classes = fits[0].proba.shape[1]
    total = np.zeros((len(y_index), n_classes))
    total_margin = np.zeros(len(y_index))
    count = np.zeros(len(y_index))
    for fit, (proba, margin) in zip(fits, _as_the_ensemble_predicts(fits)):
        total[fit.test] += proba
        total_margin[fit.test] += margin
        count[fit.test] += 1
    held = count > 0
    return HeldOut(
        total[held] / count[held, None],
        total_margin[held] / count[held],
        y_index[held],
        weights[held],
        [(fit.proba, fit.margin, y_index[fit.test], weights[fit.test]) for fit in fits],
    )


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
    fit_intercept : bool, default=True
        Whether the calibrator fits per-class offsets; ``False`` fits the scale
        only (temperature scaling with ``link="softmax"``).
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
        Where top-class probabilities tie at ``uncertainty_threshold_`` (they
        saturate at the bound), those with a calibrated score margin
        (:meth:`confidence_margin`) below this are flagged too; ``-inf`` when
        no tie needs breaking.
    coverage_ : float
        Share of the held-out predictions the threshold accepts.
    accepted_accuracy_ : float
        Accuracy of those accepted held-out predictions.
    conformity_scores_ : ndarray of shape (n_held_out,)
        ``1 - p_true`` of each held-out prediction, the nonconformity scores of
        :meth:`predict_set`.

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

    **The uncertain flag.** ``low_confidence`` catches predictions the model
    itself rates unlikely; ``novelty`` catches samples unlike the training data
    (a conformal p-value of a novelty score, at most about ``novelty_alpha``
    of in-distribution samples flagged), which confidence cannot see on shifted
    data; ``ambiguous`` catches close calls between the top two classes;
    ``out_of_range`` catches samples whose scores, for at least one (estimator,
    calibrator) pair, leave the range that pair's calibrator saw in fit, a
    cruder novelty signal without a guaranteed false-alarm rate; ``conformal``
    catches samples whose conformal prediction set is not a single class. With
    ``uncertainty_threshold="auto"`` the accepted predictions reach
    ``target_accuracy`` on the held-out data the threshold was chosen on; on new
    data of the same distribution they reach it approximately (a threshold
    chosen on finite data lands a little below its target about half the time),
    and on shifted data there is no guarantee: :meth:`shift_report` tells when a
    batch no longer looks like the training data. Every held-out probability
    comes from a classifier that did not see the sample (with ``ensemble=True``,
    its own fold's pair, with the pair's calibrator cross-fitted within the
    fold), and a new sample's conformal score is ranked against the held-out
    scores of the same pair (cross-conformal prediction).

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
        "fit_intercept": ["boolean"],
        **MAP_CONSTRAINTS,
        "n_jobs": [Integral, None],
        **UNCERTAINTY_CONSTRAINTS,
    }

    _required_fitted_attributes = (
        "classes_",
        "n_samples_",
        "calibrated_classifiers_",
        "uncertainty_threshold_",
        "conformity_scores_",
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
        fit_intercept=True,
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

    def _make_calibrator(self):
        return GaussianSoftmaxCalibrator(
            link=self.link,
            multiclass=self.multiclass,
            fit_intercept=self.fit_intercept,
            score_map=self.score_map,
            matrix_penalty=self.matrix_penalty,
            fit_ceiling=self.fit_ceiling,
        )

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
        y_index = self._encode(y)
        if len(self.classes_) < 2:
            raise ValueError(
                f"y holds one class only ({self.classes_[0]!r}); calibrated "
                "probabilities need at least two classes."
            )
        weights = check_weights(sample_weight, y_index.reshape(-1, 1))
        self.n_samples_ = sample_count(
            None if sample_weight is None else weights,
            len(y_index),
            self.n_samples,
            n_classes=len(self.classes_),
            link=self.link,
        )
        routed = self._route(estimator, sample_weight, fit_params)

        if frozen and not ensemble:
            results = [self._fit_on_all(estimator, X, y_index, weights, None)]
        else:
            folds = self._folds(X, y, routed)
            if ensemble:
                results = Parallel(n_jobs=self.n_jobs)(
                    delayed(_fit_pair)(
                        clone(estimator),
                        X,
                        y_index,
                        self.classes_,
                        train,
                        test,
                        weights,
                        self.n_samples_,
                        routed.estimator.fit,
                        self._make_calibrator(),
                    )
                    for train, test in folds
                )
            else:
                scores = self._out_of_fold_scores(estimator, X, y_index, folds, routed)
                final = clone(estimator).fit(X, y, **routed.estimator.fit)
                results = [self._fit_on_all(final, X, y_index, weights, scores)]
        pairs = [fit.pair for fit in results]
        novelty = None
        if "novelty" in check_rules(self.uncertainty_rules):
            novelty = self._fit_novelty(
                X, pairs, None if frozen and not ensemble else folds, weights
            )
        self.calibrated_classifiers_ = pairs
        self._fit_uncertainty(_held_out(results, y_index, weights), novelty=novelty)
        first = pairs[0].estimator
        for attribute in ("n_features_in_", "feature_names_in_"):
            if hasattr(first, attribute):
                setattr(self, attribute, getattr(first, attribute))
        return self

    def _encode(self, y):
        # membership first: labels of another type than classes_ (strings for
        # a model fitted on integers) cannot even be sorted against them
        known = set(self.classes_.tolist())
        unseen = [label for label in np.unique(y).tolist() if label not in known]
        if unseen:
            raise ValueError(
                f"y holds labels {unseen} that the prefit estimator does not know "
                f"(its classes_ are {self.classes_.tolist()}); calibrate on data of "
                "those classes only."
            )
        return np.searchsorted(self.classes_, y)

    def _route(self, estimator, sample_weight, fit_params):
        if _routing_enabled():
            return process_routing(
                self, "fit", sample_weight=sample_weight, **fit_params
            )
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

    def _folds(self, X, y, routed):
        if isinstance(self.cv, LeaveOneOut):
            # worded as CalibratedClassifierCV's, which code may match
            raise ValueError(
                "LeaveOneOut cross-validation does not allow all classes to be "
                "present in test splits. Use a splitter that keeps every class "
                "in each test fold, such as StratifiedKFold."
            )
        cv = check_cv(self.cv, y, classifier=True)
        n_folds = getattr(cv, "n_splits", None)
        if isinstance(n_folds, int):
            counts = np.unique(y, return_counts=True)[1]
            # As in CalibratedClassifierCV: a number of folds the user asked
            # for must fit every class; the default folds may leave a rare
            # class out of some (StratifiedKFold warns), unless no class fills
            # them, where StratifiedKFold cannot split at all.
            short = counts < n_folds
            if short.all() or (self.cv is not None and short.any()):
                raise ValueError(
                    f"Requesting {n_folds}-fold cross-validation but provided less "
                    f"than {n_folds} examples for at least one class; lower cv or "
                    "collect more samples of the rare classes."
                )
        return list(cv.split(X, y, **routed.splitter.split))

    def _out_of_fold_scores(self, estimator, X, y_index, folds, routed):
        fold_scores = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_and_score)(
                clone(estimator),
                X,
                y_index,
                self.classes_,
                train,
                test,
                routed.estimator.fit,
                self.link == "softmax",
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

    def _fit_on_all(self, estimator, X, y_index, weights, scores):
        """One calibrator on scores of every sample (out-of-fold ones, or a
        prefit model's); returns it with its probabilities of those samples."""
        if scores is None:
            scores = decision_scores(
                estimator, X, self.classes_, finite=self.link == "softmax"
            )
        calibrator = self._make_calibrator()
        calibrator._fit_encoded(
            scores, y_index, weights, self.n_samples_, self.classes_
        )
        pair = _CalibratedPair(estimator, calibrator)
        if calibrator.coef_ is None:
            # n scores for a handful of parameters: its own probabilities are
            # nearly held-out ones
            proba = calibrator._proba_of_validated(scores)
            margin = calibrator._margin_of_validated(scores)
        else:
            # K**2 parameters of a matrix map: cross-fitted ones
            keep = np.ones(len(y_index), dtype=bool)
            proba, margin = _cross_fitted(
                pair, scores, y_index, weights, keep, self.n_samples_, self.classes_
            )
        return FoldFit(pair, np.arange(len(y_index)), proba, margin, scores)

    def _fit_novelty(self, X, pairs, folds, weights):
        """The ``novelty`` rule's detectors, on the same folds as the pairs.

        One detector per fold is fitted on the features of its training rows
        and scores its held-out rows; the held-out scores are pooled, and the
        first fold's detector scores new samples. With one pair per fold, each
        fold's features come from that pair's estimator; with one pair (or a
        prefit estimator, with 5 folds of ``X``), from that pair's.
        """
        detector = check_detector(self.novelty_detector)
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

    def _score_columns(self) -> int:
        return self.calibrated_classifiers_[0].calibrator.n_features_in_

    def _novelty_features(self, X) -> list:
        # the novelty model's detector belongs to the first pair's fold
        return [novelty_input(self.calibrated_classifiers_[0].estimator, X)]

    def _predictions(self, X, *, with_range=True):
        """Average probabilities of the pairs and each pair's own, the average
        calibrated score margin, and with ``with_range`` whether any pair's
        scores of a sample leave its calibrator's ``score_range_``."""
        check_is_fitted(self)
        per_pair, margins, outside = [], [], None
        for pair in self.calibrated_classifiers_:
            pair_proba, scores = pair.proba_and_scores(X)
            per_pair.append(pair_proba)
            margins.append(pair.calibrator._margin_of_validated(scores))
            if with_range:
                pair_outside = outside_range(scores, pair.calibrator.score_range_)
                outside = pair_outside if outside is None else outside | pair_outside
        # huge margins may add up to inf: still the largest, as they rank
        with np.errstate(over="ignore"):
            margin = sum(margins[1:], margins[0].copy()) / len(margins)
        return Predictions(
            _average(per_pair, self.calibrated_classifiers_[0].calibrator),
            per_pair,
            outside,
            margin,
            margins,
        )

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
        if _dask.is_dask_collection(X):
            return _dask.predict(self, "predict_proba", X)
        check_is_fitted(self)
        pairs = self.calibrated_classifiers_
        return _average(
            [pair.proba_and_scores(X)[0] for pair in pairs], pairs[0].calibrator
        )

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
        if _dask.is_dask_collection(X):
            return _dask.predict(self, "predict_log_proba", X)
        check_is_fitted(self)
        logs = [
            pair.proba_and_scores(X, log=True)[0]
            for pair in self.calibrated_classifiers_
        ]
        if len(logs) == 1:
            return logs[0]
        # the log of the average of the pairs' probabilities
        log_mean = np.logaddexp.reduce(np.stack(logs), axis=0) - np.log(len(logs))
        first = self.calibrated_classifiers_[0].calibrator
        return _clip_like(log_mean, first, log=True)

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
        if _dask.is_dask_collection(X):
            return _dask.predict(self, "predict", X)
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

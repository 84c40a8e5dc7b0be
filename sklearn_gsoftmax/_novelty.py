"""The ``novelty`` rule: a novelty score with a conformal false-alarm guarantee.

A novelty detector (by default the distance to the nearest training samples in
standardised features) is fitted on the same folds as the classifier, so that
every training sample gets a *held-out* novelty score: one from a detector that
did not see it. A new sample's conformal p-value is the share of held-out scores
at least as novel as its own,

    p(x) = (1 + weight{i : s_i >= s(x)}) / (W + 1),

and the rule flags it when ``p(x) <= novelty_alpha``. That is exactly the
finite-sample rule "flag scores above the ``ceil((m + 1)(1 - alpha))``-th
smallest of the ``m`` held-out scores" (never flag when that index exceeds
``m``), so for exchangeable data at most a share ``alpha`` of in-distribution
samples is flagged, on average over training sets. The held-out scores of all
folds are pooled and one fold's detector scores new samples (see
:func:`fit_pooled`).

Cost: the default detector keeps at most ``max_reference`` training rows (a
random subsample) and the conformal reference holds at most ``MAX_HELD_OUT``
held-out scores, so fitting costs ``O(min(n, MAX_HELD_OUT) * max_reference *
d)`` and each new sample ``O(max_reference * d)``, whatever the size of the
training set.
"""

from __future__ import annotations

import warnings
from numbers import Integral

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix, hstack, issparse
from sklearn.base import BaseEstimator, clone
from sklearn.neighbors import KDTree
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.extmath import row_norms, safe_sparse_dot
from sklearn.utils.sparsefuncs import mean_variance_axis
from sklearn.utils.validation import check_is_fitted, validate_data

from ._conformal import ConformalReference
from ._ties import at_most, no_spread

#: At most this many training rows fit each detector (a random subsample
#: beyond it), so that the fit costs the same for 10^5 or 10^8 training samples.
MAX_ROWS = 20_000

#: At most this many held-out novelty scores form the conformal reference (a
#: random subsample, in proportion to the folds). The flag rate's guarantee
#: needs no more: the empirical (1 - alpha)-quantile of 4 000 scores is off by
#: about sqrt(alpha (1 - alpha) / 4000), 0.3 points at alpha = 0.05, and
#: scoring them is most of what the rule adds to a fit (10 000 cost as much as
#: the cross-fitted calibrators together).
MAX_HELD_OUT = 4_000

#: Up to this many features (dense, none missing), the nearest reference
#: samples are found with a k-d tree: ``O(log r)`` a query instead of a pass
#: over all ``r`` reference rows (a calibrator's score features are 8 or
#: fewer: 5 times faster at ``r = 1000``). Its distances are computed from
#: the differences, as the brute-force search's final ones are, so both
#: give the same scores.
KD_TREE_MAX_FEATURES = 16


class KNeighborsNovelty(BaseEstimator):
    """Novelty as the mean distance to the nearest training samples.

    The default detector of the ``novelty`` rule: numeric features are
    standardised, categorical ones (a DataFrame's category, string or object
    columns) one-hot encoded so that two different categories are one unit
    apart, and a new sample's novelty is its mean Euclidean distance to its
    ``n_neighbors`` nearest reference samples, a random subsample of at most
    ``max_reference`` training rows. ``score_samples`` follows scikit-learn's
    outlier detectors: higher means more normal (it returns minus the
    distance).

    A missing value (NaN, for estimators that accept it; a missing or unseen
    category) counts as a random draw from its feature: it adds that draw's
    expected squared distance (1 standardised unit) instead of sitting at the
    feature's mean, so that a sample with most features missing is far from
    every reference sample, and novel, rather than central and typical.

    Parameters
    ----------
    n_neighbors : int, default=5
        Number of nearest reference samples averaged.
    max_reference : int, default=1000
        Largest number of training rows kept as reference; caps the memory and
        the time of each prediction.
    random_state : int, RandomState instance or None, default=0
        Draws the reference subsample.
    """

    _parameter_constraints: dict = {
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "max_reference": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(self, n_neighbors=5, max_reference=1000, random_state=0):
        self.n_neighbors = n_neighbors
        self.max_reference = max_reference
        self.random_state = random_state

    def fit(self, X, y=None):
        """Keep a standardised reference subsample of ``X``.

        Parameters
        ----------
        X : array-like, sparse matrix or DataFrame of shape (n_samples, n_features)
            Features: numbers (NaN allowed), and in a DataFrame categorical
            columns too.
        y : None
            Ignored.

        Returns
        -------
        self : object
        """
        self._validate_params()
        self.categories_ = _categories(X)
        numeric, categorical = self._split(X, reset=True)
        if issparse(numeric):
            # sparse features keep their zeros: scaled, not centred
            self.center_ = np.zeros(numeric.shape[1])
            variance = mean_variance_axis(_finite_sparse(numeric), axis=0)[1]
        else:
            if np.isinf(numeric).any():
                raise ValueError(
                    "novelty features contain infinite values; the distance-based "
                    "novelty detector needs finite features (NaN is allowed)."
                )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
                self.center_ = np.nan_to_num(np.nanmean(numeric, axis=0))
            variance = np.var(_imputed(numeric, self.center_), axis=0)
        scale = np.sqrt(variance)
        # a constant feature computed with rounding has a spread of ulps:
        # dividing by it would blow the last bits up to whole units (relative
        # to the feature's size: one in small units, 1e-12, still varies)
        scale[no_spread(scale, self.center_)] = 1.0
        self.scale_ = scale
        rng = check_random_state(self.random_state)
        rows = numeric.shape[0]
        keep = (
            np.sort(rng.choice(rows, self.max_reference, replace=False))
            if rows > self.max_reference
            else np.arange(rows)
        )
        self.reference_, self.reference_missing_ = self._encode(
            numeric[keep], None if categorical is None else categorical.iloc[keep]
        )
        return self

    def _split(self, X, *, reset: bool):
        """The numeric features (validated, float64) and the categorical
        columns of a DataFrame (``None`` without any)."""
        categorical = None
        if self.categories_:
            categorical = X[list(self.categories_)]
            X = X.drop(columns=list(self.categories_))
        numeric = validate_data(
            self,
            _as_numbers(X),
            accept_sparse="csr",
            dtype=np.float64,
            ensure_all_finite=False,
            ensure_min_features=0,
            reset=reset,
        )
        return numeric, categorical

    def _encode(self, numeric, categorical):
        """The standardised features of the distances, and each row's count
        of missing values (categories: half each, see :func:`_one_hot`)."""
        if issparse(numeric):
            nan = numeric.copy()
            nan.data = np.isnan(nan.data).astype(np.float64)
            missing = np.asarray(nan.sum(axis=1), dtype=np.float64).reshape(-1)
            encoded = csr_matrix(_finite_sparse(numeric).multiply(1.0 / self.scale_))
        else:
            missing = np.isnan(numeric).sum(axis=1).astype(np.float64)
            encoded = (_imputed(numeric, self.center_) - self.center_) / self.scale_
        if categorical is not None:
            one_hot, unknown = _one_hot(categorical, self.categories_)
            encoded = (
                hstack([encoded, csr_matrix(one_hot)], format="csr")
                if issparse(encoded)
                else np.hstack([encoded, one_hot])
            )
            missing += 0.5 * unknown
        return encoded, missing

    def embed(self, X):
        """The features the distances are computed in: standardised numbers
        (missing ones at their mean) and one-hot categories.

        Parameters
        ----------
        X : array-like, sparse matrix or DataFrame of shape (m, n_features)

        Returns
        -------
        features : ndarray or sparse matrix of shape (m, n_embedded)
        """
        check_is_fitted(self)
        return self._encode(*self._split(X, reset=False))[0]

    def score_samples(self, X) -> np.ndarray:
        """Minus the mean distance to the nearest reference samples.

        Parameters
        ----------
        X : array-like, sparse matrix or DataFrame of shape (m, n_features)

        Returns
        -------
        scores : ndarray of shape (m,)
            Higher is more normal.
        """
        check_is_fitted(self)
        X, missing = self._encode(*self._split(X, reset=False))
        reference = self.reference_
        k = min(self.n_neighbors, reference.shape[0])
        reference_missing = getattr(
            self, "reference_missing_", np.zeros(reference.shape[0])
        )
        penalised = missing.any() or reference_missing.any()
        if reference.shape[1] == 1 and not issparse(reference) and not penalised:
            return -_nearest_on_a_line(X[:, 0], reference[:, 0], k).mean(axis=1)
        dense = not (issparse(reference) or issparse(X))
        if dense and not penalised and reference.shape[1] <= KD_TREE_MAX_FEATURES:
            distances, _ = KDTree(reference).query(X, k=k)
            return -distances.mean(axis=1)
        # Brute force in chunks of about 10^7 distances, with BLAS: with at
        # most max_reference points it beats a tree, and on small problems it
        # avoids the start-up cost of scikit-learn's parallel neighbour search.
        norms = row_norms(reference, squared=True)
        chunk = max(1, 10_000_000 // max(reference.shape[0], 1))
        scores = np.empty(X.shape[0])
        for start in range(0, X.shape[0], chunk):
            rows = X[start : start + chunk]
            row_norms_squared = row_norms(rows, squared=True)
            squared = safe_sparse_dot(rows, reference.T, dense_output=True)
            squared *= -2.0
            squared += row_norms_squared[:, None]
            squared += norms
            # The expansion cancels: its error is relative to the norms, not to
            # the distance (identical rows come out 1e-8 apart, differently on
            # each machine). It only picks the candidates; their distances are
            # computed again from the differences.
            error = (
                _EXPANSION_ERROR
                * (X.shape[1] + 4)
                * (np.sqrt(row_norms_squared) + np.sqrt(norms.max())) ** 2
            )
            penalty = (missing[start : start + chunk], reference_missing)
            if penalised:
                squared += penalty[0][:, None] + penalty[1]
            scores[start : start + chunk] = -_mean_nearest(
                rows, reference, squared, error, k, penalty
            )
        return scores


def missing_counts(X) -> tuple[np.ndarray, int]:
    """How many features of each row of ``X`` are missing (NaN or None), and
    the number of features."""
    if hasattr(X, "isna"):
        return X.isna().to_numpy().sum(axis=1), X.shape[1]
    if issparse(X):
        nan = X.tocsr(copy=True)
        nan.data = np.isnan(nan.data)
        return np.asarray(nan.sum(axis=1)).reshape(-1).astype(int), X.shape[1]
    X = np.asarray(X)
    if X.dtype.kind == "f":
        return np.isnan(X.reshape(len(X), -1)).sum(axis=1), X[0].size
    return np.zeros(len(X), dtype=int), X[0].size if len(X) else 0


def _as_numbers(X):
    """A DataFrame's dates and booleans as numbers (the detector's distances
    need numbers); anything else unchanged."""
    if not hasattr(X, "dtypes"):
        return X
    converted = {}
    for column, dtype in X.dtypes.items():
        if pd.api.types.is_datetime64_any_dtype(dtype):
            values = X[column]
            seconds = values.astype("int64").astype(np.float64) / 1e9
            converted[column] = seconds.where(values.notna(), np.nan)
        elif pd.api.types.is_bool_dtype(dtype):
            converted[column] = X[column].astype(np.float64)
    return X.assign(**converted) if converted else X


def _categories(X) -> dict:
    """The categories of each categorical column of a DataFrame: those of a
    category dtype, else the distinct values seen, in a fixed order."""
    if not hasattr(X, "dtypes"):
        return {}
    categories = {}
    for column, dtype in X.dtypes.items():
        if isinstance(dtype, pd.CategoricalDtype):
            categories[column] = np.asarray(dtype.categories, dtype=object)
        elif pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype):
            seen = pd.unique(X[column].dropna())
            categories[column] = np.array(sorted(seen, key=repr), dtype=object)
    return categories


def _one_hot(frame, categories: dict):
    """One-hot columns scaled by 1/sqrt(2), so that two different categories
    are 1 apart in squared distance; and each row's count of values that are
    missing or unseen (all zeros: half a unit from any category, which the
    caller makes up by counting each half a missing value)."""
    blocks, unknown = [], np.zeros(len(frame))
    for column, known in categories.items():
        values = frame[column].astype(object).to_numpy()
        position = pd.Index(known).get_indexer(values)
        block = np.zeros((len(frame), len(known)))
        found = position >= 0
        block[np.flatnonzero(found), position[found]] = np.sqrt(0.5)
        blocks.append(block)
        unknown += ~found
    return np.hstack(blocks), unknown


def _imputed(X, center):
    """Missing values at their column's mean (their extra distance is counted
    apart)."""
    if not np.isnan(X).any():
        return X
    return np.where(np.isnan(X), center, X)


#: Relative error of one rounded operation; the expansion's error grows with
#: the number of features summed.
_EXPANSION_ERROR = float(np.finfo(np.float64).eps)

#: Candidate pairs whose differences are held at once (times the features).
_PAIR_BUDGET = 10_000_000


def _mean_nearest(rows, reference, squared, error, k: int, penalty) -> np.ndarray:
    """The mean exact distance of each row to its ``k`` nearest reference
    points, among the candidates that ``squared`` (expanded squared
    distances, off by at most ``error`` per row) cannot rule out; the
    missing values' ``penalty`` (of the rows, of the reference) is added to
    the squared distances."""
    row, column = np.nonzero(squared <= (_kth_bound(squared, k) + 2.0 * error)[:, None])
    exact = np.empty(len(row))
    step = max(1, _PAIR_BUDGET // max(rows.shape[1], 1))
    for start in range(0, len(row), step):
        part = slice(start, start + step)
        difference = rows[row[part]] - reference[column[part]]
        if issparse(difference):
            exact[part] = np.asarray(difference.multiply(difference).sum(axis=1))[:, 0]
        else:
            exact[part] = np.einsum("ij,ij->i", difference, difference)
    exact += penalty[0][row] + penalty[1][column]
    # per row, its candidates by distance: the first k are the nearest
    order = np.lexsort((exact, row))
    row, exact = row[order], exact[order]
    within = np.arange(len(row)) - np.searchsorted(row, row)
    nearest = within < k
    total = np.bincount(
        row[nearest], weights=np.sqrt(exact[nearest]), minlength=len(squared)
    )
    return total / k


#: Blocks of reference points per neighbour whose minima bound a row's
#: ``k``-th distance (:func:`_kth_bound`).
_BLOCKS_PER_NEIGHBOUR = 8


def _kth_bound(squared: np.ndarray, k: int) -> np.ndarray:
    """An upper bound of each row's ``k``-th smallest entry: the ``k``-th
    smallest of the minima of ``8 k`` disjoint blocks of columns (``k``
    entries, one in each of those blocks, are at most it). Every entry below
    it stays a candidate, so the nearest found are those of the exact
    ``k``-th smallest; this takes one pass over the entries where a
    partition took 15 (800 rows, 1 000 reference points). More blocks than
    neighbours keep the bound tight where the reference points come grouped
    (sorted by class or by time): with ``k`` blocks, each one cluster, it was
    the distance to the farthest cluster, and 5 000 points sorted into 5
    clusters left 516 candidates a row instead of 5 (12 times slower than
    the partition)."""
    blocks = min(squared.shape[1], _BLOCKS_PER_NEIGHBOUR * k)
    edges = np.linspace(0, squared.shape[1], blocks + 1).astype(int)[:-1]
    minima = np.minimum.reduceat(squared, edges, axis=1)
    return np.partition(minima, k - 1, axis=1)[:, k - 1]


def _nearest_on_a_line(x: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    """Distances of each ``x`` to its ``k`` nearest ``reference`` points, for
    one feature: sorted, the k nearest lie among the k on either side of the
    insertion point, so this costs ``O(m (log r + k))`` instead of ``O(m r)``."""
    ordered = np.sort(reference)
    window = np.arange(-k, k)
    position = np.searchsorted(ordered, x)[:, None] + window
    inside = (position >= 0) & (position < len(ordered))
    distances = np.abs(ordered[np.clip(position, 0, len(ordered) - 1)] - x[:, None])
    distances[~inside] = np.inf
    return np.partition(distances, k - 1, axis=1)[:, :k]


def _finite_sparse(X):
    """A sparse matrix with its NaN entries read as zeros (a copy); dense
    input unchanged."""
    if not issparse(X) or np.isfinite(X.data).all():
        return X
    X = X.copy()
    X.data = np.nan_to_num(X.data, nan=0.0, posinf=0.0, neginf=0.0)
    return X


def check_detector(detector):
    """The detector of the ``novelty`` rule: ``None`` gives the default."""
    if detector is None:
        return KNeighborsNovelty()
    if not hasattr(detector, "fit") or not (
        hasattr(detector, "score_samples") or hasattr(detector, "decision_function")
    ):
        raise ValueError(
            f"novelty_detector must be a scikit-learn outlier detector with fit and "
            f"score_samples or decision_function (e.g. IsolationForest(), "
            f"LocalOutlierFactor(novelty=True)); got {detector!r}."
        )
    return detector


def novelty_scores(detector, X) -> np.ndarray:
    """How novel each row of ``X`` is to a fitted detector (higher: more novel).

    scikit-learn's detectors score normality (higher is more normal), so the
    novelty is minus ``score_samples``, else minus ``decision_function``.
    """
    method = (
        detector.score_samples
        if hasattr(detector, "score_samples")
        else detector.decision_function
    )
    scores = -np.asarray(method(X), dtype=np.float64).reshape(-1)
    # a detector may score a sample -inf (infinitely abnormal): that is the most
    # novel sample, which ranks as such; NaN would rank nowhere
    if np.isnan(scores).any():
        raise ValueError(
            f"{type(detector).__name__} returned NaN novelty scores; check the "
            "features passed to it (NaN or infinite values)."
        )
    return scores


def _subsample(rows: np.ndarray, size: int, rng) -> np.ndarray:
    if len(rows) <= size:
        return rows
    # a Generator draws without replacement in O(size), not O(len(rows))
    return np.sort(rows[rng.choice(len(rows), size, replace=False)])


def capped_folds(folds, random_state=0) -> list:
    """``folds`` subsampled at random to what the rule needs: at most
    ``MAX_ROWS`` training rows per fold to fit a detector on, and at most
    ``MAX_HELD_OUT`` held-out rows in all (in proportion to the folds' sizes)
    to score."""
    rng = np.random.default_rng(random_state)
    total = sum(len(test) for _, test in folds)
    share = min(1.0, MAX_HELD_OUT / max(total, 1))
    return [
        (
            _subsample(np.asarray(train), MAX_ROWS, rng),
            _subsample(np.asarray(test), max(int(len(test) * share), 1), rng),
        )
        for train, test in folds
    ]


class NoveltyModel:
    """Fitted state of the ``novelty`` rule: detectors and their references.

    ``detectors[j]`` scores new samples (given the features of model ``j``) and
    ``references[j]`` holds held-out novelty scores to rank them against.
    """

    def __init__(self, detectors, references):
        self.detectors = detectors
        self.references = references

    def pvalues(self, features) -> np.ndarray:
        """Conformal p-values of new samples; ``features[j]`` feeds detector j."""
        return self.scores_and_pvalues(features)[1]

    def scores_and_pvalues(self, features) -> tuple[np.ndarray, np.ndarray]:
        """The novelty scores of new samples (summed over the detectors; higher
        is more novel) and their conformal p-values, which rank the scores
        against the held-out ones and saturate at ``1 / (W + 1)`` beyond all
        of them."""
        total = sum(reference.cumulative[-1] for reference in self.references)
        count = scores = None
        for detector, reference, X in zip(self.detectors, self.references, features):
            detector_scores = novelty_scores(detector, X)
            at_or_above = reference.weight_at_or_above(detector_scores)
            count = at_or_above if count is None else count + at_or_above
            scores = detector_scores if scores is None else scores + detector_scores
        return scores, (1.0 + count) / (total + 1.0)

    def placement(self, X):
        """Where the samples ``X`` lie, as numbers: the default detector's
        own features (standardised, categories one-hot encoded), else ``X``."""
        detector = self.detectors[0]
        if isinstance(detector, KNeighborsNovelty):
            return detector.embed(X)
        return X

    def held_out_flag_rate(self, alpha: float) -> float:
        """Share (by weight) of the held-out samples the rule would flag, each
        ranked against the pooled held-out scores as a new sample would be:
        the flag rate to expect of new samples from the training distribution."""
        pooled = ConformalReference.pooled(self.references)
        total = pooled.cumulative[-1]
        # a held-out sample counts itself among the scores at or above its own,
        # as the "1 +" counts a new sample
        pvalues = pooled.weight_at_or_above(pooled.scores) / (total + 1.0)
        return float(
            np.dot(np.diff(pooled.cumulative), at_most(pvalues, alpha, floor=0.0))
            / total
        )


def fit_per_fold(detector, fold_features, test_weights) -> NoveltyModel:
    """One detector per fold, each fitted on its fold's training features and
    ranking new samples against its own held-out scores (cross-conformal).

    ``fold_features`` yields ``(train_features, test_features)`` per fold and
    ``test_weights`` the weights of the held-out rows.
    """
    detectors, references = [], []
    for (train_features, test_features), weights in zip(fold_features, test_weights):
        fitted = clone(detector).fit(train_features)
        detectors.append(fitted)
        references.append(
            ConformalReference(novelty_scores(fitted, test_features), weights)
        )
    return NoveltyModel(detectors, references)


def fit_pooled(detector, features, folds, weights) -> NoveltyModel:
    """Held-out scores from one detector per fold, pooled into one reference;
    the first fold's detector scores new samples.

    New samples are scored by a detector fitted on as many rows as those that
    scored the held-out ones (a detector fitted on all rows would find new
    samples closer, a denser reference, than the held-out ones were found, and
    flag fewer than ``alpha`` of them: 0.063 instead of 0.1 in a test on 3-D
    scores), and by one detector rather than one per fold, which would
    multiply the cost of every prediction by the number of folds. ``features``
    is one array for every fold, or a callable giving ``(train, test)``
    features of a fold (for folds with their own preprocessing); ``folds`` are
    ``(train, test)`` row indices.
    """
    folds = capped_folds(folds)
    if callable(features):
        fold_features = (
            features(index, train, test) for index, (train, test) in enumerate(folds)
        )
    else:
        fold_features = (
            (_safe_indexing(features, train), _safe_indexing(features, test))
            for train, test in folds
        )
    per_fold = fit_per_fold(
        detector, fold_features, (weights[test] for _, test in folds)
    )
    return NoveltyModel(
        per_fold.detectors[:1], [ConformalReference.pooled(per_fold.references)]
    )

"""What to label next: unsure and novel samples, spread over the pool.

The choice is clustering-based batch active learning (Zhdanov, 2019): the pool
is split into ``n_select`` clusters by k-means weighted by how much a label is
worth, and each cluster gives the sample nearest its centre. A sample's worth is
its uncertainty (``1 - confidence``), plus a bonus when the ``novelty`` rule
flags it (it extends what the model has evidence for), plus a small floor so
that dense regions the model gets right are not ignored entirely. Weighted
clusters crowd where labels are worth most; picking the centre of each (not its
least confident member, often an outlier) spreads the labels and keeps them
representative, so that near-duplicates are not labelled twice.

Measured on digits trained on one region with the other as the pool
(``benchmarks/bench_labeling.py``, 5 splits): the least confident samples alone
gain 2.0 points of accuracy over random choice at 20 labels and 0.5 at 50; this
choice gains 3.7 and 2.2.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import issparse

#: Worth of a label beyond the uncertainty: a flat floor, and a bonus for a
#: sample the novelty rule flags (chosen on the benchmark above).
WORTH_FLOOR = 0.05
NOVELTY_BONUS = 0.1

#: Largest pool the clustering runs on: beyond it, the samples of highest
#: worth (ties broken by priority order).
MAX_POOL = 20_000


def priority_order(confidence, margin, pvalues=None, alpha=None) -> np.ndarray:
    """Positions from the most to the least worth labelling, one at a time:
    novel first, then the least confident, ties broken by the smallest
    calibrated score margin."""
    novel = pvalues <= alpha if pvalues is not None else np.zeros(len(confidence), bool)
    # lexsort's last key is its primary one
    return np.lexsort((margin, confidence, ~novel))


def _standardised_dense(features) -> np.ndarray:
    features = features.toarray() if issparse(features) else np.asarray(features)
    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    features = np.where(np.isfinite(features), features, np.nan)
    centre = np.nan_to_num(np.nanmean(features, axis=0))
    spread = np.nan_to_num(np.nanstd(features, axis=0))
    spread[spread == 0] = 1.0
    return np.nan_to_num((features - centre) / spread)


def select_diverse(
    n_select: int, *, confidence, margin, features, pvalues=None, alpha=None
) -> np.ndarray:
    """``n_select`` positions worth labelling, spread over ``features``
    (standardised over the pool), in priority order."""
    from sklearn.cluster import KMeans

    order = priority_order(confidence, margin, pvalues, alpha)
    worth = 1.0 - np.asarray(confidence, dtype=np.float64) + WORTH_FLOOR
    if pvalues is not None:
        worth += NOVELTY_BONUS * (pvalues <= alpha)
    # the pool clustered: every sample, or the MAX_POOL of highest worth
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order))
    pool = np.lexsort((rank, -worth))[:MAX_POOL]
    place = _standardised_dense(features)[pool]
    if n_select >= len(np.unique(place, axis=0)):
        # no more distinct points than picks: spreading is moot
        return order[:n_select]
    kmeans = KMeans(n_clusters=n_select, n_init=3, random_state=0).fit(
        place, sample_weight=worth[pool]
    )
    distance = ((place - kmeans.cluster_centers_[kmeans.labels_]) ** 2).sum(axis=1)
    # per cluster, the member nearest its centre (ties: the higher priority)
    by_cluster = np.lexsort((rank[pool], distance, kmeans.labels_))
    first = np.flatnonzero(np.diff(kmeans.labels_[by_cluster], prepend=-1) != 0)
    chosen = pool[by_cluster[first]]
    if len(chosen) < n_select:
        # empty clusters: fill up in priority order
        rest = order[~np.isin(order, chosen)]
        chosen = np.concatenate([chosen, rest[: n_select - len(chosen)]])
    return chosen[np.argsort(rank[chosen], kind="stable")]

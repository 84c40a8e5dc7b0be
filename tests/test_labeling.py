"""select_for_labeling: priority, spread, and errors."""

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs, make_classification
from sklearn.linear_model import LogisticRegression

from sklearn_gsoftmax import GaussianSoftmaxCalibrator, GaussianSoftmaxClassifier
from sklearn_gsoftmax._labeling import priority_order, select_diverse


def test_priority_is_novel_first_then_least_confident_then_smallest_margin():
    confidence = np.array([0.9, 0.6, 0.99, 0.99, 0.7])
    margin = np.array([1.0, 0.1, 9.0, 7.0, 0.5])
    pvalues = np.array([0.5, 0.5, 0.01, 0.5, 0.02])
    order = priority_order(confidence, margin, pvalues, 0.05)
    # the most novel first, whatever its confidence
    np.testing.assert_array_equal(order, [2, 4, 1, 0, 3])
    # saturated, equal confidences are ordered by the calibrated margin
    np.testing.assert_array_equal(priority_order(confidence, margin)[-2:], [3, 2])


def test_selection_spreads_over_clusters_and_skips_near_duplicates():
    # three tight clusters of unsure samples and one far cluster of sure ones
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    features = np.repeat(centres, 50, axis=0) + rng.normal(scale=0.1, size=(200, 2))
    confidence = np.where(np.arange(200) < 150, 0.5, 0.99)
    chosen = select_diverse(
        3, confidence=confidence, margin=np.zeros(200), features=features
    )
    # one per unsure cluster, never two from the same
    assert sorted(chosen // 50) == [0, 1, 2]


def test_picks_are_the_members_nearest_the_weighted_k_means_centres():
    """The documented choice, recomputed: the candidates (every row, by worth
    then priority) clustered by a k-means of the standardised features
    weighted by worth (``1 - confidence + 0.05``; 1.05 for a novel sample),
    and from each cluster the member nearest its centre; the most novel
    sample stands for the cluster it falls in."""
    rng = np.random.default_rng(3)
    m, n_select, alpha = 120, 6, 0.05
    features = rng.uniform(size=(m, 2)) * [1.0, 5.0]
    confidence = rng.uniform(0.4, 0.99, size=m)
    pvalues = rng.uniform(0.2, 1.0, size=m)
    novel = np.array([5, 17, 40, 77])  # the most novel first
    pvalues[novel] = [0.004, 0.01, 0.02, 0.03]
    chosen = select_diverse(
        n_select,
        confidence=confidence,
        margin=np.zeros(m),
        features=features,
        pvalues=pvalues,
        alpha=alpha,
    )
    place = (features - features.mean(axis=0)) / features.std(axis=0)
    worth = 1.0 - confidence + 0.05
    worth[novel] = 1.05
    others = np.setdiff1d(np.arange(m), novel)
    pool = np.concatenate([novel, others[np.argsort(-worth[others])]])
    kmeans = KMeans(n_select, n_init=3, random_state=0).fit(
        place[pool], sample_weight=worth[pool]
    )
    centre = kmeans.cluster_centers_[kmeans.labels_]
    distance = ((place[pool] - centre) ** 2).sum(axis=1)
    distance[0] = -1.0  # the most novel sample
    expected = set()
    for cluster in range(n_select):
        members = np.flatnonzero(kmeans.labels_ == cluster)
        expected.add(int(pool[members[np.argmin(distance[members])]]))
    assert set(chosen.tolist()) == expected
    assert chosen[0] == novel[0]


def test_novel_samples_are_chosen_and_ranked_first():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(300, 2))
    features[:10] += 20.0
    confidence = np.full(300, 0.9)
    pvalues = np.full(300, 0.5)
    pvalues[:10] = 0.001
    chosen = select_diverse(
        3,
        confidence=confidence,
        margin=np.zeros(300),
        features=features,
        pvalues=pvalues,
        alpha=0.05,
    )
    # one of the three picks lands among the novel rows, and comes first
    assert chosen[0] < 10 and np.sum(chosen < 10) == 1


def test_classifier_selects_distinct_valid_positions():
    X, y = make_blobs(n_samples=400, centers=3, random_state=0)
    model = GaussianSoftmaxClassifier(LogisticRegression(), cv=3).fit(X, y)
    pool = np.vstack([X[:100], X[:20] + 15.0])
    chosen = model.select_for_labeling(pool, 10)
    assert len(set(chosen.tolist())) == 10
    assert chosen.min() >= 0 and chosen.max() < len(pool)
    # the novel rows (far from every training blob) are among those chosen
    assert np.any(chosen >= 100)
    everything = model.select_for_labeling(pool, len(pool))
    assert sorted(everything.tolist()) == list(range(len(pool)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_select", [0, -1, 31, 2.5, True, "3", None])
def test_bad_n_select_names_the_fix(n_select, dtype):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 3)).astype(dtype)
    calibrator = GaussianSoftmaxCalibrator().fit(scores, np.arange(200) % 3)
    with pytest.raises(ValueError, match="n_select must be an integer between 1"):
        calibrator.select_for_labeling(scores[:30], n_select)


def test_calibrator_selects_from_scores():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=500)
    y = (rng.random(500) < 1 / (1 + np.exp(-2 * scores))).astype(int)
    calibrator = GaussianSoftmaxCalibrator().fit(scores, y)
    pool = np.concatenate([rng.normal(size=100), [40.0, -40.0]])
    chosen = calibrator.select_for_labeling(pool, 5)
    # the far-out scores are novel: chosen, and first
    assert set(chosen[:2].tolist()) == {100, 101}


def test_identical_candidates_still_fill_the_selection():
    """k-means finds one cluster among identical rows; the rest are filled in
    priority order."""
    X, y = make_classification(n_samples=60, random_state=0)
    model = GaussianSoftmaxClassifier(LogisticRegression(), cv=3).fit(X, y)
    chosen = model.select_for_labeling(np.repeat(X[:1], 10, axis=0), 4)
    np.testing.assert_array_equal(chosen, [0, 1, 2, 3])


def test_a_few_novel_samples_in_a_large_pool_get_the_first_pick():
    """Issue 22: novel samples saturate the link, so their own uncertainty is
    small; 20 of them far out in a pool of 25 000 got none of 10 picks. The
    most novel now stands for its cluster and comes first."""
    X, y = make_classification(
        n_samples=8_000, n_features=6, n_informative=4, n_classes=3, random_state=0
    )
    model = GaussianSoftmaxClassifier(LogisticRegression(max_iter=1000), cv=3)
    model.fit(X[:2_000], y[:2_000])
    rng = np.random.default_rng(0)
    far = X[2_000:2_010] + rng.choice([-1.0, 1.0], size=(10, 6)) * 8.0
    pool = np.vstack([X[2_000:], far])
    chosen = model.select_for_labeling(pool, 10)
    assert chosen[0] >= 6_000  # one of the far rows, first
    assert len(set(chosen.tolist())) == 10

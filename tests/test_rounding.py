"""The same answer on every machine: decisions that do not hang on the last bits.

Another BLAS kernel, thread count or summation order changes the last bits of
what is computed. These tests perturb inputs by a few ulps (relative 1e-15,
what such a change produces), run one side under one BLAS thread, and check
that what a user sees (selections for labelling, flags, predicted classes, the
threshold, conformal sets) does not change.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from sklearn_gsoftmax import (
    GaussianSoftmaxCalibrator,
    GaussianSoftmaxClassifier,
    _source,
)
from sklearn_gsoftmax._conformal import ConformalReference, conformal_sets
from sklearn_gsoftmax._fitting import score_unit
from sklearn_gsoftmax._novelty import KNeighborsNovelty
from sklearn_gsoftmax._selective import select_threshold
from sklearn_gsoftmax._source import ArraySource
from sklearn_gsoftmax._ties import (
    TIE_RTOL,
    TOP_WINDOW,
    at_most,
    below,
    first_index_of_max,
    largest,
    near,
    rounded,
    stable_order,
    tie_ranks,
    top_window,
)

ALL_RULES = ("low_confidence", "ambiguous", "out_of_range", "conformal", "novelty")


def _perturbed(values, rng, ulps=4):
    """``values`` moved by up to ``ulps`` ulps each, as another machine may
    compute them."""
    values = np.asarray(values, dtype=np.float64)
    steps = rng.integers(-ulps, ulps + 1, size=values.shape)
    return values + steps * np.spacing(values)


# --------------------------------------------------------------------------------------
# The tolerance itself


@given(
    st.lists(st.integers(0, 30), min_size=1, max_size=60),
    st.sampled_from([1e-3, 0.1, 1.0, 37.0, 1e6]),
    st.integers(0, 2**32 - 1),
)
def test_ranks_of_perturbed_values_do_not_change(levels, unit, seed):
    """Values of a few distinct levels (far apart), each computed with a few
    ulps of rounding: their ranks are the levels' ranks, on every machine."""
    base = np.array(levels, dtype=np.float64) * unit
    rng = np.random.default_rng(seed)
    np.testing.assert_array_equal(
        tie_ranks(_perturbed(base, rng)), np.unique(base, return_inverse=True)[1]
    )


@given(st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_tied_values_are_ordered_by_position(count, seed):
    rng = np.random.default_rng(seed)
    values = _perturbed(np.full(count, 0.7), rng)
    np.testing.assert_array_equal(stable_order(values), np.arange(count))
    np.testing.assert_array_equal(
        stable_order(values, descending=(0,)), np.arange(count)
    )


def test_comparisons_treat_ties_as_equal():
    one_ulp = 1.0 + np.spacing(1.0)
    assert near(1.0, one_ulp) and near(0.3, 1 - (1 - 0.3))
    assert not near(0.5, 0.5 + 10 * TIE_RTOL) and not near(1e6, 1e6 * (1 + 1e-8))
    assert not below(1.0, one_ulp) and below(0.5, 0.5 + 10 * TIE_RTOL)
    assert at_most(one_ulp, 1.0) and not at_most(0.6, 0.5)
    # infinities are equal to themselves and far from everything finite
    assert near(np.inf, np.inf) and not near(1e300, np.inf)
    assert below(-np.inf, -1e300) and not below(np.inf, np.inf)
    assert at_most(np.inf, np.inf) and not at_most(np.inf, 1e300)


def test_predicted_class_of_near_ties_is_the_first():
    binary = np.array([[0.5, 0.5 + 1e-16], [0.5 + 1e-16, 0.5], [0.4, 0.6]])
    np.testing.assert_array_equal(first_index_of_max(binary), [0, 0, 1])
    three = np.array(
        [[0.3, 0.35, 0.35 + 1e-16], [0.2, 0.4, 0.4 - 1e-16], [0.2, 0, 0.8]]
    )
    np.testing.assert_array_equal(first_index_of_max(three), [1, 1, 2])


def _largest_by_sorting(values, k):
    """The reference: the first ``k`` of all values in the tie-aware order."""
    return np.sort(stable_order(values, descending=(0,))[:k])


@given(
    st.lists(st.integers(0, 12), min_size=1, max_size=80),
    st.integers(1, 90),
    st.sampled_from([1e-3, 1.0, 1e6]),
    st.lists(st.integers(0, 79), max_size=4),
    st.integers(0, 2**32 - 1),
)
def test_largest_values_are_chosen_by_position_among_ties(
    levels, k, unit, infinite, seed
):
    """The search's extreme rows (``Source.top_k``): the k largest values of
    a few levels, each perturbed by a few ulps (another machine's rounding),
    some infinite, are the first rows of the tie at the k-th, from the whole
    array and from any chunking of it (numpy's partition leaves equal values
    in an order that differs between machines and between chunkings)."""
    base = np.array(levels, dtype=np.float64) * unit
    values = _perturbed(base, np.random.default_rng(seed))
    infinite = [i for i in infinite if i < len(base)]
    base[infinite] = values[infinite] = np.inf
    expected = _largest_by_sorting(base, k)
    whole = largest(*_window(values, np.arange(len(values)), k), k, complete=True)
    np.testing.assert_array_equal(whole, expected)
    chunks = np.array_split(np.arange(len(values)), 3)
    windows = [_window(values[rows], rows, k) for rows in chunks]
    merged = _window(
        np.concatenate([v for v, _ in windows]),
        np.concatenate([r for _, r in windows]),
        k,
    )
    chosen = largest(*merged, k, complete=len(merged[1]) == len(values))
    np.testing.assert_array_equal(chosen, expected)


def _window(values, rows, k, width=TOP_WINDOW):
    keep = top_window(values, k, width, rows)
    return values[keep], rows[keep]


def test_window_of_many_equal_values_holds_k_of_them():
    """Hard scores of +-1 (every margin's size equal): the window of the k
    largest holds the first k rows, in memory and merged from chunks (it held
    every row, and a cluster sent them all to the driver)."""
    values = np.abs(np.where(np.arange(100_000) % 7 == 0, -1.0, 1.0))
    rows = np.arange(len(values))
    whole = _window(values, rows, 128)
    parts = [_window(values[r], r, 128) for r in np.array_split(rows, 5)]
    merged = _window(*(np.concatenate(p) for p in zip(*parts)), 128)
    for window_values, window_rows in (whole, merged):
        np.testing.assert_array_equal(window_rows, np.arange(128))
        np.testing.assert_array_equal(
            largest(window_values, window_rows, 128), np.arange(128)
        )


def test_largest_reads_a_wider_window_where_ties_chain_beyond_it(monkeypatch):
    """A run of values each within the tolerance of the next ties as one,
    however far it reaches: from a window narrower than the run the
    selection asks for a wider one, and from the whole it takes the run's
    first rows (here, those of its lowest values)."""
    k = 3
    # 0.5 and 0.5 - 0.6e-9 * i chain: 11 tolerances from end to end
    run = 0.5 - 0.6 * TIE_RTOL * np.arange(20)[::-1]
    values = np.concatenate([run, [2.0, 3.0]])
    narrow = _window(values, np.arange(len(values)), k, width=1.0)
    assert len(narrow[1]) < len(values)
    assert largest(*narrow, k, width=1.0) is None
    np.testing.assert_array_equal(
        largest(values, np.arange(len(values)), k, complete=True), [0, 20, 21]
    )
    # a source reads windows of 2, 4, 8, then 16 tolerances
    monkeypatch.setattr(_source, "TOP_WINDOW", 2.0)
    reads = []

    def key(chunk):
        reads.append(1)
        return chunk.z

    rows = ArraySource(values, np.zeros(len(values))).top_k(key, k)
    np.testing.assert_array_equal(rows, [0, 20, 21])
    assert len(reads) == 4


# --------------------------------------------------------------------------------------
# Decisions on perturbed inputs


def test_threshold_on_perturbed_saturated_confidences(rng):
    """Probabilities saturated at the link's cap tie whatever their last bits:
    the threshold, coverage and margin threshold stay put."""
    cap = 0.999
    confidence = np.concatenate([np.full(60, cap), rng.uniform(0.5, 0.99, 140)])
    margin = np.concatenate([np.repeat(np.arange(6.0), 10), rng.uniform(0, 3, 140)])
    correct = np.concatenate([np.arange(60) >= 20, rng.random(140) < confidence[60:]])
    weights = np.ones(200)
    expected = select_threshold(confidence, correct, weights, 0.97, margin=margin)
    assert expected[3] > -np.inf  # the tie at the cap is cut by the margin
    for _ in range(20):
        got = select_threshold(
            _perturbed(confidence, rng),
            correct,
            weights,
            0.97,
            margin=_perturbed(margin, rng),
        )
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_conformal_sets_of_perturbed_scores(rng):
    """A new score equal to a reference score up to rounding ranks as equal
    to it: the sets do not change with the last bits."""
    scores = np.repeat(rng.uniform(0, 1, 25), 4)  # every score four times
    reference = ConformalReference(_perturbed(scores, rng), np.ones(100))
    test = np.column_stack([1 - scores, scores])
    expected = conformal_sets([ConformalReference(scores, np.ones(100))], [test], 0.1)
    for _ in range(10):
        got = conformal_sets([reference], [1 - _perturbed(1 - test, rng)], 0.1)
        np.testing.assert_array_equal(got, expected)


def test_novelty_distances_are_exact_for_identical_rows(rng):
    """The squared-distance expansion leaves identical rows 1e-8 apart, by
    their position in the BLAS kernel; the detector's distances are computed
    from differences, so identical rows tie and match a brute-force count."""
    X = rng.normal(size=(400, 7)) * 30.0 + 100.0
    detector = KNeighborsNovelty().fit(X)
    pool = np.vstack([np.repeat(X[:3], 9, axis=0), rng.normal(size=(20, 7))])
    scores = detector.score_samples(pool)
    standardised = (pool - detector.center_) / detector.scale_
    distances = np.sqrt(
        ((standardised[:, None, :] - detector.reference_[None]) ** 2).sum(axis=-1)
    )
    brute = -np.sort(distances, axis=1)[:, :5].mean(axis=1)
    np.testing.assert_allclose(scores, brute, rtol=1e-13, atol=1e-13)
    for copies in scores[:27].reshape(3, 9):
        assert near(copies, copies[0]).all()


@pytest.fixture(scope="module", params=[2, 3], ids=["binary", "3 classes"])
def fitted(request):
    X, y = make_classification(
        n_samples=300, n_informative=4, n_classes=request.param, random_state=0
    )
    model = GaussianSoftmaxClassifier(
        LogisticRegression(), cv=3, uncertainty_rules=ALL_RULES
    ).fit(X, y)
    return model, X


@pytest.mark.parametrize("pool_kind", ["ten identical rows", "every row three times"])
@pytest.mark.parametrize("n_select", [1, 4, 9])
def test_decisions_on_perturbed_pools_do_not_change(fitted, pool_kind, n_select):
    """The measurements of issue 21: before, 12 of 12 such selections changed
    under a relative perturbation of 1e-15."""
    model, X = fitted
    rng = np.random.default_rng(n_select)
    if pool_kind == "ten identical rows":
        pool = np.repeat(X[:1], 10, axis=0)
    else:
        pool = np.repeat(X[:100], 3, axis=0)[rng.permutation(300)]
    chosen = model.select_for_labeling(pool, n_select)
    assert len(set(chosen.tolist())) == n_select
    flags, labels = model.predict_uncertain(pool), model.predict(pool)
    sets = model.predict_set(pool)
    for _ in range(3):
        moved = pool * (1.0 + 1e-15 * rng.choice([-4, -2, -1, 1, 2, 4], pool.shape))
        with threadpool_limits(1):
            np.testing.assert_array_equal(
                model.select_for_labeling(moved, n_select), chosen
            )
            np.testing.assert_array_equal(model.predict_uncertain(moved), flags)
            np.testing.assert_array_equal(model.predict(moved), labels)
            np.testing.assert_array_equal(model.predict_set(moved), sets)


def test_identical_candidates_fill_the_selection_in_row_order(fitted):
    """Ten copies of one sample are one candidate: the selection still fills
    the distinct positions asked for, the earliest rows first (ties are broken
    by position), whatever the BLAS kernel makes of their last bits."""
    model, X = fitted
    np.testing.assert_array_equal(
        model.select_for_labeling(np.repeat(X[:1], 10, axis=0), 4), [0, 1, 2, 3]
    )


# --------------------------------------------------------------------------------------
# The fitted map does not depend on the order of the rows


def _calibration_data(rng, m, k):
    if k == 2:
        z = rng.normal(scale=3.0, size=m)
        y = (rng.random(m) < 1 / (1 + np.exp(-z))).astype(int)
        return z, y
    z = rng.normal(scale=2.0, size=(m, k))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = (p.cumsum(axis=1) > rng.random(m)[:, None]).argmax(axis=1)
    return z, y


@pytest.mark.parametrize(
    "m, k, score_map",
    [(600, 2, "auto"), (6000, 2, "auto"), (3000, 3, "matrix"), (800, 4, "affine")],
)
def test_fit_does_not_depend_on_row_order(m, k, score_map):
    """Above 4 096 rows the search runs on a subsample taken in row order; the
    final fit is on all rows, so the fitted map is the same whatever the
    order: probabilities to 1e-8 (the optimiser's tolerance), the same
    threshold, flags and classes. (The novelty rule's detector is
    cross-fitted on shuffled folds of the rows, like any KFold: it is left
    out.)"""
    rng = np.random.default_rng(m + k)
    z, y = _calibration_data(rng, m, k)
    permutation = rng.permutation(m)
    rules = ALL_RULES[:-1]
    first = GaussianSoftmaxCalibrator(score_map=score_map, uncertainty_rules=rules)
    first.fit(z, y)
    with threadpool_limits(1):
        second = GaussianSoftmaxCalibrator(
            score_map=score_map, uncertainty_rules=rules
        ).fit(z[permutation], y[permutation])
    np.testing.assert_allclose(
        second.predict_proba(z), first.predict_proba(z), rtol=0, atol=1e-8
    )
    assert near(second.uncertainty_threshold_, first.uncertainty_threshold_)
    assert second.coverage_ == pytest.approx(first.coverage_, abs=1e-12)
    np.testing.assert_array_equal(second.predict(z), first.predict(z))
    np.testing.assert_array_equal(
        second.predict_uncertain(z[:500]), first.predict_uncertain(z[:500])
    )


@pytest.mark.parametrize("with_margin", [False, True])
def test_threshold_of_a_tie_across_a_bin_edge(rng, with_margin):
    """The binned search sorts one bin of confidences at a time; a tie that
    straddles a bin's edge (a saturated probability that happens to sit on
    it) is still one group, as on the full curve: here its part above the
    edge is all right, its part below all wrong, and only the whole tie may
    be accepted or not."""
    from sklearn_gsoftmax._selective import BINS, accepted_accuracy_curve

    edge = 3000 / BINS
    tied = np.concatenate([np.full(20, np.nextafter(edge, 0)), np.full(20, edge)])
    confidence = np.concatenate([tied, rng.uniform(0.5, 0.7, 60), [0.99] * 10])
    correct = np.concatenate([tied >= edge, rng.random(60) < 0.6, [True] * 10])
    margin = np.zeros(110) if with_margin else None
    weights = np.ones(110)
    got = select_threshold(confidence, correct, weights, 0.9, margin=margin)
    # the answer the sorted curve gives: the largest accepted set reaching 0.9
    thresholds, coverage, accuracy = accepted_accuracy_curve(
        confidence, correct, weights, margin
    )
    last = np.flatnonzero(accuracy >= 0.9)[-1]
    expected = (thresholds[last], coverage[last], accuracy[last])
    np.testing.assert_allclose(got[:3], expected)
    assert got[:3] == (0.99, 10 / 110, 1.0)


# --------------------------------------------------------------------------------------
# Spreads of equal values computed with rounding


def _mostly_equal_scores(share_spread, seed=0):
    """Binary scores of which all but ``share_spread`` are 1.5 (identical
    rows), as computed exactly and with a few ulps of rounding each."""
    rng = np.random.default_rng(seed)
    s = np.full(2000, 1.5)
    spread = rng.random(2000) < share_spread
    s[spread] = rng.normal(scale=3.0, size=spread.sum())
    y = (rng.random(2000) < 1 / (1 + np.exp(-s))).astype(int)
    noisy = s.copy()
    noisy[~spread] = _perturbed(s[~spread], rng)
    return s, noisy, y


@pytest.mark.parametrize("share_spread", [0.07, 0.2])
def test_scale_of_mostly_equal_scores_ignores_their_rounding(share_spread):
    """With most scores equal their quartiles (and at 93 %, their 5th and
    95th percentiles) are equal: a few ulps apart they were a spread, the
    scores' unit fell from 0.19 to 5e-16, and a softmax fit's scale
    went from 0.9 to 2e15 (probabilities 0, 1/2 or 1)."""
    s, noisy, y = _mostly_equal_scores(share_spread)
    units = [score_unit(ArraySource(scores, y)) for scores in (s, noisy)]
    assert units[1] == pytest.approx(units[0], rel=1e-9)
    test = np.array([-6.0, -2.0, 0.0, 1.5, 3.0, 6.0])
    for link in ("gaussian", "softmax"):
        fits = [
            GaussianSoftmaxCalibrator(link=link, uncertainty_rules=()).fit(scores, y)
            for scores in (s, noisy)
        ]
        np.testing.assert_allclose(
            fits[1].predict_proba(test), fits[0].predict_proba(test), atol=1e-6
        )


def test_scale_of_mostly_equal_logits_ignores_their_rounding():
    """93 % of rows of three equal logits: centred per row they are 0, or a
    few ulps of 5 where computed with rounding, whose spread was taken for
    the unit (9e-16: the equal rows' probabilities then spread over 0.014 and
    the fit did not converge); the scores' own size says it is rounding."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 4000)
    exact = np.full((4000, 3), 5.0)
    out = rng.random(4000) < 0.07
    exact[out] = rng.normal(size=(out.sum(), 3))
    exact[out, y[out]] += 3.0
    noisy = exact.copy()
    noisy[~out] = _perturbed(exact[~out], rng, ulps=2)
    units = [score_unit(ArraySource(z, y)) for z in (exact, noisy)]
    assert units[1] == pytest.approx(units[0], rel=1e-9)
    # rows equal to rounding get equal probabilities
    fitted = GaussianSoftmaxCalibrator().fit(noisy, y)
    assert np.ptp(fitted.predict_proba(noisy[~out]), axis=0).max() < 1e-9


@pytest.mark.parametrize("big", [1e13, 1e200])
def test_one_huge_score_does_not_make_the_spread_rounding(big):
    """The size a spread is weighed against is that of the rows the unit
    reads: one correctly labelled score of 1e13 made the scores' mean size
    so large that the unit fell back to the outlier's deviation, and the fit
    came out flat (scale 1.7e-10, log-loss ln 2)."""
    rng = np.random.default_rng(0)
    s = rng.normal(scale=2.0, size=2000)
    y = (rng.random(2000) < 1 / (1 + np.exp(-s))).astype(int)
    plain = score_unit(ArraySource(s, y))
    s[0], y[0] = big, 1
    assert score_unit(ArraySource(s, y)) == pytest.approx(plain, rel=0.01)


def test_novelty_scaling_of_mostly_equal_scores_ignores_their_rounding():
    """Most scores equal: their median absolute deviation is 0 (unit 1), not
    the few ulps their rounding leaves (which flagged 7 of 200 rows
    otherwise)."""
    s, noisy, y = _mostly_equal_scores(0.4)
    fits = [
        GaussianSoftmaxCalibrator(uncertainty_rules=("novelty",)).fit(scores, y)
        for scores in (s, noisy)
    ]
    np.testing.assert_allclose(
        fits[1]._novelty_scaling, fits[0]._novelty_scaling, rtol=1e-12
    )
    test = np.concatenate([np.full(50, 1.5), np.linspace(-8, 8, 150)])
    np.testing.assert_array_equal(
        fits[1].predict_uncertain(test), fits[0].predict_uncertain(test)
    )


def test_feature_in_small_units_is_standardised(rng):
    """A feature that varies in small units (1e-12, farads) is a feature:
    a row 50 of its standard deviations out is far (it scored as a typical
    row when spreads below 1e-9 counted as none)."""
    X = rng.normal(size=(300, 3))
    X[:, 2] *= 1e-12
    far = X[:1].copy()
    far[0, 2] = 50e-12
    detector = KNeighborsNovelty().fit(X)
    assert detector.scale_[2] == pytest.approx(1e-12, rel=0.2)
    assert detector.score_samples(far)[0] < detector.score_samples(X[:1])[0] - 10


def test_constant_feature_with_rounding_is_not_standardised(rng):
    """A constant feature computed with rounding (a few ulps apart) has no
    spread: its scale is 1, as an exactly constant one's, and the novelty
    distances do not see its last bits (a scale of 3e-16 did)."""
    X = rng.normal(size=(300, 3))
    X[:, 2] = 0.5
    noisy = X.copy()
    noisy[:, 2] = _perturbed(X[:, 2], rng)
    exact = KNeighborsNovelty().fit(X)
    rounded = KNeighborsNovelty().fit(noisy)
    assert exact.scale_[2] == rounded.scale_[2] == 1.0
    np.testing.assert_allclose(
        rounded.score_samples(noisy[:50]), exact.score_samples(X[:50]), rtol=1e-9
    )


# --------------------------------------------------------------------------------------
# Tests and choices on computed values


def test_a_half_computed_a_few_ulps_off_rounds_as_the_half():
    for half, expected in ((2000.5, 2000), (2001.5, 2002), (0.5, 0), (560.5, 560)):
        for value in (half, np.nextafter(half, 0), np.nextafter(half, np.inf)):
            assert rounded(value) == expected
    assert [rounded(v) for v in (2.4, 2.6, -1.2, 1e6 + 0.7)] == [2, 3, -1, 1000001]
    # beyond 5e8 the tie tolerance would reach every value: capped
    assert rounded(1_000_000_001.0) == 1_000_000_001
    assert rounded(1e9 + 0.5) == 1_000_000_000


def test_shift_report_of_fractional_weights_does_not_hang_on_their_last_bits():
    """Weights of 0.5 on 401 rows make held-out counts of 200.5: Fisher's
    tests took them as 200 or 201 by the weights' last bits (a flag rate's
    p-value 0.1189 or 0.1011)."""
    rng = np.random.default_rng(3)
    s = rng.normal(scale=2.0, size=401)
    y = (rng.random(401) < 1 / (1 + np.exp(-s))).astype(int)
    batch = rng.normal(scale=2.0, size=200)
    batch_y = (rng.random(200) < 1 / (1 + np.exp(-batch))).astype(int)
    reports = [
        GaussianSoftmaxCalibrator(uncertainty_rules=("low_confidence", "conformal"))
        .fit(s, y, np.full(401, weight))
        .shift_report(batch, batch_y)
        for weight in (0.5, np.nextafter(0.5, 1), np.nextafter(0.5, 0))
    ]
    for report in reports[1:]:
        np.testing.assert_allclose(
            report["p_value"], reports[0]["p_value"], rtol=1e-9, atol=1e-12
        )


def test_p_value_on_the_level_is_one_verdict():
    """A p-value that ties with its Bonferroni level is not below it, however
    its last bits fall (the verdict flipped in 189 of 200 perturbations)."""
    from scipy import stats

    from sklearn_gsoftmax._shift import Batch, shift_report

    rng = np.random.default_rng(0)
    conf = rng.uniform(0.6, 1.0, 200)
    se = np.sqrt(np.var(conf) / 200 + 0.1**2 / 5000.0)
    held_out_mean = np.mean(conf) - stats.norm.isf(0.01 / 2) * se
    summary = {"n": 5000.0, "rates": {}, "confidence": (held_out_mean, 0.1)}
    verdicts = set()
    for seed in range(20):
        batch = Batch({}, _perturbed(conf, np.random.default_rng(seed)), None)
        report = shift_report(summary, batch, batch, alpha=0.01)
        assert report["p_value"].iloc[0] == pytest.approx(0.01, rel=1e-9)
        verdicts.add(report.attrs["shifted"])
    assert verdicts == {False}
    # a level below 1e-9 is still a level: a p-value of 0 is below 5e-10
    far = {"n": 5000.0, "rates": {}, "confidence": (0.0, 0.1)}
    report = shift_report(far, batch, batch, alpha=5e-10)
    assert report["p_value"].iloc[0] == 0.0 and report.attrs["shifted"]


def test_confident_errors_at_the_cutoff_are_not_counted():
    """True-class probabilities at a model's floor 1/n that tie with the
    deprecated ``confident_below`` are not below it (with a few ulps of rounding, 42 %
    of them were)."""
    from sklearn_gsoftmax.metrics import calibration_report

    rng = np.random.default_rng(0)
    p = _perturbed(np.full(1000, 0.01), rng)
    y_prob = np.column_stack([p, 1 - p])
    with pytest.warns(FutureWarning, match="confident_below is deprecated"):
        report = calibration_report(
            np.zeros(1000, dtype=int), y_prob, confident_below=0.01, labels=[0, 1]
        )
    assert report["confident_errors"] == 0.0


def test_class_mix_p_value_on_the_level_is_not_shifted(monkeypatch):
    from sklearn_gsoftmax import _class_mix

    rng = np.random.default_rng(0)
    s = rng.normal(scale=2.0, size=400)
    y = (rng.random(400) < 1 / (1 + np.exp(-s))).astype(int)
    model = GaussianSoftmaxCalibrator(uncertainty_rules=("low_confidence",)).fit(s, y)
    batch = rng.normal(scale=2.0, size=100)
    each = model.shift_report(batch).attrs["alpha_each"]
    on_the_level = np.nextafter(each, 0)
    monkeypatch.setattr(_class_mix, "class_mix_test", lambda *args: (0.0, on_the_level))
    report = model.shift_report(batch)
    assert report.loc["class proportion: 0", "p_value"] == on_the_level
    assert not report.loc["class proportion: 0", "shifted"]


def test_offsets_whose_gain_ties_with_their_cost_are_left_out(monkeypatch):
    """``fit_intercept="auto"`` keeps three classes' offsets when they gain
    more than 2 nats; a gain that ties with it (an ulp above, as another
    summation order may compute it) keeps the scale alone on every machine."""
    from sklearn_gsoftmax import _map

    rng = np.random.default_rng(2)
    z = rng.normal(scale=2.0, size=(300, 3))
    y = np.where(rng.random(300) < 0.7, z.argmax(axis=1), rng.integers(0, 3, 300))
    loss_of, plain = _map._data_loss, []

    def tied(fit):
        # the scale alone's loss (read first), and the offsets' 2 nats lower
        # over the 300 rows, and 1e-14 of them
        if not fit.layout.fit_intercept:
            plain.append(loss_of(fit))
            return plain[-1]
        return plain[-1] - 2.0 * (1 + 1e-14) / 300

    monkeypatch.setattr(_map, "_data_loss", tied)
    model = GaussianSoftmaxCalibrator(
        score_map="affine", fit_ceiling=False, uncertainty_rules=()
    ).fit(z, y)
    assert np.all(model.intercept_ == 0.0)

"""The shortcuts that make fits fast give the answers of the slow paths.

Speed itself is measured in ``benchmarks/bench_speed.py``, never here; these
tests pin what the shortcuts must not change (the optimum, a quantile, a
neighbour distance) and count passes over the data, which does not depend on
the machine.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_gsoftmax import (
    GaussianSoftmaxCalibrator,
    _fitting,
    _map,
    _novelty,
    _objective,
    _refine,
    _selective,
    gaussian_softmax_nll_grad,
)
from sklearn_gsoftmax._map import MapSpec
from sklearn_gsoftmax._objective import Layout, Problem, objective
from sklearn_gsoftmax._source import ArraySource, QuantileSummary, add


def _logits(m, k, seed):
    """Float32 logits with one boosted class a row, labels drawn from a
    softmax at temperature 1.5 (as a network's validation set)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((m, k)).astype(np.float32)
    top = rng.integers(0, k, m)
    z[np.arange(m), top] += rng.uniform(1, 5, m).astype(np.float32)
    p = np.exp(z / 1.5 - (z / 1.5).max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = (p.cumsum(axis=1) > rng.random(m)[:, None]).argmax(axis=1)
    return z, y


def _count_rows(monkeypatch, subsample_rows=1024):
    """Rows passed through the multiclass loss kernel: ``[in calls on at most
    subsample_rows rows (the search's subsample), in larger calls]``."""
    counted = [0, 0]
    kernel = _objective.multiclass_nll_grad

    def counting(z, *args, **kwargs):
        counted[len(z) > subsample_rows] += len(z)
        return kernel(z, *args, **kwargs)

    monkeypatch.setattr(_objective, "multiclass_nll_grad", counting)
    return counted


def _assert_stationary(model, z, y):
    """The likelihood's gradient at the fitted map, by the public link
    function, is ~0: the fit's float32 tolerance (1e-6) on standardised
    parameters, with room for the prior and the ``vs_top`` loss's kinks."""
    z64 = z.astype(np.float64)
    u = model.scale_ * z64 + model.intercept_
    g = gaussian_softmax_nll_grad(u, y, int(model.n_link_))
    grad_scale = np.sum(g * z64) / len(z) * np.std(z64)  # per standardised unit
    grad_offsets = g.sum(axis=0)[1:] / len(z)
    assert abs(grad_scale) < 1e-4
    assert np.abs(grad_offsets).max() < 1e-4


@pytest.mark.parametrize("k", [2, 4])
def test_final_fit_reads_the_values_pass(k):
    """``evaluate.values`` keeps the data term at its points: the next
    evaluation at one of them (where the final fit starts) reads it instead
    of passing over the rows again, gives what a pass gives, and reads it
    once only."""
    rng = np.random.default_rng(k)
    z = rng.normal(size=500) if k == 2 else rng.normal(size=(500, k))
    y = rng.integers(0, k, 500)
    passes = []

    class CountingSource(ArraySource):
        def evaluator(self, make, merge=add):
            inner = super().evaluator(make, merge)

            def evaluate(*args):
                passes.append(args)
                return inner(*args)

            return evaluate

    layout = Layout(k, fit_intercept=True, n=500)
    problem = Problem(layout, "gaussian", "vs_top", 1.0, 500.0)
    evaluate = objective(CountingSource(z, y), problem)
    plain = objective(ArraySource(z, y), problem)
    points = [np.zeros(layout.size), np.full(layout.size, 0.5)]
    points[0][0], points[1][0] = 1.0, 2.0
    values = evaluate.values(points)
    for point, value in zip(points[::-1], values[::-1]):
        kept = evaluate(point)
        assert len(passes) == 1
        assert kept[0] == value
        for ours, fresh in zip(kept, plain(point)):
            np.testing.assert_array_equal(ours, fresh)
    evaluate(points[0])
    assert len(passes) == 2


def test_many_classes_reach_the_optimum_in_few_passes(monkeypatch):
    """200 classes of 15 rows: most have no row in the search's subsample of
    1 024, so the search holds the offsets at the flat model's (40 passes
    over the subsample; 216 when it fitted them there, where they ran to the
    box) and the final fit frees them, preconditioned (92 passes' worth of
    rows with the five capped held-out refits; 150 without the
    preconditioner). It ends at a stationary point of the likelihood."""
    z, y = _logits(3000, 200, seed=0)
    counted = _count_rows(monkeypatch)
    model = GaussianSoftmaxCalibrator(
        score_map="affine", fit_ceiling=False, fit_intercept=True, uncertainty_rules=()
    ).fit(z, y)
    assert counted[0] <= 80 * 1024, counted[0] / 1024
    assert counted[1] <= 120 * len(z), counted[1] / len(z)
    _assert_stationary(model, z, y)


def test_search_holding_the_offsets_finds_the_same_fit(monkeypatch):
    """The search that holds the offsets (few rows per class) and the one
    that fits them on its subsample end at the same optimum."""
    z, y = _logits(2500, 60, seed=1)

    def fit():
        return GaussianSoftmaxCalibrator(
            score_map="affine",
            fit_ceiling=False,
            fit_intercept=True,
            uncertainty_rules=(),
        ).fit(z, y)

    held = fit()
    monkeypatch.setattr(_fitting, "SEARCH_ROWS_PER_CLASS", 0)
    free = fit()

    def nll(model):
        proba = model.predict_proba(z).astype(np.float64)
        return -np.mean(np.log(proba[np.arange(len(y)), y]))

    # the same optimum, to the float32 fit's tolerance (a gradient of 1e-6
    # moves the offset of a class of 40 rows by about 1e-3: the loss is flat there)
    assert nll(held) == pytest.approx(nll(free), rel=1e-7)
    np.testing.assert_allclose(held.scale_, free.scale_, rtol=1e-4)
    np.testing.assert_allclose(held.intercept_, free.intercept_, atol=2e-3)


def test_flat_offsets_from_class_shares_are_the_flat_fit_on_all_rows():
    """The flat model's offsets fitted on one row per class (weighted by its
    share) are those of the model at scale 0 fitted on every row."""
    z, y = _logits(600, 5, seed=2)
    w = np.random.default_rng(3).uniform(0.5, 2.0, len(y))
    spec = MapSpec(5, "gaussian", "vs_top", True, "affine", 0.0, False, 600.0,
                   float(w.sum()), np.dtype(np.float64))  # fmt: skip
    layout = Layout(5, n=600.0)
    source = ArraySource(z.astype(np.float64), y, w)
    flat = _fitting._flat_offsets(source, spec, layout, 1.0, 1e-10)
    on_all_rows = _fitting.local_fit(
        objective(source, Problem(layout, "gaussian", "vs_top", 1.0, w.sum())),
        np.zeros(layout.size),
        layout,
        1e-10,
        [(0.0, 0.0)] + layout.bounds[1:],
    )
    np.testing.assert_allclose(flat, on_all_rows.theta[1:], atol=1e-7)


@settings(max_examples=40, deadline=None)
@given(
    values=st.lists(
        st.sampled_from([-3.0, -1.0, 0.0, 0.5, 2.0, 7.0]) | st.floats(-10, 10),
        min_size=1,
        max_size=60,
    ),
    weight=st.sampled_from([1.0]),
)
def test_quantiles_by_selection_equal_those_by_sorting(values, weight):
    """Unit weights take a selection instead of a sort: the same values."""
    values = np.array(values)
    levels = [0.0, 0.05, 0.3, 0.5, 0.95, 1.0]
    fast = QuantileSummary(values, np.full(len(values), weight), 10).quantiles(levels)
    sorted_summary = QuantileSummary(values, np.full(len(values), weight), 10)
    sorted_summary.values  # sorts it: the weighted path
    np.testing.assert_array_equal(fast, sorted_summary.quantiles(levels))


@pytest.mark.parametrize("n_features", [2, 8, 16])
def test_kd_tree_and_brute_force_agree(monkeypatch, n_features):
    """The k-d tree's nearest distances are the brute-force search's, to
    rounding (both compute them from the differences)."""
    rng = np.random.default_rng(n_features)
    reference = rng.normal(size=(700, n_features))
    reference[:50] = reference[0]  # ties among the neighbours
    X = np.vstack([rng.normal(size=(300, n_features)), reference[:5]])
    detector = _novelty.KNeighborsNovelty(max_reference=500).fit(reference)
    tree = detector.score_samples(X)
    monkeypatch.setattr(_novelty, "KD_TREE_MAX_FEATURES", 0)
    brute = detector.score_samples(X)
    np.testing.assert_allclose(tree, brute, rtol=1e-12, atol=1e-12)


def test_scaled_lbfgs_starts_at_its_start_to_the_bit():
    """L-BFGS runs on scaled parameters; its first evaluation is at the start
    itself, not at ``(start * scaling) / scaling`` (a few ulps off for most
    vectors of many parameters), so that the objective reads the values it
    kept there (found in review: a logits fit's final fit passed over the
    rows again at the point the values pass had evaluated)."""
    from sklearn_gsoftmax._optimise import lbfgs

    rng = np.random.default_rng(0)
    theta = rng.normal(size=50)
    scaling = rng.uniform(0.1, 10.0, 50)
    assert not np.array_equal(theta * scaling / scaling, theta)
    seen = []

    def loss_grad(point):
        seen.append(point.copy())
        return 0.5 * float(point @ point), point.copy()

    lbfgs(loss_grad, theta, [(-100.0, 100.0)] * 50, scaling=scaling)
    np.testing.assert_array_equal(seen[0], theta)


@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("grouped", [True, False])
def test_kth_distance_bound_keeps_few_candidates(k, grouped):
    """The brute-force search's bound of each row's k-th squared distance is
    one (every entry below the k-th stays a candidate) and leaves few other
    candidates, also where the reference points come sorted into clusters
    (found in review: a bound from k blocks of columns, each one cluster,
    left 516 candidates a row of 5 000 points in 5 clusters, k = 5)."""
    rng = np.random.default_rng(k)
    centres = rng.normal(size=(5, 20)) * 5.0
    members = rng.integers(0, 5, 5000)
    reference = centres[np.sort(members) if grouped else members]
    reference = reference + rng.normal(size=(5000, 20))
    queries = centres[rng.integers(0, 5, 200)] + rng.normal(size=(200, 20))
    squared = ((queries[:, None, :] - reference[None]) ** 2).sum(axis=-1)
    bound = _novelty._kth_bound(squared, k)
    assert (bound >= np.partition(squared, k - 1, axis=1)[:, k - 1]).all()
    candidates = (squared <= bound[:, None]).sum(axis=1)
    assert candidates.mean() < 4 * k, candidates.mean()


@pytest.mark.parametrize("n_classes", [2, 5])
def test_ceiling_held_at_its_bound_is_what_the_refinement_finds(monkeypatch, n_classes):
    """Well-separated data push the ceiling to ln(n - 1): the refinement is
    skipped, and its full run ends at the same probabilities."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, n_classes, 3000)
    z = rng.normal(size=(3000, n_classes)) + 6.0 * np.eye(n_classes)[y]
    if n_classes == 2:
        z = z[:, 1] - z[:, 0]
    skipped = GaussianSoftmaxCalibrator(fit_ceiling=True, uncertainty_rules=()).fit(
        z, y
    )
    assert skipped.n_link_ == skipped.n_samples_
    monkeypatch.setattr(_refine, "_ceiling_held", lambda *args: False)
    refined = GaussianSoftmaxCalibrator(fit_ceiling=True, uncertainty_rules=()).fit(
        z, y
    )
    np.testing.assert_allclose(
        skipped.predict_proba(z), refined.predict_proba(z), rtol=1e-6, atol=1e-9
    )


def test_ceiling_not_held_is_still_refined():
    """Flipped labels far out pull the ceiling below ln(n - 1): the shortcut
    must not skip that refinement."""
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 3000)
    s = rng.normal(size=3000) + 4.0 * (2 * y - 1)
    y[np.argsort(-np.abs(s))[:30]] ^= 1  # the most confident 1 % mislabelled
    model = GaussianSoftmaxCalibrator(fit_ceiling=True, uncertainty_rules=()).fit(s, y)
    assert model.n_link_ < 0.5 * model.n_samples_


@pytest.mark.parametrize(
    "k, m, params",
    [
        (10, 190, {}),  # a scale and a ceiling: Newton with differences
        (3, 90, {"fit_intercept": True}),  # three offsets: still Newton
        (5, 150, {"fit_intercept": True}),  # six parameters: L-BFGS, capped
    ],
)
def test_held_out_refits_are_the_converged_refits(monkeypatch, k, m, params):
    """A calibrator of few rows per parameter gives each row the
    probabilities of a copy fitted without it; the copies' local fits (Newton
    with the Hessian by differences for a few parameters, capped L-BFGS for
    more) end where converged fits of the same objective do."""
    rng = np.random.default_rng(k)
    z = rng.normal(scale=2.0, size=(m, k))
    y = (1.5 * z + rng.gumbel(size=(m, k))).argmax(axis=1)
    fast = GaussianSoftmaxCalibrator(uncertainty_rules=("conformal",), **params)
    fast.fit(z, y)
    monkeypatch.setattr(_map, "DIFFERENCE_NEWTON_MAX_PARAMETERS", 0)
    monkeypatch.setattr(_map, "REFIT_MAX_ITER", None)
    slow = GaussianSoftmaxCalibrator(uncertainty_rules=("conformal",), **params)
    slow.fit(z, y)
    np.testing.assert_allclose(slow.scale_, fast.scale_, rtol=1e-12)
    tolerance = 1e-7 if k < 5 or "fit_intercept" not in params else 1e-2
    np.testing.assert_allclose(
        np.sort(fast.conformity_scores_),
        np.sort(slow.conformity_scores_),
        atol=tolerance,
    )
    # refitted copies, not the calibrator's own probabilities of its rows
    own = 1.0 - fast.predict_proba(z)[np.arange(m), y]
    assert np.abs(np.sort(fast.conformity_scores_) - np.sort(own)).max() > 1e-3


def test_binary_ceiling_fit_takes_few_passes(monkeypatch):
    """The ceiling's Newton fit starts at ln(n - 1), where the loss is nearly
    flat in L; its steps in L are capped (``MAX_CEILING_STEP``) instead of
    overshooting to the box and halving back: 9 passes over the rows on
    these scores, 19 without the cap."""
    rng = np.random.default_rng(0)
    s = rng.normal(scale=2.0, size=4000)
    y = (rng.random(4000) < 1.0 / (1.0 + np.exp(-s))).astype(int)
    y[rng.random(4000) < 0.05] ^= 1  # label noise: a ceiling below ln(n - 1)
    passes = [0]
    kernel = _objective.binary_ceiling_nll_grads

    def counting(u, *args):
        passes[0] += len(u) == 4000
        return kernel(u, *args)

    monkeypatch.setattr(_objective, "binary_ceiling_nll_grads", counting)
    model = GaussianSoftmaxCalibrator(uncertainty_rules=()).fit(s, y)
    assert model.n_link_ < 4000  # the ceiling was fitted, not held
    assert passes[0] <= 12


def _exact_offsets_choice(monkeypatch, z, y):
    """Whether ``fit_intercept="auto"`` keeps the offsets without the screen
    (both fits made and compared), and the rows the fit passed through the
    loss (in units of all rows)."""
    monkeypatch.setattr(_map, "SCREEN_MIN_CLASSES", 10**9)
    counted = _count_rows(monkeypatch)
    model = GaussianSoftmaxCalibrator(score_map="affine", uncertainty_rules=())
    model.fit(z, y)
    monkeypatch.undo()
    return bool(np.any(model.intercept_ != 0.0)), sum(counted) / len(z)


@pytest.mark.parametrize("bias", [0.0, 0.5])
def test_scores_unit_is_computed_once_a_fit(monkeypatch, bias):
    """The scores' unit (two passes over the rows, two round trips on a
    cluster) is computed once a fit: with many classes the scale alone is
    fitted first, and the fit with offsets where the screen leaves them in
    (+-0.5 per class) takes its unit."""
    z, y = _logits(3000, 60, seed=3)
    z = z + np.linspace(-bias, bias, 60, dtype=np.float32)
    calls = []
    values_of = _fitting._unit_values
    monkeypatch.setattr(
        _fitting,
        "_unit_values",
        lambda chunk, **kw: calls.append(1) or values_of(chunk, **kw),
    )
    model = GaussianSoftmaxCalibrator(score_map="affine", uncertainty_rules=())
    model.fit(z, y)
    assert bool(np.any(model.intercept_ != 0.0)) == (bias > 0)
    # the unit's two passes: its values' summary (in the validating pass)
    # and their deviations
    assert len(calls) == 2


@pytest.mark.parametrize("bias, kept", [(0.0, False), (0.3, False), (0.5, True)])
def test_offsets_screen_makes_the_exact_choice(monkeypatch, bias, kept):
    """With many classes ``fit_intercept="auto"`` screens what offsets could
    gain before fitting them. Logits whose truth is a temperature (offsets
    only fit noise: not kept, in far fewer passes), and logits with per-class
    biases the labels lack, of +-0.3 (offsets gain 52 nats, short of the 59
    they must: the screen's 51 sends it to the exact choice) and +-0.5 (88
    nats: kept), get the choice of both fits compared."""
    z, y = _logits(3000, 60, seed=3)
    z = z + np.linspace(-bias, bias, 60, dtype=np.float32)
    exact, exact_passes = _exact_offsets_choice(monkeypatch, z, y)
    counted = _count_rows(monkeypatch)
    model = GaussianSoftmaxCalibrator(score_map="affine", uncertainty_rules=())
    model.fit(z, y)
    assert bool(np.any(model.intercept_ != 0.0)) == exact == kept
    if bias == 0.0:
        # rows through the loss, the search's subsample's included
        passes = sum(counted) / len(z)
        assert passes < exact_passes / 2, (passes, exact_passes)


def _tie_run(length):
    """A run of ``length`` confidences 8e-10 apart (each ties with the next)
    across the bin edge 0.5, nine in ten correct, and a target the whole run
    reaches."""
    confidence = 0.5 + (np.arange(length) - length // 2) * 8e-10
    correct = np.arange(length) % 10 != 3
    return confidence, correct, correct.mean() - 1e-6


@pytest.mark.parametrize(
    ("case", "expected_passes"),
    [
        # the bin's rows and its edges' pads in the first pass after the
        # histogram: a tie of 0.5 and the float below it, a run ending 4e-7
        # above the edge (both took a third pass, as if they went on beyond
        # the pad)
        (([np.nextafter(0.5, 0.0), 0.5], [True, False], 0.5), 2),
        (_tie_run(1000), 2),
        # a run going on 2.4e-6 above the edge, beyond the pad: read again
        (_tie_run(6000), 3),
    ],
)
def test_threshold_passes_over_the_rows(case, expected_passes):
    """The automatic threshold reads the rows in two passes (a histogram,
    then one bin with its edges' pads) and a third only where a run of tying
    confidences goes on beyond a pad: each pass is a round trip on a
    cluster."""
    confidence, correct, target = case
    confidence = np.asarray(confidence, dtype=np.float64)
    margin = np.arange(len(confidence), dtype=np.float64)
    passes = []

    class CountingSource(ArraySource):
        def map_reduce(self, fn, merge=add):
            passes.append(fn)
            return super().map_reduce(fn, merge)

    rows = _selective.ranking_rows(confidence, correct, np.ones(len(correct)), margin)
    source = CountingSource(rows, np.zeros(len(rows)), rows[:, 3])
    # the choice itself against the brute force: test_reference.py
    _selective.select_threshold_on(source, target)
    assert len(passes) == expected_passes


def test_range_of_bins_counts_the_rows_beyond_its_first(monkeypatch):
    """The threshold's exact check reads from its first candidate bin up to
    the first bin that reaches the target accepted whole, within
    ``RANGE_ROWS`` rows beyond the first bin (found in review: the first
    bin's rows counted too, so a large first bin always read alone, one pass
    a bin)."""
    monkeypatch.setattr(_selective, "RANGE_ROWS", 3)
    counts = np.zeros(_selective.BINS, dtype=np.intp)
    counts[100:103] = [5, 2, 1]
    reaches = np.zeros(_selective.BINS, dtype=bool)
    reaches[102] = True
    assert _selective._range_end(100, reaches, counts) == 102
    counts[101] = 3  # bin 102's row would make 4 beyond the first
    assert _selective._range_end(100, reaches, counts) == 101
    reaches[100] = True
    assert _selective._range_end(100, reaches, counts) == 100


def test_many_classes_fit_without_a_class_count_warning():
    """Issue 24: every fit of more than 20 classes warned "The number of
    unique classes is greater than 50% of the number of samples" (the class
    list was passed where labels are expected)."""
    import warnings

    rng = np.random.default_rng(5)
    y = np.arange(300) % 100  # three rows a class
    z = rng.normal(size=(300, 100)).astype(np.float32)
    z[np.arange(300), y] += 3.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = GaussianSoftmaxCalibrator().fit(z, y)
        model.predict_proba(z)


def test_search_fits_each_start_once(monkeypatch):
    """Balanced classes make the flat model's offsets zero, so the search's
    first line (the flat model's) and its zero-offsets line coincide, and
    so do their starts: each is fitted once (a digits meta fit without the
    flag: 2 081 L-BFGS evaluations with the repeats, 1 853 without)."""
    z, y = _logits(240, 3, seed=1)
    y = np.repeat(np.arange(3), 80)  # exactly balanced: flat offsets 0
    starts = []
    local_fit = _fitting.local_fit

    def recording(evaluate, theta, layout, tol, *args, **kwargs):
        if tol == _fitting.SEARCH_GRADIENT_TOL:
            starts.append(np.array(theta).tobytes())
        return local_fit(evaluate, theta, layout, tol, *args, **kwargs)

    monkeypatch.setattr(_fitting, "local_fit", recording)
    model = GaussianSoftmaxCalibrator(
        score_map="affine", fit_ceiling=False, uncertainty_rules=()
    ).fit(z, y)
    assert len(starts) == len(set(starts)), len(starts) - len(set(starts))
    assert model.n_iter_ > 0


def test_scale_and_offsets_fits_read_the_search_rows_once(monkeypatch):
    """From ``SCREEN_MIN_CLASSES`` classes on, ``fit_intercept="auto"`` fits
    the scale alone, then (where the offsets may pay) the offsets: both
    search the same subsample, read once (its extremes and its rows: two
    passes, on a cluster two round trips)."""
    z, y = _logits(3000, 60, seed=2)
    z[:, :30] += 2.0  # the first half of the classes boosted: offsets pay
    reads = []
    sample = _fitting.search_sample

    def counting(*args):
        reads.append(1)
        return sample(*args)

    monkeypatch.setattr(_fitting, "search_sample", counting)
    model = GaussianSoftmaxCalibrator(
        score_map="affine", fit_ceiling=False, uncertainty_rules=()
    ).fit(z, y)
    assert np.ptp(model.intercept_) > 0.5  # the offsets were fitted and kept
    assert len(reads) == 1

"""Dask collections: lazy predictions, the fit on a (local) cluster, errors."""

import numpy as np
import pandas as pd
import pytest

da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from joblib import parallel_backend  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from sklearn_gsoftmax import (  # noqa: E402
    GaussianSoftmaxCalibrator,
    GaussianSoftmaxClassifier,
    _priors,  # noqa: E402
)
from sklearn_gsoftmax._dask import DaskSource  # noqa: E402
from sklearn_gsoftmax._search import extremity  # noqa: E402
from sklearn_gsoftmax._source import ArraySource, QuantileSummary  # noqa: E402

ROWS, CHUNK = 200_000, 20_000


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, processes=False, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def binary():
    rng = np.random.default_rng(0)
    s = rng.normal(scale=3.0, size=ROWS)
    y = (rng.random(ROWS) < 1 / (1 + np.exp(-s))).astype(int)
    # a few confidently mislabelled far scores: the global search matters
    s[:20] = 40.0
    y[:20] = 0
    return s, y


@pytest.fixture(scope="module")
def fitted(binary):
    return GaussianSoftmaxCalibrator(
        uncertainty_rules=("low_confidence", "conformal", "novelty")
    ).fit(*binary)


@pytest.fixture(scope="module")
def dask_fitted(client, binary):
    s, y = binary
    return GaussianSoftmaxCalibrator(
        uncertainty_rules=("low_confidence", "conformal", "novelty")
    ).fit(da.from_array(s, chunks=CHUNK), da.from_array(y, chunks=CHUNK))


def test_binary_fit_on_cluster_equals_in_memory(fitted, dask_fitted):
    assert dask_fitted.scale_ == pytest.approx(fitted.scale_, rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(dask_fitted.intercept_, fitted.intercept_, atol=1e-6)
    assert dask_fitted.n_samples_ == fitted.n_samples_ == ROWS
    # the mislabelled far scores bring the fitted ceiling down
    assert fitted.n_link_ < ROWS
    assert dask_fitted.n_link_ == pytest.approx(fitted.n_link_, rel=1e-6)
    np.testing.assert_array_equal(dask_fitted.score_range_, fitted.score_range_)
    np.testing.assert_array_equal(dask_fitted.classes_, fitted.classes_)


def test_weighted_multiclass_fit_on_cluster_equals_in_memory(client):
    rng = np.random.default_rng(1)
    m, k = 30_000, 3
    z = rng.normal(scale=2.0, size=(m, k))
    y = z.argmax(axis=1)
    noisy = rng.random(m) < 0.2
    y[noisy] = rng.integers(0, k, noisy.sum())
    w = rng.integers(0, 4, m).astype(float)
    # a row of weight 0 is not in the fit: nor in the matrix's clip range
    z[w == 0] *= 3.0
    labels = np.array(["a", "b", "c"])[y]
    memory = GaussianSoftmaxCalibrator(uncertainty_rules=()).fit(z, labels, w)
    on_dask = GaussianSoftmaxCalibrator(uncertainty_rules=()).fit(
        da.from_array(z, chunks=(5_000, 1)),
        da.from_array(labels, chunks=7_000),
        da.from_array(w, chunks=3_000),
    )
    assert on_dask.scale_ == pytest.approx(memory.scale_, rel=1e-6)
    np.testing.assert_allclose(on_dask.coef_, memory.coef_, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(on_dask.intercept_, memory.intercept_, atol=1e-6)
    np.testing.assert_array_equal(on_dask.clip_range_, memory.clip_range_)
    assert on_dask.n_link_ == pytest.approx(memory.n_link_, rel=1e-6)
    assert on_dask.n_samples_ == memory.n_samples_ == w.sum()


def test_threshold_and_conformal_state_from_summaries(binary, fitted, dask_fitted):
    # the threshold is a bin edge at most one bin below the exact choice
    assert abs(dask_fitted.uncertainty_threshold_ - fitted.uncertainty_threshold_) < (
        2.0 / 65_536
    )
    assert dask_fitted.accepted_accuracy_ >= dask_fitted.target_accuracy
    assert dask_fitted.coverage_ == pytest.approx(fitted.coverage_, abs=1e-3)
    # conformal sets from a reference of 10^5 quantiles cover as promised
    s, y = binary
    sets = dask_fitted.predict_set(s)
    coverage = sets[np.arange(len(y)), y].mean()
    assert abs(coverage - 0.9) < 0.005
    assert len(dask_fitted.conformity_scores_) <= 100_000
    summary = dask_fitted._held_out_summary
    expected = fitted._held_out_summary
    assert summary["n"] == expected["n"]
    assert summary["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert summary["rates"]["conformal"] == pytest.approx(
        expected["rates"]["conformal"], abs=0.005
    )


def test_quantile_summary_rank_error():
    rng = np.random.default_rng(2)
    values = rng.standard_exponential(1_000_000)
    parts = [
        QuantileSummary(chunk, np.ones(len(chunk)), 100_000)
        for chunk in np.array_split(values, 10)
    ]
    summary = parts[0]
    for part in parts[1:]:
        summary = summary.merge(part)
    assert len(summary.values) == 100_000
    assert summary.weights.sum() == pytest.approx(len(values))
    for level in (0.05, 0.5, 0.9, 0.99):
        cumulative = np.cumsum(summary.weights)
        q = summary.values[np.searchsorted(cumulative, level * cumulative[-1])]
        assert abs(np.mean(values <= q) - level) < 5e-5


@pytest.mark.parametrize(
    "method", ["predict_proba", "predict_log_proba", "predict", "predict_uncertain"]
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_calibrator_predicts_lazily_block_by_block(
    client, binary, fitted, method, dtype
):
    s = binary[0][:50_000].astype(dtype)
    lazy = getattr(fitted, method)(da.from_array(s, chunks=CHUNK))
    assert isinstance(lazy, da.Array)
    expected = getattr(fitted, method)(s)
    assert lazy.dtype == expected.dtype
    assert lazy.chunks[0] == (CHUNK, CHUNK, 10_000)
    if expected.ndim == 2:
        assert lazy.chunks[1] == (2,)
    np.testing.assert_array_equal(lazy.compute(), expected)


def test_calibrator_predict_frame_keeps_the_index(client, binary, fitted):
    s = binary[0][:10_000]
    frame = pd.DataFrame({"score": s}, index=np.arange(10_000) * 3 + 7)
    lazy = fitted.predict_frame(dd.from_pandas(frame, npartitions=4))
    assert isinstance(lazy, dd.DataFrame)
    pd.testing.assert_frame_equal(lazy.compute(), fitted.predict_frame(frame))


@pytest.fixture(scope="module")
def classification():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(3_000, 4))
    y = (X @ [1.0, -2.0, 0.5, 0.0] + rng.normal(size=3_000) > 0).astype(int)
    return X, y


def test_classifier_cv_fits_through_joblib_dask_backend(client, classification):
    X, y = classification
    memory = GaussianSoftmaxClassifier(LogisticRegression(), cv=3).fit(X, y)
    with distributed.get_task_stream(client) as tasks, parallel_backend("dask"):
        # n_jobs=None leaves the number of jobs to the backend
        on_dask = GaussianSoftmaxClassifier(LogisticRegression(), cv=3).fit(X, y)
    # joblib sent the fold fits to the cluster's workers
    assert len(tasks.data) >= 3
    np.testing.assert_allclose(on_dask.predict_proba(X), memory.predict_proba(X))


def test_classifier_scores_a_dask_dataframe_partition_by_partition(
    client, classification
):
    X, y = classification
    frame = pd.DataFrame(X, columns=list("abcd"), index=np.arange(3_000) + 10)
    model = GaussianSoftmaxClassifier(LogisticRegression(), cv=3).fit(frame, y)
    lazy_frame = dd.from_pandas(frame, npartitions=3)
    lazy = model.predict_frame(lazy_frame)
    assert isinstance(lazy, dd.DataFrame)
    pd.testing.assert_frame_equal(lazy.compute(), model.predict_frame(frame))
    uncertain = model.predict_uncertain(lazy_frame)
    np.testing.assert_array_equal(uncertain.compute(), model.predict_uncertain(frame))
    array_model = GaussianSoftmaxClassifier(LogisticRegression(), cv=3).fit(X, y)
    proba = array_model.predict_proba(da.from_array(X, chunks=(1_000, 2)))
    assert proba.chunks == ((1_000,) * 3, (2,))
    # block-wise BLAS products match the whole-array one to rounding, not
    # bit for bit (a row's last bits depend on its place in the kernel)
    np.testing.assert_allclose(
        proba.compute(), array_model.predict_proba(X), rtol=1e-12, atol=1e-15
    )
    lazy_log = array_model.predict_log_proba(da.from_array(X, chunks=(1_000, 2)))
    np.testing.assert_allclose(
        lazy_log.compute(), array_model.predict_log_proba(X), rtol=1e-12, atol=1e-14
    )
    # decisions do not depend on those bits
    lazy_labels = array_model.predict(da.from_array(X, chunks=(1_000, 2)))
    np.testing.assert_array_equal(lazy_labels.compute(), array_model.predict(X))


def test_nan_scores_name_the_chunk(client):
    s = np.linspace(-3, 3, 1_000)
    s[612] = np.nan
    y = (s > 0).astype(int)
    with pytest.raises(ValueError, match=r"NaN.*in chunk 2: rows 500 to 750"):
        GaussianSoftmaxCalibrator().fit(
            da.from_array(s, chunks=250), da.from_array(y, chunks=250)
        )


def test_mismatched_lengths_and_widths(client):
    s = da.from_array(np.linspace(-3, 3, 1_000), chunks=250)
    y = np.arange(999) % 2
    with pytest.raises(ValueError, match="different lengths: 1000 and 999"):
        GaussianSoftmaxCalibrator().fit(s, y)
    z = da.from_array(np.zeros((1_000, 3)), chunks=250)
    with pytest.raises(ValueError, match=r"3 column\(s\) but y has 2 classes"):
        GaussianSoftmaxCalibrator().fit(z, np.arange(1_000) % 2)
    s, y = np.linspace(-3, 3, 100), np.arange(100) % 2
    fitted = GaussianSoftmaxCalibrator().fit(s, y)
    with pytest.raises(ValueError, match="features"):
        fitted.predict_proba(z)


def test_binary_ceiling_with_infinite_scores_on_cluster_equals_in_memory(client):
    """Infinite scores and a mislabelled top score: Newton's method on both
    paths (L-BFGS on the cluster once ended in a flat basin here)."""
    rng = np.random.default_rng(3)
    s = rng.normal(scale=3.0, size=4000)
    y = (s > 0).astype(int)
    s[:10], y[:10] = np.inf, 1
    s[10:15], y[10:15] = -np.inf, 0
    y[np.argmax(np.where(np.isfinite(s), s, -np.inf))] = 0
    memory = GaussianSoftmaxCalibrator(uncertainty_rules=()).fit(s, y)
    on_dask = GaussianSoftmaxCalibrator(uncertainty_rules=()).fit(
        da.from_array(s, chunks=1000), da.from_array(y, chunks=1000)
    )
    assert on_dask.n_link_ == pytest.approx(memory.n_link_, rel=1e-6)
    assert on_dask.scale_ == pytest.approx(memory.scale_, rel=1e-6)
    np.testing.assert_allclose(on_dask.predict_proba(s), memory.predict_proba(s))


def test_top_k_and_gather_name_the_global_rows(client):
    """The rows of largest key over blocks of unequal size are the whole
    data's (as rows of the whole data, not of a block), and gathering them
    gives their scores, labels and weights: the search's extreme rows."""
    rng = np.random.default_rng(5)
    z = rng.standard_cauchy(1000)
    y = rng.integers(2, size=1000)
    w = rng.integers(1, 4, size=1000).astype(float)
    source = DaskSource.of(
        da.from_array(z, chunks=(100, 250, 400, 250)), y, sample_weight=w
    )

    def key(chunk):
        return np.abs(chunk.z)

    expected = np.sort(np.argsort(-np.abs(z), kind="stable")[:30])
    rows = source.top_k(key, 30)
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_array_equal(rows, ArraySource(z, y, w).top_k(key, 30))
    gathered = source.gather(rows)
    np.testing.assert_array_equal(gathered.z, z[rows])
    np.testing.assert_array_equal(gathered.y, y[rows])
    np.testing.assert_array_equal(gathered.w, w[rows])


def test_top_k_of_tied_values_is_the_same_from_every_chunking(client):
    """Scores of a few levels (rounded, as a tree's or a clipped model's):
    the search's extreme rows are the first rows of the tie at the k-th
    largest, in memory and from blocks (a partition per block kept other
    members of the tie: 16 of 128 rows differed)."""
    rng = np.random.default_rng(0)
    z = np.round(rng.normal(size=5000), 1)
    y = rng.integers(0, 2, 5000)
    key = extremity
    in_memory = ArraySource(z, y).top_k(key, 128)
    on_dask = DaskSource.of(da.from_array(z, chunks=700), y).top_k(key, 128)
    np.testing.assert_array_equal(on_dask, in_memory)
    assert len(in_memory) == 128
    level = np.sort(np.abs(z))[-128]
    assert (np.abs(z[in_memory]) >= level).all()
    # the tie at the k-th largest: its first rows
    tied = np.flatnonzero(np.abs(z) == level)
    np.testing.assert_array_equal(
        np.intersect1d(in_memory, tied), tied[: np.isin(in_memory, tied).sum()]
    )


def test_adaptation_keeps_the_same_rows_from_every_chunking(client, monkeypatch):
    """Beyond ``ROW_CAP`` held-out rows adaptation keeps evenly spaced ones
    for its threshold: the same rows from blocks as in memory (each block
    capped to its own evenly spaced rows, then the merge again, kept others:
    30 000 rows in blocks of 7 000 restated the threshold 0.80026 where
    memory's was 0.81158, and 25 of 2 001 scores were flagged otherwise)."""
    monkeypatch.setattr(_priors, "ROW_CAP", 500)
    rng = np.random.default_rng(0)
    s = rng.normal(scale=3.0, size=3000)
    y = (rng.random(3000) < 1 / (1 + np.exp(-s))).astype(int)
    kw = {"uncertainty_rules": ("low_confidence",)}
    memory = GaussianSoftmaxCalibrator(**kw).fit(s, y)
    on_dask = GaussianSoftmaxCalibrator(**kw).fit(
        da.from_array(s, chunks=700), da.from_array(y, chunks=700)
    )
    adapted = [m.adapt_priors(priors=[0.2, 0.8]) for m in (memory, on_dask)]
    rows = [m._prior_state["rows"] for m in (memory, on_dask)]
    for key in ("proba", "y", "w"):
        np.testing.assert_allclose(rows[1][key], rows[0][key], rtol=1e-12)
    assert adapted[1].uncertainty_threshold_ == pytest.approx(
        adapted[0].uncertainty_threshold_, rel=1e-9
    )
    np.testing.assert_array_equal(
        adapted[1].predict_uncertain(np.linspace(-6, 6, 2001)),
        adapted[0].predict_uncertain(np.linspace(-6, 6, 2001)),
    )


def test_search_finds_its_extreme_rows_in_the_units_pass(client, monkeypatch):
    """Each pass over the rows on a cluster is a round trip: the search's
    extreme rows are found in the pass that computes the scores' unit (a
    fit of 20 000 binary scores in 4 blocks: 11 computations; 12 with a pass
    of their own), and the fit is the one in memory."""
    computations = []
    each = DaskSource.map_reduce_each.__func__

    def counted(cls, requests):
        computations.append(len(requests))
        return each(cls, requests)

    monkeypatch.setattr(DaskSource, "map_reduce_each", classmethod(counted))
    rng = np.random.default_rng(0)
    s = rng.normal(scale=3.0, size=20_000)
    y = (rng.random(20_000) < 1 / (1 + np.exp(-s))).astype(int)
    on_dask = GaussianSoftmaxCalibrator(uncertainty_rules=()).fit(
        da.from_array(s, chunks=5000), da.from_array(y, chunks=5000)
    )
    assert len(computations) == 11
    memory = GaussianSoftmaxCalibrator(uncertainty_rules=()).fit(s, y)
    assert on_dask.scale_ == pytest.approx(memory.scale_, rel=1e-6)


@pytest.mark.parametrize(("threshold", "expected"), [("auto", 3), (0.8, 2)])
def test_flag_reads_the_held_out_rows_in_few_round_trips(
    client, monkeypatch, binary, threshold, expected
):
    """A calibrator's flag reads its held-out rows on the cluster in few
    computations, each a round trip: the threshold's first pass (its
    histogram, or a fixed threshold's coverage) with the conformal
    reference, the automatic threshold's bin, and the summaries of the shift
    report and of adaptation."""
    import dask

    from sklearn_gsoftmax import _uncertainty

    computes = []
    compute, fit_flag = dask.compute, _uncertainty.fit_flag

    def counted(*args, **kwargs):
        computes.append(args)
        return compute(*args, **kwargs)

    def fit_flag_counted(*args, **kwargs):
        with monkeypatch.context() as patched:
            patched.setattr(dask, "compute", counted)
            return fit_flag(*args, **kwargs)

    monkeypatch.setattr(_uncertainty, "fit_flag", fit_flag_counted)
    s, y = binary
    model = GaussianSoftmaxCalibrator(
        uncertainty_rules=("low_confidence", "conformal"),
        uncertainty_threshold=threshold,
    ).fit(da.from_array(s, chunks=CHUNK), da.from_array(y, chunks=CHUNK))
    assert len(computes) == expected
    assert 0.0 < model.coverage_ <= 1.0

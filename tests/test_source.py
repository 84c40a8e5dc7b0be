"""The statistics layer: mergeable summaries against the pooled values."""

import functools

import numpy as np
import pytest

from sklearn_gsoftmax._source import (
    ArraySource,
    Chunk,
    QuantileSummary,
    add,
    jointly,
    mean_and_std,
    merge_moments,
    moments,
    one_pass_each,
)


def _chunks(rng, sizes=(7, 1, 30, 12)):
    """Values in chunks of unequal size and location, weights with zeros."""
    values = [
        rng.normal(loc=3.0 * i, scale=1.0 + i, size=n) for i, n in enumerate(sizes)
    ]
    weights = [rng.integers(0, 4, size=n).astype(float) for n in sizes]
    weights[0][0] = 1.0  # every chunk keeps some weight
    return values, weights


@pytest.mark.parametrize("seed", range(3))
def test_merged_moments_are_those_of_the_pooled_values(seed):
    """Moments merged over chunks (the ensemble's held-out summaries, a
    cluster's blocks) are the weighted mean and spread of all the values, the
    spread between the chunks' means included; infinite values left out."""
    rng = np.random.default_rng(seed)
    values, weights = _chunks(rng)
    values[2][3] = np.inf  # an infinite log-loss
    merged = functools.reduce(
        merge_moments, [moments(v, w) for v, w in zip(values, weights)]
    )
    v, w = np.concatenate(values), np.concatenate(weights)
    finite = np.isfinite(v)
    v, w = v[finite], w[finite]
    mean = np.sum(w * v) / np.sum(w)
    squares = np.sum(w * (v - mean) ** 2)
    np.testing.assert_allclose(merged, [w.sum(), mean, squares], rtol=1e-12)
    expected_std = np.sqrt(squares / w.sum())
    assert mean_and_std(merged) == pytest.approx((mean, expected_std), rel=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_weighted_quantiles_are_those_of_repeated_rows(seed):
    """With integer weights, a summary's lower quantiles are those of the
    values repeated as often as their weight (exact while nothing is
    compressed: one chunk, or merged chunks within the summary's size)."""
    rng = np.random.default_rng(seed)
    values, weights = _chunks(rng)
    parts = [QuantileSummary(v, w, 1000) for v, w in zip(values, weights)]
    merged = functools.reduce(QuantileSummary.merge, parts)
    repeated = np.sort(
        np.repeat(np.concatenate(values), np.concatenate(weights).astype(int))
    )
    levels = np.array([0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0])
    # the lower quantile: the first value whose cumulative count reaches q W
    ranks = np.maximum(np.ceil(levels * len(repeated)).astype(int) - 1, 0)
    np.testing.assert_array_equal(merged.quantiles(levels), repeated[ranks])
    one = QuantileSummary(values[2], weights[2], 1000)
    repeated = np.sort(np.repeat(values[2], weights[2].astype(int)))
    ranks = np.maximum(np.ceil(levels * len(repeated)).astype(int) - 1, 0)
    np.testing.assert_array_equal(one.quantiles(levels), repeated[ranks])


def test_statistics_taken_jointly_are_those_taken_apart():
    """``jointly`` (one round trip on a cluster for several statistics)
    computes and merges each part as it would alone, across chunks."""
    rng = np.random.default_rng(0)
    chunks = [
        Chunk(rng.normal(size=n), np.zeros(n, int), np.ones(n), start)
        for n, start in ((5, 0), (7, 5), (3, 12))
    ]
    total = (lambda chunk: chunk.z.sum(), add)
    largest = (lambda chunk: chunk.z.max(), max)
    fn, merge = jointly(total, largest)
    joint = functools.reduce(merge, [fn(chunk) for chunk in chunks])
    apart = [
        functools.reduce(part_merge, [part_fn(chunk) for chunk in chunks])
        for part_fn, part_merge in (total, largest)
    ]
    assert joint == tuple(apart)
    assert joint[0] == pytest.approx(sum(chunk.z.sum() for chunk in chunks))


def test_one_pass_over_each_source_gives_each_request_its_result():
    """``one_pass_each`` reads each distinct source once (a round trip on a
    cluster) and returns every request's result in the order asked, as a
    pass of its own would give it."""
    rng = np.random.default_rng(0)
    passes = []

    class CountingSource(ArraySource):
        def map_reduce(self, fn, merge=add):
            passes.append(self)
            return super().map_reduce(fn, merge)

    first, second = (
        CountingSource(rng.normal(size=n), np.zeros(n, int)) for n in (9, 4)
    )
    total = (lambda chunk: chunk.z.sum(), add)
    largest = (lambda chunk: chunk.z.max(), max)
    rows = (lambda chunk: len(chunk.z), add)
    requests = [
        (first, *total),
        (second, *largest),
        (first, *largest),
        (second, *rows),
        (first, *rows),
    ]
    results = one_pass_each(requests)
    assert sorted(map(id, passes)) == sorted([id(first), id(second)])
    alone = [source.map_reduce(fn, merge) for source, fn, merge in requests]
    assert (
        results
        == alone
        == [
            first.chunk.z.sum(),
            second.chunk.z.max(),
            first.chunk.z.max(),
            4,
            9,
        ]
    )

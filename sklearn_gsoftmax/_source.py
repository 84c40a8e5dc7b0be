"""Statistics that merge: the one interface through which a fit reads its data.

A fit reads its rows, the scores ``z`` (``(m,)`` binary margins or ``(m, K)``
logits), the labels ``y`` and the weights ``w``, only through a
:class:`Source`:

* ``map_reduce(fn, merge)``: ``fn`` of each chunk, merged (sums, minima and
  maxima, :class:`QuantileSummary`, :func:`merge_moments` ...);
* ``evaluator(make)``: a function of the parameters evaluated on every chunk
  and summed, for the optimisers (``make(chunk)`` prepares what does not
  depend on the parameters; the in-memory source keeps it between calls);
* ``top_k(key, k)`` and ``gather(rows)``: the rows of largest ``key`` and the
  rows at given positions, on the driver;
* ``map(fn)``: the source of the chunks transformed by ``fn``.

:class:`ArraySource`, the rows in memory, is the one-chunk case (its
evaluators run over row blocks, so that a ``(m, K)`` temporary never grows
with ``m``); a lazy collection's handler (:data:`LAZY_HANDLERS`: the one
``_dask`` registers) gives a source of the collection's blocks. Every summary
is exact when there is one chunk, so the in-memory fit is exact.

The estimators know no collection library: a fit asks :func:`lazy_handler`
for a source of lazy input, and a prediction method wrapped by :func:`lazily`
maps itself over the blocks of lazy input, unevaluated.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from ._ties import TOP_WINDOW, largest, top_window

#: Entries of a score block that an evaluator's temporaries hold at most: a
#: float64 temporary of a block is then 2 MiB, whatever the data's size (small
#: enough to stay in cache between the kernel's passes: an evaluation of
#: 20 000 x 100 logits is no slower in float64 blocks of this size than in one
#: float32 pass, and a fit's peak memory stays near the scores' own size).
BLOCK_ENTRIES = 1 << 18


class Chunk(NamedTuple):
    """Rows of the fit: scores ``z``, labels ``y``, weights ``w`` (float64),
    and the position of the first row in the whole data."""

    z: np.ndarray
    y: np.ndarray
    w: np.ndarray
    start: int = 0


def add(a, b):
    """The merge of sums (numbers or arrays)."""
    return a + b


class Source:
    """The data of a fit, read in chunks (see the module)."""

    n_rows: int

    def map_reduce(self, fn, merge=add):
        raise NotImplementedError

    def evaluator(self, make, merge=add):
        raise NotImplementedError

    def top_k(self, key, k: int, window: tuple | None = None) -> np.ndarray:
        """The rows, sorted, of the ``k`` largest ``key(chunk)`` values,
        near-equal values tied and their ties broken by row
        (:func:`._ties.largest`): the same rows from every chunking.
        ``window``: the result of a :func:`window_request` of ``TOP_WINDOW``
        of ``key`` and ``k``, where a pass that reads the rows anyway
        computed it."""
        width = TOP_WINDOW
        while True:
            if window is None:
                window = self.map_reduce(*window_request(key, k, width))
            values, rows = window
            chosen = largest(values, rows, k, width, len(rows) == self.n_rows)
            if chosen is not None:
                return chosen
            width, window = width * TOP_WINDOW, None

    def gather(self, rows: np.ndarray) -> Chunk:
        raise NotImplementedError

    def map(self, fn) -> Source:
        raise NotImplementedError

    @classmethod
    def map_reduce_each(cls, requests: list) -> list:
        """The results of ``requests``, ``(source, fn, merge)`` triples of
        sources of this class, with one pass over each distinct source (its
        requests computed :func:`jointly`); a class whose passes can share
        one computation says so by overriding this."""

        def one_pass(group):
            return group[0][0].map_reduce(*jointly(*(request[1:] for request in group)))

        return _in_groups(requests, lambda request: id(request[0]), one_pass)


class ArraySource(Source):
    """The rows in memory: one chunk.

    ``map_reduce`` calls ``fn`` once on all rows. ``evaluator`` prepares
    ``make`` once per block of at most ``BLOCK_ENTRIES`` scores and sums the
    blocks' values at every call.
    """

    def __init__(self, z: np.ndarray, y: np.ndarray, w: np.ndarray | None = None):
        self.chunk = Chunk(z, y, np.ones(len(z)) if w is None else w)
        self.n_rows = len(z)

    def map_reduce(self, fn, merge=add):
        return fn(self.chunk)

    def blocks(self) -> list:
        """The chunk in row blocks of at most ``BLOCK_ENTRIES`` scores."""
        return row_blocks(self.chunk)

    def evaluator(self, make, merge=add):
        prepared = [make(block) for block in self.blocks()]
        if len(prepared) == 1:
            return prepared[0]

        def evaluate(*args):
            value = prepared[0](*args)
            for part in prepared[1:]:
                value = merge(value, part(*args))
            return value

        return evaluate

    def gather(self, rows: np.ndarray) -> Chunk:
        z, y, w, _ = self.chunk
        return Chunk(z[rows], y[rows], w[rows])

    def map(self, fn) -> ArraySource:
        mapped = fn(self.chunk)
        return ArraySource(mapped.z, mapped.y, mapped.w)


def rows_per_block(z: np.ndarray) -> int:
    """Rows of scores ``z`` that make a block of at most ``BLOCK_ENTRIES``."""
    width = 1 if z.ndim == 1 else z.shape[1]
    return max(1, BLOCK_ENTRIES // width)


def row_blocks(chunk: Chunk) -> list:
    """``chunk`` in row blocks of at most ``BLOCK_ENTRIES`` scores (itself
    when it is no larger)."""
    z, y, w, start = chunk
    step = rows_per_block(z)
    if len(z) <= step:
        return [chunk]
    return [
        Chunk(z[i : i + step], y[i : i + step], w[i : i + step], start + i)
        for i in range(0, len(z), step)
    ]


def window_request(key, k: int, width: float = TOP_WINDOW):
    """``(fn, merge)`` of the :func:`._ties.top_window` of ``width`` of the
    ``key(chunk)`` values, with their rows (in the whole): a window of each
    chunk, merged (see :meth:`Source.top_k`)."""

    def fn(chunk):
        values = np.asarray(key(chunk), dtype=np.float64)
        keep = np.flatnonzero(top_window(values, k, width))
        return values[keep], keep + chunk.start

    def merge(a, b):
        values = np.concatenate([a[0], b[0]])
        rows = np.concatenate([a[1], b[1]])
        keep = top_window(values, k, width, rows)
        return values[keep], rows[keep]

    return fn, merge


def jointly(*parts):
    """One pass for several statistics: ``parts`` are ``(fn, merge)`` pairs;
    returns the ``(fn, merge)`` of their tuple. On a cluster, one round trip
    instead of one each."""

    def fn(chunk):
        return tuple(part_fn(chunk) for part_fn, _ in parts)

    def merge(a, b):
        return tuple(part_merge(x, y) for (_, part_merge), x, y in zip(parts, a, b))

    return fn, merge


def one_pass_each(requests: list) -> list:
    """The results of ``requests``, ``(source, fn, merge)`` triples, in as
    few passes as their sources allow (``Source.map_reduce_each``): one per
    distinct source in memory, one computation for all on a cluster. On a
    cluster, one round trip instead of one per statistic."""
    return _in_groups(
        requests,
        lambda request: type(request[0]),
        lambda group: type(group[0][0]).map_reduce_each(group),
    )


def _in_groups(requests: list, key, run) -> list:
    """The results of ``requests``, in order, each group of those with the
    same ``key(request)`` computed by ``run(group)`` (its results in order)."""
    groups: dict = {}
    for index, request in enumerate(requests):
        groups.setdefault(key(request), []).append(index)
    results = [None] * len(requests)
    for indices in groups.values():
        for index, result in zip(indices, run([requests[i] for i in indices])):
            results[index] = result
    return results


def by_blocks(fn, merge=add):
    """``fn`` of a chunk computed on its row blocks of at most
    ``BLOCK_ENTRIES`` scores and merged: the same sums for a statistic whose
    float64 temporaries would otherwise be several times a network's logits.
    Only for statistics whose ``merge`` is exact (sums, moments)."""

    def blockwise(chunk: Chunk):
        blocks = row_blocks(chunk)
        result = fn(blocks[0])
        for block in blocks[1:]:
            result = merge(result, fn(block))
        return result

    return blockwise


class QuantileSummary:
    """A mergeable weighted quantile summary: sorted points, each standing for
    the weight it carries; at most ``size`` of them once merged.

    A chunk's summary is exact (its values, sorted). Merging compresses to
    ``size`` points of equal weight, which moves any rank by at most
    ``W / size`` (``W`` the total weight); the compressions of a tree of
    merges add up to about one ``W / size`` in practice, at most ``2 W /
    size`` per level. With one chunk nothing is compressed: exact.
    """

    def __init__(self, values: np.ndarray, weights: np.ndarray, size: int):
        keep = weights > 0
        self._values, self._weights, self.size = values[keep], weights[keep], size
        self._sorted = False

    def _sort(self) -> None:
        if not self._sorted:
            weights = self._weights
            if len(weights) and (weights == weights[0]).all():
                # Equal weights (an unweighted chunk) need no permutation: a
                # plain sort of the values is several times faster.
                self._values = np.sort(self._values)
            else:
                order = np.argsort(self._values, kind="stable")
                self._values, self._weights = self._values[order], weights[order]
            self._sorted = True

    @property
    def values(self) -> np.ndarray:
        self._sort()
        return self._values

    @property
    def weights(self) -> np.ndarray:
        self._sort()
        return self._weights

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """``(values, weights)`` of the summary in no particular order: for a
        consumer that sorts them itself, only if it needs to (a conformal
        reference sorts at its first use)."""
        return self._values, self._weights

    def compressed(self) -> QuantileSummary:
        if len(self.values) <= self.size:
            return self
        cumulative = np.cumsum(self.weights)
        total = cumulative[-1]
        levels = (np.arange(self.size) + 0.5) * (total / self.size)
        ranks = np.minimum(np.searchsorted(cumulative, levels), len(self.values) - 1)
        return QuantileSummary(
            self.values[ranks], np.full(self.size, total / self.size), self.size
        )

    def merge(self, other: QuantileSummary) -> QuantileSummary:
        return QuantileSummary(
            np.concatenate([self.values, other.values]),
            np.concatenate([self.weights, other.weights]),
            self.size,
        ).compressed()

    def quantiles(self, levels) -> np.ndarray:
        """Lower weighted quantiles: the first value whose cumulative weight
        reaches ``level`` times the total (with frequency weights, those of
        the rows repeated)."""
        levels = np.asarray(levels, dtype=float)
        weights = self._weights
        if not self._sorted and len(weights) and (weights == 1.0).all():
            # Unit weights (an unweighted chunk): the first value whose rank
            # reaches ``level`` times the count, by selection instead of a
            # sort (the same values: the sort's cumulative weights are then
            # exact integers; millions of logits sort in seconds).
            count = len(weights)
            ranks = np.clip(np.ceil(levels * count).astype(np.intp) - 1, 0, count - 1)
            unique = np.unique(ranks)
            selected = np.partition(self._values, unique)
            return selected[ranks]
        cumulative = np.cumsum(self.weights)
        ranks = np.searchsorted(cumulative, levels * cumulative[-1])
        return self.values[np.minimum(ranks, len(self.values) - 1)]


def moments(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(weight, mean, sum of squared deviations)`` of the finite values,
    merged exactly by :func:`merge_moments` (Chan et al.)."""
    finite = np.isfinite(values)
    if not finite.all():
        values, w = values[finite], w[finite]
    weight = float(w.sum())
    if weight == 0:
        return np.zeros(3)
    mean = float(w @ values) / weight
    deviation = values - mean
    return np.array([weight, mean, float(w @ (deviation * deviation))])


def merge_moments(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a[0] == 0 or b[0] == 0:
        return a if b[0] == 0 else b
    weight = a[0] + b[0]
    delta = b[1] - a[1]
    return np.array(
        [
            weight,
            a[1] + delta * b[0] / weight,
            a[2] + b[2] + delta**2 * a[0] * b[0] / weight,
        ]
    )


def mean_and_std(summary: np.ndarray) -> tuple[float, float]:
    """The mean and standard deviation of :func:`moments`."""
    weight, mean, squares = summary
    return float(mean), float(np.sqrt(squares / weight)) if weight else 0.0


def merge_ranges(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The merge of ``(2, K)`` ranges: minima of row 0, maxima of row 1."""
    return np.vstack([np.minimum(a[0], b[0]), np.maximum(a[1], b[1])])


def merge_dicts(merge_values):
    """The merge of dicts whose entries merge by ``merge_values[key]`` (a
    function) or, for keys it does not name, by :func:`add`."""

    def merge(a: dict, b: dict) -> dict:
        return {key: merge_values.get(key, add)(a[key], b[key]) for key in a}

    return merge


#: Handlers of lazy collections (a cluster's arrays and frames), each with
#: ``handles(x)``, ``source(scores, y, sample_weight)`` (a :class:`Source`
#: with ``one_row_like()``) and ``predict(estimator, method, X)``; ``_dask``
#: registers its handler when the package is imported.
LAZY_HANDLERS: list = []


def lazy_handler(*values):
    """The handler of the first lazy collection among ``values``, or ``None``."""
    for handler in LAZY_HANDLERS:
        if any(handler.handles(value) for value in values):
            return handler
    return None


def lazily(method):
    """Wrap a prediction method ``method(self, X)``: on a lazy collection it
    is mapped over the collection's blocks, unevaluated."""

    @functools.wraps(method)
    def wrapper(self, X):
        handler = lazy_handler(X)
        if handler is not None:
            return handler.predict(self, method.__name__, X)
        return method(self, X)

    return wrapper

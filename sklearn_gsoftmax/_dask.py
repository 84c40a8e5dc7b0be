"""Dask collections: the one module that knows Dask exists.

It registers :class:`DaskHandler` in ``_source.LAZY_HANDLERS``; the estimators
only ask that registry.

* :class:`DaskSource` is a ``_source.Source`` of the blocks of Dask arrays,
  DataFrames and Series: a fit reads them in map-reduce passes, each chunk's
  result merged in a tree on the workers, so that only parameters and small
  summaries reach the driver. The fit's code is the in-memory fit's.
* :func:`predict` maps an in-memory prediction method over the blocks of a Dask
  array (``map_blocks``, rows chunked, the columns in one chunk) or the
  partitions of a Dask DataFrame (``map_partitions``), with an explicit
  ``meta``: nothing is computed until the caller asks.

dask is imported inside the functions: :func:`is_dask_collection` never
imports it, so that the rest of the package pays nothing without it.
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np

from ._source import LAZY_HANDLERS, Chunk, Source, add


def is_dask_collection(x) -> bool:
    """Whether ``x`` is a Dask collection; never imports dask itself."""
    if "dask" not in sys.modules:
        return False
    import dask

    return dask.is_dask_collection(x)


# ---------------------------------------------------------------- predicting


def _is_frame(x) -> bool:
    import dask.dataframe as dd

    return isinstance(x, dd.DataFrame | dd.Series)


def one_row_like(X):
    """A one-row in-memory stand-in of ``X`` (for ``meta``, and for what one
    row can validate: widths, dtypes, feature names)."""
    import pandas as pd

    if _is_frame(X):
        meta = X._meta
        if isinstance(meta, pd.Series):
            return pd.Series(np.zeros(1, dtype=meta.dtype), name=meta.name)
        return pd.DataFrame(
            {c: np.zeros(1, dtype=t) for c, t in meta.dtypes.items()},
            columns=meta.columns,
        )
    return np.zeros((1, *X.shape[1:]), dtype=X.dtype)


def _rows_in_one_chunk(X):
    """A Dask array whose columns are one chunk (rows stay chunked)."""
    if X.ndim == 2 and X.numblocks[1] > 1:
        return X.rechunk({1: -1})
    return X


def _call(method):
    def run(block):
        with warnings.catch_warnings():
            # a block without names from a model fitted on a DataFrame: the
            # caller was warned (or not) by the one-row meta call already
            warnings.filterwarnings("ignore", "X does not have valid feature")
            return method(block)

    return run


def predict(estimator, method: str, X):
    """``estimator.method(X)`` lazily over the blocks or partitions of ``X``.

    A Dask array gives a Dask array with the row chunks of ``X``; a Dask
    DataFrame gives a Dask array (unknown row chunks) for the array methods and
    a Dask DataFrame, index kept, for ``predict_frame``.
    """
    import dask.array as da
    import dask.dataframe as dd

    bound = getattr(estimator, method)
    # the meta call validates what one row can (fitted, widths, dtypes)
    sample = bound(one_row_like(X))
    run = _call(bound)
    if method == "predict_frame":
        if not _is_frame(X):
            X = dd.from_dask_array(_rows_in_one_chunk(X))
            sample = bound(one_row_like(X))
        meta = sample.iloc[:0]
        meta.index = X._meta.index
        return X.map_partitions(run, meta=meta)
    meta = sample[:0]
    if _is_frame(X):
        return X.map_partitions(run, meta=meta)
    X = _rows_in_one_chunk(X)
    if sample.ndim == 1:
        out_chunks = (X.chunks[0],)
        kwargs = {"drop_axis": 1} if X.ndim == 2 else {}
    else:
        out_chunks = (X.chunks[0], (sample.shape[1],))
        kwargs = {"new_axis": 1} if X.ndim == 1 else {}
    return da.map_blocks(
        run, X, dtype=sample.dtype, meta=meta, chunks=out_chunks, **kwargs
    )


# ------------------------------------------------------------------- fitting


def _as_rows(x):
    """A Dask array from a Dask array, DataFrame or Series (row chunk sizes
    known: computing them is one cheap pass over the partitions)."""
    import dask.array as da

    if _is_frame(x):
        x = x.to_dask_array(lengths=True)
    elif not isinstance(x, da.Array):
        x = da.from_array(np.asarray(x), chunks=-1)
    if any(math.isnan(c) for c in x.chunks[0]):
        x = x.compute_chunk_sizes()
    if x.ndim == 2:
        x = x.rechunk({1: -1})
    return x


def _aligned(x, chunks, name: str, n_rows: int):
    """``x`` (array-like or Dask) as a Dask array with the row chunks of the
    scores; a clear error when its length differs."""
    import dask.array as da

    x = _as_rows(x) if is_dask_collection(x) else da.from_array(np.asarray(x))
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.shape[0] != n_rows:
        raise ValueError(
            f"scores and {name} have different lengths: {n_rows} and {x.shape[0]}."
        )
    return x.rechunk((chunks,))


def _in_chunk(index: int, function, chunk: Chunk):
    """``function(chunk)``, naming the chunk in its error."""
    try:
        return function(chunk)
    except ValueError as exc:
        stop = chunk.start + len(chunk.z)
        raise ValueError(
            f"{exc} (in chunk {index}: rows {chunk.start} to {stop})"
        ) from None


def _chunk(z, y, w, start: int) -> Chunk:
    z, y = np.asarray(z), np.asarray(y)
    w = np.ones(len(z)) if w is None else np.asarray(w, dtype=np.float64)
    if z.ndim == 2 and z.shape[1] == 1:
        z = z[:, 0]
    return Chunk(z, y, w, start)


def _tree(parts: list, merge):
    """Merge delayed ``parts`` pairwise in a balanced tree (on the workers)."""
    from dask import delayed

    merge = delayed(merge, pure=True)
    while len(parts) > 1:
        parts = [
            merge(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
            for i in range(0, len(parts), 2)
        ]
    return parts[0]


def _rows_of(rows: np.ndarray, chunk: Chunk) -> Chunk:
    """The chunk's rows among the sorted global ``rows``."""
    inside = rows[(rows >= chunk.start) & (rows < chunk.start + len(chunk.z))]
    local = inside - chunk.start
    return Chunk(chunk.z[local], chunk.y[local], chunk.w[local])


def _concatenate_chunks(a: Chunk, b: Chunk) -> Chunk:
    return Chunk(
        np.concatenate([a.z, b.z]),
        np.concatenate([a.y, b.y]),
        np.concatenate([a.w, b.w]),
    )


class DaskSource(Source):
    """The blocks of a Dask collection, as delayed :class:`~._source.Chunk`
    objects: every pass is one computation on the cluster."""

    def __init__(self, parts: list, n_rows: int, example):
        self.parts, self.n_rows, self.example = parts, n_rows, example

    @classmethod
    def of(cls, scores, y, sample_weight=None) -> DaskSource:
        """The rows of Dask (or in-memory) scores, labels and weights, in the
        row chunks of the scores."""
        from dask import delayed

        z = _as_rows(scores)
        chunks = z.chunks[0]
        n_rows = z.shape[0]
        y = _aligned(y, chunks, "y", n_rows)
        w = None
        if sample_weight is not None:
            w = _aligned(sample_weight, chunks, "sample_weight", n_rows)
        starts = np.concatenate([[0], np.cumsum(chunks)[:-1]]).astype(int)
        zs, ys = z.to_delayed().ravel(), y.to_delayed().ravel()
        ws = [None] * len(zs) if w is None else w.to_delayed().ravel()
        parts = [
            delayed(_chunk, pure=True)(zb, yb, wb, int(start))
            for zb, yb, wb, start in zip(zs, ys, ws, starts)
        ]
        return cls(parts, n_rows, scores)

    def one_row_like(self):
        return one_row_like(self.example)

    def map_reduce(self, fn, merge=add):
        return self.map_reduce_each([(self, fn, merge)])[0]

    @classmethod
    def map_reduce_each(cls, requests: list) -> list:
        """Every request in one computation: one round trip, and the parts
        that sources derived from one another share (a source and its
        ``map``) computed once."""
        import dask

        return list(
            dask.compute(
                *(source._reduction(fn, merge) for source, fn, merge in requests)
            )
        )

    def _reduction(self, fn, merge):
        from dask import delayed

        run = delayed(_in_chunk, pure=True)
        parts = [run(i, fn, part) for i, part in enumerate(self.parts)]
        return _tree(parts, merge)

    def evaluator(self, make, merge=add):
        def evaluate(*args):
            return self.map_reduce(lambda chunk: make(chunk)(*args), merge)

        return evaluate

    def gather(self, rows: np.ndarray) -> Chunk:
        rows = np.asarray(rows)
        return self.map_reduce(lambda chunk: _rows_of(rows, chunk), _concatenate_chunks)

    def map(self, fn) -> DaskSource:
        from dask import delayed

        run = delayed(_in_chunk, pure=True)
        parts = [run(i, fn, part) for i, part in enumerate(self.parts)]
        return DaskSource(parts, self.n_rows, self.example)


class DaskHandler:
    """The Dask entry of ``_source.LAZY_HANDLERS``."""

    @staticmethod
    def handles(x) -> bool:
        return is_dask_collection(x)

    @staticmethod
    def source(scores, y, sample_weight=None) -> DaskSource:
        return DaskSource.of(scores, y, sample_weight)

    @staticmethod
    def predict(estimator, method: str, X):
        return predict(estimator, method, X)


LAZY_HANDLERS.append(DaskHandler)

"""Dask collections: predict lazily block by block, fit by map-reduce passes.

Everything Dask-specific lives here, and dask is imported inside the functions:
the estimators only call :func:`is_dask_collection`, which never imports it.

Predicting maps the in-memory method over the blocks of a Dask array
(``map_blocks``, rows chunked, the columns in one chunk) or the partitions of a
Dask DataFrame (``map_partitions``), with an explicit ``meta``: nothing is
computed until the caller asks.

Fitting the calibrator keeps the data on the cluster and only parameters and
small summaries on the driver:

* one pass validates every chunk (naming the chunk that fails) and sums what
  the fit needs: row count, weight total, labels, score range, and a mergeable
  quantile summary (:class:`QuantileSummary`) of the scores;
* the robust scale of the scores (``_fitting._score_unit``) takes its three
  quantiles from that summary and its clipped mean deviation from one exact
  pass;
* the global search runs on the driver on the same subsample rule as in memory
  (the most extreme rows, plus evenly spaced others), gathered from the cluster;
* every Newton (binary) or L-BFGS (K >= 3) evaluation on all rows is one
  map-reduce pass: each chunk returns its loss, gradient and (binary) 2x2
  Hessian, summed in a tree.

The fitted scale and offsets equal the in-memory ones to the optimiser's
tolerance: the quantiles only set the units the optimiser works in, which
moves the optimum through the 1e-9 prior alone.
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np

from ._ties import first_index_of_max
from ._validation import class_labels, distinct_labels

#: Points a :class:`QuantileSummary` keeps: a rank error of at most 2 / 10^5 of
#: the total weight, 0.002 points of coverage for a conformal set.
SUMMARY_POINTS = 100_000
#: Confidence bins of the automatic threshold on Dask: the threshold is a bin
#: edge, so it is at most this coarse (1.5e-5 in probability) compared with the
#: exact in-memory choice, and the accuracy it reports is exact for it.
THRESHOLD_BINS = 65_536
#: Rows of the random sample the novelty detector is fitted on (it caps its own
#: reference at fewer rows than this anyway).
NOVELTY_SAMPLE = 20_000


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


def _one_row_like(X):
    """A one-row in-memory stand-in of ``X`` to build ``meta`` from."""
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


def _call(estimator, method: str):
    def run(block):
        with warnings.catch_warnings():
            # a block without names from a model fitted on a DataFrame: the
            # caller was warned (or not) by the one-row meta call already
            warnings.filterwarnings("ignore", "X does not have valid feature")
            return getattr(estimator, method)(block)

    return run


def predict(estimator, method: str, X):
    """``estimator.method(X)`` lazily over the blocks or partitions of ``X``.

    A Dask array gives a Dask array with the row chunks of ``X``; a Dask
    DataFrame gives a Dask array (unknown row chunks) for the array methods and
    a Dask DataFrame, index kept, for ``predict_frame``.
    """
    import dask.array as da
    import dask.dataframe as dd

    # the meta call validates what one row can (fitted, widths, dtypes)
    sample = getattr(estimator, method)(_one_row_like(X))
    run = _call(estimator, method)
    if method == "predict_frame":
        if not _is_frame(X):
            X = dd.from_dask_array(_rows_in_one_chunk(X))
            sample = getattr(estimator, method)(_one_row_like(X))
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


# ---------------------------------------------------------- reading the data


class QuantileSummary:
    """A mergeable weighted quantile summary: at most ``size`` sorted points,
    each standing for an equal share of the weight it summarises.

    Compressing ``m`` points to ``size`` moves any rank by at most
    ``W / size`` (``W`` the total weight); merging adds the rank errors of the
    parts, which sum to at most ``W / size`` too, so a summary built by
    compressing chunks and compressing each merge is off by at most
    ``2 W / size`` per level of the tree at the very worst, in practice about
    one ``W / size``. Summaries of fewer than ``size`` points are exact.
    """

    def __init__(self, values: np.ndarray, weights: np.ndarray, size: int):
        keep = weights > 0
        values, weights = values[keep], weights[keep]
        order = np.argsort(values, kind="stable")
        values, weights = values[order], weights[order]
        if len(values) > size:
            cumulative = np.cumsum(weights)
            total = cumulative[-1]
            levels = (np.arange(size) + 0.5) * (total / size)
            ranks = np.minimum(np.searchsorted(cumulative, levels), len(values) - 1)
            values = values[ranks]
            weights = np.full(size, total / size)
        self.values, self.weights, self.size = values, weights, size

    def merge(self, other: QuantileSummary) -> QuantileSummary:
        return QuantileSummary(
            np.concatenate([self.values, other.values]),
            np.concatenate([self.weights, other.weights]),
            self.size,
        )


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


def _add(a, b):
    return a + b


def _as_rows(x, name: str):
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

    if x is None:
        return None
    if is_dask_collection(x):
        x = _as_rows(x, name)
    else:
        x = da.from_array(np.asarray(x))
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.shape[0] != n_rows:
        raise ValueError(
            f"scores and {name} have different lengths: {n_rows} and {x.shape[0]}."
        )
    return x.rechunk((chunks,))


def _in_chunk(index: int, start: int, function, *args, **kwargs):
    """Run ``function`` on a chunk, naming the chunk in its error."""
    try:
        return function(*args, **kwargs)
    except ValueError as exc:
        stop = start + len(args[0])
        raise ValueError(f"{exc} (in chunk {index}: rows {start} to {stop})") from None


def _chunk_summary(z, y, w):
    from ._calibrator import check_weights
    from ._validation import check_scores

    z = check_scores(z)
    w = check_weights(w, z) if w is not None else np.ones(len(z))
    if (w < 0).any():
        raise ValueError("sample_weight must be non-negative.")
    z2 = z.reshape(len(z), -1)
    return {
        "rows": len(z),
        "weight": float(w.sum()),
        "classes": distinct_labels(y),
        "low": z2.min(axis=0) if len(z) else np.full(z2.shape[1], np.inf),
        "high": z2.max(axis=0) if len(z) else np.full(z2.shape[1], -np.inf),
    }


def _merge_summaries(a, b):
    return {
        "rows": a["rows"] + b["rows"],
        "weight": a["weight"] + b["weight"],
        "classes": np.union1d(a["classes"], b["classes"]),
        "low": np.minimum(a["low"], b["low"]),
        "high": np.maximum(a["high"], b["high"]),
    }


class _Data:
    """The fit's inputs as aligned Dask arrays, with their delayed blocks."""

    def __init__(self, scores, y, sample_weight):
        self.z = _as_rows(scores, "scores")
        chunks = self.z.chunks[0]
        n_rows = self.z.shape[0]
        self.y = _aligned(y, chunks, "y", n_rows)
        self.w = _aligned(sample_weight, chunks, "sample_weight", n_rows)
        self.starts = np.concatenate([[0], np.cumsum(chunks)[:-1]]).astype(int)
        self.n_rows = n_rows

    def blocks(self, x):
        return list(x.to_delayed().ravel()) if x is not None else None

    def map_reduce(self, function, merge=_add, *, weights=True, **kwargs):
        """``merge`` over the chunks of ``function(z, y, w, **kwargs)``,
        computed on the cluster; errors name the chunk."""
        import dask
        from dask import delayed

        zs, ys = self.blocks(self.z), self.blocks(self.y)
        ws = self.blocks(self.w) if weights else None
        parts = [
            delayed(_in_chunk, pure=True)(
                i,
                int(self.starts[i]),
                function,
                zs[i],
                ys[i],
                None if ws is None else ws[i],
                **kwargs,
            )
            for i in range(len(zs))
        ]
        return dask.compute(_tree(parts, merge))[0]

    def rows(self, index: np.ndarray):
        """The rows at sorted positions ``index``, gathered to the driver."""
        import dask

        parts = [self.z[index], self.y[index]]
        if self.w is not None:
            parts.append(self.w[index])
        out = dask.compute(*parts)
        w = out[2].astype(np.float64) if self.w is not None else np.ones(len(index))
        return out[0], out[1], w


# ------------------------------------------------------------------- fitting


def fit_calibrator(calibrator, scores, y, sample_weight=None):
    """``GaussianSoftmaxCalibrator.fit`` on Dask collections (see module)."""
    import pandas as pd

    from ._calibrator import sample_count
    from ._refine import settled
    from ._uncertainty import check_rules

    if y is None:
        raise ValueError(
            f"{type(calibrator).__name__} requires y to be passed, but the target y "
            "is None; pass the labels the scores should predict."
        )
    check_rules(calibrator.uncertainty_rules)
    data = _Data(scores, y, sample_weight)
    # the in-memory validation on one row: widths, dtypes, feature names
    stand_in = _one_row_like(scores) if _is_frame(scores) else None
    if stand_in is None:
        stand_in = np.zeros((1, *data.z.shape[1:]), dtype=data.z.dtype)
    calibrator._validate_scores(stand_in, reset=True)
    if isinstance(stand_in, pd.Series):
        calibrator.n_features_in_ = 1
    summary = data.map_reduce(_chunk_summary, _merge_summaries)
    if sample_weight is not None and not summary["weight"] > 0:
        raise ValueError(
            "sample_weight are all zero; at least one weight must be positive."
        )
    classes = class_labels(summary["classes"], n_rows=summary["rows"])
    if len(classes) < 2:
        raise ValueError(
            f"y holds one class only ({classes[0]!r}); a calibrator needs labels of "
            "at least two classes."
        )
    n_classes = len(classes)
    n_columns = 1 if data.z.ndim == 1 else data.z.shape[1]
    if n_columns not in (1, n_classes) or (n_columns == 1 and n_classes != 2):
        raise ValueError(
            f"scores have {n_columns} column(s) but y has {n_classes} classes; "
            "pass one score column per class (or a single column of decision "
            "scores for two classes)."
        )
    if calibrator.link == "softmax" and not (
        np.isfinite(summary["low"]).all() and np.isfinite(summary["high"]).all()
    ):
        raise ValueError(
            "scores contain infinite values, which give an infinite log-loss "
            "under link='softmax'; use link='gaussian' or 'linear', which bound "
            "them, or pass finite scores."
        )
    total = summary["weight"]
    calibrator.classes_ = classes
    calibrator.n_samples_ = sample_count(
        None if sample_weight is None else np.array([total]),
        summary["rows"],
        calibrator.n_samples,
        n_classes=n_classes,
        link=calibrator.link,
    )
    calibrator.score_range_ = np.vstack([summary["low"], summary["high"]])
    fit = _DaskFit(data, classes, total, calibrator)
    result = fit.binary() if n_classes == 2 else fit.multiclass()
    calibrator._refine_and_store(
        result,
        rows=total,
        clip_range_of=lambda: settled(data.map_reduce(_finite_bounds, _merge_ranges)),
        refine=lambda layout, clip_range: fit.refine(layout, result, clip_range),
    )
    _fit_uncertainty(calibrator, data, total)
    return calibrator


def _finite_bounds(z, y, w):
    from ._refine import finite_bounds

    # rows of weight 0 are not in the fit (as if removed)
    return finite_bounds(z if w is None else z[np.asarray(w) > 0])


def _merge_ranges(a, b):
    return np.vstack([np.minimum(a[0], b[0]), np.maximum(a[1], b[1])])


def _margin(z):
    from ._links import binary_margin

    z = z.astype(np.float64, copy=False)
    return z if z.ndim == 1 else binary_margin(z)


def _centred(z):
    """Multiclass scores centred per row, as ``fit_multiclass`` scales them."""
    from ._fitting import _finite_copy

    z = _finite_copy(z.astype(np.float64, copy=False))
    with np.errstate(over="ignore", invalid="ignore"):
        centred = z - z.mean(axis=1, keepdims=True)
    centred[np.isnan(centred)] = 0.0
    return centred


def _weights_of(w, z):
    return np.ones(len(z)) if w is None else np.asarray(w, dtype=np.float64)


class _DaskFit:
    """The fits of ``_fitting`` with their passes over all rows on the cluster."""

    def __init__(self, data, classes, total, calibrator):
        self.data, self.classes, self.total = data, classes, total
        self.n = calibrator.n_samples_
        self.link = calibrator.link
        self.multiclass_form = calibrator.multiclass
        self.fit_intercept = calibrator.fit_intercept

    def _unit(self, values_of, repeat: int = 1) -> float:
        """``_score_unit``: quantiles from a mergeable summary, the clipped
        mean deviation exactly."""
        from ._fitting import _finite_copy, _weighted_quantiles

        def summarise(z, y, w):
            values = values_of(z)
            weights = np.repeat(_weights_of(w, z), repeat)
            return QuantileSummary(_finite_copy(values), weights, SUMMARY_POINTS)

        summary = self.data.map_reduce(summarise, QuantileSummary.merge)
        low, median, high = _weighted_quantiles(
            summary.values, summary.weights, [0.05, 0.5, 0.95]
        )

        def deviations(z, y, w):
            values = _finite_copy(values_of(z))
            weights = np.repeat(_weights_of(w, z), repeat)
            with np.errstate(over="ignore", invalid="ignore"):
                return np.array(
                    [
                        np.abs(np.clip(values, low, high) - median) @ weights,
                        np.abs(values - median) @ weights,
                    ]
                )

        clipped, plain = self.data.map_reduce(deviations) / (self.total * repeat)
        unit = clipped if 0.0 < clipped < np.inf else plain
        return unit if 0.0 < unit < np.inf else 1.0

    def _sample(self, extremity_of):
        """``_search.search_rows`` on the cluster: the rows of largest
        ``extremity`` plus evenly spaced others, gathered to the driver as
        ``((rows, weights), z, y)`` with the in-memory subsample's weights."""
        import dask.array as da

        from ._search import _EXTREME_SHARE, SEARCH_ROWS

        m = self.data.n_rows
        if m <= SEARCH_ROWS:
            return None
        n_extreme = SEARCH_ROWS // _EXTREME_SHARE
        extremity = self.data.z.map_blocks(
            extremity_of,
            drop_axis=1 if self.data.z.ndim == 2 else [],
            dtype=np.float64,
        )
        extreme = np.sort(da.argtopk(extremity, n_extreme).compute())
        # the i-th row that is not extreme: i plus the extremes before it
        positions = np.linspace(0, m - n_extreme - 1, SEARCH_ROWS - n_extreme)
        positions = positions.astype(np.intp)
        before = extreme - np.arange(n_extreme)
        spaced = positions + np.searchsorted(before, positions, side="right")
        rows = np.concatenate([spaced, extreme])
        order = np.argsort(rows)
        z, y, w = self.data.rows(rows[order])
        back = np.argsort(order)
        z, y, w = z[back], y[back], w[back]
        spaced_total = w[: len(spaced)].sum()
        if spaced_total <= 0:
            return None
        sub_weights = w / self.total
        others_total = (self.total - w[len(spaced) :].sum()) / self.total
        sub_weights[: len(spaced)] *= others_total / (spaced_total / self.total)
        return sub_weights / sub_weights.sum(), z, y

    def binary(self):
        from ._fitting import (
            _MAX_OFFSET,
            _MAX_SCALE,
            PRIOR_STRENGTH,
            FitResult,
            _binary_losses,
            _binary_objective,
            _damped_newton,
            _standardise,
            fit_by_link,
            values_along,
        )

        # locals, so that the chunks' functions ship no Dask graph to workers
        n, link, total, classes = self.n, self.link, self.total, self.classes
        n_params = 2 if self.fit_intercept else 1
        unit = self._unit(_margin)
        bounds = [(-_MAX_SCALE, _MAX_SCALE)] + [(-_MAX_OFFSET, _MAX_OFFSET)] * (
            n_params - 1
        )

        def chunk(z, y, w, theta):
            s_std = _standardise(_margin(z), unit)
            sign = 2.0 * np.searchsorted(classes, y) - 1.0
            evaluate = _binary_objective(
                s_std, sign, _weights_of(w, z) / total, n, link, n_params
            )
            value, grad, hess = evaluate(theta)
            # the prior is added once, on the driver
            value -= 0.5 * PRIOR_STRENGTH * theta @ theta
            grad -= PRIOR_STRENGTH * theta
            hess[np.diag_indices(n_params)] -= PRIOR_STRENGTH
            return np.concatenate([[value], grad, hess.ravel()])

        def evaluate_all(theta):
            out = self.data.map_reduce(chunk, theta=np.asarray(theta, dtype=float))
            value = out[0] + 0.5 * PRIOR_STRENGTH * theta @ theta
            grad = out[1 : 1 + n_params] + PRIOR_STRENGTH * theta
            hess = out[1 + n_params :].reshape(n_params, n_params)
            hess = hess + PRIOR_STRENGTH * np.eye(n_params)
            return value, grad, hess

        sampled = self._sample(lambda z: np.abs(_margin(z)))

        def on_sample():
            w, z, y = sampled
            sign = 2.0 * np.searchsorted(classes, y) - 1.0
            return _standardise(_margin(z), unit), sign, w

        def newton_on(sample, tol=None):
            from ._fitting import _GRADIENT_TOL

            tol = _GRADIENT_TOL if tol is None else tol
            evaluate = (
                evaluate_all
                if sample is None
                else _binary_objective(*on_sample(), n, link, n_params)
            )
            return (
                lambda theta: evaluate(theta)[0],
                lambda theta, box=bounds: _damped_newton(evaluate, theta, box, tol),
            )

        def search():
            if sampled is None:
                return None, values_along(lambda t: evaluate_all(t)[0])
            return "sample", lambda grid: _binary_losses(*on_sample(), n, link, grid)

        theta, n_iter = fit_by_link(
            link, newton_on, np.zeros(n_params), bounds, True, search
        )
        intercept = np.array([0.0, theta[1] if self.fit_intercept else 0.0])
        return FitResult(theta[0] / unit, intercept, n_iter, unit)

    def multiclass(self):
        from ._fitting import (
            _GRADIENT_TOL,
            _MAX_OFFSET,
            _MAX_SCALE,
            PRIOR_STRENGTH,
            FitResult,
            _lbfgs,
            _multiclass_objective,
            _standardise,
            fit_by_link,
            unit_scale_start,
            values_along,
        )

        n, link, total, form = self.n, self.link, self.total, self.multiclass_form
        classes = self.classes
        k = self.data.z.shape[1]
        n_params = k if self.fit_intercept else 1
        unit = self._unit(lambda z: _centred(z).ravel(), repeat=k)
        bounds = [(0.0, _MAX_SCALE)] + [(-_MAX_OFFSET, _MAX_OFFSET)] * (n_params - 1)

        def chunk(z, y, w, theta):
            loss_grad = _multiclass_objective(
                _standardise(z.astype(np.float64), unit),
                np.searchsorted(classes, y),
                _weights_of(w, z) / total,
                n,
                link,
                form,
                n_params,
            )
            value, grad = loss_grad(theta)
            value -= 0.5 * PRIOR_STRENGTH * theta @ theta
            return np.concatenate([[value], grad - PRIOR_STRENGTH * theta])

        def loss_grad_all(theta):
            out = self.data.map_reduce(chunk, theta=np.asarray(theta, dtype=float))
            return (
                out[0] + 0.5 * PRIOR_STRENGTH * theta @ theta,
                out[1:] + PRIOR_STRENGTH * theta,
            )

        def spread(z):
            with np.errstate(invalid="ignore"):
                s = z.max(axis=1) - z.min(axis=1)
            return np.nan_to_num(s.astype(np.float64), nan=np.inf)

        sampled = self._sample(spread)

        def lbfgs_on(sample, tol=_GRADIENT_TOL):
            if sample is None:
                loss_grad = loss_grad_all
            else:
                w, z, y = sampled
                loss_grad = _multiclass_objective(
                    _standardise(z.astype(np.float64), unit),
                    np.searchsorted(classes, y),
                    w,
                    n,
                    link,
                    form,
                    n_params,
                )
            return (
                lambda theta: loss_grad(theta)[0],
                lambda theta, box=bounds: _lbfgs(loss_grad, theta, box, tol),
            )

        def search():
            sample = None if sampled is None else "sample"
            return sample, values_along(lbfgs_on(sample)[0])

        theta, n_iter = fit_by_link(
            link, lbfgs_on, unit_scale_start(n_params), bounds, False, search
        )
        intercept = np.zeros(k)
        if self.fit_intercept:
            intercept[1:] = theta[1:]
        return FitResult(float(theta[0]) / unit, intercept, n_iter, unit)

    def refine(self, layout, result, clip_range):
        """``_refine.refine`` from the affine fit ``result``, each evaluation
        one pass over the rows."""
        from ._refine import as_rows, objective, refine, standardised_range

        # locals, so that the chunks' functions ship no Dask graph to workers
        link, form, total, classes = (
            self.link,
            self.multiclass_form,
            self.total,
            self.classes,
        )
        unit = result.unit
        low, high = standardised_range(clip_range, unit)
        binary = len(classes) == 2

        def chunk(z, y, w, theta):
            from ._fitting import _standardise

            rows = as_rows(_margin(z) if binary else z.astype(np.float64))
            loss_grad = objective(
                _standardise(rows, unit),
                np.searchsorted(classes, y),
                _weights_of(w, z) / total,
                layout,
                link,
                form,
                low,
                high,
            )
            if binary:  # Newton's method, as in memory: the Hessian too
                value, grad, hess = loss_grad.evaluate(theta)
                return np.concatenate([[value], grad, hess.ravel()])
            value, grad = loss_grad(theta)
            return np.concatenate([[value], grad])

        size = layout.size

        def evaluate_all(theta):
            out = self.data.map_reduce(chunk, theta=np.asarray(theta, dtype=float))
            hess = out[1 + size :].reshape(size, size) if binary else None
            return out[0], out[1 : 1 + size], hess

        def loss_grad_all(theta):
            return evaluate_all(theta)[:2]

        if binary:
            loss_grad_all.evaluate = evaluate_all

        return refine(loss_grad_all, layout, result)


# ------------------------------------------------------- the uncertain flag


def _fit_uncertainty(calibrator, data, total):
    """The uncertain flag's fitted state from mergeable summaries: the
    threshold from weighted confidence histograms, the conformal reference
    from a :class:`QuantileSummary` of ``1 - p_true``, the novelty detector
    on a random sample, and the held-out summary of ``shift_report`` from
    summed moments."""
    from ._uncertainty import ConformalReference, check_rules, nonconformity

    rules = check_rules(calibrator.uncertainty_rules)
    calibrator._uncertainty_rules = rules
    classes = calibrator.classes_
    auto = calibrator.uncertainty_threshold == "auto"
    fixed = None if auto else float(calibrator.uncertainty_threshold)

    def first_pass(z, y, w):
        from ._validation import check_scores

        z = check_scores(z)
        w = _weights_of(w, z)
        proba = calibrator._proba_of_validated(z)
        y_index = np.searchsorted(classes, y)
        confidence = proba.max(axis=1).astype(np.float64)
        correct = first_index_of_max(proba) == y_index
        bins = np.minimum(
            (confidence * THRESHOLD_BINS).astype(np.intp), THRESHOLD_BINS - 1
        )
        histogram = np.zeros((2, THRESHOLD_BINS))
        if auto:
            histogram[0] = np.bincount(bins, w, THRESHOLD_BINS)
            histogram[1] = np.bincount(bins, w * correct, THRESHOLD_BINS)
        else:
            accepted = confidence >= fixed
            histogram[0, 0] = w @ accepted
            histogram[1, 0] = w @ (accepted & correct)
        reference = QuantileSummary(
            nonconformity(proba, y_index).astype(np.float64), w, SUMMARY_POINTS
        )
        return histogram, reference

    def merge(a, b):
        return a[0] + b[0], a[1].merge(b[1])

    histogram, reference = data.map_reduce(first_pass, merge)
    if auto:
        # accepting bin j and those above: the weight and correct weight
        weight_above = np.cumsum(histogram[0][::-1])[::-1]
        correct_above = np.cumsum(histogram[1][::-1])[::-1]
        with np.errstate(invalid="ignore", divide="ignore"):
            accuracy = correct_above / weight_above
        valid = np.flatnonzero(
            (accuracy >= calibrator.target_accuracy) & (histogram[0] > 0)
        )
        if valid.size:
            j = valid[0]
            threshold = j / THRESHOLD_BINS
            coverage, accepted_accuracy = weight_above[j] / total, accuracy[j]
        else:
            threshold, coverage, accepted_accuracy = math.inf, 0.0, math.nan
    else:
        threshold = fixed
        accepted_weight, accepted_correct = histogram[0, 0], histogram[1, 0]
        coverage = accepted_weight / total
        accepted_accuracy = (
            accepted_correct / accepted_weight if accepted_weight > 0 else math.nan
        )
    calibrator.uncertainty_threshold_ = float(threshold)
    calibrator.uncertainty_margin_threshold_ = -math.inf
    calibrator.coverage_ = float(coverage)
    calibrator.accepted_accuracy_ = float(accepted_accuracy)
    calibrator.conformity_scores_ = reference.values
    calibrator._conformal_references = [
        ConformalReference(reference.values, reference.weights)
    ]
    calibrator._novelty = _fit_novelty(calibrator, data) if "novelty" in rules else None
    calibrator._held_out_summary = _held_out_summary(calibrator, data, total)


def _fit_novelty(calibrator, data):
    """The novelty detector, cross-fitted on a random sample of the scores."""
    from sklearn.model_selection import KFold

    from ._novelty import check_detector, fit_pooled

    rng = np.random.default_rng(0)
    size = min(NOVELTY_SAMPLE, data.n_rows)
    rows = np.sort(rng.choice(data.n_rows, size=size, replace=False))
    z, _, w = data.rows(rows)
    return fit_pooled(
        check_detector(calibrator.novelty_detector),
        calibrator._novelty_fit_features(z),
        list(KFold(min(5, len(z)), shuffle=True, random_state=0).split(z)),
        w,
    )


def _moments(values, w):
    """``(weight, mean, sum of squared deviations)`` of the finite values:
    merged exactly by :func:`_merge_moments` (Chan et al.)."""
    finite = np.isfinite(values)
    values, w = values[finite], w[finite]
    weight = float(w.sum())
    if weight == 0:
        return np.zeros(3)
    mean = float(w @ values) / weight
    return np.array([weight, mean, float(w @ (values - mean) ** 2)])


def _merge_moments(a, b):
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


def _held_out_summary(calibrator, data, total):
    """``_shift.held_out_summary`` from one more pass of summed parts."""
    rules = calibrator._uncertainty_rules
    classes = calibrator.classes_
    references = calibrator._conformal_references

    def chunk(z, y, w):
        from ._validation import check_scores

        z = check_scores(z)
        w = _weights_of(w, z)
        proba = calibrator._proba_of_validated(z)
        margin = calibrator._margin_of_validated(z)
        y_index = np.searchsorted(classes, y)
        masks = calibrator._probability_masks(proba, [proba], references, margin)
        accepted = np.ones(len(z), dtype=bool)
        for mask in masks.values():
            accepted &= ~mask
        correct = first_index_of_max(proba) == y_index
        with np.errstate(divide="ignore"):
            loss = -np.log(proba[np.arange(len(y_index)), y_index])
        return {
            "rates": {rule: float(w @ mask) for rule, mask in masks.items()},
            "confidence": _moments(proba.max(axis=1).astype(np.float64), w),
            "loss": _moments(loss.astype(np.float64), w),
            "accepted": np.array([w @ accepted, w @ (accepted & correct)]),
            "correct": float(w @ correct),
        }

    def merge(a, b):
        return {
            "rates": {rule: a["rates"][rule] + b["rates"][rule] for rule in a["rates"]},
            "confidence": _merge_moments(a["confidence"], b["confidence"]),
            "loss": _merge_moments(a["loss"], b["loss"]),
            "accepted": a["accepted"] + b["accepted"],
            "correct": a["correct"] + b["correct"],
        }

    parts = data.map_reduce(chunk, merge)
    rates = {rule: rate / total for rule, rate in parts["rates"].items()}
    if "out_of_range" in rules:
        # the in-memory bound with m the number of rows, not of summary points
        rates["out_of_range"] = 1.0 - max(
            0.0, 1.0 - 2.0 * calibrator._score_columns() / (data.n_rows + 1)
        )
    if calibrator._novelty is not None:
        rates["novelty"] = calibrator._novelty.held_out_flag_rate(
            calibrator.novelty_alpha
        )
    accepted_weight, accepted_correct = parts["accepted"]

    def mean_and_std(moments):
        weight, mean, squares = moments
        return float(mean), float(np.sqrt(squares / weight)) if weight else 0.0

    return {
        "n": float(total),
        "rates": {rule: float(rates[rule]) for rule in rules if rule in rates},
        "confidence": mean_and_std(parts["confidence"]),
        "loss": mean_and_std(parts["loss"]),
        "accuracy": float(parts["correct"] / total),
        "n_accepted": float(accepted_weight),
        "accepted_accuracy": (
            float(accepted_correct / accepted_weight)
            if accepted_weight > 0
            else float("nan")
        ),
    }

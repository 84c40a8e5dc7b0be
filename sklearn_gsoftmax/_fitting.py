"""Fitting the affine map ``p = link_n(a z + b)`` by maximum likelihood.

Binary margins (two parameters) are fitted by a damped Newton method with the
exact Hessian, logits (``K >= 3``: a scale and ``K - 1`` offsets) by L-BFGS-B
with the analytic gradient; every evaluation is one pass over the rows of a
``_source.Source``.

The scores are divided by a robust scale (:func:`score_unit`) so that the
parameters and the prior do not depend on their units. The softmax link's loss
is convex: one local fit. The bounded links' is not (``_search``): on a
subsample, their local fits start from the convex softmax fit and from the
lowest minima of a profile of the loss (a profile unimodal along every line
can still hide a second basin, at a saturated scale and another offset: tied
scores, 0.2868 against 0.2863), and the best is refined on all rows. With a
``start`` (the scale alone, from the fit with offsets whose search chose the
basin), only the local fit runs.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._links import row_max
from ._objective import Layout, finite_copy, map_objective, margins
from ._optimise import NEWTON_MAX_ITER, damped_newton, gradient_tol, lbfgs
from ._search import (
    SEARCH_GRADIENT_TOL,
    SEARCH_ROWS_PER_CLASS,
    SEARCH_SCALES,
    check,
    extremes_request,
    global_fit,
    grid_around,
    median_margin,
    profile,
    search_sample,
    search_size,
)
from ._source import ArraySource, Chunk, QuantileSummary, add, one_pass_each
from ._ties import no_spread

#: Points of the quantile summary of the scores that sets their unit (exact
#: below it: always in memory).
UNIT_SUMMARY_POINTS = 100_000


class AffineFit(NamedTuple):
    """The fitted affine map: ``theta`` on standardised scores (see
    ``_objective.Layout``), the scores' ``unit``, the iterations and the
    penalised loss on all rows at ``theta`` (NaN for a start not fitted)."""

    theta: np.ndarray
    layout: Layout
    unit: float
    n_iter: int
    loss: float = math.nan

    @property
    def scale(self) -> float:
        """The scale ``a`` in the units of the scores."""
        return float(self.theta[0]) / self.unit

    @property
    def intercept(self) -> np.ndarray:
        return self.layout.intercept(self.theta)


#: Logits: the unit is read from at most about this many entries (evenly
#: spaced rows of a chunk, a deterministic subsample): a robust scale of 2**18
#: values is within a fraction of a percent of the whole's, and the float64
#: temporaries stay small beside a network's (m, K) logits.
UNIT_ENTRIES = 1 << 18


def _unit_values(chunk: Chunk, with_sizes: bool = False):
    """The values whose spread is the scores' unit, with their weights: binary
    margins, or logits centred per row (the entries of evenly spaced rows, at
    most about ``UNIT_ENTRIES``). ``with_sizes``: also the size of the scores
    they come from (``|z|``, before a margin's or a row's centring
    subtracts), the rounding that a spread must stand above (rows of equal
    logits centre to ulps)."""
    if chunk.z.ndim == 1 or chunk.z.shape[1] <= 2:
        values = finite_copy(margins(chunk.z))
        if not with_sizes:
            return values, chunk.w
        size = np.abs(finite_copy(chunk.z.astype(np.float64, copy=False)))
        return values, chunk.w, size if size.ndim == 1 else row_max(size)
    step = -(-chunk.z.size // UNIT_ENTRIES)  # ceiling division
    chunk = Chunk(chunk.z[::step], chunk.y[::step], chunk.w[::step])
    z = finite_copy(chunk.z.astype(np.float64, copy=False))
    with np.errstate(over="ignore", invalid="ignore"):
        # rows of +-1e308 may overflow their mean: such rows only add outliers
        centred = z - z.mean(axis=1, keepdims=True)
    centred[np.isnan(centred)] = 0.0
    values, w = centred.ravel(), np.repeat(chunk.w, z.shape[1])
    return (values, w, np.abs(z).ravel()) if with_sizes else (values, w)


#: :func:`score_unit` clips the scores to this many interquartile ranges
#: beyond their quartiles as well as to their 5th and 95th percentiles. The
#: fence binds only where more than 5 % of the scores lie beyond it, scores
#: saturated far out, which carry no scale: a normal or logistic sample never
#: reaches 10 interquartile ranges, a Cauchy one has 3 % there. Without it 6 %
#: of binary scores at 1e6 (correctly labelled) made the unit 6e4 times the
#: others' spread, the weak prior and the box on the standardised scale
#: outweighed the likelihood, and the fit came out nearly flat (scale 0.08
#: instead of 3.7, log-loss 0.63 instead of 0.32), silently. At 100 ranges a
#: fifth of 4-class logits saturated still made the unit 57 times the others'
#: spread, and the fit stopped 1e-5 short of the optimum's probabilities.
UNIT_FENCE_IQRS = 10.0


def unit_values_summary(chunk: Chunk) -> QuantileSummary:
    """A chunk's part of the first of :func:`score_unit`'s two passes (merged
    by ``QuantileSummary.merge``), for a pass that reads the scores anyway."""
    return QuantileSummary(*_unit_values(chunk), UNIT_SUMMARY_POINTS)


def score_unit(
    source, values_summary: QuantileSummary | None = None, alongside=None
) -> float:
    """A robust scale of the scores: their mean absolute deviation from the
    median, after clipping them to their 5th and 95th percentiles, and to
    ``UNIT_FENCE_IQRS`` interquartile ranges beyond the quartiles.

    Robustness matters: a root mean square is inflated by one outlier, which
    makes the right standardised scale huge and hands the fit to the prior
    (one score of 1e8 among normal ones flattened every probability to 1/2). A
    median absolute deviation in turn collapses on scores that sit in a few
    clusters. Clipping to the 5-95 % range keeps both problems out unless 90 %
    of the scores are equal; the fence keeps out up to a quarter of them
    saturated far out on either side (see ``UNIT_FENCE_IQRS``).

    ``values_summary``: the :func:`unit_values_summary` of the rows, where a
    pass that validated them computed it (one pass saved; the fit's case).
    ``alongside``: what else the second pass computes, an object with
    ``requests()`` (``(source, fn, merge)`` triples) and ``read(results)``
    (the :class:`SearchRows` of the fit).
    """
    summary = values_summary
    if summary is None:
        summary = source.map_reduce(unit_values_summary, QuantileSummary.merge)
    low, lower_quartile, median, upper_quartile, high = summary.quantiles(
        [0.05, 0.25, 0.5, 0.75, 0.95]
    )
    with np.errstate(over="ignore", invalid="ignore"):
        reach = UNIT_FENCE_IQRS * (upper_quartile - lower_quartile)
    # quartiles a few ulps apart (identical rows after BLAS) are equal: no fence
    if not no_spread(reach, lower_quartile, upper_quartile):
        low = max(low, lower_quartile - reach)
        high = min(high, upper_quartile + reach)

    def deviations(chunk):
        values, w, sizes = _unit_values(chunk, with_sizes=True)
        # the size of the rows the clipped unit reads: an outlier's would
        # make every spread look like rounding
        inside = (values >= low) & (values <= high)
        with np.errstate(over="ignore", invalid="ignore"):
            return np.array(
                [
                    np.abs(np.clip(values, low, high) - median) @ w,
                    np.abs(values - median) @ w,
                    w.sum(),
                    np.where(inside, sizes, 0.0) @ w,
                    w[inside].sum(),
                ]
            )

    others = [] if alongside is None else alongside.requests()
    (clipped, plain, total, sizes, inside), *results = one_pass_each(
        [(source, deviations, add)] + others
    )
    if alongside is not None:
        alongside.read(results)

    size = sizes / inside if inside > 0 else 0.0  # the scores' mean size

    def usable(unit):
        # a deviation of a few ulps of the scores is that of equal scores
        # (see _ties), also where their margins or centred rows are near 0
        return unit < np.inf and not no_spread(unit, low, median, high, size)

    unit = clipped / total
    if not usable(unit):
        # 90 % of the scores are equal: the plain mean absolute deviation
        unit = plain / total
    return float(unit) if usable(unit) else 1.0


def local_fit(evaluate, theta, layout: Layout, tol: float, bounds=None, max_iter=None):
    """Newton's method for binary margins (``evaluate`` gives the Hessian),
    L-BFGS-B for logits; at most ``max_iter`` iterations, if given."""
    bounds = layout.bounds if bounds is None else bounds
    if layout.k == 2:
        newton_iter = NEWTON_MAX_ITER if max_iter is None else max_iter
        return damped_newton(
            evaluate, theta, bounds, tol, newton_iter, max_step=layout.max_steps
        )
    return lbfgs(
        evaluate, theta, bounds, tol, preconditioner(evaluate, theta), max_iter
    )


def preconditioner(evaluate, theta) -> np.ndarray | None:
    """L-BFGS's per-parameter scaling: the square root of the objective's
    estimated curvature at the start (see ``_objective``), floored at a
    millionth of the largest so that a flat direction is not blown up."""
    curvature = getattr(evaluate, "curvature", None)
    if curvature is None:
        return None
    diagonal = np.abs(curvature(np.asarray(theta, dtype=float)))
    finite = np.isfinite(diagonal)
    largest = float(diagonal[finite].max(initial=0.0))
    if largest <= 0.0:
        return None
    # an infinite curvature (scores beyond float range) is taken as the
    # largest finite one
    diagonal = np.where(finite, diagonal, largest)
    return np.sqrt(np.maximum(diagonal, 1e-6 * largest) / largest)


def unit_scale_start(layout: Layout) -> np.ndarray:
    """Scale 1 (on standardised scores), offsets 0: the convex start (scale 0
    is a saddle for logits)."""
    theta = np.zeros(layout.size)
    theta[0] = 1.0
    return theta


def fit_affine(
    source, spec, unit: float, *, start: AffineFit | None = None, rows=None
) -> AffineFit:
    """Fit ``a z + b`` on the rows of ``source`` (scores, label indices,
    weights): ``spec`` holds ``n_classes``, ``link``, ``multiclass``,
    ``fit_intercept``, ``n`` (the link's sample count) and ``total`` (the
    weights' sum); ``unit`` is the scores' :func:`score_unit`. With a
    ``start`` (of the same unit), a local fit from it; else the fit of the
    link (see the module), whose search reads its rows from ``rows`` (the
    :class:`SearchRows` of ``source``, shared by the fits of the same
    rows)."""
    layout = Layout(spec.n_classes, fit_intercept=spec.fit_intercept, n=spec.n)
    tol = gradient_tol(spec.dtype)
    full = map_objective(source, spec, layout, unit, spec.total)
    if start is not None:
        warm = local_fit(full, start.theta, layout, tol)
        return _ended(warm, layout, unit)
    if spec.link == "softmax":
        return _ended(
            local_fit(full, unit_scale_start(layout), layout, tol), layout, unit
        )
    return _fit_bounded(source, spec, layout, unit, full, tol, rows)


def _ended(fit, layout, unit, n_iter: int = 0) -> AffineFit:
    check(fit, fit.theta, np.inf)
    return AffineFit(fit.theta, layout, unit, fit.n_iter + n_iter, fit.value)


class SearchRows:
    """``rows()``: the search's subsample of ``source`` (``None`` where it
    is all rows) and the rows it searches, read once however many fits
    search them (the scale alone's and the offsets': two passes, on a
    cluster two round trips, fewer). :meth:`requests` lets a pass that reads
    the rows anyway find the extreme rows too (one pass fewer)."""

    def __init__(self, source, spec):
        self.source, self.total = source, spec.total
        self.size = search_size(spec.n_classes)
        self.bounded = spec.link != "softmax"
        self.window = None
        self._rows = None

    def requests(self) -> list:
        """``(source, fn, merge)`` requests for the extreme rows' window
        (:func:`~._search.extremes_request`), whose results :meth:`read`
        takes; none where the fit does not search a subsample."""
        return extremes_request(self.source, self.size) if self.bounded else []

    def read(self, results: list) -> None:
        self.window = results[0] if results else None

    def __call__(self) -> tuple:
        if self._rows is None:
            sampled = search_sample(self.source, self.total, self.size, self.window)
            rows = (
                sampled if sampled is not None else _in_memory(self.source, self.total)
            )
            self._rows = (sampled, rows)
        return self._rows


def _fit_bounded(source, spec, layout, unit, full, tol, rows) -> AffineFit:
    """The bounded links' fit: on a subsample (``rows()``, see
    :class:`SearchRows`), a local fit from the convex softmax fit and from
    the lowest minima of a profile of the loss (the search); then the local
    fit on all rows from the best."""
    sampled, sample = rows()
    on_sample = map_objective(sample, spec, layout, unit, 1.0)
    search_box = layout.bounds
    offsets_searched = not (
        sampled is not None and sample.n_rows < SEARCH_ROWS_PER_CLASS * layout.k
    )
    if not offsets_searched:
        # Too few sampled rows per class to fit its offset (a class may have
        # none, and its offset would run to the box): the search fits the
        # scale with the offsets held at the flat model's on all rows; the
        # final fit frees them.
        flat_offsets = _flat_offsets(source, spec, layout, unit, tol)
        search_box = layout.bounds[:1] + [(b, b) for b in flat_offsets]

    def search_fit(theta, box=None):
        return local_fit(
            on_sample, theta, layout, SEARCH_GRADIENT_TOL, box or search_box
        )

    convex = local_fit(
        map_objective(
            _finite_scores(sample), spec._replace(link="softmax"), layout, unit, 1.0
        ),
        unit_scale_start(layout),
        layout,
        SEARCH_GRADIENT_TOL,
        search_box,
    )
    start = search_fit(convex.theta)
    # the flat model (the optimum at scale 0) anchors the grid's offsets
    if offsets_searched:
        flat = search_fit(np.zeros(layout.size), [(0.0, 0.0)] + search_box[1:]).theta
    else:  # already fitted on all rows
        flat = np.concatenate([[0.0], flat_offsets])
    centre = median_margin(sample, unit) if layout.k == 2 else 0.0
    anchors, flat_above = (), None
    if layout.k > 2 and layout.fit_intercept and offsets_searched:
        # logits' basins may lie apart in the offsets: the scales are also
        # profiled at the offsets of the fit from the convex start and at
        # zero offsets (a 48-row fit of 4 classes ended in a basin 4e-6
        # worse, a 12-row fit of 3 classes in one 0.036 worse, on the flat
        # model's line alone)
        anchors = (start.theta, np.zeros(layout.size))
        if not np.isfinite(sample.chunk.z).all():
            flat_above = _flat_above_zero(search_fit, flat, search_box)
    grid, lines = grid_around(
        flat, layout.k == 2, layout.bounds[-1], centre, anchors, flat_above
    )
    values = profile(sample, layout, spec.link, spec.multiclass, unit)(grid)
    best = global_fit(
        grid,
        values,
        search_fit,
        lambda theta: local_fit(full, theta, layout, tol),
        None if sampled is None else full.values,
        lines=lines,
        also=start,
        logits=layout.k > 2,
    )
    return AffineFit(best.theta, layout, unit, best.n_iter, best.value)


#: :func:`offsets_screened_out` says the offsets cannot pay when the gain of
#: its Newton steps is below this share of what they must gain and its last
#: step added less than ``SCREEN_TAIL`` of that. Offsets that only fit noise
#: gain about half a nat each (a chi-squared of one degree of freedom,
#: halved): about half of what they must.
SCREEN_SHARE = 0.75
SCREEN_TAIL = 0.05
#: Newton steps of the screen, at most (two passes each).
SCREEN_MAX_STEPS = 10


def offsets_screened_out(source, spec, plain: AffineFit, needed: float) -> bool:
    """Whether offsets cannot gain ``needed`` nats (of the weighted
    log-likelihood) over the scale-only fit ``plain``: Newton steps from it
    with the Hessian's estimated diagonal (``_objective``'s curvature) until
    their gain, a lower bound of the offsets' (a loss reached), is settled
    well below ``needed`` (``SCREEN_SHARE``, ``SCREEN_TAIL``). ``False``
    when it is not (then the offsets are fitted and the choice made
    exactly).

    With many classes the offsets' Hessian is nearly diagonal: on 100
    classes three steps reached 50.5 of the 50.9 nats the fit with offsets
    gains; on 1 000 classes of 10 rows, four reached 518 of 590 (999
    needed), in nine passes over the rows where that fit took 228."""
    layout = Layout(spec.n_classes, fit_intercept=True, n=spec.n)
    evaluate = map_objective(source, spec, layout, plain.unit, spec.total)
    low, high = np.array(layout.bounds).T
    theta = np.zeros(layout.size)
    theta[0] = plain.theta[0]
    start, grad = evaluate(theta)
    value = start
    for _ in range(SCREEN_MAX_STEPS):
        curvature = np.abs(evaluate.curvature(theta))
        floor = 1e-12 * float(np.max(curvature, initial=0.0)) + 1e-300
        stepped = np.clip(theta - grad / np.maximum(curvature, floor), low, high)
        new_value, grad = evaluate(stepped)
        if not new_value < value:
            return False  # no line search: a failed step leaves it open
        gain, last = (start - new_value) * spec.total, (value - new_value) * spec.total
        if gain >= SCREEN_SHARE * needed:
            return False
        if last < SCREEN_TAIL * needed:
            return True
        theta, value = stepped, new_value
    return False


def _flat_offsets(source, spec, layout, unit, tol) -> np.ndarray:
    """The offsets of the flat model (scale 0) on all rows: its loss depends
    on the rows only through the weight of each class, so it is fitted on
    one row per class, weighted by the class's share."""
    k = layout.k

    def class_weights(chunk):
        return np.bincount(chunk.y, weights=chunk.w, minlength=k)

    shares = source.map_reduce(class_weights, add) / spec.total
    one_per_class = ArraySource(np.zeros((k, k)), np.arange(k), shares)
    flat = local_fit(
        map_objective(one_per_class, spec, layout, unit, 1.0),
        np.zeros(layout.size),
        layout,
        tol,
        [(0.0, 0.0)] + layout.bounds[1:],
    )
    return flat.theta[layout.offsets]


def _flat_above_zero(search_fit, flat: np.ndarray, search_box: list) -> np.ndarray:
    """The flat model just above scale 0: the offsets fitted at the grid's
    smallest scale, where infinite scores are still at the link's bounds
    (at scale 0 they are 0, and the flat model's offsets are those of a
    different model). The search's first line takes these offsets at its
    positive scales, near the basin that infinite scores make: a
    nearest-neighbours model's log-probabilities on wine, 47 % of them
    ``-inf``, had their best fit at offsets (-1.11, -0.96), a loss of 0.8101,
    while the flat model's were (0.19, -0.24) and the search ended at 0.8206,
    silently."""
    smallest = float(SEARCH_SCALES[0])
    start = np.concatenate([[smallest], flat[1:]])
    return search_fit(start, [(smallest, smallest)] + search_box[1:]).theta


def _in_memory(source, total: float) -> ArraySource:
    """All rows of a small source, on the driver, weights summing to 1."""
    chunk = source.gather(np.arange(source.n_rows))
    return ArraySource(chunk.z, chunk.y, chunk.w / total)


def _finite_scores(sample: ArraySource) -> ArraySource:
    """The subsample with infinite scores set to the finite extremes: the
    softmax start cannot take an infinite score (an infinite loss), and the
    start only needs the direction the scores point."""
    z = sample.chunk.z
    finite = np.isfinite(z)
    if finite.all():
        return sample
    low = np.where(finite, z, np.inf).min(axis=0, initial=np.inf)
    high = np.where(finite, z, -np.inf).max(axis=0, initial=-np.inf)
    low, high = np.nan_to_num(low, posinf=0.0), np.nan_to_num(high, neginf=0.0)
    return ArraySource(np.clip(z, low, high), sample.chunk.y, sample.chunk.w)

"""The global search that keeps the bounded links' fit out of wrong basins.

The likelihood of a bounded link is not convex in the scale: a mislabelled
score far out costs at most about ``ln(n)`` at any scale that saturates it, but
almost nothing at a scale near 0 or of the wrong sign. A few such scores give
the likelihood a second basin there, and a local optimiser started at the
wrong side falls into it and returns a flat model.

So the bounded fits profile the loss over a coarse, logarithmic grid of scales
(on a subsample: the most extreme rows, where the mislabelled scores that make
the second basin are, and evenly spaced others), vectorised, one evaluation of
the whole grid, along a few lines of fixed offsets (the flat model's; for
binary margins shifted ones too, for logits those of the fit from the convex
start and zero: their basins may lie apart in the offsets; where logits are
infinite, the first line's positive scales take the flat model's offsets
just above scale 0, where those logits sit at the link's bounds instead of
at 0); local
optimisations on the subsample run from the lowest few local minima of the
profile (and from the convex softmax fit), and the best end point is refined
on all rows. An independent check then compares the result with the grid. A
fit started from another fit of nearly the same rows (the held-out refits of
a calibrator) skips the search.

``link="softmax"`` skips all this: its loss is convex in the parameters, and
a collapse it shows on such scores is its true maximum-likelihood answer.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ._links import binary_nll_derivatives, link_nll
from ._objective import PRIOR_STRENGTH, margins, standardise
from ._optimise import LocalFit, not_converged
from ._source import BLOCK_ENTRIES, ArraySource, QuantileSummary, window_request
from ._ties import below, tie_ranks

#: Rows the search runs on, at least (more for many classes, see
#: :func:`search_size`). Its cost is then independent of the data size; the
#: final fit on all rows starts in the right basin. On binary margins the
#: grid's profile and the local fits from its minima cost about 1 ms per 1 000
#: rows each: 1 024 rows keep a meta-estimator's five calibrations near the
#: cost of its base model's fits, and a fit on more rows than the subsample
#: is still judged on all of them (:func:`global_fit`).
SEARCH_ROWS = 1024
#: At most this many rows, for many classes (two rows per class).
_MAX_SEARCH_ROWS = 4096
#: Below this many subsample rows per class, the search holds the offsets at
#: the flat model's (fitted on all rows) and searches the scale alone: a
#: class's offset cannot be told from a handful of its rows (1 000 classes in
#: 512 rows leave most with none, and their offsets ran to the box).
SEARCH_ROWS_PER_CLASS = 20
# One row in this many of the subsample is taken from the most extreme scores.
_EXTREME_SHARE = 8
#: Positive scales of the search grid, on standardised scores (unit robust
#: scale): factors of about 1.8 from 1e-3 to 1e3. A basin in the scale spans a
#: factor of several at least, so one grid point falls into each.
SEARCH_SCALES = np.geomspace(1e-3, 1e3, 25)
#: Local optimisations run on the subsample, from the lowest local minima of
#: the profile.
N_STARTS = 3
#: Gradient tolerance of the search's local optimisations: loose, since they
#: only pick the basin that the final optimisation then polishes.
SEARCH_GRADIENT_TOL = 1e-6
#: Offsets of the binary search's lines, added to the flat model's offset (the
#: first line, 0, is the flat model's own): a saturated basin may sit at an
#: offset far from the flat model's (20 tied scores: the flat line's profile
#: passed it by and the fit ended 2e-3 worse, silently).
OFFSET_SHIFTS = (0.0, -2.0, -1.0, 1.0, 2.0)
# The check's tolerance, relative to the loss: far above rounding, far below a
# change of basin (which moves the mean loss by ~1e-3 or more).
_CHECK_RTOL = 1e-7


def search_size(n_classes: int) -> int:
    """Rows of the search's subsample: ``SEARCH_ROWS``, or two per class up
    to ``_MAX_SEARCH_ROWS`` (the scale's basins of 1 000 classes judged on
    512 rows were not those of all rows)."""
    return int(max(SEARCH_ROWS, min(2 * n_classes, _MAX_SEARCH_ROWS)))


def extremity(chunk) -> np.ndarray:
    """How far out each row's scores are: the margin's size for binary scores,
    the spread of the row for logits (a row of infinite scores: infinite)."""
    z = chunk.z
    if z.ndim == 1 or z.shape[1] <= 2:
        return np.abs(margins(z))
    with np.errstate(invalid="ignore"):
        spread = (z.max(axis=1) - z.min(axis=1)).astype(np.float64)
    return np.nan_to_num(spread, nan=np.inf)


def extremes_request(source, size: int) -> list:
    """The ``(source, fn, merge)`` request of the window of the extreme rows
    of :func:`search_sample` (``Source.top_k``), for a pass that reads the
    rows anyway; none where the subsample is all rows."""
    if source.n_rows <= size:
        return []
    return [(source, *window_request(extremity, size // _EXTREME_SHARE))]


def search_sample(source, total: float, size: int, window: tuple | None = None):
    """A subsample of at most ``size`` rows of ``source`` for the search, as
    an ``ArraySource`` whose weights sum to 1; ``None`` for all rows (small
    data, or a subsample without weight). ``window``: the result of the
    :func:`extremes_request`, where a pass computed it.

    The rows of largest :func:`extremity` are all in it, at their own weight:
    the mislabelled extreme scores the search is about are few, and an evenly
    spaced sample would miss them. The rest are evenly spaced rows of the
    others (deterministic, and in proportion to every stratum of data sorted
    by score or label), weighted up to stand for them.
    """
    m = source.n_rows
    if m <= size:
        return None
    n_extreme = size // _EXTREME_SHARE
    extreme = source.top_k(extremity, n_extreme, window)
    # the i-th row that is not extreme: i plus the extremes before it
    positions = np.linspace(0, m - n_extreme - 1, size - n_extreme).astype(np.intp)
    before = extreme - np.arange(n_extreme)
    spaced = positions + np.searchsorted(before, positions, side="right")
    rows = np.concatenate([spaced, extreme])
    order = np.argsort(rows)
    chunk = source.gather(rows[order])
    back = np.argsort(order)
    z, y, w = chunk.z[back], chunk.y[back], chunk.w[back].astype(np.float64)
    spaced_total = w[: len(spaced)].sum()
    if spaced_total <= 0:
        return None
    w = w / total
    others = 1.0 - w[len(spaced) :].sum()
    w[: len(spaced)] *= others / (spaced_total / total)
    return ArraySource(z, y, w / w.sum())


def scale_grid(signed: bool) -> np.ndarray:
    """Scales of the search, ordered along the axis and including 0."""
    if signed:
        return np.concatenate([-SEARCH_SCALES[::-1], [0.0], SEARCH_SCALES])
    return np.concatenate([[0.0], SEARCH_SCALES])


def grid_around(
    flat: np.ndarray,
    signed: bool,
    offset_bounds,
    centre: float = 0.0,
    anchors: tuple = (),
    flat_above: np.ndarray | None = None,
) -> tuple:
    """The grid of the search: the scales of :func:`scale_grid` at the flat
    model's offsets (``flat``, the optimum at scale 0; at the positive
    scales those of ``flat_above`` where given), for binary scores also at
    other offsets, and for logits at the offsets of each parameter vector of
    ``anchors``. Returns the grid and its number of lines.

    A binary line turns about ``centre`` (the subsample's median standardised
    margin), not about a margin of 0: at scale ``a`` its offset is
    ``flat + shift - a * centre``. Margins far from 0 (probabilities given as
    scores, around 0.5) otherwise put every row of a large scale on one side:
    the saturated basin of 40 such scores (scale 20, offset -38.5: a log-loss
    of 0.3546 against 0.3695) lay off every line, and the fit missed it
    silently."""
    scales = scale_grid(signed)
    shifts = OFFSET_SHIFTS if len(flat) == 2 else (0.0,)
    grid = np.tile(flat, (len(shifts) * len(scales), 1))
    grid[:, 0] = np.tile(scales, len(shifts))
    if flat_above is not None:
        first_line = grid[: len(scales)]
        first_line[scales > 0, 1:] = flat_above[1:]
    if len(flat) == 2:
        grid[:, 1] += np.repeat(shifts, len(scales)) - grid[:, 0] * centre
        np.clip(grid[:, 1], *offset_bounds, out=grid[:, 1])
    lines = [grid]
    for anchor in anchors:
        line = np.tile(anchor, (len(scales), 1))
        line[:, 0] = scales
        lines.append(line)
    return np.concatenate(lines), len(shifts) + len(anchors)


def median_margin(sample: ArraySource, unit: float) -> float:
    """The weighted median of the standardised binary margins of ``sample``
    (0 when none is finite): where the search's lines turn."""
    chunk = sample.chunk
    s_std = standardise(margins(chunk.z), unit)
    finite = np.isfinite(s_std) & (chunk.w > 0)
    if not finite.any():
        return 0.0
    summary = QuantileSummary(s_std[finite], chunk.w[finite], len(s_std))
    return float(summary.quantiles([0.5])[0])


def profile(sample: ArraySource, layout, link: str, form: str, unit: float):
    """``values(grid)``: the penalised losses on ``sample`` at the affine
    maps of the rows of ``grid`` (scale on standardised scores, then the
    offsets), evaluated together, in batches of at most ``BLOCK_ENTRIES``."""
    z, y, w = sample.chunk.z, sample.chunk.y, sample.chunk.w
    n = layout.n
    if layout.k == 2:
        s_std = standardise(margins(z), unit)
        sign = 2.0 * y - 1.0
    else:
        z = z.astype(np.float64, copy=False)

    def values(grid: np.ndarray) -> np.ndarray:
        out = np.empty(len(grid))
        per_point = len(y) * layout.k
        step = max(1, BLOCK_ENTRIES // per_point)
        for start in range(0, len(grid), step):
            part = grid[start : start + step]
            scale = part[:, :1]
            with np.errstate(over="ignore", invalid="ignore"):
                if layout.k == 2:
                    u = scale * s_std
                    u[part[:, 0] == 0.0] = 0.0  # 0 * inf: see affine_scores
                    if layout.fit_intercept:
                        u += part[:, 1:2]
                    loss = binary_nll_derivatives(
                        u.ravel(), np.tile(sign, len(part)), n, link
                    )[0].reshape(len(part), -1)
                else:
                    u = (scale / unit)[:, :, None] * z[None]
                    u[part[:, 0] == 0.0] = 0.0
                    u += np.array([layout.intercept(theta) for theta in part])[
                        :, None, :
                    ]
                    loss = link_nll(
                        u.reshape(-1, layout.k), np.tile(y, len(part)), n, link, form
                    ).reshape(len(part), -1)
            prior = 0.5 * PRIOR_STRENGTH * np.einsum("ij,ij->i", part, part)
            out[start : start + step] = loss @ w + prior
        return out

    return values


def _lowest_local_minima(values: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` lowest local minima of a profile (a plateau
    counts once), lowest first; losses that tie (``_ties``) are equal, so
    that rounding neither makes nor hides a minimum."""
    ranks = tie_ranks(values)
    padded = np.concatenate([[ranks.max() + 1], ranks, [ranks.max() + 1]])
    minima = np.flatnonzero((padded[1:-1] <= padded[:-2]) & (padded[1:-1] < padded[2:]))
    if minima.size == 0:  # flat everywhere
        minima = np.array([int(np.argmin(ranks))])
    return minima[np.argsort(ranks[minima], kind="stable")[:count]]


def _starts(values: np.ndarray, lines: int, logits: bool = False) -> np.ndarray:
    """Grid indices to start from: the ``N_STARTS`` lowest local minima along
    the first line (the flat model's offsets), and the lowest minimum of each
    other line (other offsets, for basins the first line passes by).

    For logits each line also adds the point above its lowest minimum (the
    next larger scale). Their likelihood can have basins apart in the
    offsets, which a profile at fixed offsets does not show, and in both
    cases found the better basin was reached from there: 43 rows of 6
    classes, basins of 0.536831 and 0.536056, from the point above the flat
    model's line's only minimum; 12 rows of 3 classes, the best basin
    (0.5427 against 0.5788) from the point above the minimum of the line of
    zero offsets."""
    along = values.reshape(lines, -1)
    points = along.shape[1]
    starts = list(_lowest_local_minima(along[0], N_STARTS))
    lowest_of_lines = [starts[0]] + [
        line * points + _lowest_local_minima(along[line], 1)[0]
        for line in range(1, lines)
    ]
    starts += lowest_of_lines[1:]
    if logits:
        for line, lowest_minimum in enumerate(lowest_of_lines):
            above = lowest_minimum + 1
            if above < (line + 1) * points and above not in starts:
                starts.append(above)
    return np.array(starts)


def lowest(fits: list) -> LocalFit:
    """The fit of lowest loss, the first of those that tie: which of two
    equally good end points wins does not hang on rounding."""
    values = np.array([fit.value for fit in fits])
    return fits[int(np.argmin(tie_ranks(values)))]


def global_fit(
    grid: np.ndarray,
    values: np.ndarray,
    search_fit: Callable[[np.ndarray], LocalFit],
    final_fit: Callable[[np.ndarray], LocalFit],
    full_values: Callable[[list], list] | None,
    lines: int = 1,
    also: LocalFit | None = None,
    logits: bool = False,
) -> LocalFit:
    """Search the basins on the subsample, refine the best, check.

    Parameters
    ----------
    grid : ndarray of shape (n_lines * n_points, n_params)
        Parameter vectors along the scale axis, in order, on ``n_lines``
        lines of different offsets one after the other (the first: the flat
        model's offsets).
    values : ndarray of shape (n_lines * n_points,)
        The losses at the rows of ``grid``, on the subsample.
    search_fit : callable
        A local optimisation on the subsample from a parameter vector, to a
        loose tolerance: enough to tell the basins apart.
    final_fit : callable
        The local optimisation to full tolerance, on all rows.
    full_values : callable or None
        The losses at a list of parameter vectors on all rows, in one pass
        over them (on a cluster, one round trip); ``None`` when the
        subsample is all rows.
    lines : int, default=1
        Number of lines of offsets in ``grid``.
    also : LocalFit, default=None
        A search fit from elsewhere (the convex start's), in the running.
    logits : bool, default=False
        Whether the scores are logits (more starts per line, see
        :func:`_starts`).

    Returns
    -------
    LocalFit
        The best end point found.
    """
    # Lines can coincide (the flat model's offsets are often zero, one of the
    # logits' anchors): a start is fitted once, its first place kept.
    distinct = {}
    for i in _starts(values, lines, logits):
        distinct.setdefault(grid[i].tobytes(), grid[i])
    fits = [search_fit(theta) for theta in distinct.values()]
    best = lowest(fits + ([] if also is None else [also]))
    check_theta = grid[int(np.argmin(tie_ranks(values)))]
    check_value = float(values.min())
    if full_values is None:
        best = final_fit(best.theta)
    else:
        # Both candidates judged on all rows first: the subsample's best basin
        # may not be the best on all rows (a few influential rows it left
        # out), and a final fit from the better start usually makes the other
        # unnecessary (on 1 000 classes, each is dozens of passes).
        best_value, check_value = full_values([best.theta, check_theta])
        starts = [(best_value, best.theta), (check_value, check_theta)]
        if below(starts[1][0], starts[0][0]):
            starts.reverse()
        best = final_fit(starts[0][1])
        other_value, other_theta = starts[1]
        if below(other_value, best.value):
            best = lowest([best, final_fit(other_theta)])
    check(best, check_theta, check_value)
    return best


def check(best: LocalFit, check_theta, check_value: float) -> None:
    """Warn when the optimiser stopped short, or when a grid point of the
    search is lower than where it ended (then the fit is not at the optimum)."""
    if best.problem is not None:
        not_converged(best.problem, best.value)
    if best.value > check_value + _CHECK_RTOL * abs(check_value):
        warnings.warn(
            f"the calibrator's fit ended at a loss of {best.value:.6g}, but the "
            f"parameters {np.array2string(check_theta, precision=4)} (on "
            f"standardised scores) of a coarse search give {check_value:.6g}: "
            "the fit is not at the optimum. The scores may be degenerate.",
            ConvergenceWarning,
            stacklevel=6,
        )

"""The global search that keeps the bounded links' fit out of wrong basins.

The likelihood of a bounded link is not convex in the scale: a mislabelled
score far out costs at most about ``ln(n)`` at any scale that saturates it, but
almost nothing at a scale near 0 or of the wrong sign. A few such scores give
the likelihood a second basin there, and a local optimiser started at the
wrong side falls into it and returns a flat model. So the bounded fits first
profile the loss over a coarse, logarithmic grid of scales (on a subsample of
at most ``SEARCH_ROWS`` rows), start the local optimiser at the lowest few
local minima of that profile, keep the best end point, and refine it on all
rows. An independent check then compares the result with the grid.

``link="softmax"`` skips all this: its loss is convex in the parameters, and
a collapse it shows on such scores is its true maximum-likelihood answer.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ._ties import below, tie_ranks

#: Rows the search over the scale runs on. Its cost is then independent of the
#: data size; the refinement on all rows starts in the right basin and needs
#: only a few passes over the data.
SEARCH_ROWS = 4096
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
# The check's tolerance, relative to the loss: far above rounding, far below a
# change of basin (which moves the mean loss by ~1e-3 or more).
_CHECK_RTOL = 1e-7


class LocalFit(NamedTuple):
    """A local optimiser's end point. ``problem`` says why it stopped short of
    its tolerance, or is ``None``."""

    theta: np.ndarray
    value: float
    n_iter: int
    problem: str | None = None


def search_rows(weights: np.ndarray, extremity: np.ndarray):
    """A subsample of at most ``SEARCH_ROWS`` rows for the search, as
    ``(rows, weights)`` with the weights normalised to sum to 1; ``None`` for
    all rows (small data, or a subsample without weight).

    The rows of largest ``extremity`` (the magnitude of their scores) are all
    in it, at their own weight: the mislabelled extreme scores the search is
    about are few, and an evenly spaced sample would miss them. The rest are
    evenly spaced rows of the others (deterministic, and in proportion to every
    stratum of data sorted by score or label), weighted up to stand for them.
    """
    m = len(weights)
    if m <= SEARCH_ROWS:
        return None
    n_extreme = SEARCH_ROWS // _EXTREME_SHARE
    extreme = np.argpartition(extremity, m - n_extreme)[m - n_extreme :]
    is_other = np.ones(m, dtype=bool)
    is_other[extreme] = False
    others = np.flatnonzero(is_other)  # in row order, unlike a partition
    spaced = others[
        np.linspace(0, len(others) - 1, SEARCH_ROWS - n_extreme).astype(np.intp)
    ]
    spaced_total = weights[spaced].sum()
    if spaced_total <= 0:
        return None
    rows = np.concatenate([spaced, extreme])
    sub_weights = weights[rows].astype(np.float64)
    sub_weights[: len(spaced)] *= weights[others].sum() / spaced_total
    return rows, sub_weights / sub_weights.sum()


def scale_grid(signed: bool) -> np.ndarray:
    """Scales of the search, ordered along the axis and including 0."""
    if signed:
        return np.concatenate([-SEARCH_SCALES[::-1], [0.0], SEARCH_SCALES])
    return np.concatenate([[0.0], SEARCH_SCALES])


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


def _starts(profile: np.ndarray, lines: int) -> np.ndarray:
    """Grid indices to start from: the ``N_STARTS`` lowest local minima along
    the first line (the flat model's offsets), and the lowest minimum of each
    other line (other offsets, for basins the first line passes by)."""
    along = profile.reshape(lines, -1)
    points = along.shape[1]
    starts = list(_lowest_local_minima(along[0], N_STARTS))
    for line in range(1, lines):
        starts.append(line * points + _lowest_local_minima(along[line], 1)[0])
    return np.array(starts)


def global_fit(
    grid: np.ndarray,
    sub_values: Callable[[np.ndarray], np.ndarray],
    search_fit: Callable[[np.ndarray], LocalFit],
    final_fit: Callable[[np.ndarray], LocalFit],
    full_value: Callable[[np.ndarray], float] | None,
    lines: int = 1,
) -> LocalFit:
    """Search the basins on the subsample, refine the best, check.

    Parameters
    ----------
    grid : ndarray of shape (n_lines * n_points, n_params)
        Parameter vectors along the scale axis, in order, on ``n_lines``
        lines of different offsets one after the other (the first: the flat
        model's offsets).
    sub_values : callable
        The losses at the rows of ``grid``, on the subsample.
    search_fit : callable
        A local optimisation on the subsample from a parameter vector, to a
        loose tolerance: enough to tell the basins apart.
    final_fit : callable
        The local optimisation to full tolerance, on all rows.
    full_value : callable or None
        The loss at a parameter vector on all rows; ``None`` when the
        subsample is all rows.
    lines : int, default=1
        Number of lines of offsets in ``grid``.

    Returns
    -------
    LocalFit
        The best end point found. A ``ConvergenceWarning`` says so when the
        optimiser stopped short of its tolerance there, or when a grid point
        has a lower loss (the fit is then not at the optimum).
    """
    profile = sub_values(grid)
    starts = _starts(profile, lines)
    best = _lowest([search_fit(grid[i]) for i in starts])
    best = final_fit(best.theta)
    check_theta = grid[int(np.argmin(tie_ranks(profile)))]
    check_value = float(profile.min())
    if full_value is not None:
        check_value = full_value(check_theta)
        if below(check_value, best.value):
            # The subsample's best basin is not the best on all rows: a few
            # influential rows it left out. Continue from the grid point.
            best = _lowest([best, final_fit(check_theta)])
    if best.problem is not None:
        not_converged(best.problem, best.value)
    if best.value > check_value + _CHECK_RTOL * abs(check_value):
        warnings.warn(
            f"the calibrator's fit ended at a loss of {best.value:.6g}, but the "
            f"parameters {np.array2string(check_theta, precision=4)} (on "
            f"standardised scores) of a coarse search give {check_value:.6g}: "
            "the fit is not at the optimum. The scores may be degenerate.",
            ConvergenceWarning,
            stacklevel=5,
        )
    return best


def _lowest(fits: list) -> LocalFit:
    """The fit of lowest loss, the first of those that tie: which of two
    equally good end points wins does not hang on rounding."""
    values = np.array([fit.value for fit in fits])
    return fits[int(np.argmin(tie_ranks(values)))]


def not_converged(reason: str, loss: float) -> None:
    """Report an optimiser that stopped short of its tolerance.

    A non-finite loss means bad parameters: an error. Otherwise the parameters
    improve on the start but may be off the optimum, typically on degenerate
    scores (many exact ties, where vs_top has kinks, or separable ones): as in
    scikit-learn's solvers, a ConvergenceWarning says so.
    """
    if not np.isfinite(loss):
        raise RuntimeError(f"the calibrator's fit failed: {reason}.")
    warnings.warn(
        f"the calibrator's fit did not fully converge: {reason}. The scores may be "
        "degenerate (many exact ties, or separable classes).",
        ConvergenceWarning,
        stacklevel=5,
    )

"""Decisions that do not hang on the last bits of a float.

BLAS kernels, thread counts and the order of a sum change the last bits of what
the package computes: ``predict_proba`` of ten identical rows can differ by an
ulp where a matrix kernel's remainder loop takes over, and another machine,
thread count or row order gives other ulps again. Everything that orders or
compares computed floats to decide something a user sees (which samples to
label, the confidence threshold, conformal sets and p-values, the novelty flag,
the predicted class, the search's extreme rows and its choice of basin) goes
through this module, which treats values that agree to :data:`TIE_RTOL` as
equal and breaks their ties by position: the first row, the first class, the
first start. The same data then gives the same decisions on every machine.

The values compared are probabilities, log-losses, calibrated logits and
distances in standardised features: quantities for which 1 is a typical
magnitude. Two values ``a`` and ``b`` tie when ``|a - b| <= TIE_RTOL *
max(|a|, |b|, 1)``: relative above magnitude 1, absolute below it, where a
difference computed by subtraction (``1 - p``, a margin) carries the
rounding of its operands of magnitude about 1. Ties chain: in a sorted run
of values each within the tolerance of the next, all tie, so that a group of
near-equal values is never split by where a fixed grid would fall. P-values
are compared with their levels relatively (``floor=0``): a level of 1e-9 is
still a level.
"""

from __future__ import annotations

import math

import numpy as np

#: Relative tolerance below which two computed values are the same value. Far
#: above accumulated rounding (a few ulps of float64 are 1e-15 relative, a
#: BLAS sum of 10^4 terms stays below 1e-12), far below any difference that
#: means something (a probability of 1e-9, a logit of 1e-9).
TIE_RTOL = 1e-9


def _tolerance(a, b, floor: float = 1.0) -> np.ndarray:
    return TIE_RTOL * np.maximum(np.maximum(np.abs(a), np.abs(b)), floor)


def near(a, b, floor: float = 1.0) -> np.ndarray:
    """``a`` and ``b`` tie: equal, or finite and within the tolerance.

    ``floor``: the magnitude below which the tolerance is absolute (see the
    module); ``0.0`` for a purely relative one, for values that mean
    something however small (p-values against a level of 1e-9, say)."""
    a, b = np.asarray(a), np.asarray(b)
    with np.errstate(invalid="ignore"):  # inf - inf
        gap = np.abs(a - b)
    return (a == b) | (np.isfinite(gap) & (gap <= _tolerance(a, b, floor)))


def below(a, b, floor: float = 1.0) -> np.ndarray:
    """``a < b``, and ``a`` does not tie with ``b`` (``floor``: see
    :func:`near`)."""
    return (np.asarray(a) < b) & ~near(a, b, floor)


def at_most(a, b, floor: float = 1.0) -> np.ndarray:
    """``a <= b``, a tie counted as equal (``floor``: see :func:`near`)."""
    return ~below(b, a, floor)


def tie_groups(values, within=None) -> tuple[np.ndarray, np.ndarray]:
    """Dense ranks of ``values`` in increasing order, near-equal values
    (chained, see the module) sharing a rank, and the smallest value of each
    rank: integers from 0 that can be compared and sorted exactly.

    ``within``: integer keys of the values; values tie only with values of
    the same key (no other value chains them), and the ranks increase with
    the key first."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if within is None:
        order = np.argsort(values, kind="stable")
    else:
        order = np.lexsort((values, within))
    ordered = values[order]
    starts = np.ones(len(values), dtype=bool)
    starts[1:] = ~near(ordered[1:], ordered[:-1])
    if within is not None:
        keys = np.asarray(within)[order]
        starts[1:] |= keys[1:] != keys[:-1]
    ranks = np.empty(len(values), dtype=np.intp)
    ranks[order] = np.cumsum(starts) - 1
    return ranks, ordered[starts]


def tie_ranks(values) -> np.ndarray:
    """The ranks of :func:`tie_groups`."""
    return tie_groups(values)[0]


def stable_order(*keys, descending=()) -> np.ndarray:
    """Positions sorted by ``keys`` (the first the primary one), near-equal
    values of a key tied, ties broken by position.

    ``descending`` holds the indices of the keys sorted from largest to
    smallest. A boolean key sorts False first (True first if descending).
    """
    ranked = []
    for index, key in enumerate(keys):
        key = np.asarray(key)
        rank = key.astype(np.intp) if key.dtype == bool else tie_ranks(key)
        ranked.append(-rank if index in descending else rank)
    # lexsort is stable and takes its primary key last: the position is the
    # final tie-break
    return np.lexsort(ranked[::-1])


def first_index_of_max(values: np.ndarray) -> np.ndarray:
    """Per row of a 2-D array, the first column that ties with the row's
    largest value: the predicted class, near-equal probabilities resolved by
    class order."""
    if values.shape[1] == 2:
        # numpy reduces a short last axis slowly: 10x faster on 10^6 rows
        return below(values[:, 0], values[:, 1]).astype(np.intp)
    top = values.max(axis=1, keepdims=True)
    return np.argmax(~below(values, top), axis=1)


def index_at_or_above(ordered: np.ndarray, values) -> np.ndarray:
    """Per value, the first position in the sorted ``ordered`` of an entry
    that is at least the value or ties with it."""
    values = np.asarray(values, dtype=np.float64)
    # the smallest entry tying with v lies within the tolerance below v
    # (entries that tie chain only in tie_ranks, not here: a fixed window)
    with np.errstate(invalid="ignore"):
        lowest = values - TIE_RTOL * np.maximum(np.abs(values), 1.0)
    lowest = np.where(np.isfinite(values), lowest, values)
    return np.searchsorted(ordered, lowest, side="left")


def no_spread(spread, *levels) -> np.ndarray:
    """Whether a spread of computed values (a deviation, a range, a standard
    deviation) is only their rounding: at most ``TIE_RTOL`` of the largest
    finite ``|level|`` (the values' centre or quantiles). Identical values
    pass through BLAS kernels to values a few ulps apart, and a spread of
    ulps taken as a unit blows the last bits up to whole units.

    The size has no floor at 1 (unlike :func:`near`), so that values all
    tiny keep their spread (a feature in small units, scores of 1e-12), as
    scikit-learn's ``StandardScaler`` judges a constant feature; values
    whose size is rounding around 0 then have a spread."""
    levels = np.abs(np.asarray(np.broadcast_arrays(*levels), dtype=np.float64))
    size = np.max(np.where(np.isfinite(levels), levels, 0.0), axis=0)
    return ~(np.asarray(spread) > TIE_RTOL * size)


def rounded(value: float) -> int:
    """The integer nearest to ``value``; a value that ties with a half
    (within the tolerance) rounds to the even neighbour, as :func:`round`
    rounds an exact half: a half computed a few ulps off (a sum of
    fractional weights) rounds as the exact half."""
    floor = math.floor(value)
    # at most a quarter: from 5e8 on the tolerance would reach every value
    tolerance = min(TIE_RTOL * max(abs(value), 1.0), 0.25)
    if abs(value - (floor + 0.5)) <= tolerance:
        return int(floor) + int(floor) % 2
    return int(round(value))


#: A selection of the ``k`` largest values reads those within this many tie
#: tolerances below the k-th largest (:func:`top_window`): the near-equal
#: values that may tie with it. A run of ties chaining further down is read
#: again with a window this many times as wide (:func:`largest`).
TOP_WINDOW = 1024.0


def _window_edge(kth: float, width: float) -> float:
    if not np.isfinite(kth):  # an infinite value ties only with its equals
        return kth
    return kth - width * TIE_RTOL * max(abs(kth), 1.0)


def top_window(
    values: np.ndarray, k: int, width: float = TOP_WINDOW, positions=None
) -> np.ndarray:
    """Which of ``values`` may be among their ``k`` largest once near-equal
    values tie: those at least ``width`` tolerances below the k-th largest,
    but of the values equal to the k-th only the ``k`` of the first
    ``positions`` (by default, their order). A window of a part of the
    values holds the part's share of the whole's window (the part's k-th
    largest is no larger), so windows merge.

    A value equal to the k-th with ``k`` equal ones before it is never
    chosen, and leaving it out changes no tie (its equals stay): hard
    scores of +-1, or logits with an infinite column, no longer carry every
    row into the window."""
    values = np.asarray(values, dtype=np.float64)
    if k >= len(values):
        return np.ones(len(values), dtype=bool)
    kth = np.partition(values, len(values) - k)[len(values) - k]
    window = values >= _window_edge(kth, width)
    equal = np.flatnonzero(values == kth)
    if len(equal) > k:
        order = equal if positions is None else np.asarray(positions)[equal]
        window[equal[np.argpartition(order, k)[k:]]] = False
    return window


def largest(
    values, positions, k: int, width: float = TOP_WINDOW, complete: bool = False
) -> np.ndarray | None:
    """The positions, sorted, of the ``k`` largest values: near-equal values
    tie (chained), ties broken by position (the first positions win), so
    that the selection does not hang on the last bits of the values nor on
    how a partition orders equal ones (numpy's differs between machines, and
    a chunked source's between chunkings).

    ``values`` and ``positions`` (distinct) are a :func:`top_window` of
    ``width`` of all values, ``complete`` when it is all of them. ``None``
    when the tie at the k-th largest may chain with a value below the
    window: read a wider one."""
    values = np.asarray(values, dtype=np.float64)
    positions = np.asarray(positions)
    if k >= len(values):
        return np.sort(positions)
    by_position = np.argsort(positions, kind="stable")
    values, positions = values[by_position], positions[by_position]
    ranks, lowest = tie_groups(values)
    # the largest group first, a group's members by position (their order)
    ranking = np.argsort(-ranks, kind="stable")
    boundary = lowest[ranks[ranking[k - 1]]]
    kth = np.partition(values, len(values) - k)[len(values) - k]
    edge = _window_edge(kth, width)
    if not complete and np.isfinite(edge):
        # a value below the edge ties with the boundary's group only if the
        # group reaches within a tolerance of the edge
        if boundary - edge <= 2 * TIE_RTOL * max(abs(boundary), abs(edge), 1.0):
            return None
    return np.sort(positions[ranking[:k]])

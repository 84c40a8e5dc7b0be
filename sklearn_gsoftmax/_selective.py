"""Selective prediction: accept the most confident predictions, up to an accuracy.

The ``low_confidence`` rule accepts a prediction whose top-class probability is
at least a threshold. ``uncertainty_threshold="auto"`` picks the smallest
threshold whose accepted held-out predictions reach ``target_accuracy``
(:func:`select_threshold`). Confidences that tie (``_ties``) are accepted
together; within a tie, which happens where probabilities saturate at the
link's bound, the calibrated score margin of the top class over the runner-up
orders them, and a margin threshold cuts the predictions that tie with the
threshold itself (in the selection as in :func:`low_confidence`).
"""

from __future__ import annotations

import math

import numpy as np

from ._source import ArraySource
from ._ties import TIE_RTOL, below, near, tie_groups

#: Confidence bins of the first, linear pass of :func:`select_threshold`.
#: A power of two: ``confidence * BINS`` is then exact, so a value's bin and
#: its comparison with the bin's edges agree.
BINS = 4096

#: Values within this distance of a bin edge are looked at to find where a
#: run of tying values crossing the edge ends.
_EDGE_PAD = 1e-6

_EPS = float(np.finfo(np.float64).eps)


def accepted_totals(confidence, correct, weights, margin=None, start=(0.0, 0.0)):
    """The accepted sets, largest confidence first.

    Sorted by decreasing confidence, ties in confidence by decreasing
    ``margin`` (when given), ties in both by position: at the end of each tie
    group with some weight, ``(threshold, margin threshold, accepted weight,
    accepted correct weight)``, accumulated from ``start`` (the totals of the
    predictions ranked before these). A threshold is its group's smallest
    value: every member is at least it or ties with it.

    The margin cuts what :func:`low_confidence` cuts: the members that tie
    with the threshold itself, their margins' tie groups formed among them
    alone (the rule compares each margin with the margin threshold, so no
    other prediction's margin may chain two of theirs). In a run of
    confidences longer than the tie tolerance (each within it of the next:
    one group) the members beyond the tolerance above the group's smallest
    value are accepted whatever their margin, ranked before the cut ones; no
    candidate accepts them without some of the cut ones (that would split
    the run).
    """
    confidence_rank, lowest_confidence = tie_groups(confidence)
    if margin is None:
        margin_rank = np.zeros(len(confidence), dtype=np.intp)
        lowest_margin = np.array([-math.inf])
        cut = np.ones(len(confidence), dtype=bool)
    else:
        cut = near(confidence, lowest_confidence[confidence_rank])
        margin_rank, lowest_margin = _margin_groups(confidence_rank, margin, cut)
    order = np.lexsort((-margin_rank, -confidence_rank))
    confidence_rank, margin_rank = confidence_rank[order], margin_rank[order]
    sorted_weights = weights[order]
    accepted_weight = np.cumsum(sorted_weights) + start[0]
    accepted_correct = np.cumsum(sorted_weights * correct[order]) + start[1]
    changes = (confidence_rank[1:] != confidence_rank[:-1]) | (
        margin_rank[1:] != margin_rank[:-1]
    )
    # a group's smallest value is cut, so every group ends with cut members:
    # the ends of the uncut ones are no thresholds
    end_of_tie = np.append(changes, True) & cut[order]
    end_of_tie &= accepted_weight > 0
    return (
        lowest_confidence[confidence_rank[end_of_tie]],
        lowest_margin[margin_rank[end_of_tie]],
        accepted_weight[end_of_tie],
        accepted_correct[end_of_tie],
    )


def _margin_groups(confidence_rank, margin, cut):
    """Per prediction, a rank of its margin among the ``cut`` members of its
    confidence group (increasing with the margin, near-equal margins chained
    and sharing one) and each rank's smallest margin; the members not cut
    rank above every margin."""
    member_ranks, lowest = tie_groups(margin[cut], within=confidence_rank[cut])
    ranks = np.full(len(margin), len(lowest), dtype=np.intp)
    ranks[cut] = member_ranks
    return ranks, lowest


def accepted_accuracy_curve(confidence, correct, weights, margin=None):
    """Accuracy of the accepted predictions as the threshold falls.

    Returns, at each tie group of confidence (and margin, when given),
    largest first, ``(threshold, coverage, accuracy)``: accepting every
    prediction at least as confident as the threshold covers that share of
    the (weighted) samples with that accuracy.
    """
    thresholds, _, accepted_weight, accepted_correct = accepted_totals(
        np.asarray(confidence, dtype=np.float64), correct, weights, margin
    )
    return (
        thresholds,
        accepted_weight / accepted_weight[-1],
        accepted_correct / accepted_weight,
    )


def _cut(near_edge: np.ndarray, edge: float, *, up: bool) -> float:
    """A value near ``edge`` that no run of tying values crosses: ``edge``
    itself unless a run straddles it, else where that run ends (above the
    edge with ``up``: the first value beyond it; below it without: its
    first value); ``inf`` (``-inf``) if the run may go on beyond
    ``_EDGE_PAD``. ``near_edge`` holds the values within ``_EDGE_PAD`` of
    the edge (and maybe others, left out here)."""
    local = np.sort(near_edge[np.abs(near_edge - edge) <= _EDGE_PAD])
    split = np.searchsorted(local, edge)
    if split in (0, len(local)) or not near(local[split - 1], local[split]):
        return edge
    starts = local[1:][~near(local[1:], local[:-1])]
    # a value that ties with the run's last (first) one read lies within
    # twice the tolerance of it: read too, unless that reaches the pad's end
    reach = 2.0 * TIE_RTOL * max(abs(edge) + _EDGE_PAD, 1.0)
    if up:
        beyond = starts[starts > edge]
        if beyond.size:
            return float(beyond[0])
        if local[-1] + reach < edge + _EDGE_PAD:
            return float(np.nextafter(local[-1], math.inf))
        return math.inf
    beyond = starts[starts <= edge]
    if beyond.size:
        return float(beyond[-1])
    return float(local[0]) if local[0] - reach > edge - _EDGE_PAD else -math.inf


def ranking_rows(confidence, correct, weights, margin=None) -> np.ndarray:
    """The rows :func:`select_threshold_on` reads, one per prediction:
    ``(confidence, correct, margin, weight)``."""
    margin = np.zeros(len(confidence)) if margin is None else margin
    return np.column_stack([confidence, correct, margin, weights]).astype(np.float64)


def threshold_histogram(chunk) -> np.ndarray:
    """The first pass of :func:`select_threshold_on` over a chunk of
    :func:`ranking_rows` (merged by sums): per confidence bin, the weight,
    the correct weight, the count and the wrong weight of the rows within
    ``_EDGE_PAD`` above the bin's lower edge (a tie across that edge may
    leave them out of the bin below's thresholds)."""
    rows = chunk.z
    bins = (rows[:, 0] * BINS).astype(np.intp)
    np.minimum(bins, BINS - 1, out=bins)
    correct_weight = rows[:, 3] * rows[:, 1]
    near_lower_edge = rows[:, 0] - bins / BINS <= _EDGE_PAD
    wrong_near_edge = np.where(near_lower_edge, rows[:, 3] - correct_weight, 0.0)
    return np.vstack(
        [
            np.bincount(bins, weights=rows[:, 3], minlength=BINS),
            np.bincount(bins, weights=correct_weight, minlength=BINS),
            np.bincount(bins, minlength=BINS),
            np.bincount(bins, weights=wrong_near_edge, minlength=BINS),
        ]
    )


def _concatenate(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.concatenate([a, b])


def select_threshold_on(source, target_accuracy, *, with_margin=True, histogram=None):
    """The smallest threshold whose accepted predictions reach
    ``target_accuracy``, with ties as in :func:`accepted_totals`, on the rows
    of ``source`` (chunks of :func:`ranking_rows` in ``z``).

    Returns ``(threshold, coverage, accuracy)`` on those rows, and with
    ``with_margin`` also the margin threshold (the smallest margin of the
    accepted rows that tie with the threshold; ``-inf`` where none reaches
    the target).
    When no threshold reaches the target, the threshold is ``inf``: every
    prediction is flagged, whatever its probability (coverage 0, accuracy
    NaN). That is recorded, not warned about; the estimators warn when the
    flag is used. An accuracy that ties with the target reaches it.

    A full sort of 10^6 confidences costs about as much as fitting the
    calibrator, and on a cluster it would gather every row: one pass of
    ``BINS`` confidence bins finds the lowest bin that can hold the answer;
    only the rows of a range of bins from it (:func:`_range_end`, up to the
    ends of the runs of ties crossing its edges) are gathered and sorted, the
    next range's where it does not hold the answer.
    ``histogram``: the :func:`threshold_histogram` of the rows, where a pass
    shared with other statistics computed it.
    """
    if histogram is None:
        histogram = source.map_reduce(threshold_histogram)
    total = histogram[0].sum()
    candidates, reaches = _candidate_bins(histogram, target_accuracy)
    position = 0
    while position < len(candidates):
        first = candidates[position]
        last = _range_end(first, reaches, histogram[2])
        # the last bin holds 1.0 too
        high = (last + 1) / BINS if last < BINS - 1 else math.inf
        choice = _lowest_in_range(
            source, first / BINS, high, total, target_accuracy, with_margin
        )
        if choice is not None:
            return choice
        position = int(np.searchsorted(candidates, last, side="right"))
    return (math.inf, 0.0, math.nan) + ((-math.inf,) if with_margin else ())


def _candidate_bins(histogram, target_accuracy: float):
    """The bins that may hold a threshold reaching the target (in increasing
    order), and per bin whether accepting it whole with every bin above
    reaches the target (then the answer is seldom far above it)."""
    bin_weight, bin_correct, bin_count, wrong_at_edge = histogram
    # the totals of the bins above each bin (sums, not a sum less its last
    # term, whose rounding can outweigh a small remainder)
    weight_above = np.append(np.cumsum(bin_weight[::-1])[::-1][1:], 0.0)
    correct_above = np.append(np.cumsum(bin_correct[::-1])[::-1][1:], 0.0)
    # A threshold inside bin j accepts the bins above plus weight y of bin j,
    # x <= min(y, bin_correct[j]) of it correct: its accuracy is at most
    # (correct_above + bin_correct) / (weight_above + bin_correct), since a
    # fraction <= 1 grows when the same amount is added above and below.
    # Except where its tie group crosses the bin's upper edge: the margin cut
    # may then leave out the group's wrong rows just above the edge, so those
    # are taken as left out (a tie of 0.5 and the float below it, the wrong
    # one above, was skipped and nothing reached the target).
    left_out = np.append(wrong_at_edge[1:], 0.0)
    correct = correct_above + bin_correct
    denominator = weight_above - left_out + bin_correct
    # nothing correct to accept (0 / 0): an accuracy of 0 at best
    best = _ratio(correct, denominator)
    whole_accuracy = _ratio(correct, weight_above + bin_weight)
    # An accuracy that ties with the target reaches it (absolutely within
    # TIE_RTOL below 1); the slack of twice that only admits more bins to the
    # exact check (a bin of zero-weight samples still holds thresholds, lower
    # ones). A slack of 1e-9 times the target skipped a bin whose accuracy
    # tied with a target of 0.5 + 7e-10, and flagged everything. The bound's
    # own rounding is added: where the weight left out nearly cancels the
    # weight above (weights 1e8 apart), it is far beyond the tolerance.
    rounding = BINS * _EPS * _ratio(weight_above + bin_weight, denominator)
    slack = 2.0 * TIE_RTOL * max(1.0, abs(target_accuracy)) + rounding
    candidates = np.flatnonzero((best >= target_accuracy - slack) & (bin_count > 0))
    return candidates, whole_accuracy >= target_accuracy - slack


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator``, 0 where the denominator is not positive."""
    positive = denominator > 0
    return np.divide(
        numerator, denominator, out=np.zeros_like(numerator), where=positive
    )


#: Rows that one exact check of :func:`select_threshold_on` reads at most
#: beyond its first bin (a float64 copy of 2 MiB).
RANGE_ROWS = 1 << 16


def _range_end(first: int, reaches: np.ndarray, bin_count: np.ndarray) -> int:
    """The last bin of the range an exact check reads from bin ``first``: on
    up to the first bin that ``reaches`` the target accepted whole (the
    bins between hold the answer, most often), within ``RANGE_ROWS`` rows.
    Each range read is a pass over the rows (a round trip on a cluster);
    checking bin by bin, a calibrator's flag on 200 000 binary scores took
    three."""
    reaching = np.flatnonzero(reaches[first:])
    to_reaching = reaching[0] if reaching.size else BINS - 1 - first
    within_rows = np.searchsorted(
        np.cumsum(bin_count[first + 1 :]), RANGE_ROWS, "right"
    )
    return first + int(min(to_reaching, within_rows))


def _lowest_in_range(source, low, high, total, target_accuracy, with_margin):
    """The lowest threshold in ``[low, high)`` whose accepted rows reach the
    target, as :func:`select_threshold_on` returns it; ``None`` if none.

    One pass reads the rows of the range and of twice the pads around its
    edges (every value ``_cut`` looks at, whatever the rounding of the pad's
    ends) and the totals above them; a second only where a run of ties goes
    on beyond the upper pad."""
    padded, beyond = source.map_reduce(
        lambda chunk, a=low - 2 * _EDGE_PAD, b=high + 2 * _EDGE_PAD: _window(
            chunk.z, a, b
        ),
        _merge_windows,
    )
    # the range's thresholds, with every value of the tie groups they end; a
    # run of ties across the lower edge holds none of them (its lowest value
    # is below the edge): the rows below the pad do not count
    low_cut = max(_cut(padded[:, 0], low, up=False), low - 2 * _EDGE_PAD)
    high_cut = _cut(padded[:, 0], high, up=True)
    if high_cut == math.inf and high < math.inf:
        # a run of ties from the range goes on beyond what the pass read
        window, above = source.map_reduce(
            lambda chunk, a=low_cut: _window(chunk.z, a, math.inf),
            _merge_windows,
        )
    else:
        window, above = _window(padded, low_cut, high_cut)
        above += beyond
    thresholds, margins, accepted_weight, accepted_correct = accepted_totals(
        window[:, 0],
        window[:, 1].astype(bool),
        window[:, 3],
        window[:, 2] if with_margin else None,
        start=tuple(above),
    )
    accuracy = accepted_correct / accepted_weight
    in_range = (thresholds >= low) & (thresholds < high)
    valid = np.flatnonzero(in_range & ~below(accuracy, target_accuracy))
    if not valid.size:
        return None
    last = valid[-1]
    choice = (
        float(thresholds[last]),
        float(accepted_weight[last] / total),
        float(accuracy[last]),
    )
    # the accepted keys are those >= (threshold, margin threshold)
    return (*choice, float(margins[last])) if with_margin else choice


def _merge_windows(a, b):
    return _concatenate(a[0], b[0]), a[1] + b[1]


def _window(rows: np.ndarray, low_cut: float, high_cut: float):
    """The rows with a confidence in ``[low_cut, high_cut)``, and the weight
    and correct weight of those above."""
    confidence = rows[:, 0]
    above = confidence >= high_cut
    members = (confidence >= low_cut) & ~above
    weights = rows[above, 3]
    return rows[members], np.array([weights.sum(), weights @ rows[above, 1]])


def select_threshold(confidence, correct, weights, target_accuracy, margin=None):
    """:func:`select_threshold_on` of arrays (with the margin threshold when
    ``margin`` is given)."""
    rows = ranking_rows(np.asarray(confidence, np.float64), correct, weights, margin)
    return select_threshold_on(
        ArraySource(rows, np.zeros(len(rows)), rows[:, 3]),
        target_accuracy,
        with_margin=margin is not None,
    )


def low_confidence(top, margin, threshold: float, margin_threshold: float):
    """The ``low_confidence`` rule: ``top`` below ``threshold``; where ``top``
    ties with it, ``margin`` below ``margin_threshold`` (a cut tie)."""
    flagged = below(top, threshold)
    if margin is not None and margin_threshold > -math.inf:
        flagged |= near(top, threshold) & below(margin, margin_threshold)
    return flagged

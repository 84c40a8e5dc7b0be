"""The uncertain flag's fitted state, and its rules applied to predictions.

At fit time an estimator hands over its held-out predictions (made the way new
predictions are made, for the threshold) and each model's own held-out
predictions (for its conformal reference and for what ``shift_report``
expects), each as a ``_source.Source``; :func:`fit_flag` reads them with
mergeable statistics, so that a fit in memory and one on a cluster are the same
code: the threshold from confidence bins and the rows of one bin
(``_selective``), the conformal references from quantile summaries (exact for
rows in memory), the shift report's expectations from sums and moments.

The rules of ``uncertainty_rules``:

``low_confidence``
    The top-class probability is below ``uncertainty_threshold``. Catches the
    predictions the model itself says are likely wrong.
``ambiguous``
    The top class is less than ``ambiguity_ratio`` times as probable as the
    runner-up: two (or more) classes compete. Catches confusions between close
    classes even when the top probability is moderate (in a 10-class problem,
    0.45 against 0.40 is ambiguous; 0.45 against nine at 0.06 is not).
``out_of_range``
    A score falls outside the range the calibrator saw in fit. This marks
    novelty, not error: the model extrapolates there, often confidently and
    correctly, so the rule is off by default. It serves data collection:
    labelling those samples extends the range the model has evidence for.
``conformal``
    The split-conformal prediction set at level ``1 - conformal_alpha`` does not
    hold exactly one class: several classes cannot be excluded, or none fits.
``novelty``
    The sample is unlike the training data: its conformal novelty p-value is at
    most ``novelty_alpha`` (see ``_novelty``), so in-distribution at most about
    that share is flagged. Confidence cannot see shift (far from the training
    data models are confidently wrong); this rule does.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from ._conformal import ConformalReference, conformal_sets, nonconformity
from ._links import top_probability, top_two
from ._selective import (
    low_confidence,
    ranking_rows,
    select_threshold_on,
    threshold_histogram,
)
from ._shift import PART_MERGES, Batch, held_out_summary, summary_parts
from ._source import (
    ArraySource,
    QuantileSummary,
    add,
    by_blocks,
    merge_dicts,
    one_pass_each,
    row_blocks,
)
from ._ties import TIE_RTOL, below, first_index_of_max

RULES = ("low_confidence", "ambiguous", "out_of_range", "conformal", "novelty")

#: The rules applied unless ``uncertainty_rules`` says otherwise: one for the
#: predictions the model rates unlikely, one for samples unlike its training data.
DEFAULT_RULES = ("low_confidence", "novelty")

#: The rules that look at a sample (its features or scores), not at a model's
#: probabilities.
SAMPLE_RULES = ("out_of_range", "novelty")

#: Points of a conformal reference built from chunks on a cluster (exact below:
#: always in memory): a rank error of at most 2 / 10^5 of the total weight,
#: 0.002 points of coverage for a conformal set.
REFERENCE_POINTS = 100_000


def check_rules(rules) -> tuple:
    """Validate ``uncertainty_rules``: a tuple (or list) of known rule names."""
    if not isinstance(rules, tuple | list):
        raise ValueError(
            f"uncertainty_rules must be a tuple of rule names from {RULES}, got "
            f"{rules!r}."
        )
    unknown = [rule for rule in rules if rule not in RULES]
    if unknown:
        raise ValueError(
            f"unknown uncertainty rule(s) {unknown}; the rules are {RULES}."
        )
    return tuple(dict.fromkeys(rules))


def outside_range(z: np.ndarray, score_range: np.ndarray) -> np.ndarray:
    """Rows of scores ``z`` with a score outside ``score_range`` (row 0 the
    minimum, row 1 the maximum of each column)."""
    low, high = score_range
    # relative to the range itself: raw scores may be in any unit, and a
    # score equal to a training extreme stays inside whatever its last bits;
    # an infinite extreme (a column -inf on every fitted row) is its own
    # bound (inf - inf would be NaN)
    with np.errstate(invalid="ignore"):
        low = np.where(np.isfinite(low), low - TIE_RTOL * np.abs(low), low)
        high = np.where(np.isfinite(high), high + TIE_RTOL * np.abs(high), high)
    outside = (z < low) | (z > high)
    return outside if outside.ndim == 1 else outside.any(axis=1)


def is_correct(proba: np.ndarray, y_index: np.ndarray) -> np.ndarray:
    """Whether the predicted class (ties by class order) is the label."""
    return first_index_of_max(proba) == y_index


class Rules(NamedTuple):
    """The flag's parameters, and its fitted thresholds (``threshold`` may be
    ``"auto"`` before the fit)."""

    rules: tuple
    threshold: float | str
    margin_threshold: float
    target_accuracy: float
    ambiguity_ratio: float
    conformal_alpha: float
    novelty_alpha: float


class FlagFit(NamedTuple):
    """What :func:`fit_flag` learns."""

    threshold: float
    margin_threshold: float
    coverage: float
    accuracy: float
    references: list
    summary: dict
    alongside: list


def held_out_rows(proba, margin, y_index, weights) -> ArraySource:
    """Held-out predictions as a source: each chunk's ``z`` holds the
    probabilities and, in its last column, the calibrated margin."""
    return ArraySource(np.column_stack([proba, margin]), y_index, weights)


def split_rows(z: np.ndarray):
    """The probabilities and margins of :func:`held_out_rows`."""
    return z[:, :-1], z[:, -1]


def probability_masks(
    rules: Rules, proba, per_model, references, margin, sets=None
) -> dict:
    """Flags of the rules that look at probabilities (and margins) only; the
    conformal rule's from ``sets`` when given (a copy adapted to other class
    proportions weights its references), else from ``references``."""
    masks = {}
    for rule in rules.rules:
        if rule == "low_confidence":
            masks[rule] = low_confidence(
                top_probability(proba),
                margin,
                rules.threshold,
                rules.margin_threshold,
            )
        elif rule == "ambiguous":
            top, runner_up = top_two(proba)
            masks[rule] = below(top, rules.ambiguity_ratio * runner_up)
        elif rule == "conformal":
            if sets is None:
                sets = conformal_sets(references, per_model, rules.conformal_alpha)
            masks[rule] = sets.sum(axis=1) != 1
    return masks


def batch_statistics(
    rules: Rules, proba, margin, references, y_index=None, masks=None
) -> Batch:
    """The flags of the rules, the confidence, acceptance (by the rules that
    look at probabilities) and, with labels, correctness and log-loss of
    predictions ``proba`` of one model (``references``: its conformal
    reference), or of an ensemble whose flags are ``masks``."""
    if masks is None:
        masks = probability_masks(rules, proba, [proba], references, margin)
    accepted = np.ones(len(proba), dtype=bool)
    for rule, mask in masks.items():
        if rule not in SAMPLE_RULES:
            accepted &= ~mask
    correct = loss = None
    if y_index is not None:
        correct = is_correct(proba, y_index)
        with np.errstate(divide="ignore"):
            loss = -np.log(proba[np.arange(len(y_index)), y_index])
        loss = loss.astype(np.float64, copy=False)
    confidence = top_probability(proba).astype(np.float64)
    return Batch(masks, confidence, accepted, correct, loss)


def concatenate(parts: list) -> Batch:
    """One :class:`~._shift.Batch` of the rows of ``parts``, in order."""
    first = parts[0]
    return Batch(
        {
            rule: np.concatenate([part.masks[rule] for part in parts])
            for rule in first.masks
        },
        *(
            None
            if getattr(first, field) is None
            else np.concatenate([getattr(part, field) for part in parts])
            for field in Batch._fields[1:]
        ),
    )


def _ranking_rows(part):
    proba, margin = split_rows(part.z)
    return ranking_rows(
        top_probability(proba), is_correct(proba, part.y), part.w, margin
    )


def _ranked(chunk):
    """The chunk's held-out rows as the threshold's selection reads them."""
    rows = np.concatenate([_ranking_rows(block) for block in row_blocks(chunk)])
    return chunk._replace(z=rows)


def ranking_of(held):
    """The held-out rows ``held`` (a source of :func:`held_out_rows`) as the
    threshold's selection reads them: a source of ``ranking_rows``."""
    return held.map(_ranked)


def _first_pass_request(rules: Rules, ranking) -> tuple:
    """The threshold's first pass over ``ranking`` as a ``(source, fn,
    merge)`` request, to share a pass with other statistics: the automatic
    threshold's histogram, or a fixed threshold's accepted totals."""
    if rules.threshold == "auto":
        return ranking, threshold_histogram, add
    threshold = float(rules.threshold)

    def accepted(chunk):
        taken = ~below(chunk.z[:, 0], threshold)
        w = chunk.z[:, 3]
        return np.array([w @ taken, w @ (taken * chunk.z[:, 1]), w.sum()])

    return ranking, accepted, add


def select_threshold(rules: Rules, ranking, first_pass=None) -> tuple:
    """``(threshold, margin threshold, coverage, accuracy)`` of the rule
    ``low_confidence`` on held-out rows (``ranking``: their
    :func:`ranking_of`; their weights may be reweighted, as after a change of
    the class proportions); ``first_pass``: the result of its
    :func:`_first_pass_request`, when a shared pass computed it."""
    if first_pass is None:
        _, fn, merge = _first_pass_request(rules, ranking)
        first_pass = ranking.map_reduce(fn, merge)
    if rules.threshold == "auto":
        threshold, coverage, accuracy, margin_threshold = select_threshold_on(
            ranking, rules.target_accuracy, histogram=first_pass
        )
        return threshold, margin_threshold, coverage, accuracy
    accepted_weight, accepted_correct, total = first_pass
    accuracy = accepted_correct / accepted_weight if accepted_weight > 0 else math.nan
    coverage = float(accepted_weight / total)
    return float(rules.threshold), -math.inf, coverage, float(accuracy)


def _reference_summary(chunk) -> QuantileSummary:
    """A chunk's part of one model's conformal reference: its held-out
    nonconformity scores."""
    proba, _ = split_rows(chunk.z)
    scores = nonconformity(proba, chunk.y).astype(np.float64)
    return QuantileSummary(scores, chunk.w, REFERENCE_POINTS)


def fit_flag(
    rules: Rules,
    held,
    per_model: list,
    novelty,
    score_columns: int,
    alongside: list = (),
):
    """The flag's fitted state from the held-out predictions ``held`` (as new
    predictions are made) and ``per_model`` (each model's own), sources of
    :func:`held_out_rows`. ``alongside``: more ``(source, fn, merge)``
    statistics of these sources, computed with the summary (one computation
    on a cluster, one pass per distinct source in memory, see
    ``_source.one_pass_each``); their results come back in
    ``FlagFit.alongside``."""
    # the threshold's first pass and the conformal references together (on
    # a cluster, one round trip)
    ranking = ranking_of(held)
    first = one_pass_each(
        [_first_pass_request(rules, ranking)]
        + [
            (model_held, _reference_summary, QuantileSummary.merge)
            for model_held in per_model
        ]
    )
    references = [ConformalReference(*summary.points()) for summary in first[1:]]
    threshold, margin_threshold, coverage, accuracy = select_threshold(
        rules, ranking, first[0]
    )
    rules = rules._replace(threshold=threshold, margin_threshold=margin_threshold)
    requests = _summary_requests(rules, per_model, references)
    results = one_pass_each(requests + list(alongside))
    summary = _summary(
        rules, results[: len(requests)], references, novelty, score_columns
    )
    return FlagFit(
        threshold,
        margin_threshold,
        coverage,
        accuracy,
        references,
        summary,
        results[len(requests) :],
    )


def _summary_requests(rules: Rules, per_model, references) -> list:
    """The ``(source, fn, merge)`` statistics of each model's own held-out
    predictions that :func:`_summary` pools."""

    def summarise(chunk, reference):
        proba, margin = split_rows(chunk.z)
        # a held-out sample's score is in its own reference already: the
        # conformal rule's sets are a little wider here than for new samples
        batch = batch_statistics(rules, proba, margin, [reference], chunk.y)
        return summary_parts(batch, chunk.w)

    merge = merge_dicts(PART_MERGES)
    return [
        (
            model_held,
            by_blocks(
                lambda chunk, reference=reference: summarise(chunk, reference), merge
            ),
            merge,
        )
        for model_held, reference in zip(per_model, references)
    ]


def _summary(rules: Rules, model_parts, references, novelty, score_columns) -> dict:
    """What ``shift_report`` expects of a batch whose samples are each
    predicted by one model: the flag rates, confidence, loss and accuracies of
    each model's own held-out predictions (``model_parts``, the results of
    :func:`_summary_requests`), pooled."""
    parts = functools.reduce(merge_dicts(PART_MERGES), model_parts)
    rates = {
        rule: parts["flagged"][rule] / parts["weight"] for rule in parts["flagged"]
    }
    if "out_of_range" in rules.rules:
        # A new exchangeable score leaves the range of m held-out ones with
        # chance at most 2/(m + 1) per column; over the columns and the
        # models this gives an upper bound of the rate, not an estimate
        # (shift_report tests it one-sided).
        within = 1.0
        for reference in references:
            count = reference.cumulative[-1]
            within *= max(0.0, 1.0 - 2.0 * score_columns / (count + 1))
        rates["out_of_range"] = 1.0 - within
    if novelty is not None:
        rates["novelty"] = novelty.held_out_flag_rate(rules.novelty_alpha)
    return held_out_summary({rule: rates[rule] for rule in rules.rules}, parts)


def assigned_statistics(rules: Rules, per_model, per_model_margin, references, y_index):
    """:func:`batch_statistics` of a batch with each sample predicted by one
    model in turn (sample ``i`` by model ``i % n_models``), as each held-out
    sample was by the one model that did not see it."""
    n_models = len(per_model)
    m = len(per_model[0])
    parts, order = [], []
    for j, (proba, margin, reference) in enumerate(
        zip(per_model, per_model_margin, references)
    ):
        rows = np.arange(j, m, n_models)
        parts.append(
            batch_statistics(
                rules,
                proba[rows],
                margin[rows],
                [reference],
                None if y_index is None else y_index[rows],
            )
        )
        order.append(rows)
    assigned = concatenate(parts)
    back = np.argsort(np.concatenate(order))
    return Batch(
        {rule: mask[back] for rule, mask in assigned.masks.items()},
        *(None if field is None else field[back] for field in assigned[1:]),
    )

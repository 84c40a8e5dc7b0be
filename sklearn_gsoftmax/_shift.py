"""Is a batch shifted? Its flag rates and confidence against the held-out ones.

At fit time the estimators summarise their held-out (out-of-fold) predictions:
each rule's flag rate, the mean and spread of the top-class probability and of
the log-loss, the accuracy, and the accuracy of the accepted predictions. A new
batch is compared with that summary one check at a time, each a two-sample test
of the batch against the held-out sample (so that the held-out estimate's own
error is accounted for), and called shifted when any check's p-value falls below
``alpha`` divided by the number of checks (Bonferroni).

Like is compared with like. A held-out training sample was predicted by the one
(estimator, calibrator) pair that did not see it, while an ensemble predicts a
new sample by the average of all pairs, which is less confident (and more often
right) than any one of them: tested against the average, in-distribution batches
of a random forest were called shifted 7 times in 10. So the tests see each
batch sample predicted by one pair in turn, exchangeable with the held-out ones;
the report shows the averaged predictions' values beside them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats

from ._source import mean_and_std, merge_moments, moments
from ._ties import below, near, rounded

#: Smallest batch the report accepts: below it every test is too weak to say
#: anything and the exact p-values are coarse.
MIN_BATCH = 20

#: Rules whose expected flag rate is an upper bound rather than an estimate.
UPPER_BOUND_RULES = ("out_of_range",)


class Batch(NamedTuple):
    """What the checks look at on a batch, or on the held-out predictions:
    each rule's flags, the top-class probabilities, whether the rules that
    look at probabilities accept each prediction and, with labels, whether it
    is right and its log-loss."""

    masks: dict
    confidence: np.ndarray
    accepted: np.ndarray
    correct: np.ndarray | None = None
    loss: np.ndarray | None = None


def summary_parts(held_out: Batch, weights) -> dict:
    """Sums and moments of held-out predictions' statistics, which merge
    (:data:`PART_MERGES`) over chunks and models into what
    :func:`held_out_summary` summarises."""
    accepted, correct = held_out.accepted, held_out.correct
    return {
        "weight": float(weights.sum()),
        "flagged": {
            rule: float(weights @ mask) for rule, mask in held_out.masks.items()
        },
        "confidence": moments(held_out.confidence, weights),
        "loss": moments(held_out.loss, weights),
        "correct": float(weights @ correct),
        "accepted": float(weights @ accepted),
        "accepted_correct": float(weights @ (accepted & correct)),
    }


#: How :func:`summary_parts` merge: by their own rule where it is not a sum.
PART_MERGES = {
    "flagged": lambda a, b: {rule: a[rule] + b[rule] for rule in a},
    "confidence": merge_moments,
    "loss": merge_moments,
}


def held_out_summary(rates: dict, parts: dict) -> dict:
    """What a batch from the training distribution should look like.

    ``rates`` maps each rule to its expected flag rate; ``parts`` holds the
    held-out predictions' :func:`summary_parts` (weights are frequency
    weights: the counts of the tests are weighted counts).
    """
    total = parts["weight"]
    accepted_weight = parts["accepted"]
    return {
        "n": total,
        "rates": {rule: float(rate) for rule, rate in rates.items()},
        "confidence": mean_and_std(parts["confidence"]),
        "loss": mean_and_std(parts["loss"]),
        "accuracy": parts["correct"] / total,
        "n_accepted": accepted_weight,
        "accepted_accuracy": (
            parts["accepted_correct"] / accepted_weight
            if accepted_weight > 0
            else float("nan")
        ),
    }


def _fisher(successes: int, trials: int, rate: float, n_reference: float, alternative):
    """Fisher's exact test of ``successes`` of ``trials`` against a held-out
    rate observed on ``n_reference`` samples."""
    # counts from fractional weights: a half a few ulps off rounds as the half
    reference = rounded(rate * n_reference)
    table = [
        [successes, trials - successes],
        [reference, rounded(n_reference) - reference],
    ]
    return float(stats.fisher_exact(table, alternative=alternative).pvalue)


def _welch(values, mean: float, std: float, n_reference: float, alternative):
    """z-test of the batch mean against the held-out mean, with the standard
    error of both (Welch's: the two samples' variances may differ)."""
    if np.isinf(values).any():
        # an infinite loss in the batch: its mean is infinitely higher
        return 0.0
    se = np.sqrt(np.var(values) / len(values) + std**2 / max(n_reference, 1.0))
    batch_mean = np.mean(values)
    if near(batch_mean, mean):  # equal but for rounding, whatever the spread
        return 1.0
    difference = batch_mean - mean
    if se == 0.0:
        return 0.0
    z = difference / se
    if alternative == "two-sided":
        return float(2 * stats.norm.sf(abs(z)))
    return float(stats.norm.sf(z))


def _mean(values) -> float:
    with np.errstate(over="ignore"):
        return float(np.mean(values))


def shift_report(
    summary: dict,
    observed: Batch,
    assigned: Batch,
    *,
    alpha=0.01,
    extra_checks=0,
    upper_bound_rules=UPPER_BOUND_RULES,
):
    """One row per check of a batch against the held-out ``summary``.

    ``observed`` holds the batch's statistics as the estimator predicts
    (for an ensemble, from the averaged probabilities): they fill the
    ``observed`` column. ``assigned`` holds them with each sample predicted by
    one model in turn, as each held-out sample was by the one model that did
    not see it: the tests compare these with the summary, like with like. The
    ``expected`` column is the held-out value moved by the difference the
    averaging makes on this batch (observed minus assigned), so that it reads
    against ``observed``. ``extra_checks`` more checks (the class mix) share
    ``alpha``; the rules of ``upper_bound_rules`` are tested one-sided.
    """
    import pandas as pd

    m = len(observed.confidence)
    n_reference = summary["n"]
    rows = {}

    def row(name, observed_value, assigned_value, reference_value, p_value, test):
        expected = reference_value + (observed_value - assigned_value)
        if not np.isfinite(expected):  # nothing accepted in the batch
            expected = reference_value
        rows[name] = (observed_value, expected, p_value, test)

    for rule, mask in observed.masks.items():
        rate = summary["rates"][rule]
        flagged = assigned.masks[rule]
        # out_of_range's expected rate is an upper bound: only a higher
        # observed rate says anything
        side = "greater" if rule in upper_bound_rules else "two-sided"
        row(
            f"flag rate: {rule}",
            _mean(mask),
            _mean(flagged),
            rate,
            _fisher(int(flagged.sum()), m, rate, n_reference, side),
            f"Fisher's exact, {'one-sided (higher)' if side == 'greater' else side}",
        )
    mean, std = summary["confidence"]
    row(
        "mean top-class probability",
        _mean(observed.confidence),
        _mean(assigned.confidence),
        mean,
        _welch(assigned.confidence, mean, std, n_reference, "two-sided"),
        "Welch's z-test, two-sided",
    )
    if observed.correct is not None:
        _labelled_rows(summary, observed, assigned, row)
    frame = pd.DataFrame.from_dict(
        rows, orient="index", columns=["observed", "expected", "p_value", "test"]
    )
    frame.index.name = "check"
    # Bonferroni: the batch is called shifted when any check is, so each check
    # gets its share of alpha
    each = alpha / (len(frame) + extra_checks)
    frame["shifted"] = below(frame["p_value"].to_numpy(dtype=float), each, floor=0.0)
    frame = frame[["observed", "expected", "p_value", "shifted", "test"]]
    frame.attrs["shifted"] = bool(frame["shifted"].any())
    frame.attrs["alpha"] = alpha
    frame.attrs["alpha_each"] = each
    frame.attrs["n_samples"] = m
    return frame


def _labelled_rows(summary, observed: Batch, assigned: Batch, row) -> None:
    """The checks that need labels: accuracy, accuracy of the accepted
    predictions (one-sided, lower) and log-loss (one-sided, higher)."""
    m = len(observed.confidence)
    n_reference = summary["n"]
    # older summaries have no overall accuracy (a model saved before 0.3)
    if "accuracy" in summary:
        row(
            "accuracy",
            _mean(observed.correct),
            _mean(assigned.correct),
            summary["accuracy"],
            _fisher(
                int(assigned.correct.sum()), m, summary["accuracy"], n_reference, "less"
            ),
            "Fisher's exact, one-sided (lower)",
        )
    if summary["n_accepted"] > 0:
        accepted = assigned.accepted
        n_accepted = int(accepted.sum())
        if n_accepted:
            p_value = _fisher(
                int(assigned.correct[accepted].sum()),
                n_accepted,
                summary["accepted_accuracy"],
                summary["n_accepted"],
                "less",
            )
        else:
            # nothing accepted where a share was: as unlikely as that share
            # being refused m times in a row (never "nothing to test")
            p_value = (1.0 - summary["n_accepted"] / n_reference) ** m
        row(
            "accuracy of accepted predictions",
            _accuracy(observed),
            _accuracy(assigned),
            summary["accepted_accuracy"],
            p_value,
            "Fisher's exact, one-sided (lower)",
        )
    mean, std = summary["loss"]
    row(
        "log-loss",
        _mean(observed.loss),
        _mean(assigned.loss),
        mean,
        _welch(assigned.loss, mean, std, n_reference, "greater"),
        "Welch's z-test, one-sided (higher)",
    )


def _accuracy(batch: Batch) -> float:
    """Accuracy of the accepted predictions (NaN when none is)."""
    n_accepted = int(batch.accepted.sum())
    return float(batch.correct[batch.accepted].mean()) if n_accepted else np.nan

"""Is a batch shifted? Its flag rates and confidence against the held-out ones.

At fit time the estimators summarise their held-out (out-of-fold) predictions:
each rule's flag rate, the mean and spread of the top-class probability and of
the log-loss, and the accuracy of the accepted predictions. A new batch is
compared with that summary one check at a time, each a two-sample test of the
batch against the held-out sample (so that the held-out estimate's own error is
accounted for), and called shifted when any check's p-value falls below
``alpha`` divided by the number of checks (Bonferroni).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

#: Smallest batch the report accepts: below it every test is too weak to say
#: anything and the exact p-values are coarse.
MIN_BATCH = 20

#: Rules whose expected flag rate is an upper bound rather than an estimate.
UPPER_BOUND_RULES = ("out_of_range",)


def held_out_summary(rates: dict, confidence, loss, accepted, correct, weights) -> dict:
    """What a batch from the training distribution should look like.

    ``rates`` maps each rule to its expected flag rate; the other arguments are
    the held-out predictions' top-class probabilities, log-losses, acceptance
    (no rule flags it) and correctness, with their sample weights (frequency
    weights: the counts of the tests are weighted counts).
    """
    total = float(weights.sum())

    def mean_and_std(values):
        # an infinite loss (a zero probability under softmax) has no mean to
        # compare: summarise the finite ones
        finite = np.isfinite(values)
        w = weights
        if not finite.all():
            values, w = values[finite], weights[finite]
        mean = float(np.dot(w, values) / w.sum())
        deviation = values - mean
        deviation *= deviation
        return mean, float(np.sqrt(np.dot(w, deviation) / w.sum()))

    accepted_weight = float(weights[accepted].sum())
    return {
        "n": total,
        "rates": {rule: float(rate) for rule, rate in rates.items()},
        "confidence": mean_and_std(confidence),
        "loss": mean_and_std(loss),
        "n_accepted": accepted_weight,
        "accepted_accuracy": (
            float(weights[accepted & correct].sum() / accepted_weight)
            if accepted_weight > 0
            else float("nan")
        ),
    }


def _fisher(successes: int, trials: int, rate: float, n_reference: float, alternative):
    """Fisher's exact test of ``successes`` of ``trials`` against a held-out
    rate observed on ``n_reference`` samples."""
    if trials == 0 or not np.isfinite(rate) or n_reference <= 0:
        return float("nan")
    reference = round(rate * n_reference)
    table = [
        [successes, trials - successes],
        [reference, round(n_reference) - reference],
    ]
    return float(stats.fisher_exact(table, alternative=alternative).pvalue)


def _welch(values, mean: float, std: float, n_reference: float, alternative):
    """z-test of the batch mean against the held-out mean, with the standard
    error of both (Welch's: the two samples' variances may differ)."""
    if np.isinf(values).any():
        # an infinite loss in the batch: its mean is infinitely higher
        return 0.0
    se = np.sqrt(np.var(values) / len(values) + std**2 / max(n_reference, 1.0))
    difference = np.mean(values) - mean
    if se == 0.0:
        return 1.0 if difference == 0 else 0.0
    z = difference / se
    if alternative == "two-sided":
        return float(2 * stats.norm.sf(abs(z)))
    return float(stats.norm.sf(z))


def shift_report(
    summary: dict, masks: dict, confidence, *, correct=None, loss=None, alpha=0.01
):
    """One row per check of a batch against the held-out ``summary``.

    ``masks`` holds each rule's flags on the batch, ``confidence`` its top-class
    probabilities; with labels, ``correct`` and ``loss`` the correctness and
    log-loss of each prediction.
    """
    import pandas as pd

    m = len(confidence)
    n_reference = summary["n"]
    rows = {}
    for rule, mask in masks.items():
        rate = summary["rates"][rule]
        # out_of_range's expected rate is an upper bound: only a higher
        # observed rate says anything
        side = "greater" if rule in UPPER_BOUND_RULES else "two-sided"
        rows[f"flag rate: {rule}"] = (
            float(mask.mean()),
            rate,
            _fisher(int(mask.sum()), m, rate, n_reference, side),
            f"Fisher's exact, {'one-sided (higher)' if side == 'greater' else side}",
        )
    mean, std = summary["confidence"]
    rows["mean top-class probability"] = (
        float(np.mean(confidence)),
        mean,
        _welch(confidence, mean, std, n_reference, "two-sided"),
        "Welch's z-test, two-sided",
    )
    if correct is not None:
        accepted = np.ones(m, dtype=bool)
        for mask in masks.values():
            accepted &= ~mask
        n_accepted = int(accepted.sum())
        rows["accuracy of accepted predictions"] = (
            float(correct[accepted].mean()) if n_accepted else float("nan"),
            summary["accepted_accuracy"],
            _fisher(
                int(correct[accepted].sum()),
                n_accepted,
                summary["accepted_accuracy"],
                summary["n_accepted"],
                "less",
            ),
            "Fisher's exact, one-sided (lower)",
        )
        mean, std = summary["loss"]
        rows["log-loss"] = (
            float(np.mean(loss)),
            mean,
            _welch(loss, mean, std, n_reference, "greater"),
            "Welch's z-test, one-sided (higher)",
        )
    frame = pd.DataFrame.from_dict(
        rows, orient="index", columns=["observed", "expected", "p_value", "test"]
    )
    frame.index.name = "check"
    # Bonferroni: the batch is called shifted when any check is, so each check
    # gets its share of alpha; a NaN p-value (nothing to test) never fires
    frame["shifted"] = frame["p_value"] < alpha / len(frame)
    frame = frame[["observed", "expected", "p_value", "shifted", "test"]]
    frame.attrs["shifted"] = bool(frame["shifted"].any())
    frame.attrs["alpha"] = alpha
    frame.attrs["n_samples"] = m
    return frame

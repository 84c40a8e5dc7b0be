"""Conformal prediction: held-out nonconformity scores and the sets they give.

A new sample's nonconformity score ``1 - p_k`` for each class is ranked
against held-out scores of the same model (split-conformal with one model,
cross-conformal with one per fold); scores that tie (``_ties``) count as equal.
"""

from __future__ import annotations

import numpy as np

from ._ties import below, index_at_or_above


def nonconformity(proba: np.ndarray, y_index: np.ndarray) -> np.ndarray:
    """The nonconformity score ``1 - p_true`` of each row."""
    return 1.0 - proba[np.arange(len(y_index)), y_index]


class ConformalReference:
    """Held-out nonconformity scores ``1 - p_true`` of one model, sorted, with
    their cumulative weights: what a new sample's score is ranked against.

    The sort waits for the first use (``predict_set``, the ``conformal``
    rule, ``conformity_scores_``): on 10^6 scores it costs about a tenth of
    the calibrator's fit, which a model that never ranks against them need
    not pay.
    """

    def __init__(self, scores: np.ndarray, weights: np.ndarray):
        self._unsorted = (scores, weights)

    def __setstate__(self, state):
        # saved before the sort was deferred: already sorted
        if "scores" in state:
            state = {"_index": (state["scores"], state["cumulative"])}
        self.__dict__.update(state)

    def _sorted(self) -> tuple:
        index = self.__dict__.get("_index")
        if index is None:
            scores, weights = self._unsorted
            # the weight below a score does not depend on the order within
            # ties, so the fast unstable sort will do
            if np.all(weights == 1.0):
                index = (
                    np.sort(scores),
                    np.arange(len(scores) + 1, dtype=np.float64),
                )
            else:
                order = np.argsort(scores)
                index = (
                    scores[order],
                    np.concatenate([[0.0], np.cumsum(weights[order])]),
                )
            # one assignment: a thread reading it sees both parts or neither
            self._index = index
        return index

    @classmethod
    def pooled(cls, references) -> ConformalReference:
        """One reference holding the scores and weights of several."""
        parts = [reference._scores_and_weights() for reference in references]
        return cls(
            np.concatenate([scores for scores, _ in parts]),
            np.concatenate([weights for _, weights in parts]),
        )

    def _scores_and_weights(self) -> tuple:
        # unsorted when not sorted yet: pooling need not sort each part
        if "_index" in self.__dict__:
            scores, cumulative = self._index
            return scores, np.diff(cumulative)
        return self._unsorted

    @property
    def scores(self) -> np.ndarray:
        """The reference scores, sorted."""
        return self._sorted()[0]

    @property
    def cumulative(self) -> np.ndarray:
        """``cumulative[i]``: the total weight of the ``i`` smallest scores."""
        return self._sorted()[1]

    def weight_at_or_above(self, test_scores: np.ndarray) -> np.ndarray:
        """Total weight of the reference scores >= each test score (or
        tying with it)."""
        scores, cumulative = self._sorted()
        # a reference score that ties with a test score counts as equal
        return cumulative[-1] - cumulative[index_at_or_above(scores, test_scores)]


def conformal_sets(references, probabilities, alpha: float) -> np.ndarray:
    """Cross-conformal prediction sets.

    ``references[j]`` holds the held-out scores of the samples that model ``j``
    did not see, ``probabilities[j]`` model ``j``'s probabilities of the new
    samples. Class ``k`` enters a sample's set when its conformal p-value

        (1 + sum_j weight{i in j : s_i >= 1 - p_jk(x)}) / (W + 1)

    exceeds ``alpha`` (``W`` the total reference weight): each new score is
    ranked against the scores of the same model, so that both sides are equally
    sharp. With one model this is split-conformal prediction: the set of classes
    with ``1 - p_k <= q``, ``q`` the ``ceil((n + 1)(1 - alpha))``-th smallest
    reference score; with one model per fold it is cross-conformal prediction.
    """
    total = sum(reference.cumulative[-1] for reference in references)
    count = np.ones(probabilities[0].shape)
    for reference, proba in zip(references, probabilities):
        count += reference.weight_at_or_above(1.0 - proba)
    # a p-value that ties with alpha counts as alpha: out of the set
    return below(alpha, count / (total + 1.0), floor=0.0)

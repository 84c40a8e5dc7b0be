"""Refining the affine fit: a matrix score map and a fitted ceiling.

The spec's calibrator fits ``p = link_n(a * z + b)``. Two extensions start from
that fit (so they inherit its search, which keeps mislabelled extreme scores
from pulling it into a flat basin) and refine it with the link's analytic
derivatives: L-BFGS-B, or Newton's method with the exact Hessian for binary
margins (three parameters):

* ``score_map="matrix"`` (three or more classes): ``u = W z + b``, Dirichlet
  calibration's map, with its off-diagonal ridge (``ODIR``) ``lam / (K (K - 1))
  * sum_{i != j} W_ij**2 + lam / K * |b - b_affine|**2`` on the mean log-loss
  (the offsets pulled to the affine fit's, so that the ridge is 0 at the
  start). The diagonal is at least 0 (each class's probability rises with its
  own score) and held only by ``MAP_RIDGE``. The cross terms see each score
  clipped to the range it had in the fit: a class's score corrects the others
  only as far as the calibration set shows how, which also keeps huge and
  infinite scores out of them (an infinite score stays a bound through its
  own, diagonal, entry).
* ``fit_ceiling`` (the gaussian link, binary or ``vs_top``): ``L``, the link's
  logit range, is fitted too, in ``(0, ln(n - 1)]``. The link is then the
  gaussian link of a smaller sample count ``n_link = 1 + exp(L) <= n``: the
  probabilities stay within the spec's bounds for ``n`` and tighten where the
  calibration labels never come as close to them (label noise, overlapping
  classes). One error among ``N`` saturated correct scores puts ``L`` near
  ``ln N``.

Parameters are fitted on standardised scores (the affine fit's unit).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._fitting import AffineFit, local_fit
from ._objective import MIN_CEILING, Layout, map_objective
from ._optimise import ACCEPTABLE_GRADIENT, gradient_tol, not_converged

#: The ``"auto"`` refinements need at least this many samples (the sum of the
#: weights) per parameter they fit: the matrix map ``K**2 + K``, the ceiling with
#: the affine map ``K + 1`` (three for two classes). On the quality benchmark
#: the matrix map won where it had this many (5 classes, 1 960 rows a fold) and
#: lost where it had fewer: wine and iris (12 parameters on 21 to 25 rows:
#: in-distribution log-loss 2.7 times the best scikit-learn method's against
#: 1.4) and digits (110 on 176 to 251 rows: the flag caught 26 % of the
#: main job's in-distribution errors against 68 %).
AUTO_ROWS_PER_PARAMETER = 10


class Refined(NamedTuple):
    """The refined map: ``theta`` on standardised scores in ``layout``."""

    theta: np.ndarray
    layout: Layout
    n_iter: int


def refinement_layout(spec, *, rows: float) -> Layout | None:
    """The :class:`~._objective.Layout` of the refinement that ``spec``'s
    ``score_map`` and ``fit_ceiling`` ask for on ``rows`` samples (the
    weights' sum), or ``None`` when the affine fit is the answer."""
    link, form, k, n = spec.link, spec.multiclass, spec.n_classes, spec.n

    def enough(n_params):
        return rows >= AUTO_ROWS_PER_PARAMETER * n_params

    # at n = 2 (L = 0) the link is uniform: no ceiling left to fit
    has_ceiling = (
        link == "gaussian"
        and (k == 2 or form == "vs_top")
        and math.log(n - 1) > MIN_CEILING
    )
    if spec.fit_ceiling is True and not has_ceiling:
        raise ValueError(
            "fit_ceiling=True needs the gaussian link with two classes or "
            f"multiclass='vs_top' (its ceiling L = ln(n - 1) is what is fitted); "
            f"got link={link!r}, multiclass={form!r} with {k} classes. "
            "Use fit_ceiling='auto' or False."
        )
    ceiling = has_ceiling and (
        spec.fit_ceiling is True or (spec.fit_ceiling == "auto" and enough(k + 1))
    )
    score_map = spec.score_map
    if score_map == "auto":
        score_map = "matrix" if link != "softmax" and enough(k * k + k) else "affine"
    matrix = score_map == "matrix" and k > 2
    if not (matrix or ceiling):
        return None
    return Layout(
        k,
        matrix=matrix,
        fit_intercept=spec.fit_intercept,
        ceiling=ceiling,
        n=n,
        penalty=spec.matrix_penalty,
    )


def refine(source, spec, layout: Layout, affine: AffineFit, clip_range):
    """Minimise the data term plus the ridge within the box, from the affine
    fit; ``clip_range`` is the matrix's, in the scores' units."""
    theta = layout.start(affine.theta[0], affine.intercept)
    evaluate = map_objective(source, spec, layout, affine.unit, spec.total, clip_range)
    if _ceiling_held(evaluate, theta, layout):
        # the affine fit with the ceiling at ln(n - 1) is already the optimum
        return Refined(theta, layout, 0)
    fit = local_fit(evaluate, theta, layout, gradient_tol(spec.dtype))
    if fit.problem is not None:
        not_converged(fit.problem, fit.value)
    return Refined(fit.theta, layout, fit.n_iter)


def _ceiling_held(evaluate, theta, layout: Layout) -> bool:
    """Whether the refinement would end where it starts: a ceiling-only
    refinement whose start (the affine optimum, ``L = ln(n - 1)``) has a
    gradient in ``L`` pointing out of the box and none to speak of in the
    affine parameters (their fit's own optimality). Spares L-BFGS a line
    search that finds nothing (the ``vs_top`` loss's kinks make it take a
    dozen passes over the data)."""
    if layout.matrix or not layout.ceiling or theta[-1] < layout.big_l_max:
        return False
    grad = evaluate(theta)[1]
    return bool(grad[-1] < 0.0 and np.max(np.abs(grad[:-1])) <= ACCEPTABLE_GRADIENT)

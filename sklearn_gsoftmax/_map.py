"""The calibration map: scores to probabilities, and its fit on a source.

:class:`CalibrationMap` applies a fitted map (``u = a z + b`` or ``W z + b``,
then the link of ``n_link``) to validated scores; :func:`fit_map` fits one on
the rows of a ``_source.Source``: the affine fit (``_fitting``), then the
refinements that ``score_map`` and ``fit_ceiling`` ask for (``_refine``).
:func:`held_out_predictions` refits copies of a fitted map on parts of its
rows, each one local fit from the map's end point (no search).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold

from ._fitting import AffineFit, fit_affine, local_fit, offsets_screened_out
from ._links import link_proba, top_two
from ._objective import (
    Layout,
    affine_scores,
    finite_bounds,
    map_objective,
    matrix_scores,
    settled,
)
from ._optimise import damped_newton, gradient_tol, with_difference_hessian
from ._refine import Refined, refine, refinement_layout
from ._source import ArraySource, merge_ranges
from ._ties import below


class MapSpec(NamedTuple):
    """What a fit of the map needs to know besides the rows."""

    n_classes: int
    link: str
    multiclass: str
    fit_intercept: bool | str
    score_map: str
    matrix_penalty: float
    fit_ceiling: bool | str
    n: float  # the link's sample count
    total: float  # the weights' sum
    dtype: np.dtype


class CalibrationMap(NamedTuple):
    """A fitted map, in the units of the scores."""

    link: str
    multiclass: str
    n_link: float
    scale: float
    coef: np.ndarray | None
    intercept: np.ndarray
    clip_range: np.ndarray | None

    @classmethod
    def of(cls, calibrator) -> CalibrationMap:
        """The map a fitted ``GaussianSoftmaxCalibrator`` holds."""
        return cls(
            calibrator.link,
            calibrator.multiclass,
            calibrator.n_link_,
            calibrator.scale_,
            calibrator.coef_,
            calibrator.intercept_,
            calibrator.clip_range_,
        )

    def mapped(self, z: np.ndarray) -> np.ndarray:
        """The link's logits of validated scores: ``W z + b`` or ``a z + b``."""
        if self.coef is not None:
            low, high = self.clip_range.astype(z.dtype)
            return matrix_scores(z, np.clip(z, low, high), self.coef, self.intercept)
        # Python floats and a cast intercept keep float32 scores float32 (a
        # numpy float64 scalar would promote them).
        scale = float(self.scale)
        if z.ndim == 1:
            return affine_scores(z, scale, float(self.intercept[1]))
        return affine_scores(z, scale, self.intercept)

    def proba(self, z: np.ndarray, *, log: bool = False) -> np.ndarray:
        """Probabilities (or their logs) of validated scores."""
        return link_proba(
            self.mapped(z), self.n_link, self.link, self.multiclass, log=log
        )

    def margin(self, z: np.ndarray) -> np.ndarray:
        """The calibrated score margin: the top class's mapped score minus the
        runner-up's (for binary scores, ``|a s + b|``)."""
        return margin_of(self.mapped(z))


def margin_of(mapped: np.ndarray) -> np.ndarray:
    """The top class's mapped score minus the runner-up's, in float64; an
    infinite margin where huge scores give one (it still ranks), 0 where the
    top two tie at a bound (``inf - inf``)."""
    if mapped.ndim == 1:
        margin = np.abs(mapped)
    else:
        top, runner_up = top_two(mapped)
        with np.errstate(invalid="ignore", over="ignore"):
            margin = top - runner_up
    margin = np.nan_to_num(margin, nan=0.0, posinf=np.inf, neginf=-np.inf)
    return margin.astype(np.float64, copy=False)


class MapFit(NamedTuple):
    """A fitted map with what a later fit may start from."""

    map: CalibrationMap
    affine: AffineFit
    refined: Refined | None
    n_iter: int


def clip_range_of(source) -> np.ndarray:
    """The range the matrix's cross terms are clipped to: each column's
    smallest and largest finite score among the rows of positive weight (a
    row of weight 0 is not in the fit, as if removed); 0 for a column without
    any."""

    def bounds(chunk):
        return finite_bounds(chunk.z[chunk.w > 0])

    return settled(source.map_reduce(bounds, merge_ranges))


def fit_map(source, spec: MapSpec, unit: float, rows) -> MapFit:
    """Fit the calibration map on the rows of ``source`` (see the module);
    ``unit``: their ``_fitting.score_unit``; ``rows``: their
    ``_fitting.SearchRows`` (whose extremes the unit's pass read)."""
    if spec.fit_intercept == "auto":
        affine, spec = _offsets_if_they_pay(source, spec, unit, rows)
    else:
        affine = fit_affine(source, spec, unit, rows=rows)
    layout = refinement_layout(spec, rows=spec.total)
    refined, clip_range = None, None
    if layout is not None:
        clip_range = clip_range_of(source) if layout.matrix else None
        refined = refine(source, spec, layout, affine, clip_range)
    n_iter = affine.n_iter + (0 if refined is None else refined.n_iter)
    return MapFit(_map_of(spec, affine, refined, clip_range), affine, refined, n_iter)


#: ``fit_intercept="auto"`` keeps the offsets of three or more classes when
#: they raise the log-likelihood of the calibration rows by more than this many
#: nats each (Akaike's criterion: an estimate of what they gain on new data).
#: Offsets that only fit noise cost accuracy: on a network's logits (an MLP on
#: digits, 449 calibration rows, six splits) the default with offsets was right
#: 96.9 % of the time against the network's own 97.4 %.
NATS_PER_OFFSET = 1.0


#: From this many classes on, ``fit_intercept="auto"`` fits the scale alone
#: first and screens what offsets could add (``_fitting.offsets_screened_out``)
#: before it fits them: many classes' offsets are most of a fit's cost (a
#: thousand of them: 47 of 60 passes over 50 000 logits, thrown away when they
#: do not pay), and their nearly diagonal Hessian makes the screen accurate.
#: The scale's own fit and search cost about what 40 classes' offsets do: from
#: 50 classes on, the screen halved the rows through the loss where the
#: offsets did not pay, and added 10 to 20 % where they did.
SCREEN_MIN_CLASSES = 50


def _offsets_if_they_pay(source, spec: MapSpec, unit: float, rows):
    """The affine fit with offsets, or the scale alone where the offsets do
    not pay (``NATS_PER_OFFSET``); binary margins always keep theirs (Platt's
    intercept). Returns the fit and the spec with the choice made."""
    with_offsets = spec._replace(fit_intercept=True)
    if spec.n_classes == 2:
        return fit_affine(source, with_offsets, unit, rows=rows), with_offsets
    scale_only = spec._replace(fit_intercept=False)
    needed = NATS_PER_OFFSET * (spec.n_classes - 1)
    if spec.n_classes >= SCREEN_MIN_CLASSES:
        plain = fit_affine(source, scale_only, unit, rows=rows)
        if offsets_screened_out(source, spec, plain, needed):
            return plain, scale_only
        affine = fit_affine(source, with_offsets, unit, rows=rows)
    else:
        affine = fit_affine(source, with_offsets, unit, rows=rows)
        # started from the fit with offsets (its search chose the basin): a
        # local fit of the scale alone, no second search
        layout = Layout(spec.n_classes, fit_intercept=False, n=spec.n)
        start = AffineFit(affine.theta[:1].copy(), layout, affine.unit, 0)
        plain = fit_affine(source, scale_only, unit, start=start)
    gain = _data_loss(plain) - _data_loss(affine)
    # a gain that ties with what the offsets must gain does not pay
    if below(needed, gain * spec.total):
        return affine, with_offsets
    return plain, scale_only


def _data_loss(fit: AffineFit) -> float:
    """The weighted mean negative log-likelihood of ``fit`` on its rows: its
    final loss less the prior (no pass over the data)."""
    return fit.loss - fit.layout.penalty_value_grad_hess(fit.theta)[0]


def _map_of(spec, affine: AffineFit, refined: Refined | None, clip_range):
    """The fitted map in the units of the scores."""
    if refined is None:
        return CalibrationMap(
            spec.link,
            spec.multiclass,
            spec.n,
            affine.scale,
            None,
            affine.intercept,
            None,
        )
    layout, theta, unit = refined.layout, refined.theta, affine.unit
    coef = None
    scale = float(theta[0]) / unit
    if layout.matrix:
        coef = theta[: layout.n_map].reshape(layout.k, layout.k) / unit
        scale = float(np.mean(np.diag(coef)))
    return CalibrationMap(
        spec.link,
        spec.multiclass,
        layout.n_link(theta),
        scale,
        coef,
        layout.intercept(theta),
        clip_range,
    )


#: A calibrator's own probabilities of its fitting rows stand for held-out ones
#: from this many rows (the sum of the weights) per fitted parameter on. Below,
#: they are optimistic: digits, 5 folds of 270 rows for 11 parameters, a mean
#: top-class probability of 0.975 against 0.946 on new data.
OWN_ROWS_PER_PARAMETER = 100

#: Folds of the held-out refits within a calibrator's rows.
INNER_FOLDS = 5

#: Iterations of a held-out refit, at most (Newton's converge in a handful;
#: the cap matters for L-BFGS). Started from the fit on all rows,
#: preconditioned, an L-BFGS refit moves most of the way in its first steps;
#: its last steps polish offsets of rare classes to digits no threshold or
#: conformal quantile sees: the capped refits' held-out probabilities differ
#: from the converged ones' by at most 9e-3 (absolute, over every row and
#: class; 200 classes of 15 rows), 6e-3
#: (digits' logistic scores, 600 rows) and 2e-5 (30 classes of 50 rows), with
#: the same coverage, at less than half the fit time.
REFIT_MAX_ITER = 10


def fitted_layout(fitted: MapFit):
    """The layout of the parameters ``fitted`` holds."""
    return fitted.refined.layout if fitted.refined is not None else fitted.affine.layout


def needs_held_out_refits(rows: float, fitted: MapFit) -> bool:
    """Whether a map fitted on ``rows`` samples (the weights' sum) needs
    held-out refits for its probabilities of those rows to stand for held-out
    ones: fewer than ``OWN_ROWS_PER_PARAMETER`` rows per fitted parameter,
    and enough rows to leave some out. The one rule of the calibrator, of
    ``ensemble=False`` and of every fold's pair."""
    layout = fitted_layout(fitted)
    return 2 * INNER_FOLDS * layout.k <= rows < OWN_ROWS_PER_PARAMETER * layout.size


#: Held-out copies of a map of logits with at most this many parameters (a
#: scale, a ceiling, an offset or two) are refitted by Newton's method with
#: the Hessian by finite differences (``len(theta) + 1`` passes a step, a
#: handful of steps, no optimiser's overhead); larger ones by L-BFGS, capped.
DIFFERENCE_NEWTON_MAX_PARAMETERS = 4


def held_out_predictions(z, y, w, keep, spec: MapSpec, fitted: MapFit, proba_of=None):
    """Each row's probabilities and margin from a copy of the map fitted on
    the other ``keep`` rows (5-fold), started from ``fitted`` (no search), in
    the same layout (:func:`_refits`). ``proba_of(z, map)`` gives the
    probabilities of scores under a map (by default the map's own; a pair
    missing classes spreads them over all)."""
    refit = _refits(spec, fitted)
    proba = margin = None
    for train, test in KFold(INNER_FOLDS, shuffle=True, random_state=0).split(z):
        train = train[keep[train]]
        source = ArraySource(z[train], y[train], w[train])
        with warnings.catch_warnings():
            # a class missing from the inner rows pushes its offset to the box
            warnings.simplefilter("ignore", ConvergenceWarning)
            fitted_map = refit(source, float(w[train].sum()))
        part = (proba_of or _own_proba)(z[test], fitted_map)
        if proba is None:
            proba = np.empty((len(z), part.shape[1]), dtype=part.dtype)
            margin = np.empty(len(z))
        proba[test], margin[test] = part, fitted_map.margin(z[test])
    return proba, margin


def _refits(spec: MapSpec, fitted: MapFit):
    """``refit(source, total)``: the map of ``fitted``'s layout minimising
    its objective on ``source`` (for the matrix, with the same anchor of the
    offsets' ridge), one local fit from ``fitted``'s end point: Newton's
    method (binary margins' exact Hessian, or a few parameters' by
    differences), else L-BFGS capped at ``REFIT_MAX_ITER`` iterations. A
    copy of nearly the same rows starts in the right basin: no search, and
    no affine fit of its own before the refinement."""
    layout = fitted_layout(fitted)
    refined = fitted.refined
    theta = (fitted.affine if refined is None else refined).theta
    unit = fitted.affine.unit
    tol = gradient_tol(spec.dtype)

    def refit(source, total):
        clip_range = clip_range_of(source) if layout.matrix else None
        evaluate = map_objective(source, spec, layout, unit, total, clip_range)
        if layout.k > 2 and layout.size <= DIFFERENCE_NEWTON_MAX_PARAMETERS:
            newton = with_difference_hessian(evaluate, layout.bounds)
            fit = damped_newton(
                newton, theta, layout.bounds, tol, REFIT_MAX_ITER, layout.max_steps
            )
        else:
            fit = local_fit(evaluate, theta, layout, tol, max_iter=REFIT_MAX_ITER)
        if refined is None:
            copy = AffineFit(fit.theta, layout, unit, fit.n_iter)
            return _map_of(spec, copy, None, None)
        copy = Refined(fit.theta, layout, fit.n_iter)
        return _map_of(spec, fitted.affine, copy, clip_range)

    return refit


def _own_proba(z, fitted_map: CalibrationMap) -> np.ndarray:
    return fitted_map.proba(z)

"""Local optimisers within a box: damped Newton and L-BFGS-B.

Both minimise an objective of a few parameters (a calibration map's) to a
gradient tolerance, hold a parameter at a bound whose gradient points out of
the box, and say in :class:`LocalFit.problem` why they stopped short; the
caller decides whether that is a warning (:func:`not_converged`) or an error.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning

#: Gradient tolerance of a fit on float64 data (the loss is a mean over rows,
#: of order 1): far below anything a probability shows.
GRADIENT_TOL = 1e-10

#: The gradient of a fit on float32 data carries float32 rounding: about 1e-7
#: of each row's term, so the tolerance stands above it.
GRADIENT_TOL_FLOAT32 = 1e-6

#: A stop with a gradient below this is taken as converged: optimisers may stop
#: on a failed line search in the flat far region of (nearly) separable scores,
#: where probabilities sit near their bounds and further steps change them
#: little. A larger gradient is reported.
ACCEPTABLE_GRADIENT = 1e-4

#: L-BFGS stops when an iteration lowers the loss by less than this share of
#: it: on float64 data, at rounding; on float32 data (whose probabilities
#: show changes of 1e-7 at best), once the loss changes by less than 1e-11:
#: the gaussian ``vs_top`` loss has kinks where a row's top class changes,
#: and many classes' last steps only hop between them.
LOSS_RTOL = 64 * np.finfo(float).eps
LOSS_RTOL_FLOAT32 = 1e-11

NEWTON_MAX_ITER = 100
LBFGS_MAX_ITER = 1000
# A Newton decrement below this share of the loss is at the loss's rounding
# level: the line search can no longer tell better from worse.
_POLISH_DECREMENT = 1e-10


class LocalFit(NamedTuple):
    """A local optimiser's end point. ``problem`` says why it stopped short of
    its tolerance, or is ``None``."""

    theta: np.ndarray
    value: float
    n_iter: int
    problem: str | None = None


def gradient_tol(dtype) -> float:
    """The gradient tolerance of a fit on scores of ``dtype``."""
    return GRADIENT_TOL_FLOAT32 if np.dtype(dtype) == np.float32 else GRADIENT_TOL


def _held(theta, grad, low, high) -> np.ndarray:
    """Parameters at a bound whose gradient points out of the box."""
    return ((theta <= low) & (grad > 0)) | ((theta >= high) & (grad < 0))


def damped_newton(
    evaluate, theta, bounds, tol=GRADIENT_TOL, max_iter=NEWTON_MAX_ITER, max_step=None
) -> LocalFit:
    """Minimise within a box with projected Newton steps, a backtracking line
    search and a shifted Hessian where it is not positive definite (the
    saturating links' loss is not convex far from the optimum).

    ``evaluate(theta)`` returns ``(value, gradient, Hessian)``. A parameter
    at a bound whose gradient points out of the box is held there; the Newton
    step is solved for the others. ``max_iter`` caps the steps (a warm
    start's few: a fit that stops short says so in ``problem``);
    ``max_step``, per parameter, shortens a step that would move one further
    (a trust region for parameters whose loss can be nearly flat, as a
    ceiling's far above the margins: there the Newton step overshot by orders
    of magnitude and the line search halved it ten times over).
    """
    low, high = np.array(bounds, dtype=float).T
    theta = np.clip(theta, low, high)
    value, grad, hess = evaluate(theta)
    for n_iter in range(1, max_iter + 1):
        free = ~_held(theta, grad, low, high)
        if not free.any() or np.max(np.abs(grad[free])) <= tol:
            return LocalFit(theta, value, n_iter - 1)
        step = np.zeros_like(theta)
        hess_free = positive_definite(hess[np.ix_(free, free)])
        step[free] = -np.linalg.solve(hess_free, grad[free])
        if max_step is not None:
            step *= min(1.0, float(np.min(max_step / np.maximum(np.abs(step), 1e-300))))
        slope = grad @ step
        if -slope <= _POLISH_DECREMENT * abs(value):
            # The predicted decrease is at the rounding level of the loss, so a
            # line search cannot tell better from worse: take the Newton step,
            # which in this quadratic region lands on the optimum. The loss
            # reported is the one before the step: equal to rounding level.
            return LocalFit(np.clip(theta + step, low, high), value, n_iter)
        t = 1.0
        while True:
            candidate = np.clip(theta + t * step, low, high)
            new = evaluate(candidate)
            if new[0] <= value + 1e-4 * (grad @ (candidate - theta)):
                break
            t *= 0.5
            if t < 1e-10:
                # No decrease along a descent direction: the loss is flat to
                # machine precision here, which is the optimum we can reach.
                return LocalFit(theta, value, n_iter)
        theta = candidate
        value, grad, hess = new
    if np.max(np.abs(grad[~_held(theta, grad, low, high)]), initial=0.0) <= (
        ACCEPTABLE_GRADIENT
    ):
        # crept along the flat far region of separable scores: as converged
        # as it will get
        return LocalFit(theta, value, max_iter)
    return LocalFit(
        theta,
        value,
        max_iter,
        f"Newton iterations stopped after {max_iter} steps with gradient "
        f"{np.max(np.abs(grad)):.3g}",
    )


def positive_definite(hess: np.ndarray) -> np.ndarray:
    """``hess`` shifted by a multiple of the identity where it is not
    positive definite."""
    eigenvalues = np.linalg.eigvalsh(hess)
    floor = 1e-8 * max(1.0, abs(eigenvalues[-1]))
    if eigenvalues[0] >= floor:
        return hess
    return hess + (floor - eigenvalues[0]) * np.eye(hess.shape[0])


def projected_gradient(x, jac, bounds) -> float:
    """Largest gradient entry that a step could still follow: at a bound, a
    slope pointing out of the box is the optimum, not a failure (at a = 0 the
    scores carry no information)."""
    low, high = np.array(bounds, dtype=float).T
    return float(np.max(np.abs(np.where(_held(x, jac, low, high), 0.0, jac))))


def lbfgs(
    loss_grad, theta, bounds, tol=GRADIENT_TOL, scaling=None, max_iter=None
) -> LocalFit:
    """L-BFGS-B within a box, restarted once where its line search fails.

    ``max_iter`` caps the iterations (``LBFGS_MAX_ITER`` by default); a capped
    fit that stops short says so in :attr:`LocalFit.problem`.

    ``scaling``, positive per parameter (about the square root of the
    Hessian's diagonal), makes the problem L-BFGS sees better conditioned:
    it runs on ``x = scaling * theta``. The tolerance applies to the gradient
    in ``theta``.
    """
    scaling = np.ones(len(theta)) if scaling is None else np.asarray(scaling)
    low, high = np.array(bounds, dtype=float).T
    scaled_bounds = list(zip(low * scaling, high * scaling))
    start = np.clip(theta, low, high)
    x = start * scaling
    x_start = x.tobytes()

    def unscaled(x):
        # (start * scaling) / scaling is not always start to the bit, and an
        # objective may have kept its value at start (``_objective``'s values);
        # bytes compare in a fraction of np.array_equal's time
        return start if x.tobytes() == x_start else x / scaling

    def scaled(x):
        value, grad = loss_grad(unscaled(x))
        return value, grad / scaling

    # a capped fit is a warm start's few steps: no restart
    for _attempt in range(1 if max_iter is not None else 2):
        result = minimize(
            scaled,
            x,
            method="L-BFGS-B",
            jac=True,
            bounds=scaled_bounds,
            options={
                "maxiter": LBFGS_MAX_ITER if max_iter is None else max_iter,
                "gtol": tol * float(np.min(1.0 / scaling)),
                "ftol": LOSS_RTOL if tol <= GRADIENT_TOL else LOSS_RTOL_FLOAT32,
            },
        )
        theta_end = unscaled(result.x)
        # scipy reports no gradient nor nit when every parameter is fixed by
        # its bounds: nothing left to move
        grad_end = getattr(result, "jac", np.zeros_like(x)) * scaling
        projected = projected_gradient(theta_end, grad_end, bounds)
        n_iter = int(getattr(result, "nit", 0))
        if result.success or projected <= ACCEPTABLE_GRADIENT:
            return LocalFit(theta_end, float(result.fun), n_iter)
        # A failed line search (typical of the flat far region of separable
        # scores) often clears when L-BFGS restarts from where it stopped.
        x = result.x
    return LocalFit(
        theta_end,
        float(result.fun),
        n_iter,
        f"L-BFGS stopped: {result.message} (projected gradient {projected:.3g})",
    )


def difference_hessian(loss_grad, theta, bounds, step=1e-6, grad=None) -> np.ndarray:
    """The Hessian of ``loss_grad`` (``theta -> (value, gradient)``) at
    ``theta`` by forward differences of its gradient (backward where the
    forward step would leave the box), symmetrised: one evaluation per
    parameter (and one for ``grad``, the gradient at ``theta``, unless
    given). For a few parameters whose analytic Hessian is not at hand
    (logits' fits); ``step`` is relative to each parameter's size."""
    theta = np.asarray(theta, dtype=float)
    high = np.array(bounds, dtype=float)[:, 1]
    grad = loss_grad(theta)[1] if grad is None else grad
    hess = np.empty((len(theta), len(theta)))
    for j in range(len(theta)):
        h = step * max(1.0, abs(theta[j]))
        if theta[j] + h > high[j]:
            h = -h
        shifted = theta.copy()
        shifted[j] += h
        hess[:, j] = (loss_grad(shifted)[1] - grad) / h
    return 0.5 * (hess + hess.T)


def with_difference_hessian(loss_grad, bounds):
    """``evaluate(theta) -> (value, gradient, Hessian)`` of ``loss_grad``, its
    Hessian by :func:`difference_hessian`: :func:`damped_newton` for a few
    parameters without an analytic Hessian (``len(theta) + 1`` evaluations a
    step, no optimiser's overhead)."""

    def evaluate(theta):
        value, grad = loss_grad(theta)
        return value, grad, difference_hessian(loss_grad, theta, bounds, grad=grad)

    return evaluate


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

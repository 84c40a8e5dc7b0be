"""Validation of the arguments shared by the links and the estimators.

Every public entry point funnels its scores and sample count through here, so that
the same bad input gets the same message wherever it is passed.
"""

from __future__ import annotations

import math
import numbers
import sys
import warnings

import numpy as np
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight

MULTICLASS_FORMS = ("vs_top", "simplex")


def check_scores(scores, *, name: str = "scores") -> np.ndarray:
    """Return ``scores`` as a float array of shape ``(m,)`` or ``(m, K)``.

    A 2-D array with a single column is flattened to ``(m,)``: both mean binary
    decision scores. float32 is kept; every other real dtype becomes float64.
    ``+inf`` and ``-inf`` are valid (an infinite score is a bound); NaN is not.
    """
    if isinstance(scores, np.ndarray):
        array = scores
    else:
        # pandas objects, lists and other array-likes all go through asarray;
        # a ragged list is an error we want numpy to report, not an object array.
        try:
            array = np.asarray(scores)
        except ValueError as exc:
            raise ValueError(
                f"{name} must be a rectangular array-like of numbers; numpy could "
                f"not convert it: {exc}"
            ) from None
    reject_none(array, name)
    if array.dtype.kind in "USO":
        try:
            array = array.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} must hold numbers, got dtype {array.dtype} with "
                "non-numeric entries (strings or None?); convert them to floats "
                "first."
            ) from None
    elif array.dtype.kind == "c":
        raise TypeError(f"{name} must be real numbers, got complex dtype.")
    elif array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be numeric, got dtype {array.dtype}.")
    if array.dtype != np.float32:
        array = array.astype(np.float64, copy=False)

    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim not in (1, 2):
        raise ValueError(
            f"{name} must be 1-D binary decision scores of shape (m,) or a 2-D "
            f"array of logits of shape (m, K); got {array.ndim} dimensions with "
            f"shape {array.shape}."
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name} is empty: it has 0 rows; pass at least one row.")
    if array.ndim == 2 and array.shape[1] == 0:
        raise ValueError(f"{name} has 0 columns; pass one column per class.")
    nan_mask = np.isnan(array)
    if nan_mask.any():
        row = int(
            np.flatnonzero(nan_mask.any(axis=1) if array.ndim == 2 else nan_mask)[0]
        )
        raise ValueError(
            f"{name} contain NaN (first at row {row}). A NaN score has no "
            "probability; remove or impute those rows. Infinite scores are "
            "accepted."
        )
    return array


def reject_none(array: np.ndarray, name: str) -> None:
    """Refuse ``None`` in an object array: converted to float it would become
    NaN and be reported as such, hiding where it came from."""
    if array.dtype.kind == "O" and any(v is None for v in array.flat):
        raise TypeError(
            f"{name} contain None; every score must be a number. Remove those rows "
            "or fill them in."
        )


def n_classes_of(scores: np.ndarray) -> int:
    """Number of classes that validated ``scores`` describe."""
    return 2 if scores.ndim == 1 else scores.shape[1]


def check_n_samples(n_samples, *, n_classes: int, link: str) -> int:
    """Validate a user-given sample count and return it as a Python int.

    ``n_samples`` must be an integer of at least 2, and at least ``n_classes``
    for the linear link (below that its shrinkage factor ``1 - K/n`` is negative).
    """
    if isinstance(n_samples, bool | np.bool_) or not isinstance(
        n_samples, numbers.Integral
    ):
        raise ValueError(
            "n_samples must be an integer (the number of training samples), got "
            f"{n_samples!r} of type {type(n_samples).__name__}."
        )
    n_samples = int(n_samples)
    check_real_n(n_samples, n_classes=n_classes, link=link, name="n_samples")
    return n_samples


def check_real_n(n, *, n_classes: int, link: str, name: str) -> float:
    """Check a (possibly non-integer) sample count against the link's minimum
    and the float range (the links compute ``1/n`` and ``ln(n - 1)``)."""
    if n > sys.float_info.max:
        raise ValueError(
            f"{name} is too large: it exceeds the float64 range (1.8e308); no training "
            "set is that big. Pass the number of samples the model was trained on."
        )
    minimum = n_classes if link == "linear" else 2
    if not n >= minimum or (isinstance(n, float) and not math.isfinite(n)):
        why = (
            f"the linear link needs n >= K = {n_classes}"
            if link == "linear"
            else "the links need n >= 2"
        )
        raise ValueError(
            f"{name} must be at least {minimum} ({why}); got {n}. Pass the number "
            "of samples the model was trained on."
        )
    return n


def check_multiclass(multiclass) -> str:
    """Validate the name of the multiclass form of the gaussian link."""
    if multiclass not in MULTICLASS_FORMS:
        raise ValueError(
            f"multiclass must be one of {MULTICLASS_FORMS}, got {multiclass!r}."
        )
    return multiclass


def check_class_indices(y, n_rows: int, n_classes: int) -> np.ndarray:
    """Validate integer class indices ``y`` in ``[0, n_classes)``, one per row."""
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n_rows:
        raise ValueError(
            f"y must be a 1-D array of {n_rows} class indices (one per row of "
            f"scores), got shape {y.shape}."
        )
    if y.dtype.kind not in "iu":
        if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
            y = y.astype(np.intp)
        else:
            raise ValueError(
                f"y must hold integer class indices in [0, {n_classes}), got dtype "
                f"{y.dtype}."
            )
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(
            f"y must hold class indices in [0, {n_classes}); got values from "
            f"{y.min()} to {y.max()}."
        )
    return y.astype(np.intp, copy=False)


def distinct_labels(y) -> np.ndarray:
    """The sorted distinct labels of ``y``; a clear error for labels of types
    that cannot be sorted together (strings and numbers)."""
    try:
        return np.unique(y)
    except TypeError:
        kinds = sorted({type(label).__name__ for label in np.asarray(y).ravel()})
        raise ValueError(
            f"y mixes labels of different types ({', '.join(kinds)}), which cannot "
            "be sorted into classes; convert them to one type first (e.g. all to "
            "str)."
        ) from None


def class_labels(y, n_rows: int | None = None) -> np.ndarray:
    """The sorted distinct labels of ``y`` (of ``n_rows`` labels in all, when
    ``y`` holds the distinct labels of a larger array), checked to be classes.

    The target type is a property of the distinct labels, so they are checked
    instead of ``y`` (a pass over 10^6 labels saved), without the warning
    about many classes that the distinct labels alone would set off: it is
    given as it would be for ``y``.
    """
    classes = distinct_labels(y)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The number of unique classes")
        check_classification_targets(classes)
    n_rows = len(y) if n_rows is None else n_rows
    if len(classes) > 20 and len(classes) > 0.5 * n_rows:
        # type_of_target's heuristic for a regression target, on y itself
        warnings.warn(
            "The number of unique classes is greater than 50% of the number of "
            "samples. `y` could represent a regression problem, not a "
            "classification problem.",
            UserWarning,
            stacklevel=3,
        )
    return classes


def sample_count(weight_total, n_rows: int, n_samples, *, n_classes: int, link: str):
    """The ``n`` the links are built on: ``n_samples`` if given, else the sum of
    the sample weights ``weight_total`` (the number of rows without weights,
    ``None``).

    Weights are read as frequency weights: a weight of 3 stands for three copies of
    a row, which is what scikit-learn's weighted fits assume too; so the count is
    their sum, and fitting with integer weights equals fitting on repeated rows.
    """
    if n_samples is not None:
        return check_real_n(n_samples, n_classes=n_classes, link=link, name="n_samples")
    if weight_total is None:
        n = float(n_rows)
        name = "the number of samples"
    else:
        n = float(weight_total)
        name = (
            "the sum of sample_weight (weights are read as frequency weights, so "
            "they count samples; set n_samples to override)"
        )
    return check_real_n(n, n_classes=n_classes, link=link, name=name)


def check_weights(sample_weight, z) -> np.ndarray:
    """Validated float64 frequency weights (ones when ``None``)."""
    weights = _check_sample_weight(sample_weight, z, dtype=np.float64)
    if sample_weight is not None and (weights < 0).any():
        raise ValueError("sample_weight must be non-negative.")
    if sample_weight is not None and not np.any(weights > 0):
        raise ValueError(
            "sample_weight are all zero; at least one weight must be positive."
        )
    return weights

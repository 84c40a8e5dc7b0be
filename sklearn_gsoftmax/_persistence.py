"""Saving and loading fitted models: a version stamp and clear load errors.

Pickle, joblib and skops all restore an estimator through ``__setstate__``. The
state carries the library version and a layout number; a model whose state this
version cannot use fails on load with a message naming both versions, instead of
an ``AttributeError`` at the first prediction.
"""

from __future__ import annotations

from inspect import Parameter, signature

from ._version import __version__

#: The layout of the fitted state. Bump it when a release renames, removes or
#: changes the meaning of a fitted attribute, and teach ``__setstate__`` to
#: upgrade the older layouts it can.
STATE_FORMAT = 2

#: Format 2 added the matrix score map and the fitted ceiling, on by default:
#: a model of format 1 was fitted with neither, so on load it keeps the
#: affine map and the ceiling of ``n_samples_`` (parameters and attributes).
_BEFORE_MAP_OPTIONS = {"score_map": "affine", "fit_ceiling": False}

#: The library's own types inside a fitted model: with ``skops.io``, these (and
#: only these, next to scikit-learn's and numpy's, which skops trusts already)
#: are what a user must pass as ``trusted`` to load a model, e.g.
#: ``skops.io.load(path, trusted=TRUSTED_TYPES)``. Check a file from a source you
#: do not trust with ``skops.io.get_untrusted_types`` first: a wrapped estimator
#: of another library brings its own types.
TRUSTED_TYPES = [
    "sklearn_gsoftmax._calibrator.GaussianSoftmaxCalibrator",
    "sklearn_gsoftmax._classifier.GaussianSoftmaxClassifier",
    "sklearn_gsoftmax._pairs.CalibratedPair",
    # where it was before 0.3, in the models saved then
    "sklearn_gsoftmax._classifier._CalibratedPair",
    "sklearn_gsoftmax._conformal.ConformalReference",
    # where it was before 0.3, in the models saved then
    "sklearn_gsoftmax._uncertainty.ConformalReference",
    "sklearn_gsoftmax._novelty.KNeighborsNovelty",
    "sklearn_gsoftmax._novelty.NoveltyModel",
]


class VersionedStateMixin:
    """Stamp the pickled state with the library version and check it on load.

    Subclasses list in ``_required_fitted_attributes`` what a fitted model must
    carry for this version to predict with it.
    """

    _required_fitted_attributes: tuple = ()

    @staticmethod
    def _upgrade_to_map_options(state: dict) -> None:
        """Fill in the fitted attributes of format 2 in a fitted state of
        format 1 (nothing to do by default)."""

    def __getstate__(self):
        # a copy: object.__getstate__ may hand back the live __dict__
        state = dict(super().__getstate__())
        state["_gsoftmax_version"] = __version__
        state["_gsoftmax_state_format"] = STATE_FORMAT
        return state

    def __setstate__(self, state):
        state = dict(state)
        saved_by = state.pop("_gsoftmax_version", "an unknown older version")
        state_format = state.pop("_gsoftmax_state_format", 0)
        name = type(self).__name__
        if state_format > STATE_FORMAT:
            raise ValueError(
                f"This {name} was saved by sklearn-gsoftmax {saved_by} (state "
                f"format {state_format}); this is {__version__}, which reads "
                f"formats up to {STATE_FORMAT}. Upgrade sklearn-gsoftmax to load it, "
                "or refit the model."
            )
        # Only an older layout is checked: a state of the current format comes
        # from this version, possibly mid-fit (deep copies while routing).
        fitted = "classes_" in state and state_format < STATE_FORMAT
        if state_format < 2:
            for option, value in _BEFORE_MAP_OPTIONS.items():
                state.setdefault(option, value)
            if fitted:
                self._upgrade_to_map_options(state)
        missing = [a for a in self._required_fitted_attributes if a not in state]
        if fitted and missing:
            raise ValueError(
                f"This {name} was saved by sklearn-gsoftmax {saved_by} and lacks "
                f"the fitted attributes {missing} that version {__version__} needs. "
                "Refit the model with this version (or load it with the version "
                "that saved it)."
            )
        # Parameters added since the model was saved take their defaults, the
        # behaviour of the version that saved it.
        for name, parameter in signature(type(self).__init__).parameters.items():
            if parameter.default is not Parameter.empty:
                state.setdefault(name, parameter.default)
        super().__setstate__(state)

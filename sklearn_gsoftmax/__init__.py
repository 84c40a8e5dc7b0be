"""Calibrated class probabilities bounded by the training sample count."""

# registers the Dask handler of lazy collections (dask itself is imported late)
from . import _dask  # noqa: F401
from ._calibrator import GaussianSoftmaxCalibrator
from ._classifier import GaussianSoftmaxClassifier
from ._links import (
    gaussian_softmax,
    gaussian_softmax_nll_grad,
    linear_softmax,
    linear_softmax_nll_grad,
)
from ._persistence import TRUSTED_TYPES
from ._version import __version__

__all__ = [
    "TRUSTED_TYPES",
    "GaussianSoftmaxCalibrator",
    "GaussianSoftmaxClassifier",
    "__version__",
    "gaussian_softmax",
    "gaussian_softmax_nll_grad",
    "linear_softmax",
    "linear_softmax_nll_grad",
]

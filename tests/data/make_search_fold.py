"""Regenerate ``search_fold.npz``: the held-out decision scores of
``benchmarks/bench_flags.py``'s third calibration fold of digits with a
LinearSVC (``GaussianSoftmaxClassifier``'s default ``cv=5`` and rules), on
which a search fit resumed from its probe missed the lower basin.

    python tests/data/make_search_fold.py
"""

import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "benchmarks"))

from _scenarios import MODELS, training_sets  # noqa: E402

from sklearn_gsoftmax import GaussianSoftmaxClassifier, _pairs  # noqa: E402
from sklearn_gsoftmax._uncertainty import RULES  # noqa: E402


def main() -> None:
    warnings.simplefilter("ignore")
    fit_map = _pairs.fit_calibration_map
    folds = []

    def recording(calibrator, source, classes, n, summary=None):
        folds.append((source.chunk.z.copy(), source.chunk.y.copy(), n))
        return fit_map(calibrator, source, classes, n, summary)

    _pairs.fit_calibration_map = recording
    _, _, X, y, _ = next(training_sets(["digits"], ["linear_svc"]))
    GaussianSoftmaxClassifier(MODELS["linear_svc"](), uncertainty_rules=RULES).fit(X, y)
    z, labels, n = folds[2]
    np.savez_compressed(HERE / "search_fold.npz", scores=z, y=labels, n_samples=n)


if __name__ == "__main__":
    main()

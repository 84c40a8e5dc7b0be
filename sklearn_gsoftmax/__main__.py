"""Command line: ``sklearn-gsoftmax`` (the console script) or ``python -m
sklearn_gsoftmax``.

With a command (``fit``, ``predict``, ``report``, ``info``) it calibrates score
files exported from any model; ``demo`` fits a logistic regression on one region
of a bundled dataset, calibrated by scikit-learn's CalibratedClassifierCV
(sigmoid, isotonic, temperature) and wrapped by GaussianSoftmaxClassifier (linear
and gaussian links), and prints log-loss, Brier score, the largest single-sample
loss, the smallest probability and what the uncertain flag catches, on an
in-distribution test set and on a shifted one. See ``_cli.py``.

The two differ without a command only. ``python -m sklearn_gsoftmax`` runs the
demo, the project's main job (the README's quickstart), and takes the demo's
options (``python -m sklearn_gsoftmax --dataset wine``); the console script
prints its help, which lists the commands.
"""

from __future__ import annotations

import sys


def _main(argv=None, *, demo_by_default: bool = False) -> int:
    """The console script's entry point; ``python -m`` passes ``demo_by_default``."""
    from ._cli import main

    return main(argv, demo_by_default=demo_by_default)


if __name__ == "__main__":
    sys.exit(_main(demo_by_default=True))

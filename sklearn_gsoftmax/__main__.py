"""Command line: ``python -m sklearn_gsoftmax`` (or ``sklearn-gsoftmax``).

With a command (``fit``, ``predict``, ``report``, ``info``) it calibrates score
files exported from any model; see ``_cli.py``. Without one it runs the demo: it
fits a logistic regression on one region of a bundled dataset, calibrated by
scikit-learn's CalibratedClassifierCV (sigmoid, isotonic, temperature) and wrapped
by GaussianSoftmaxClassifier (linear and gaussian links), and prints log-loss,
Brier score, the largest single-sample loss, the smallest probability and what
the uncertain flag catches, on an in-distribution test set and on a shifted one.
"""

from __future__ import annotations

import sys


def _main(argv=None) -> int:
    import argparse

    from ._cli import COMMANDS

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in COMMANDS:
        from ._cli import main

        return main(argv)

    from ._demo import DATASETS

    parser = argparse.ArgumentParser(
        prog="python -m sklearn_gsoftmax",
        description=(
            "Compare CalibratedClassifierCV and GaussianSoftmaxClassifier on a "
            "logistic regression, in-distribution and on shifted data."
        ),
        epilog=(
            f"On score files exported from any model: {', '.join(COMMANDS)} "
            "(python -m sklearn_gsoftmax COMMAND --help)."
        ),
    )
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the split")
    parser.add_argument(
        "--shifted-fraction",
        type=float,
        default=0.3,
        help="share of the samples, furthest along the first principal component, "
        "held out as the shifted test set (default 0.3)",
    )
    args = parser.parse_args(argv)
    if not 0.0 < args.shifted_fraction < 1.0:
        parser.error("--shifted-fraction must lie in (0, 1)")

    import pandas as pd

    from ._demo import ShiftedSplit, compare_models, shift_verdicts

    split = ShiftedSplit(
        args.dataset, shifted_fraction=args.shifted_fraction, seed=args.seed
    )
    table, models = compare_models(split)
    print(
        f"dataset {args.dataset}: {len(split.y_train)} training samples, "
        f"{len(split.y_test)} in-distribution test, {len(split.y_shifted)} shifted"
    )
    titles = {"test": "in-distribution test set", "shifted": "shifted test set"}
    with pd.option_context(
        "display.width",
        200,
        "display.max_columns",
        None,
        "display.float_format",
        "{:.4g}".format,
    ):
        for part, title in titles.items():
            print(f"\n{title}:")
            print(table[part])
    print(
        "\nflagged: share of predictions GaussianSoftmaxClassifier's uncertain flag "
        "(default rules: low_confidence, threshold chosen for 95% accuracy on "
        "held-out training predictions, and novelty, at most about 5% of "
        "in-distribution samples) routes to review;\nerrors_flagged: share of its "
        "errors that the flag caught."
    )
    gaussian = "gsoftmax gaussian"
    caught = table.loc[gaussian, ("shifted", "errors_flagged")]
    print(
        f"\nOn the shifted set the default flag of {gaussian} catches "
        f"{caught:.0%} of its errors."
    )
    print(f"\nshift_report of {gaussian} (each batch without labels):")
    with pd.option_context(
        "display.width", 200, "display.max_colwidth", 80, "display.max_columns", None
    ):
        print(shift_verdicts(models[gaussian], split))
    return 0


if __name__ == "__main__":
    sys.exit(_main())

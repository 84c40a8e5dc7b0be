"""The uncertain flag in- and out-of-distribution (issue 8's targets).

    python benchmarks/bench_flags.py [--datasets digits,wine] [--models logistic]

Every dataset x base model x scenario of ``_scenarios.py``: the model is wrapped
by GaussianSoftmaxClassifier (defaults, cv=5) with every rule on, so that each
rule's flags and the default flag (low_confidence or novelty) are read from one
fit; temperature scaling with the same automatic threshold (link="softmax",
fit_intercept=False, low_confidence only) stands next to it. For each it prints
coverage (share not flagged), the accuracy of the accepted predictions and the
error recall (share of the errors that are flagged), averaged over the cases,
then the targets: in-distribution coverage >= 0.77 with accepted accuracy >=
0.95 on average, and error recall >= 0.70 under each shift.
"""

import argparse
import warnings

import numpy as np
import pandas as pd
from _scenarios import DATASETS, MODELS, SCENARIOS, synthetic, training_sets

from sklearn_gsoftmax import GaussianSoftmaxClassifier
from sklearn_gsoftmax._uncertainty import DEFAULT_RULES, RULES


def flag_stats(flagged, errors):
    accepted = ~flagged
    return {
        "coverage": accepted.mean(),
        "accepted_accuracy": 1 - errors[accepted].mean() if accepted.any() else np.nan,
        "error_recall": (flagged & errors).sum() / errors.sum()
        if errors.any()
        else np.nan,
    }


def run_case(model_factory, X_train, y_train, tests):
    flagger = GaussianSoftmaxClassifier(model_factory(), uncertainty_rules=RULES).fit(
        X_train, y_train
    )
    temperature = GaussianSoftmaxClassifier(
        model_factory(),
        link="softmax",
        fit_intercept=False,
        uncertainty_rules=("low_confidence",),
    ).fit(X_train, y_train)
    rows = []
    for scenario, X_test, y_test in tests:
        frame = flagger.predict_frame(X_test)
        errors = frame["prediction"].to_numpy() != y_test
        reasons = frame["reasons"].str.split(", ")
        masks = {
            rule: reasons.apply(lambda r, rule=rule: rule in r).to_numpy()
            for rule in RULES
        }
        masks["default"] = np.any([masks[rule] for rule in DEFAULT_RULES], axis=0)
        temperature_errors = temperature.predict(X_test) != y_test
        for method, mask in masks.items():
            rows.append(
                {"scenario": scenario, "method": method} | flag_stats(mask, errors)
            )
        rows.append(
            {"scenario": scenario, "method": "temperature + auto threshold"}
            | flag_stats(temperature.predict_uncertain(X_test), temperature_errors)
        )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--csv", default="bench_flags.csv")
    parser.add_argument(
        "--clusters-per-class",
        type=int,
        default=1,
        help="clusters per class of the synthetic sets (2: harder for the "
        "linear models and naive Bayes)",
    )
    args = parser.parse_args(argv)
    for k in (2, 5):
        DATASETS[f"synthetic_{k}"] = synthetic(k, args.clusters_per_class)
    warnings.simplefilter("ignore")
    rows = []
    for dataset, model, X_train, y_train, tests in training_sets(
        args.datasets.split(","), args.models.split(",")
    ):
        case = {"dataset": dataset, "model": model}
        rows += [case | r for r in run_case(MODELS[model], X_train, y_train, tests)]
    table = pd.DataFrame(rows)
    table.to_csv(args.csv, index=False)
    summary = (
        table.groupby(["method", "scenario"])[
            ["coverage", "accepted_accuracy", "error_recall"]
        ]
        .mean()
        .unstack("scenario")
    )
    order = ["default", *RULES, "temperature + auto threshold"]
    with pd.option_context("display.width", 200, "display.max_columns", None):
        for column in ("coverage", "accepted_accuracy", "error_recall"):
            print(
                f"\n{column} (mean over {table.groupby(['dataset', 'model']).ngroups}"
                " cases):"
            )
            print(
                summary[column]
                .reindex(index=order, columns=list(SCENARIOS))
                .round(3)
                .to_string()
            )
    default = summary.loc["default"]
    print("\ntargets of the default flag:")
    checks = [
        ("in-dist coverage >= 0.77", default[("coverage", "in-dist")], 0.77),
        (
            "in-dist accepted accuracy >= 0.95",
            default[("accepted_accuracy", "in-dist")],
            0.95,
        ),
    ] + [
        (f"error recall under {s} >= 0.70", default[("error_recall", s)], 0.70)
        for s in SCENARIOS[1:]
    ]
    for label, value, limit in checks:
        print(f"  {label:40s} {value:.3f}  {'met' if value >= limit else 'MISSED'}")


if __name__ == "__main__":
    main()

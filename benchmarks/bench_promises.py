"""What fit promises holds on new data (issue 22's measurements).

    python benchmarks/bench_promises.py [--seeds 3] [--csv bench_promises.csv]

1. **The flag's coverage.** Each case is trained, fitted with the default rules
   and ``uncertainty_rules=("low_confidence",)``, and applied to a large test
   set from the same distribution: the share it accepts there against
   ``coverage_`` (the share of the held-out training predictions accepted),
   and the accuracy of the accepted predictions against ``target_accuracy``.
   Cases: digits (LogisticRegression, HistGradientBoosting), a 4-class
   synthetic set of 2 000 training rows (LogisticRegression, random forest,
   HistGradientBoosting) and breast cancer (binary; LogisticRegression,
   HistGradientBoosting), each with ``ensemble=True`` and ``False``, at targets
   0.95 and 0.99, over ``--seeds`` training splits.
2. **shift_report's false alarms.** Batches of 1 000 test rows of the synthetic
   set (and 200 of digits), in distribution, with and without labels, through
   the default model's ``shift_report(alpha=0.01)``: the share called shifted
   (promised: at most about 1 %).

Both sides run on one BLAS thread (the figures are not timings).
"""

import argparse
import warnings

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer, load_digits, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sklearn_gsoftmax import GaussianSoftmaxClassifier

MODELS = {
    "logistic": lambda: make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=3000)
    ),
    "hist_gb": lambda: HistGradientBoostingClassifier(random_state=0),
    "forest": lambda: RandomForestClassifier(100, random_state=0),
}
CASES = [
    ("digits", "logistic"),
    ("digits", "hist_gb"),
    ("synthetic_4", "logistic"),
    ("synthetic_4", "forest"),
    ("synthetic_4", "hist_gb"),
    ("breast_cancer", "logistic"),
    ("breast_cancer", "hist_gb"),
]
TARGETS = (0.95, 0.99)


def split(dataset: str, seed: int):
    """Training and test rows: a 2 000-row training set and 20 000 test rows
    of the synthetic set, half and half of the bundled ones."""
    if dataset == "synthetic_4":
        X, y = make_classification(
            n_samples=22_000,
            n_features=20,
            n_informative=8,
            n_classes=4,
            random_state=seed,
        )
        return train_test_split(X, y, train_size=2_000, random_state=seed, stratify=y)
    X, y = (load_digits if dataset == "digits" else load_breast_cancer)(return_X_y=True)
    return train_test_split(X, y, train_size=0.5, random_state=seed, stratify=y)


def coverage_row(model, X_test, y_test) -> dict:
    accepted = ~model.predict_uncertain(X_test)
    correct = model.predict(X_test) == y_test
    share = accepted.mean()
    return {
        "coverage_": model.coverage_,
        "test_accepted": share,
        # the sampling error of the difference: both shares are estimates
        "se": np.sqrt(share * (1 - share) / len(y_test)),
        "test_accuracy": correct[accepted].mean() if accepted.any() else np.nan,
        "n_accepted": int(accepted.sum()),
    }


def false_alarms(model, X_test, y_test, size: int) -> list:
    rows = []
    for start in range(0, len(y_test) - size + 1, size):
        batch = slice(start, start + size)
        for labels in (None, y_test[batch]):
            report = model.shift_report(X_test[batch], labels, alpha=0.01)
            rows.append(
                {
                    "labels": labels is not None,
                    "shifted": report.attrs["shifted"],
                    "fired": ", ".join(report.index[report["shifted"]]),
                }
            )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--csv", default="bench_promises.csv")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    coverage, alarms = [], []
    with threadpool_limits(1):
        for seed in range(args.seeds):
            for dataset, name in CASES:
                X_train, X_test, y_train, y_test = split(dataset, seed)
                for ensemble in (True, False):
                    for target in TARGETS:
                        model = GaussianSoftmaxClassifier(
                            MODELS[name](),
                            ensemble=ensemble,
                            target_accuracy=target,
                            uncertainty_rules=("low_confidence",),
                        ).fit(X_train, y_train)
                        case = {
                            "dataset": dataset,
                            "model": name,
                            "ensemble": ensemble,
                            "target": target,
                            "seed": seed,
                        }
                        coverage.append(case | coverage_row(model, X_test, y_test))
                if dataset == "breast_cancer":
                    continue
                model = GaussianSoftmaxClassifier(MODELS[name]()).fit(X_train, y_train)
                size = 1_000 if dataset == "synthetic_4" else 200
                alarms += [
                    {"dataset": dataset, "model": name, "seed": seed} | row
                    for row in false_alarms(model, X_test, y_test, size)
                ]
            print(f"seed {seed} done", flush=True)
    table = pd.DataFrame(coverage)
    table.to_csv(args.csv, index=False)
    table["difference"] = table["test_accepted"] - table["coverage_"]
    table["met"] = table["test_accuracy"] >= table["target"] - 2 * np.sqrt(
        table["target"] * (1 - table["target"]) / table["n_accepted"].clip(lower=1)
    )
    print("\n1. The flag's coverage on new data (mean over seeds):")
    summary = table.groupby(["dataset", "model", "ensemble", "target"]).agg(
        coverage_=("coverage_", "mean"),
        test_accepted=("test_accepted", "mean"),
        difference=("difference", "mean"),
        test_accuracy=("test_accuracy", "mean"),
        accuracy_met=("met", "mean"),
    )
    with pd.option_context("display.width", 200, "display.max_rows", None):
        print(summary.round(3).to_string())
    usable = table[table["coverage_"] > 0.02]
    for ensemble in (True, False):
        part = usable[usable["ensemble"] == ensemble]
        print(
            f"  ensemble={ensemble}: test accepted share - coverage_, mean "
            f"{part['difference'].mean():+.3f}, mean |.| "
            f"{part['difference'].abs().mean():.3f}; accepted accuracy at the "
            f"target within 2 SE in {part['met'].mean():.0%} of "
            f"{len(part)} cases with coverage_ > 0.02"
        )
    alarms = pd.DataFrame(alarms)
    print("\n2. shift_report(alpha=0.01) on in-distribution batches:")
    rates = alarms.groupby(["dataset", "model", "labels"])["shifted"].agg(
        ["mean", "size"]
    )
    print(rates.rename(columns={"mean": "called shifted", "size": "batches"}).round(3))
    rate = alarms["shifted"].mean()
    print(
        f"  all: {rate:.3f} of {len(alarms)} batches (promised: about 0.01); checks "
        f"that fired: {alarms['fired'][alarms['shifted']].value_counts().to_dict()}"
    )


if __name__ == "__main__":
    main()

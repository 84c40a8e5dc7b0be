"""Log-loss against the strongest calibrators, in- and out-of-distribution (issue 12).

    pip install -e ".[bench]"
    python benchmarks/bench_quality.py [--datasets wine,digits] [--models logistic]
        [--csv bench_quality.csv] [--markdown bench_quality.md] [--research]

Every dataset x base model x scenario of ``_scenarios.py`` (24 cases per
scenario). The methods, all through one cross-validation protocol: 5 stratified
folds of the training set (scikit-learn's ``cv=5``), one base model fitted per
fold, each method's calibrator fitted on that fold's held-out part, and the five
(model, calibrator) pairs' probabilities averaged, as ``CalibratedClassifierCV``
does with ``ensemble=True``:

* ``sigmoid``, ``isotonic``, ``temperature`` (scikit-learn >= 1.8 only):
  ``CalibratedClassifierCV`` on each fold's model (a ``FrozenEstimator``), which
  is exactly its own ``cv=5`` fit on the same folds;
* ``betacal`` (``betacal.BetaCalibration``, three parameters) and ``venn_abers``
  (``venn_abers.VennAbers``, inductive Venn-ABERS per fold, the folds merged as
  cross Venn-ABERS does: ``p = GM(p1) / (GM(1 - p0) + GM(p1))``, geometric
  means over the folds). Both are binary calibrators of a probability: they get
  ``predict_proba`` where the model has it, else the sigmoid of its decision
  scores; with more than two classes each class is calibrated one-vs-rest and
  the rows are normalised to sum to 1;
* ``gsoftmax``: ``GaussianSoftmaxClassifier`` with its defaults (its folds are
  the same five, and its fold models serve every other method).

Per case: each method's log-loss and its rank among the methods (1 = best),
the ratio of its log-loss to the best of scikit-learn's, the multiclass Brier
score, the top-label ECE, the largest single-sample loss and the share of
confident errors (wrong with a top-class probability of at least 0.95), from
``sklearn_gsoftmax.metrics.calibration_report``. Writes the rows to a CSV and
the summary tables to a markdown file; prints a progress line per dataset.

``--research`` adds the prototypes of ``_research.py`` and variants of the
library (its calibrator with one refinement or none, other ``n``, log-space
fold averages, ``ensemble=False``). Each is ranked in place of the default, so
the baseline ranks do not move; ``--variants`` runs only those whose name
contains one of its comma-separated parts.

Last, it prints the default's standing against issue 12's targets: its mean
rank and lead over Venn-ABERS, its rank against temperature and sigmoid in each
shift scenario, its in-distribution log-loss ratio wherever the training set
has at least 1 000 samples (with the share of it that the spec's floor alone
costs), and the largest single-sample loss against the spec's bound.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import sklearn
from _research import (
    Affine,
    BetaMap,
    EvidenceBound,
    FittedCeiling,
    MatrixScaling,
    MonotoneSpline,
    PerClassN,
    Sharpened,
    SmoothedCeiling,
    SmoothedTargets,
    SmoothedTrainingCounts,
    VectorScaling,
    average_proba,
)
from _scenarios import DATASETS, MODELS, SCENARIOS, training_sets
from scipy.special import expit
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import StratifiedKFold
from sklearn.utils.fixes import parse_version

from sklearn_gsoftmax import GaussianSoftmaxCalibrator, GaussianSoftmaxClassifier
from sklearn_gsoftmax._classifier import decision_scores
from sklearn_gsoftmax.metrics import calibration_report

SKLEARN_METHODS = ["sigmoid", "isotonic"]
if parse_version(sklearn.__version__).release >= (1, 8):
    SKLEARN_METHODS.append("temperature")
BASELINES = [*SKLEARN_METHODS, "betacal", "venn_abers", "gsoftmax"]
N_FOLDS = 5
#: The library's calibrator with other settings, fitted on the default's folds.
LIBRARY_VARIANTS = {
    "library: spec map (affine, no fitted ceiling)": {
        "score_map": "affine",
        "fit_ceiling": False,
    },
    "library: affine + fitted ceiling": {"score_map": "affine"},
    "library: matrix, no fitted ceiling": {"fit_ceiling": False},
    "library: offsets always": {"fit_intercept": True},
    "library: scale alone": {"fit_intercept": False},
}


# --------------------------------------------------------------------------------------
# Binary calibrators of a probability, cross-fitted one-vs-rest


def proba_input(model, X) -> np.ndarray:
    """``(m, K)`` probabilities for the binary calibrators: ``predict_proba``,
    else the sigmoid of each decision score column."""
    if hasattr(model, "predict_proba"):
        return model.predict_proba(X)
    scores = model.decision_function(X)
    if scores.ndim == 1:
        return np.column_stack([expit(-scores), expit(scores)])
    return expit(scores)


def _one_vs_rest_columns(n_classes: int) -> list:
    # two classes: the second column's calibrated probability gives both
    return [1] if n_classes == 2 else list(range(n_classes))


def _complete(columns: dict, n_classes: int) -> np.ndarray:
    if n_classes == 2:
        return np.column_stack([1 - columns[1], columns[1]])
    proba = np.column_stack([columns[k] for k in range(n_classes)])
    return proba / proba.sum(axis=1, keepdims=True)


def betacal_proba(folds_data, n_classes) -> np.ndarray:
    """Beta calibration per fold and class, fold probabilities averaged."""
    from betacal import BetaCalibration

    per_fold = []
    for p_cal, y_cal, p_test in folds_data:
        columns = {}
        for k in _one_vs_rest_columns(n_classes):
            beta = BetaCalibration(parameters="abm").fit(p_cal[:, k], y_cal == k)
            columns[k] = beta.predict(p_test[:, k])
        per_fold.append(_complete(columns, n_classes))
    return np.mean(per_fold, axis=0)


def venn_abers_proba(folds_data, n_classes) -> np.ndarray:
    """Inductive Venn-ABERS per fold and class, merged as cross Venn-ABERS."""
    from venn_abers import VennAbers

    columns = {}
    for k in _one_vs_rest_columns(n_classes):
        log_p0, log_p1 = [], []
        for p_cal, y_cal, p_test in folds_data:
            two = lambda p: np.column_stack([1 - p, p])  # noqa: E731
            va = VennAbers().fit(two(p_cal[:, k]), (y_cal == k).astype(int))
            p0_p1 = va.predict_proba(two(p_test[:, k]))[1]
            log_p0.append(np.log1p(-p0_p1[:, 0]))
            log_p1.append(np.log(p0_p1[:, 1]))
        gm_1_p0, gm_p1 = np.exp(np.mean(log_p0, 0)), np.exp(np.mean(log_p1, 0))
        columns[k] = gm_p1 / (gm_1_p0 + gm_p1)
    return _complete(columns, n_classes)


# --------------------------------------------------------------------------------------
# One training set: fit once, predict every test set with every method


def _fold_scores(pairs, folds, X_train, classes):
    """Each fold model's decision scores (as the library takes them) of its
    held-out part."""
    return [
        decision_scores(pair.estimator, X_train[test], classes)
        for pair, (_, test) in zip(pairs, folds)
    ]


def _research_methods(
    model, pairs, folds, X_train, y_index, tests, classes, n_factors, variants
):
    """Probabilities of each research variant on each test set (only those
    whose name contains one of ``variants``, when given)."""

    def wanted(name):
        return not variants or any(v in name for v in variants)

    n, k = len(y_index), len(classes)
    cal_scores = _fold_scores(pairs, folds, X_train, classes)
    cal_y = [y_index[test] for _, test in folds]
    test_scores = [
        [decision_scores(p.estimator, X_test, classes) for p in pairs]
        for _, X_test, _ in tests
    ]
    probability_only = not hasattr(pairs[0].estimator, "decision_function")
    counts = np.bincount(y_index, minlength=k)
    prototypes = {
        "proto: affine (default refitted)": lambda: Affine(n),
        "proto: beta map (probability-only models)": (
            (lambda: BetaMap(n)) if probability_only else (lambda: Affine(n))
        ),
        "proto: per-class n": lambda: PerClassN(n, counts),
        "proto: bound where the evidence ends": lambda: EvidenceBound(n),
        "proto: fitted ceiling": lambda: FittedCeiling(n),
        "proto: smoothed targets": lambda: SmoothedTargets(n),
        "proto: smoothed targets + fitted ceiling": lambda: SmoothedCeiling(n),
        "proto: smoothed targets, training counts": (lambda: SmoothedTrainingCounts(n)),
        "proto: vector scaling": lambda: VectorScaling(n),
        "proto: matrix scaling, ODIR 0.03": lambda: MatrixScaling(n, 0.03),
        "proto: matrix scaling, ODIR 0.1": lambda: MatrixScaling(n, 0.1),
        "proto: matrix scaling, ODIR 0.3": lambda: MatrixScaling(n, 0.3),
        "proto: matrix scaling, ODIR 1": lambda: MatrixScaling(n, 1.0),
        "proto: matrix scaling + fitted ceiling": (
            lambda: MatrixScaling(n, 0.1, ceiling=True)
        ),
        "proto: matrix scaling 0.3 + ceiling": (
            lambda: MatrixScaling(n, 0.3, ceiling=True)
        ),
        "proto: matrix scaling 0.3 + ceiling, clipped": (
            lambda: MatrixScaling(n, 0.3, ceiling=True, clip=True)
        ),
        "proto: matrix scaling 0.3 + diagonal + ceiling": (
            lambda: MatrixScaling(n, 0.3, ceiling=True, diagonal=True)
        ),
        "proto: matrix scaling 100/m + diagonal + ceiling": (
            lambda: MatrixScaling(n, 100.0, ceiling=True, diagonal=True, per_row=True)
        ),
        "proto: monotone spline": lambda: MonotoneSpline(n),
    }
    for factor in (0.6, 0.8, 1.25):
        prototypes[f"proto: fitted scale x {factor}"] = lambda f=factor: Sharpened(n, f)
    out = {}
    for name, make in prototypes.items():
        if not wanted(name):
            continue
        fitted = [make().fit(s, y) for s, y in zip(cal_scores, cal_y)]
        out[name] = [
            np.mean([np.exp(f.predict_log_proba(s)) for f, s in zip(fitted, scores)], 0)
            for scores in test_scores
        ]
    for name, params in LIBRARY_VARIANTS.items():
        if not wanted(name):
            continue
        fitted = [
            GaussianSoftmaxCalibrator(
                n_samples=n, uncertainty_rules=("low_confidence",), **params
            ).fit(s, classes[y])
            for s, y in zip(cal_scores, cal_y)
        ]
        out[name] = [
            np.mean([f.predict_proba(s) for f, s in zip(fitted, scores)], 0)
            for scores in test_scores
        ]
    # the library's own pairs, averaged in log space instead of probability space
    if wanted("log-space fold average"):
        out["log-space fold average"] = [
            average_proba(
                [p.proba_of_scores(s) for p, s in zip(pairs, scores)], space="log"
            )
            for scores in test_scores
        ]
    for factor in n_factors if wanted("n_samples = ") else ():

        def calibrator(s, y, factor=factor):
            return GaussianSoftmaxCalibrator(
                n_samples=factor * n, uncertainty_rules=("low_confidence",)
            ).fit(s, classes[y])

        fitted = [calibrator(s, y) for s, y in zip(cal_scores, cal_y)]
        out[f"n_samples = {factor} n"] = [
            np.mean([f.predict_proba(s) for f, s in zip(fitted, scores)], 0)
            for scores in test_scores
        ]
    if not wanted("ensemble=False"):
        return out
    # ensemble=False: one calibrator on all out-of-fold scores, one model on all
    single = GaussianSoftmaxCalibrator(uncertainty_rules=("low_confidence",)).fit(
        np.concatenate(cal_scores), classes[np.concatenate(cal_y)]
    )
    final = clone(model).fit(X_train, classes[y_index])
    out["ensemble=False"] = [
        single.predict_proba(decision_scores(final, X_test, classes))
        for _, X_test, _ in tests
    ]
    return out


def run_training_set(
    model, X_train, y_train, tests, *, research, n_factors=(10, 100), variants=None
):
    """``{method: [proba per test set]}`` for one training set."""
    folds = list(StratifiedKFold(N_FOLDS).split(X_train, y_train))
    library = GaussianSoftmaxClassifier(clone(model), cv=folds).fit(X_train, y_train)
    classes, pairs = library.classes_, library.calibrated_classifiers_
    out = {"gsoftmax": [library.predict_proba(X_test) for _, X_test, _ in tests]}
    for method in SKLEARN_METHODS:
        calibrated = [
            CalibratedClassifierCV(FrozenEstimator(p.estimator), method=method).fit(
                X_train[test], y_train[test]
            )
            for p, (_, test) in zip(pairs, folds)
        ]
        out[method] = [
            np.mean([c.predict_proba(X_test) for c in calibrated], 0)
            for _, X_test, _ in tests
        ]
    y_index = np.searchsorted(classes, y_train)
    for method, calibrate in (
        ("betacal", betacal_proba),
        ("venn_abers", venn_abers_proba),
    ):
        out[method] = []
        for _, X_test, _ in tests:
            folds_data = [
                (
                    proba_input(p.estimator, X_train[test]),
                    y_index[test],
                    proba_input(p.estimator, X_test),
                )
                for p, (_, test) in zip(pairs, folds)
            ]
            out[method].append(calibrate(folds_data, len(classes)))
    if research:
        out |= _research_methods(
            model, pairs, folds, X_train, y_index, tests, classes, n_factors, variants
        )
    return classes, out


# --------------------------------------------------------------------------------------
# Scoring and tables


def score_case(case, classes, probas, y_test):
    report = calibration_report(y_test, probas, labels=classes)
    report = report.rename_axis("method").reset_index()
    best_sklearn = report.loc[report["method"].isin(SKLEARN_METHODS), "log_loss"].min()
    report["ratio_to_best_sklearn"] = report["log_loss"] / best_sklearn
    base = report["method"].isin(BASELINES)
    report["rank"] = np.nan
    report.loc[base, "rank"] = report.loc[base, "log_loss"].rank(method="average")
    others = report.loc[base & (report["method"] != "gsoftmax"), "log_loss"].to_numpy()
    for i in report.index[~base]:
        # a research variant ranks in place of the default
        loss = report.at[i, "log_loss"]
        report.at[i, "rank"] = 1 + (others < loss).sum() + 0.5 * (others == loss).sum()
    for key, value in reversed(case.items()):
        report.insert(0, key, value)
    return report


def summary(table: pd.DataFrame, column: str, how: str = "mean") -> pd.DataFrame:
    frame = table.groupby(["method", "scenario"])[column].agg(how).unstack("scenario")
    frame = frame.reindex(columns=[s for s in SCENARIOS if s in frame.columns])
    frame["mean" if how == "mean" else "all"] = (
        frame.mean(axis=1) if how == "mean" else frame.max(axis=1)
    )
    order = [m for m in BASELINES if m in frame.index]
    order += sorted(set(frame.index) - set(order))
    return frame.reindex(order)


def markdown(frame: pd.DataFrame, title: str, digits: int = 2, bold=True) -> str:
    header = f"| {title} | " + " | ".join(frame.columns) + " |"
    lines = [header, "|---" * (len(frame.columns) + 1) + "|"]
    baselines = frame.loc[frame.index.isin(BASELINES)]
    best = baselines.min() if len(baselines) else None
    for method, row in frame.iterrows():
        cells = []
        for column, value in row.items():
            text = f"{value:.{digits}f}"
            best_here = bold and method in BASELINES and value == best[column]
            cells.append(f"**{text}**" if best_here else text)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_tables(table: pd.DataFrame, path: str, n_cases: int) -> str:
    baseline_rows = table[table["method"].isin(BASELINES)]
    research_rows = table[
        ~table["method"].isin(BASELINES) | (table["method"] == "gsoftmax")
    ]
    sections = [
        f"Mean over {n_cases} cases (dataset x model) per scenario; "
        "lower is better, the best baseline in bold.",
        markdown(summary(baseline_rows, "rank"), "mean rank"),
        markdown(
            summary(baseline_rows, "ratio_to_best_sklearn"),
            "log-loss / best scikit-learn",
            3,
        ),
        markdown(summary(baseline_rows, "ece"), "ECE (top label)", 3),
        markdown(
            summary(baseline_rows, "max_log_loss", "max"), "largest sample loss", 1
        ),
        markdown(summary(baseline_rows, "confident_errors"), "confident errors", 4),
    ]
    if research_rows["method"].nunique() > 1:
        sections += [
            "Research variants, each ranked in place of the default:",
            markdown(summary(research_rows, "rank"), "mean rank", bold=False),
            markdown(
                summary(research_rows, "ratio_to_best_sklearn"),
                "log-loss / best scikit-learn",
                3,
                bold=False,
            ),
            markdown(
                summary(research_rows, "max_log_loss", "max"),
                "largest sample loss",
                1,
                bold=False,
            ),
        ]
    text = "\n\n".join(sections) + "\n"
    with open(path, "w") as file:
        file.write(text)
    return text


def targets(table: pd.DataFrame) -> str:
    """The default's standing against issue 12's targets, as text."""
    mine = table[table["method"] == "gsoftmax"].copy()
    k, n = mine["n_classes"], mine["n_train"]
    # the spec's largest single-sample loss (vs_top), and the smallest: that of a
    # sample whose other classes all sit at the floor, ln(1 + (K - 1)/(n - 1))
    bound = np.log((k - 1) * (n - 1) + 1)
    best_sklearn = mine["log_loss"] / mine["ratio_to_best_sklearn"]
    mine["floor_share"] = np.log1p((k - 1) / (n - 1)) / best_sklearn
    ranks = summary(table[table["method"].isin(BASELINES)], "rank")
    mean_rank = ranks["mean"]
    others = mean_rank.drop(index="gsoftmax")
    lead = mean_rank["venn_abers"] - mean_rank["gsoftmax"]
    lines = [
        "Targets (the default, gsoftmax):",
        f"  mean rank {mean_rank['gsoftmax']:.2f}; best other {others.min():.2f} "
        f"({others.idxmin()}); lead over venn_abers {lead:.2f} (target >= 0.3)",
    ]
    for scenario in ("noise", "scale", "region"):
        mine_rank = ranks.at["gsoftmax", scenario]
        rivals = ranks.loc[["temperature", "sigmoid"], scenario]
        verdict = "ahead" if (mine_rank < rivals).all() else "NOT ahead"
        lines.append(
            f"  {scenario}: rank {mine_rank:.2f}, temperature "
            f"{rivals['temperature']:.2f}, sigmoid {rivals['sigmoid']:.2f}: {verdict}"
        )
    large = mine[(mine["scenario"] == "in-dist") & (n >= 1000)]
    for row in large.itertuples():
        lines.append(
            f"  in-dist {row.dataset} / {row.model} (n = {row.n_train}): "
            f"{row.ratio_to_best_sklearn:.3f} of the best scikit-learn log-loss "
            f"(target <= 1.02); the floor alone is {row.floor_share:.3f} of it"
        )
    above = (mine["max_log_loss"] > bound).sum()
    lines.append(
        f"  largest sample loss over the spec's bound in {above} of {len(mine)} "
        f"cases (largest loss / bound: {(mine['max_log_loss'] / bound).max():.3f})"
    )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--csv", default="bench_quality.csv")
    parser.add_argument("--markdown", default="bench_quality.md")
    parser.add_argument(
        "--research", action="store_true", help="add the research variants"
    )
    parser.add_argument(
        "--n-factors",
        default="10,100",
        help="with --research: the multiples of n tried as n_samples",
    )
    parser.add_argument(
        "--variants",
        default="",
        help="with --research: only the variants whose name contains one of these "
        "comma-separated strings",
    )
    args = parser.parse_args(argv)
    n_factors = [int(f) for f in args.n_factors.split(",")]
    warnings.simplefilter("ignore")
    reports = []
    start = time.perf_counter()
    for dataset, model_name, X_train, y_train, tests in training_sets(
        args.datasets.split(","), args.models.split(",")
    ):
        classes, probas = run_training_set(
            MODELS[model_name](),
            X_train,
            y_train,
            tests,
            research=args.research,
            n_factors=n_factors,
            variants=[v for v in args.variants.split(",") if v],
        )
        for i, (scenario, _, y_test) in enumerate(tests):
            case = {
                "dataset": dataset,
                "model": model_name,
                "scenario": scenario,
                "n_train": len(y_train),
                "n_classes": len(classes),
            }
            per_method = {m: p[i] for m, p in probas.items()}
            reports.append(score_case(case, classes, per_method, y_test))
    table = pd.concat(reports, ignore_index=True)
    table.to_csv(args.csv, index=False)
    n_cases = table.groupby(["dataset", "model"]).ngroups
    print()
    print(write_tables(table, args.markdown, n_cases))
    print(targets(table))
    print(
        f"wrote {args.csv} and {args.markdown} in {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()

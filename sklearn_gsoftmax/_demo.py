"""The main job's data and comparison, kept apart from the argument parsing."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ._classifier import GaussianSoftmaxClassifier
from ._ties import first_index_of_max
from .metrics import calibration_report

DATASETS = {
    "digits": datasets.load_digits,
    "breast_cancer": datasets.load_breast_cancer,
    "wine": datasets.load_wine,
    "iris": datasets.load_iris,
}


class ShiftedSplit:
    """A bundled dataset split into train, in-distribution test and shifted test.

    The samples are ordered along their first principal component; the lower
    ``1 - shifted_fraction`` of them form the in-distribution region (split at
    random into train and test) and the rest the shifted test set, so the shifted
    samples lie in a region the model never saw.
    """

    def __init__(self, name: str, *, shifted_fraction=0.3, test_size=0.3, seed=0):
        bunch = DATASETS[name]()
        X, y = bunch.data, bunch.target
        if getattr(bunch, "target_names", None) is not None:
            y = np.asarray(bunch.target_names)[y]
        position = PCA(n_components=1).fit_transform(StandardScaler().fit_transform(X))
        inside = position[:, 0] <= np.quantile(position[:, 0], 1 - shifted_fraction)
        self.name = name
        self.X_train, self.X_test, self.y_train, self.y_test = train_test_split(
            X[inside],
            y[inside],
            test_size=test_size,
            random_state=seed,
            stratify=y[inside],
        )
        self.X_shifted, self.y_shifted = X[~inside], y[~inside]


def report_table(models: dict, split: ShiftedSplit) -> pd.DataFrame:
    """One row per fitted model: its calibration report on both test sets and,
    for models with an uncertain flag, the share of predictions it flags
    (``flagged``) and the share of its errors that it flags (``errors_flagged``)."""
    rows = {}
    for label, model in models.items():
        row = {}
        for part, X, y in (
            ("test", split.X_test, split.y_test),
            ("shifted", split.X_shifted, split.y_shifted),
        ):
            proba = model.predict_proba(X)
            report = calibration_report(y, proba, labels=model.classes_)
            if hasattr(model, "predict_uncertain"):
                flagged = model.predict_uncertain(X)
                errors = model.classes_[first_index_of_max(proba)] != y
                report["flagged"] = float(flagged.mean())
                report["errors_flagged"] = float(
                    (flagged & errors).sum() / max(errors.sum(), 1)
                )
            row.update({(part, key): value for key, value in report.items()})
        rows[label] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def _supports_temperature() -> bool:
    from sklearn.calibration import CalibratedClassifierCV

    return (
        "temperature"
        in CalibratedClassifierCV._parameter_constraints["method"][0].options
    )


def compare_models(split: ShiftedSplit, *, cv: int = 5) -> tuple[pd.DataFrame, dict]:
    """A logistic regression as is, calibrated by scikit-learn's methods, and
    wrapped by GaussianSoftmaxClassifier with each bounded link; same folds.

    Returns the :func:`report_table` and the fitted models by name.
    """

    def base():
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))

    methods = ["sigmoid", "isotonic"] + (
        ["temperature"] if _supports_temperature() else []
    )
    models = {"uncalibrated": base()}
    models.update(
        {
            f"sklearn {m}": CalibratedClassifierCV(base(), method=m, cv=cv)
            for m in methods
        }
    )
    models.update(
        {
            f"gsoftmax {link}": GaussianSoftmaxClassifier(base(), link=link, cv=cv)
            for link in ("linear", "gaussian")
        }
    )
    for model in models.values():
        model.fit(split.X_train, split.y_train)
    return report_table(models, split), models


def shift_verdicts(model, split: ShiftedSplit) -> pd.DataFrame:
    """``model.shift_report`` of the in-distribution and the shifted test set
    (without labels, as when they arrive): one row each, with the verdict and
    the checks that found the shift."""
    rows = {}
    for part, X in (
        ("in-distribution test", split.X_test),
        ("shifted", split.X_shifted),
    ):
        report = model.shift_report(X)
        rows[part] = {
            "samples": len(X),
            "shifted": report.attrs["shifted"],
            "checks that fired": ", ".join(report.index[report["shifted"]]) or "-",
        }
    return pd.DataFrame.from_dict(rows, orient="index")

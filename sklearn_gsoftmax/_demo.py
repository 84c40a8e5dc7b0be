"""The main job's data and comparison, kept apart from the argument parsing."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.decomposition import PCA
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from .metrics import probability_report

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
    """One row per fitted model: its probability report on both test sets."""
    rows = {}
    for label, model in models.items():
        row = {}
        for part, X, y in (
            ("test", split.X_test, split.y_test),
            ("shifted", split.X_shifted, split.y_shifted),
        ):
            report = probability_report(
                y, model.predict_proba(X), labels=model.classes_
            )
            row.update({(part, key): value for key, value in report.items()})
        rows[label] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


class _CalibratedScores:
    """A fitted classifier followed by a fitted score calibrator."""

    def __init__(self, classifier, calibrator):
        self.classifier, self.calibrator = classifier, calibrator
        self.classes_ = calibrator.classes_

    def predict_proba(self, X):
        return self.calibrator.predict_proba(self.classifier.decision_function(X))


def compare_links(split: ShiftedSplit, *, cv: int = 5) -> pd.DataFrame:
    """Calibrate a logistic regression's out-of-fold scores with each link."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_predict
    from sklearn.pipeline import make_pipeline

    from ._calibrator import GaussianSoftmaxCalibrator

    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    scores = cross_val_predict(
        classifier, split.X_train, split.y_train, cv=cv, method="decision_function"
    )
    classifier.fit(split.X_train, split.y_train)
    models = {}
    for link in ("softmax", "linear", "gaussian"):
        calibrator = GaussianSoftmaxCalibrator(link=link).fit(scores, split.y_train)
        models[link] = _CalibratedScores(classifier, calibrator)
    return report_table(models, split)

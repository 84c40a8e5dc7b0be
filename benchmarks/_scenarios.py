"""Datasets, base models and shift scenarios shared by the quality benchmarks.

Datasets: four bundled ones (breast cancer, wine, iris, digits) and two
synthetic ones of 14 000 samples (``make_classification``: binary and 5-class,
20 features of which 10 informative, one cluster per class, 2 % of the labels
flipped). With scikit-learn's default of two clusters per class the linear
models and naive Bayes reach only 0.57-0.76 accuracy there, so that no flag can
accept more than a few per cent of their predictions at 95 % accuracy; with one
cluster per class they reach 0.74-0.92, as on the bundled sets.

Base models: LogisticRegression and LinearSVC behind a StandardScaler,
HistGradientBoostingClassifier, GaussianNB.

Scenarios, each a (train, test) pair:

``in-dist``
    A stratified random 70/30 split.
``noise``
    The in-dist split, with Gaussian noise of one training standard deviation
    added to every test feature.
``scale``
    The in-dist split, with the test features' deviations from the training
    mean doubled: many scores leave the range seen in training.
``region``
    Samples ordered along the first principal component of the standardised
    features: trained on the lower 70 %, tested on the upper 30 %.
"""

from __future__ import annotations

import time

import numpy as np
from sklearn import datasets
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

SCENARIOS = ("in-dist", "noise", "scale", "region")


def synthetic(n_classes, clusters_per_class=1):
    """Loader of a 14 000-sample synthetic set."""

    def load():
        return datasets.make_classification(
            n_samples=14_000,
            n_features=20,
            n_informative=10,
            n_classes=n_classes,
            n_clusters_per_class=clusters_per_class,
            flip_y=0.02,
            random_state=0,
        )

    return load


DATASETS = {
    "breast_cancer": lambda: datasets.load_breast_cancer(return_X_y=True),
    "wine": lambda: datasets.load_wine(return_X_y=True),
    "iris": lambda: datasets.load_iris(return_X_y=True),
    "digits": lambda: datasets.load_digits(return_X_y=True),
    "synthetic_2": synthetic(2),
    "synthetic_5": synthetic(5),
}

MODELS = {
    "logistic": lambda: make_pipeline(
        StandardScaler(), LogisticRegression(max_iter=2000)
    ),
    "linear_svc": lambda: make_pipeline(StandardScaler(), LinearSVC(random_state=0)),
    "hist_gb": lambda: HistGradientBoostingClassifier(max_iter=100, random_state=0),
    "gaussian_nb": lambda: GaussianNB(),
}


def scenario_splits(X, y, *, seed=0, scenarios=SCENARIOS):
    """Yield ``(scenario, X_train, y_train, X_test, y_test)``; the first three
    scenarios share their training set (consecutive, so a model fitted for one
    serves the next)."""
    rng = np.random.default_rng(seed)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=seed
    )
    mean, std = X_train.mean(axis=0), X_train.std(axis=0)
    shifted = {
        "in-dist": X_test,
        "noise": X_test + rng.normal(size=X_test.shape) * std,
        "scale": mean + 2.0 * (X_test - mean),
    }
    for name in ("in-dist", "noise", "scale"):
        if name in scenarios:
            yield name, X_train, y_train, shifted[name], y_test
    if "region" in scenarios:
        position = PCA(n_components=1, random_state=0).fit_transform(
            StandardScaler().fit_transform(X)
        )[:, 0]
        inside = position <= np.quantile(position, 0.7)
        yield "region", X[inside], y[inside], X[~inside], y[~inside]


def training_sets(datasets, models):
    """Every training set of every dataset x model: yields ``(dataset, model,
    X_train, y_train, tests)``, ``tests`` the ``(scenario, X_test, y_test)``
    that share that training set, so that one fit serves them. One thread per
    library (on a shared 2-core machine OpenMP threads of the gradient
    boosting oversubscribe the cores) and a progress line per dataset."""
    threadpool_limits(1)
    start = time.perf_counter()
    for dataset in datasets:
        X, y = DATASETS[dataset]()
        for model in models:
            splits = list(scenario_splits(X, y))
            for group in (splits[:3], splits[3:]):
                _, X_train, y_train, _, _ = group[0]
                tests = [(s, X_test, y_test) for s, _, _, X_test, y_test in group]
                yield dataset, model, X_train, y_train, tests
        print(f"[{time.perf_counter() - start:6.0f} s] {dataset} done", flush=True)

"""The novelty rule: its conformal guarantee, detectors, inputs and errors."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import make_column_transformer
from sklearn.datasets import make_classification
from sklearn.ensemble import IsolationForest
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import LocalOutlierFactor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sklearn_gsoftmax import GaussianSoftmaxCalibrator, GaussianSoftmaxClassifier
from sklearn_gsoftmax._conformal import ConformalReference
from sklearn_gsoftmax._novelty import (
    KNeighborsNovelty,
    NoveltyModel,
    capped_folds,
)


class _Identity:
    """A detector whose novelty is the first feature itself."""

    def fit(self, X, y=None):
        return self

    def score_samples(self, X):
        return -np.asarray(X, dtype=float)[:, 0]


@pytest.mark.parametrize(
    ("m", "alpha", "largest_unflagged", "smallest_flagged"),
    [
        # ceil((19 + 1) * 0.9) = 18: flag above the 18th smallest of 1..19
        (19, 0.1, 18.0, 18.5),
        # ceil(20 * 0.95) = 19: flag above 19, never at it
        (19, 0.05, 19.0, 19.5),
        # ceil(9 * 0.9) = 9 > m = 8: nothing can be flagged
        (8, 0.1, 1e9, None),
    ],
)
def test_flags_exactly_above_the_finite_sample_conformal_quantile(
    m, alpha, largest_unflagged, smallest_flagged
):
    reference = ConformalReference(np.arange(1.0, m + 1), np.ones(m))
    model = NoveltyModel([_Identity()], [reference])
    pvalue = model.pvalues([np.array([[largest_unflagged]])])[0]
    assert pvalue > alpha
    if smallest_flagged is not None:
        assert model.pvalues([np.array([[smallest_flagged]])])[0] <= alpha


def test_pvalues_pool_each_detector_against_its_own_reference():
    references = [
        ConformalReference(np.array([1.0, 2.0, 3.0]), np.ones(3)),
        ConformalReference(np.array([10.0, 20.0]), np.ones(2)),
    ]
    model = NoveltyModel([_Identity(), _Identity()], references)
    # 2.5 against the first: 1 score at or above; 15 against the second: 1
    pvalue = model.pvalues([np.array([[2.5]]), np.array([[15.0]])])
    np.testing.assert_allclose(pvalue, (1 + 1 + 1) / (5 + 1))


def _flag_rates(make_model, n_splits, seed=0):
    """Novelty flag rate on in-distribution test data over random splits."""
    X, y = make_classification(
        n_samples=500, n_features=6, n_informative=4, random_state=seed
    )
    rates = []
    for split in range(n_splits):
        X_train, X_test, y_train, _ = train_test_split(
            X, y, test_size=0.4, random_state=split
        )
        model = make_model().fit(X_train, y_train)
        rates.append(
            model.predict_frame(X_test)["reasons"].str.contains("novelty").mean()
        )
    return np.array(rates)


@pytest.mark.parametrize("ensemble", [True, False])
def test_in_distribution_flag_rate_is_at_most_about_alpha(ensemble):
    rates = _flag_rates(
        lambda: GaussianSoftmaxClassifier(
            LogisticRegression(), cv=3, ensemble=ensemble, novelty_alpha=0.1
        ),
        n_splits=12,
    )
    # the guarantee is on average over training sets: <= 0.1 up to sampling
    # error (200 test samples x 12 splits: standard error about 0.006)
    assert rates.mean() <= 0.1 + 0.02
    # and the rule is not vacuous: it does flag about alpha
    assert rates.mean() >= 0.1 - 0.05


def test_calibrator_flag_rate_on_scores_is_at_most_about_alpha(rng):
    rates = []
    for _ in range(20):
        scores = rng.normal(size=(600, 3))
        y = rng.integers(0, 3, 600)
        calibrator = GaussianSoftmaxCalibrator(
            novelty_alpha=0.1, uncertainty_rules=("novelty",)
        ).fit(scores[:400], y[:400])
        frame = calibrator.predict_frame(scores[400:])
        rates.append((frame["novelty_pvalue"] <= 0.1).mean())
    assert abs(np.mean(rates) - 0.1) <= 0.025


def test_shifted_samples_are_flagged_and_p_values_ordered():
    X, y = make_classification(n_samples=600, n_features=5, random_state=0)
    model = GaussianSoftmaxClassifier(LogisticRegression(), cv=3).fit(X, y)
    near, far = X[:100], X[:100] + 8 * X.std(axis=0)
    frame_near, frame_far = model.predict_frame(near), model.predict_frame(far)
    assert frame_far["reasons"].str.contains("novelty").mean() > 0.9
    assert frame_near["reasons"].str.contains("novelty").mean() < 0.2
    assert (frame_far["novelty_pvalue"] < frame_near["novelty_pvalue"]).all()


def test_calibrator_flags_scores_far_out():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=1000)
    y = (rng.random(1000) < 1 / (1 + np.exp(-scores))).astype(int)
    calibrator = GaussianSoftmaxCalibrator().fit(scores, y)
    frame = calibrator.predict_frame(np.array([0.0, 0.5, 50.0, -50.0, np.inf]))
    np.testing.assert_array_equal(
        frame["reasons"].str.contains("novelty"), [False, False, True, True, True]
    )


@pytest.mark.parametrize(
    "detector",
    [IsolationForest(random_state=0), LocalOutlierFactor(novelty=True)],
    ids=["IsolationForest", "LocalOutlierFactor"],
)
def test_any_outlier_detector_can_be_plugged_in(detector):
    X, y = make_classification(n_samples=400, n_features=5, random_state=0)
    model = GaussianSoftmaxClassifier(
        LogisticRegression(), cv=3, novelty_detector=detector
    ).fit(X, y)
    (fitted,) = model._novelty.detectors
    assert type(fitted) is type(detector) and fitted is not detector
    # every training sample has a held-out score, from its fold's detector
    assert len(model._novelty.references[0].scores) == 400
    far = model.predict_frame(X[:50] + 10 * X.std(axis=0))
    assert far["reasons"].str.contains("novelty").mean() > 0.8


def test_pipeline_with_categorical_columns_runs_on_transformed_features():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "colour": rng.choice(["red", "green", "blue"], 400),
            "size": rng.normal(size=400),
            "weight": rng.normal(size=400),
        }
    )
    y = (frame["size"] + (frame["colour"] == "red") > 0.5).astype(int)
    preprocess = make_column_transformer(
        (OneHotEncoder(), ["colour"]), (StandardScaler(), ["size", "weight"])
    )
    model = GaussianSoftmaxClassifier(
        make_pipeline(preprocess, LogisticRegression()), cv=3
    ).fit(frame, y)
    out = model.predict_frame(frame.iloc[:20])
    assert out.index.equals(frame.index[:20])
    assert out["novelty_pvalue"].between(0, 1).all()
    odd = frame.iloc[:20].assign(weight=50.0)
    assert model.predict_frame(odd)["reasons"].str.contains("novelty").all()


def test_prefit_estimator_gets_held_out_novelty_scores():
    X, y = make_classification(n_samples=500, n_features=5, random_state=0)
    prefit = LogisticRegression().fit(X[:250], y[:250])
    model = GaussianSoftmaxClassifier(FrozenEstimator(prefit)).fit(X[250:], y[250:])
    (reference,) = model._novelty.references
    assert len(reference.scores) == 250
    assert len(model._novelty.detectors) == 1


def test_reference_and_held_out_rows_are_capped(monkeypatch):
    from sklearn_gsoftmax import _novelty

    monkeypatch.setattr(_novelty, "MAX_ROWS", 100)
    monkeypatch.setattr(_novelty, "MAX_HELD_OUT", 100)
    folds = [
        (np.arange(300, 1000), np.arange(300)),
        (np.arange(300), np.arange(300, 1000)),
    ]
    capped = capped_folds(folds)
    assert all(len(train) <= 100 for train, _ in capped)
    assert sum(len(test) for _, test in capped) <= 100
    # in proportion to the folds, rows of the fold's own test part only
    assert set(capped[0][1]) <= set(range(300))
    detector = KNeighborsNovelty(max_reference=50).fit(
        np.random.default_rng(0).normal(size=(400, 3))
    )
    assert detector.reference_.shape == (50, 3)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("n_features", [1, 4])  # 1: the sorted, one-feature path
def test_default_detector_is_the_mean_distance_to_the_nearest_references(
    sparse, n_features
):
    from scipy.sparse import csr_matrix
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(0)
    units = np.array([1.0, 10.0, 0.1, 3.0])[:n_features]
    X_train = rng.normal(size=(300, n_features)) * units
    X_new = rng.normal(size=(50, n_features)) * 5
    detector = KNeighborsNovelty(n_neighbors=3).fit(
        csr_matrix(X_train) if sparse else X_train
    )
    # standardised as the detector does: by the training deviation (centred
    # too when dense; distances do not depend on the centring)
    scale = X_train.std(axis=0)
    reference = NearestNeighbors(n_neighbors=3).fit(X_train / scale)
    distances = reference.kneighbors(X_new / scale)[0].mean(axis=1)
    new = csr_matrix(X_new) if sparse else X_new
    np.testing.assert_allclose(detector.score_samples(new), -distances, rtol=1e-9)


@pytest.mark.parametrize("layout", ["contiguous", "interleaved"])
@pytest.mark.parametrize("n_neighbors", [1, 3, 7])
def test_brute_force_detector_is_the_mean_distance_to_the_nearest(n_neighbors, layout):
    """Beyond the k-d tree's 16 features: the mean distance to the nearest
    references, against a full sort of every distance. The references lie in
    clusters, stored one after another (a query's nearest bunch in one block
    of the search's columns) or interleaved (they spread over every block:
    a bound of the k-th distance from fewer blocks than neighbours misses
    some); rows copied and rounded tie."""
    rng = np.random.default_rng(n_neighbors)
    centres = rng.normal(size=(8, 20)) * 10.0
    members = (
        np.repeat(np.arange(8), 60) if layout == "contiguous" else np.arange(480) % 8
    )
    X_train = np.round(centres[members] + rng.normal(size=(480, 20)))
    detector = KNeighborsNovelty(n_neighbors=n_neighbors).fit(X_train)
    X_new = np.vstack([X_train[::37], centres + rng.normal(size=(8, 20)) * 0.1])
    standardised = (X_new - detector.center_) / detector.scale_
    distances = np.sqrt(
        ((standardised[:, None, :] - detector.reference_[None]) ** 2).sum(axis=-1)
    )
    expected = np.sort(distances, axis=1)[:, :n_neighbors].mean(axis=1)
    np.testing.assert_allclose(
        detector.score_samples(X_new), -expected, rtol=1e-13, atol=1e-13
    )


def test_default_detector_handles_sparse_and_nan_features():
    from scipy.sparse import random as sparse_random

    rng = np.random.default_rng(0)
    sparse = sparse_random(200, 10, density=0.3, random_state=0, format="csr")
    detector = KNeighborsNovelty().fit(sparse)
    assert np.isfinite(detector.score_samples(sparse)).all()
    X = rng.normal(size=(200, 4))
    X[::7, 1] = np.nan
    detector = KNeighborsNovelty().fit(X)
    assert np.isfinite(detector.score_samples(X)).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"novelty_alpha": 0.0}, "novelty_alpha"),
        ({"novelty_alpha": 1.5}, "novelty_alpha"),
        (
            {"novelty_detector": StandardScaler()},
            "score_samples or decision_function",
        ),
        ({"uncertainty_rules": ("novel",)}, "unknown uncertainty rule"),
    ],
)
def test_bad_novelty_parameters_name_the_fix(params, match, dtype):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(60, 3)).astype(dtype)
    y = np.arange(60) % 3
    with pytest.raises(ValueError, match=match):
        GaussianSoftmaxCalibrator(**params).fit(scores, y)


def test_text_features_are_encoded_or_give_a_clear_error():
    X = pd.DataFrame({"a": ["x", "y"] * 50, "b": np.arange(100.0)})
    y = np.arange(100) % 2

    class StringTolerant(LogisticRegression):
        def fit(self, X, y):
            return super().fit(np.asarray(X)[:, 1:].astype(float), y)

        def decision_function(self, X):
            return super().decision_function(np.asarray(X)[:, 1:].astype(float))

    # the default detector encodes the text column itself (issue 22); a
    # category it never saw is novel
    rng = np.random.default_rng(0)
    mixed = pd.DataFrame({"a": rng.choice(["x", "y"], 300), "b": rng.normal(size=300)})
    model = GaussianSoftmaxClassifier(StringTolerant(), cv=2).fit(mixed, mixed["b"] > 0)
    unseen = mixed.iloc[:20].assign(a="z")
    assert model.predict_frame(unseen)["novelty_pvalue"].max() < 0.05
    assert model.predict_frame(mixed.iloc[:100])["novelty_pvalue"].median() > 0.2
    # a detector of one's own must take what the estimator takes
    with pytest.raises(ValueError, match="novelty rule's detector.*Pipeline"):
        GaussianSoftmaxClassifier(
            StringTolerant(), cv=2, novelty_detector=IsolationForest()
        ).fit(X, y)
    # without the rule, the same data fits
    GaussianSoftmaxClassifier(
        StringTolerant(),
        cv=2,
        uncertainty_rules=("low_confidence",),
        novelty_detector=IsolationForest(),
    ).fit(X, y)


def test_huge_scores_of_a_narrow_calibrator_are_novel_without_warnings():
    """Scores 1e308 over a spread of 1e-3 overflow the standardisation: they
    are the most novel, quietly."""
    rng = np.random.default_rng(0)
    scores = rng.normal(size=300) * 1e-3
    calibrator = GaussianSoftmaxCalibrator().fit(scores, (scores > 0).astype(int))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        flags = calibrator.predict_uncertain([1e308, -1e308, np.inf, -np.inf])
    assert flags.all()


def test_detector_sees_what_the_last_step_of_a_long_pipeline_sees():
    from sklearn.decomposition import PCA

    from sklearn_gsoftmax._pairs import novelty_input

    X, y = make_classification(n_samples=80, n_features=6, random_state=0)
    pipe = make_pipeline(StandardScaler(), PCA(n_components=2), LogisticRegression())
    pipe.fit(X, y)
    np.testing.assert_allclose(novelty_input(pipe, X), pipe[:-1].transform(X))


def test_novelty_of_a_calibrator_fitted_on_four_scores():
    calibrator = GaussianSoftmaxCalibrator().fit([-2.0, -1.0, 1.0, 2.0], [0, 0, 1, 1])
    assert calibrator.predict_uncertain([0.0, 50.0]).shape == (2,)


def test_detector_that_cannot_read_the_features_says_what_to_do():
    X = np.array([["a", "b"], ["c", "d"]] * 20, dtype=object)
    y = np.array([0, 1] * 20)

    class Letters(LogisticRegression):
        def fit(self, X, y, sample_weight=None):
            return super().fit(np.ones((len(X), 1)), y, sample_weight)

        def decision_function(self, X):
            return super().decision_function(np.ones((len(X), 1)))

    with pytest.raises(ValueError) as info:
        GaussianSoftmaxClassifier(Letters(), cv=2).fit(X, y)
    message = str(info.value)
    assert message.startswith(
        "the novelty rule's detector (KNeighborsNovelty) could not be fitted: "
    )
    assert message.endswith(
        "It runs on the features the wrapped estimator's last step sees (X itself "
        "unless the estimator is a Pipeline). Put the preprocessing in a Pipeline, "
        "pass a novelty_detector that handles these features (e.g. a Pipeline "
        "ending in an outlier detector), or drop 'novelty' from uncertainty_rules."
    )


def test_novelty_of_a_prefit_model_calibrated_on_four_samples():
    """Fewer samples than the detector's 5 folds: as many folds as samples."""
    X, y = make_classification(n_samples=80, random_state=0)
    model = LogisticRegression().fit(X, y)
    four = np.r_[np.flatnonzero(y == 0)[:2], np.flatnonzero(y == 1)[:2]]
    calibrated = GaussianSoftmaxClassifier(FrozenEstimator(model)).fit(X[four], y[four])
    assert calibrated.predict_uncertain(X[:10]).shape == (10,)


def test_subsample_draws_distinct_rows():
    from sklearn_gsoftmax._novelty import _subsample

    rows = np.arange(1000, 1500)
    drawn = _subsample(rows, 400, np.random.default_rng(0))
    assert len(np.unique(drawn)) == 400 and np.all(np.diff(drawn) > 0)
    assert set(drawn) <= set(rows)


def test_rows_with_missing_values_are_novel_and_say_why():
    """Issue 22: the default detector imputed NaN by column means, so a row of
    all NaN sat at the centre (p = 0.82, not flagged). A missing value now
    counts as a random draw from its feature: rows with many missing are
    novel; in distribution, where a third of the rows miss one value, the
    flag rate stays at about novelty_alpha."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = make_classification(n_samples=3_000, n_features=6, random_state=0)
    X[::3, 2] = np.nan
    model = GaussianSoftmaxClassifier(
        HistGradientBoostingClassifier(max_iter=30, random_state=0)
    ).fit(X[:1_500], y[:1_500])
    in_distribution = model.predict_frame(X[1_500:])
    assert (in_distribution["novelty_pvalue"] <= 0.05).mean() < 0.09
    batch = X[1_500:1_502].copy()
    batch[0] = np.nan
    batch[1, :5] = np.nan
    frame = model.predict_frame(batch)
    assert frame["uncertain"].all()
    assert frame["reasons"][0].startswith("novelty (6 of 6 features missing)")
    assert "novelty (5 of 6 features missing)" in frame["reasons"][1]


def test_native_categorical_features_work_with_the_default_rules():
    """Issue 22: with categorical_features="from_dtype" the fit failed after
    every fold was fitted (the detector could not read strings)."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = make_classification(n_samples=1_200, n_features=4, random_state=0)
    frame = pd.DataFrame(X, columns=list("abcd"))
    frame["colour"] = pd.Categorical(np.where(X[:, 0] > 0, "red", "blue"))
    frame["when"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(
        np.arange(1_200), unit="h"
    )
    model = GaussianSoftmaxClassifier(
        HistGradientBoostingClassifier(
            categorical_features="from_dtype", max_iter=30, random_state=0
        )
    ).fit(frame[["a", "b", "c", "d", "colour"]], y)
    flagged = model.predict_frame(frame[["a", "b", "c", "d", "colour"]].iloc[:300])
    # in distribution: the novelty rule flags about novelty_alpha of them
    assert flagged["reasons"].str.contains("novelty").mean() < 0.12
    detector = KNeighborsNovelty().fit(frame)
    scores = detector.score_samples(frame.iloc[:5])
    assert np.isfinite(scores).all()

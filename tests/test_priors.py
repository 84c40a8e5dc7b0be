"""adapt_priors: class proportions estimated or given, probabilities and the
flag adapted to them (``_priors`` and the estimators' hooks)."""

import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_gsoftmax import GaussianSoftmaxCalibrator, GaussianSoftmaxClassifier
from sklearn_gsoftmax._links import proba_bounds
from sklearn_gsoftmax._priors import adapt_proba, class_mix_test, em_priors
from sklearn_gsoftmax._priors import weighted_conformal_sets as weighted_sets

TRAIN_PRIORS = np.array([0.5, 0.3, 0.2])
CENTRES = np.array([[1.5, 0.0, 0.0], [0.0, 1.5, 0.0], [0.0, 0.0, 1.5]])


def draw(rng, priors, m):
    """Three-class scores whose class-conditional law does not depend on the
    proportions: a pure label shift when ``priors`` moves."""
    y = rng.choice(3, size=m, p=priors)
    return CENTRES[y] + rng.normal(size=(m, 3)), y


@pytest.fixture(scope="module")
def calibrator():
    scores, y = draw(np.random.default_rng(1), TRAIN_PRIORS, 3000)
    model = GaussianSoftmaxCalibrator(uncertainty_rules=("low_confidence", "conformal"))
    return model.fit(scores, y)


def slow_em(proba, implied, lam, tol=1e-8, max_iter=1000):
    """The MAP-EM written out one row and class at a time."""
    m, k = proba.shape
    q = list(implied)
    for _ in range(max_iter):
        totals = [0.0] * k
        for i in range(m):
            terms = [proba[i][c] / implied[c] * q[c] for c in range(k)]
            for c in range(k):
                totals[c] += terms[c] / sum(terms)
        new = [(totals[c] + lam * implied[c]) / (m + lam) for c in range(k)]
        new = [value / sum(new) for value in new]
        done = max(abs(a - b) for a, b in zip(new, q)) < tol
        q = new
        if done:
            break
    return np.array(q)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    k=st.integers(2, 5),
    m=st.integers(20, 60),
    lam=st.sampled_from([0.0, 1.0, 5.0]),
)
def test_em_matches_a_slow_loop(seed, k, m, lam):
    rng = np.random.default_rng(seed)
    proba = rng.dirichlet(np.ones(k), size=m)
    implied = rng.dirichlet(np.full(k, 5.0))
    q, _ = em_priors(proba, implied, pseudo_counts=lam)
    np.testing.assert_allclose(q, slow_em(proba, implied, lam), atol=1e-7)
    assert q.sum() == pytest.approx(1.0)


def test_given_priors_reweight_by_bayes_rule(calibrator):
    scores, _ = draw(np.random.default_rng(2), TRAIN_PRIORS, 200)
    q = np.array([0.2, 0.2, 0.6])
    adapted = calibrator.adapt_priors(priors=q)
    p = calibrator.predict_proba(scores)
    by_hand = p * q / calibrator.training_priors_
    by_hand /= by_hand.sum(axis=1, keepdims=True)
    # rows far from the link's bound are the plain Bayes reweighting
    inside = by_hand.min(axis=1) > 1e-3
    assert inside.mean() > 0.9
    np.testing.assert_allclose(
        adapted.predict_proba(scores)[inside], by_hand[inside], rtol=1e-10
    )
    np.testing.assert_allclose(
        adapted.predict_log_proba(scores)[inside], np.log(by_hand[inside]), rtol=1e-9
    )
    np.testing.assert_array_equal(
        adapted.predict(scores), adapted.classes_[by_hand.argmax(axis=1)]
    )
    np.testing.assert_array_equal(adapted.class_priors_, q)
    np.testing.assert_array_equal(adapted.training_priors_, calibrator.training_priors_)
    # the original is untouched
    assert not hasattr(calibrator, "class_priors_")
    np.testing.assert_array_equal(calibrator.predict_proba(scores), p)


def test_training_priors_are_the_mean_held_out_probability(calibrator):
    # close to the class frequencies for a calibrated model
    np.testing.assert_allclose(calibrator.training_priors_, TRAIN_PRIORS, atol=0.03)
    assert calibrator.training_priors_.sum() == pytest.approx(1.0)
    # adapting to them changes nothing
    scores, _ = draw(np.random.default_rng(3), TRAIN_PRIORS, 50)
    same = calibrator.adapt_priors(priors=calibrator.training_priors_)
    np.testing.assert_allclose(
        same.predict_proba(scores), calibrator.predict_proba(scores), rtol=1e-12
    )


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    k=st.integers(2, 6),
    n=st.sampled_from([3.0, 10.0, 1e3, 1e8]),
    link=st.sampled_from(["gaussian", "linear", "softmax"]),
    multiclass=st.sampled_from(["vs_top", "simplex"]),
    spread=st.sampled_from([1.0, 1e-3, 1e-9]),
)
def test_adapted_probabilities_stay_in_bounds_and_sum_to_one(
    seed, k, n, link, multiclass, spread
):
    assume(link != "linear" or n > k)  # the linear link needs n > K
    rng = np.random.default_rng(seed)
    low, high = proba_bounds(n, k, link, multiclass)
    # rows inside the bounds, then proportions far from the training ones
    proba = rng.dirichlet(np.ones(k), size=30)
    proba = (1 - k * low) * proba + low if link != "softmax" else proba
    ratio = rng.dirichlet(np.full(k, spread)) / rng.dirichlet(np.ones(k))
    ratio[0] = max(ratio[0], 1e-300)
    adapted = adapt_proba(proba, ratio, n, link, multiclass)
    assert np.isfinite(adapted).all()
    np.testing.assert_allclose(adapted.sum(axis=1), 1.0, rtol=1e-12)
    assert (adapted >= low).all() and (adapted <= high).all()
    logs = adapt_proba(np.log(proba), ratio, n, link, multiclass, log=True)
    np.testing.assert_allclose(np.exp(logs), adapted, rtol=1e-9, atol=1e-300)
    if link == "gaussian":
        # the gaussian link's range: no class below the top over (n - 1)
        top = adapted.max(axis=1, keepdims=True)
        assert (adapted >= top / (n - 1) * (1 - 1e-12)).all()


def test_adaptation_floors_the_odds_at_the_gaussian_links_bound():
    # n = 10: no class below a ninth of the top one; Bayes' rule would put the
    # third class at about 1e-7 of the top
    proba = np.array([[0.8, 0.1, 0.1]])
    adapted = adapt_proba(proba, np.array([1.0, 1.0, 1e-6]), 10.0, "gaussian", "vs_top")
    logs = np.log([1.0, 0.125, 1 / 9])
    np.testing.assert_allclose(adapted, [np.exp(logs) / np.exp(logs).sum()])


def test_no_shift_keeps_the_training_priors(calibrator):
    kept = 0
    for seed in range(20):
        scores, _ = draw(np.random.default_rng(100 + seed), TRAIN_PRIORS, 300)
        adapted = calibrator.adapt_priors(scores)
        if np.array_equal(adapted.class_priors_, calibrator.training_priors_):
            kept += 1
            np.testing.assert_array_equal(
                adapted.predict_proba(scores), calibrator.predict_proba(scores)
            )
    # the guard's test rejects at 0.05 under no shift
    assert kept >= 17


def test_resampled_batch_priors_are_recovered(calibrator):
    q = np.array([0.1, 0.2, 0.7])
    scores, y = draw(np.random.default_rng(4), q, 2000)
    adapted = calibrator.adapt_priors(scores)
    assert adapted.class_mix_pvalue_ < 1e-6
    assert np.abs(adapted.class_priors_ - q).sum() < 0.06
    assert np.abs(calibrator.training_priors_ - q).sum() > 0.5
    rows = np.arange(len(y))
    before = -np.log(calibrator.predict_proba(scores)[rows, y]).mean()
    after = -np.log(adapted.predict_proba(scores)[rows, y]).mean()
    assert after < 0.95 * before


def test_class_mix_test_matches_its_formula():
    rng = np.random.default_rng(5)
    held = rng.dirichlet(np.ones(3), size=500)
    batch = rng.dirichlet([2.0, 1.0, 1.0], size=40)
    implied = held.mean(axis=0)
    covariance = np.cov(held.T, bias=True)
    statistic, p_value = class_mix_test(batch, implied, covariance, 500)
    d = batch.mean(axis=0)[:2] - implied[:2]
    s = covariance[:2, :2] * (1 / 40 + 1 / 500)
    assert statistic == pytest.approx(d @ np.linalg.solve(s, d), rel=1e-9)
    from scipy import stats

    assert p_value == pytest.approx(stats.chi2.sf(statistic, 2), rel=1e-9)


def slow_weighted_sets(class_scores, proba, alpha, ratio):
    """Podkopaev-Ramdas weighted split-conformal sets, one p-value at a time."""
    sets = np.zeros(proba.shape, dtype=bool)
    for i in range(proba.shape[0]):
        for k in range(proba.shape[1]):
            s = 1 - proba[i, k]
            above = sum(
                ratio[c] * np.sum(scores >= s) for c, scores in enumerate(class_scores)
            )
            total = sum(ratio[c] * len(scores) for c, scores in enumerate(class_scores))
            sets[i, k] = (ratio[k] + above) / (ratio[k] + total) > alpha
    return sets


def test_weighted_conformal_sets_match_a_slow_reference():
    from sklearn_gsoftmax._conformal import ConformalReference

    rng = np.random.default_rng(6)
    class_scores = [rng.uniform(size=n) for n in (40, 25, 10)]
    references = [ConformalReference(s, np.ones(len(s))) for s in class_scores]
    proba = rng.dirichlet(np.ones(3), size=30)
    ratio = np.array([0.4, 1.0, 3.5])
    np.testing.assert_array_equal(
        weighted_sets([references], [proba], 0.1, ratio),
        slow_weighted_sets(class_scores, proba, 0.1, ratio),
    )


def test_weighted_conformal_sets_cover_under_label_shift(calibrator):
    q = np.array([0.05, 0.15, 0.8])
    scores, y = draw(np.random.default_rng(7), q, 4000)
    adapted = calibrator.adapt_priors(priors=q)
    rows = np.arange(len(y))
    covered = adapted.predict_set(scores, alpha=0.1)[rows, y].mean()
    assert covered >= 0.88
    # the conformal rule flags the sets of other than one class
    sets = adapted.predict_set(scores)
    flagged = adapted.predict_frame(scores)["reasons"].str.contains("conformal")
    np.testing.assert_array_equal(flagged.to_numpy(), sets.sum(axis=1) != 1)


def test_flag_threshold_is_selected_again_for_the_new_mix(calibrator):
    q = np.array([0.1, 0.1, 0.8])
    adapted = calibrator.adapt_priors(priors=q)
    assert adapted.uncertainty_threshold_ != calibrator.uncertainty_threshold_
    # the stated accuracy is estimated on a large batch of the new mix
    scores, y = draw(np.random.default_rng(8), q, 20000)
    reasons = adapted.predict_frame(scores)["reasons"]
    accepted = ~reasons.str.contains("low_confidence").to_numpy()
    accuracy = (adapted.predict(scores)[accepted] == y[accepted]).mean()
    assert accuracy == pytest.approx(adapted.accepted_accuracy_, abs=0.015)
    assert accuracy >= calibrator.target_accuracy - 0.015
    assert adapted.coverage_ == pytest.approx(accepted.mean(), abs=0.03)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({}, "neither"),
        ({"X": np.zeros((30, 3)), "priors": [0.2, 0.3, 0.5]}, "both"),
        ({"priors": [0.5, 0.5]}, "one proportion per class, 3"),
        ({"priors": [0.6, 0.6, -0.2]}, "non-negative"),
        ({"priors": [0.2, 0.3, 0.4]}, "sum to 1"),
        ({"priors": [0.0, 0.5, 0.5]}, "seen in training"),
        ({"priors": {0: 0.5, 1: 0.5}}, "missing"),
        ({"priors": ["a", "b", "c"]}, "must be numbers"),
        ({"X": np.zeros((19, 3))}, "at least 20"),
    ],
)
def test_bad_input_says_how_to_fix_it(calibrator, kwargs, match):
    with pytest.raises(ValueError, match=match):
        calibrator.adapt_priors(**kwargs)


def test_priors_by_label_and_within_tolerance(calibrator):
    by_label = calibrator.adapt_priors(priors={2: 0.5, 0: 0.25, 1: 0.25})
    np.testing.assert_allclose(by_label.class_priors_, [0.25, 0.25, 0.5])
    nearly = calibrator.adapt_priors(priors=[0.25, 0.25, 0.5 + 5e-7])
    assert nearly.class_priors_.sum() == pytest.approx(1.0, abs=1e-15)


def test_adapted_copy_survives_pickle(calibrator):
    scores, _ = draw(np.random.default_rng(9), TRAIN_PRIORS, 50)
    adapted = calibrator.adapt_priors(priors=[0.2, 0.2, 0.6])
    loaded = pickle.loads(pickle.dumps(adapted))
    np.testing.assert_array_equal(
        loaded.predict_proba(scores), adapted.predict_proba(scores)
    )
    np.testing.assert_array_equal(
        loaded.predict_set(scores), adapted.predict_set(scores)
    )
    np.testing.assert_array_equal(loaded.class_priors_, adapted.class_priors_)


def test_classifier_in_a_pipeline():
    rng = np.random.default_rng(10)
    X, y = draw(rng, TRAIN_PRIORS, 400)
    pipe = make_pipeline(
        StandardScaler(),
        GaussianSoftmaxClassifier(LogisticRegression(), cv=2),
    ).fit(X, y)
    batch, _ = draw(rng, np.array([0.1, 0.1, 0.8]), 400)
    inner = pipe[:-1].transform(batch)
    adapted = pipe[-1].adapt_priors(inner)
    assert adapted.class_priors_[2] > 0.6
    pipe_adapted = make_pipeline(pipe[0], adapted)
    np.testing.assert_array_equal(
        pipe_adapted.predict_proba(batch), adapted.predict_proba(inner)
    )
    by_hand = pipe.predict_proba(batch) * adapted.class_priors_
    by_hand /= adapted.training_priors_
    by_hand /= by_hand.sum(axis=1, keepdims=True)
    inside = by_hand.min(axis=1) > 1e-2  # away from the link's bound
    np.testing.assert_allclose(
        pipe_adapted.predict_proba(batch)[inside], by_hand[inside], rtol=1e-8
    )
    # the classifier's ensemble sets are weighted per pair
    sets = adapted.predict_set(inner, alpha=0.2)
    assert sets.any(axis=1).all()


OLD_MODELS = Path(__file__).parent / "data" / "models_0.2.0"


def test_models_saved_before_ask_to_refit():
    try:
        model = pickle.loads((OLD_MODELS / "calibrator_3class.pkl").read_bytes())
    except Exception as exc:  # other numpy / scikit-learn versions
        pytest.skip(f"the old pickle does not load here: {exc}")
    with pytest.raises(ValueError, match="refit"):
        model.adapt_priors(priors=np.full(len(model.classes_), 1 / len(model.classes_)))


# --------------------------------------------------------------------------------------
# shift_report: a class-mix shift told from a change in the features


@pytest.fixture(scope="module")
def reporter():
    scores, y = draw(np.random.default_rng(11), TRAIN_PRIORS, 3000)
    return GaussianSoftmaxCalibrator().fit(scores, y)


def test_resampled_batch_is_reported_as_class_mix(reporter):
    q = np.array([0.1, 0.2, 0.7])
    scores, _ = draw(np.random.default_rng(12), q, 500)
    report = reporter.shift_report(scores)
    assert report.attrs["shifted"]
    assert report.attrs["verdict"] == "class mix"
    rows = [f"class proportion: {k}" for k in range(3)]
    assert report.loc[rows, "shifted"].all()
    np.testing.assert_allclose(report.loc[rows, "observed"], q, atol=0.06)
    np.testing.assert_allclose(report.loc[rows, "expected"], reporter.training_priors_)
    for k, (estimate, low, high, training) in report.attrs["class_priors"].items():
        assert low <= estimate <= high and low < q[k] < high
        assert training == reporter.training_priors_[k]
    # restated under the estimated mix, no check fires
    assert not any(shifted for _, _, shifted in report.attrs["restated"].values())


def test_in_distribution_batches_raise_no_alarm(reporter):
    verdicts = [
        reporter.shift_report(
            draw(np.random.default_rng(200 + s), TRAIN_PRIORS, 300)[0]
        ).attrs["verdict"]
        for s in range(20)
    ]
    assert verdicts.count("none") >= 19


def test_a_feature_change_is_not_called_class_mix(reporter):
    scores, _ = draw(np.random.default_rng(13), TRAIN_PRIORS, 500)
    report = reporter.shift_report(1.5 * scores + 0.5)
    assert report.attrs["verdict"] == "features"
    # scores swapped between classes move the mean probabilities too (the
    # class-mix test fires), but no class mix explains the batch
    report = reporter.shift_report(0.7 * scores[:, [1, 2, 0]])
    assert report.attrs["class_mix_pvalue"] < 1e-6
    assert report.attrs["verdict"] == "features"


def test_intervals_cover_the_true_proportions(reporter):
    q = np.array([0.3, 0.3, 0.4])
    covered = []
    for s in range(40):
        scores, _ = draw(np.random.default_rng(300 + s), q, 300)
        intervals = reporter.shift_report(scores).attrs["class_priors"]
        covered += [low <= q[k] <= high for k, (_, low, high, _) in intervals.items()]
    assert np.mean(covered) >= 0.88


def test_restated_summary_is_the_reweighted_held_out_one(reporter):
    ratio = np.array([0.4, 1.0, 2.5])
    restated = reporter._restated_summary(ratio)
    rows = reporter._prior_state["model_rows"][0]
    w = rows["w"] * ratio[rows["y"]]
    confidence = rows["proba"].max(axis=1)
    assert restated["confidence"][0] == pytest.approx(np.average(confidence, weights=w))
    correct = rows["proba"].argmax(axis=1) == rows["y"]
    assert restated["accuracy"] == pytest.approx(np.average(correct, weights=w))
    # Kish's effective number of the reweighted rows
    assert restated["n"] == pytest.approx(w.sum() ** 2 / (w @ w))
    flagged = confidence < reporter.uncertainty_threshold_
    assert restated["rates"]["low_confidence"] == pytest.approx(
        np.average(flagged, weights=w)
    )

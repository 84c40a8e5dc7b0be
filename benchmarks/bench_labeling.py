"""What to label next: select_for_labeling against random and least-confident
choice (issue 8's targets).

    python benchmarks/bench_labeling.py

Digits as in the main job: ordered along the first principal component, the
model is trained on 70 % of the lower 70 % (the main job's training set), the
pool is the upper 30 %. Each strategy picks ``n`` samples of the pool; they are
labelled and added to the training set, the base model is refitted, and its
accuracy is measured on the rest of the pool. Random choice is averaged over 10
draws; everything is averaged over 5 random training splits. Targets:
select_for_labeling beats random by at least 3 points at n = 20 and 1.5
points at n = 50.
"""

import argparse
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_gsoftmax import GaussianSoftmaxClassifier
from sklearn_gsoftmax._demo import ShiftedSplit

TARGETS = {20: 0.03, 50: 0.015}
STRATEGIES = ("random", "least confident", "select_for_labeling")


def base_model():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def accuracy_after_labelling(X_train, y_train, X_pool, y_pool, chosen):
    rest = np.setdiff1d(np.arange(len(y_pool)), chosen)
    model = base_model().fit(
        np.vstack([X_train, X_pool[chosen]]), np.concatenate([y_train, y_pool[chosen]])
    )
    return float((model.predict(X_pool[rest]) == y_pool[rest]).mean())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--splits", type=int, default=5)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    results = {(n, name): [] for n in TARGETS for name in STRATEGIES}
    for seed in range(args.splits):
        split = ShiftedSplit("digits", seed=seed)
        X_train, y_train = split.X_train, split.y_train
        X_pool, y_pool = split.X_shifted, split.y_shifted
        flagger = GaussianSoftmaxClassifier(base_model()).fit(X_train, y_train)
        confidence = flagger.predict_proba(X_pool).max(axis=1)
        rng = np.random.default_rng(seed)
        for n in TARGETS:
            choices = {
                "least confident": [np.argsort(confidence, kind="stable")[:n]],
                "select_for_labeling": [flagger.select_for_labeling(X_pool, n)],
                "random": [
                    rng.choice(len(y_pool), n, replace=False) for _ in range(args.draws)
                ],
            }
            for name, chosen in choices.items():
                results[(n, name)].append(
                    np.mean(
                        [
                            accuracy_after_labelling(
                                X_train, y_train, X_pool, y_pool, c
                            )
                            for c in chosen
                        ]
                    )
                )
        print(f"split {seed} done", flush=True)
    print(f"pool {len(y_pool)}; accuracy on the rest of the pool, mean of splits")
    print(f"{'n':>4} " + " ".join(f"{name:>20}" for name in STRATEGIES) + "    gain")
    for n, target in TARGETS.items():
        means = {name: np.mean(results[(n, name)]) for name in STRATEGIES}
        gain = means["select_for_labeling"] - means["random"]
        verdict = "met" if gain >= target else "MISSED"
        print(
            f"{n:4d} "
            + " ".join(f"{means[name]:20.3f}" for name in STRATEGIES)
            + f"  {gain:+.3f}  target +{target:.3f} {verdict}"
        )


if __name__ == "__main__":
    main()

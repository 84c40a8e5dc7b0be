"""GaussianSoftmaxClassifier against CalibratedClassifierCV(method="sigmoid"),
same estimator and folds, on a 50 000-sample problem (issue 3's targets).

    python benchmarks/bench_classifier.py [--repeat 5]

Prints median times and ratios: fit time against CalibratedClassifierCV (target
<= 1.05) and predict_proba time against the bare fitted estimator's predict_proba
(target <= 1.2, with ensemble=False: one estimator behind the calibrator; with
ensemble=True there are cv estimators to evaluate, shown for information). The runs
alternate, so that load on a shared machine hits both sides alike.
"""

import argparse

from _timing import interleaved_medians, print_ratios, print_target
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from sklearn_gsoftmax import GaussianSoftmaxClassifier


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    X, y = make_classification(
        n_samples=50_000, n_features=20, n_informative=10, flip_y=0.05, random_state=0
    )

    def estimator():
        return LogisticRegression(max_iter=1000)

    fits = interleaved_medians(
        {
            "CalibratedClassifierCV(sigmoid)": lambda: CalibratedClassifierCV(
                estimator(), method="sigmoid", cv=5
            ).fit(X, y),
            "GaussianSoftmaxClassifier": lambda: GaussianSoftmaxClassifier(
                estimator(), cv=5
            ).fit(X, y),
        },
        args.repeat,
    )
    reference = "CalibratedClassifierCV(sigmoid)"
    print_ratios("fit, 50 000 x 20, LogisticRegression, cv=5", fits, reference)
    print_target("fit", fits, "GaussianSoftmaxClassifier", reference, 1.05)

    bare = estimator().fit(X, y)
    single = GaussianSoftmaxClassifier(estimator(), cv=5, ensemble=False).fit(X, y)
    ensembled = GaussianSoftmaxClassifier(estimator(), cv=5).fit(X, y)
    reference = CalibratedClassifierCV(estimator(), method="sigmoid", cv=5).fit(X, y)
    predicts = interleaved_medians(
        {
            "bare estimator": lambda: bare.predict_proba(X),
            "gsoftmax ensemble=False": lambda: single.predict_proba(X),
            "gsoftmax ensemble=True": lambda: ensembled.predict_proba(X),
            "CalibratedClassifierCV ensemble": lambda: reference.predict_proba(X),
        },
        args.repeat * 4,
    )
    print_ratios("predict_proba on the 50 000 samples", predicts, "bare estimator")
    print_target(
        "predict_proba (ensemble=False)",
        predicts,
        "gsoftmax ensemble=False",
        "bare estimator",
        1.2,
    )


if __name__ == "__main__":
    main()

"""What the uncertain flag costs at prediction time (issue 8).

    python benchmarks/bench_flag_cost.py [--repeat 3]

GaussianSoftmaxClassifier(LogisticRegression) fitted on 10^5 x 20 samples
(ensemble=True, 5 folds, and ensemble=False), then predict_frame with the
default rules (low_confidence and novelty) against predict_proba on 10^5 x 20
new samples, median times measured side by side. Also the fit time with and
without the novelty rule. The novelty rule's default detector compares each
new sample with at most 2 000 reference samples per fold, so the cost per
sample does not grow with the training set.
"""

import argparse
import time

from _timing import interleaved_medians, print_ratios
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from sklearn_gsoftmax import GaussianSoftmaxClassifier


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    X, y = make_classification(
        n_samples=200_000, n_features=20, n_informative=10, random_state=0
    )
    X_train, y_train, X_new = X[:100_000], y[:100_000], X[100_000:]
    for ensemble in (True, False):
        fits = {}
        models = {}
        for rules in (("low_confidence",), ("low_confidence", "novelty")):
            model = GaussianSoftmaxClassifier(
                LogisticRegression(), ensemble=ensemble, uncertainty_rules=rules
            )
            start = time.perf_counter()
            models[rules] = model.fit(X_train, y_train)
            fits[" + ".join(rules)] = time.perf_counter() - start
        print(f"\nensemble={ensemble}: fit on 10^5 x 20 (seconds, one run):")
        for name, seconds in fits.items():
            print(f"  {name:34s} {seconds:8.2f}")
        default = models[("low_confidence", "novelty")]
        medians = interleaved_medians(
            {
                "predict_proba": lambda m=default: m.predict_proba(X_new),
                "predict_frame (no novelty)": lambda m=models[("low_confidence",)]: (
                    m.predict_frame(X_new)
                ),
                "predict_frame (default rules)": lambda m=default: m.predict_frame(
                    X_new
                ),
            },
            args.repeat,
        )
        print_ratios(
            f"ensemble={ensemble}: 10^5 x 20 new samples", medians, "predict_proba"
        )


if __name__ == "__main__":
    main()

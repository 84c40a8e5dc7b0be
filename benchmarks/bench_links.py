"""Speed of the links and of the calibrator's fit, side by side with scipy and
scikit-learn in one run (issue 2's targets).

    python benchmarks/bench_links.py [--repeat 7]

Prints the median time of each and the ratios; the targets are
gaussian_softmax / scipy.special.softmax <= 2.5 on 10^6 x 10 float64 scores and
GaussianSoftmaxCalibrator(link="gaussian").fit, with the uncertain flag's
state, / scikit-learn's sigmoid calibration <= 1.0 on 10^6 binary scores, for
labels drawn from expit(s) and from expit(2s - 1) (issue 9). The runs alternate,
so that load on a shared machine hits both sides alike.
"""

import argparse

import numpy as np
from _timing import interleaved_medians, print_ratios, print_target
from scipy.special import expit, softmax
from sklearn.calibration import _SigmoidCalibration

from sklearn_gsoftmax import GaussianSoftmaxCalibrator, gaussian_softmax


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)

    logits = rng.normal(scale=3.0, size=(10**6, 10))
    links = interleaved_medians(
        {
            "scipy.special.softmax": lambda: softmax(logits, axis=1),
            "gaussian_softmax": lambda: gaussian_softmax(logits, 10**6),
            "gaussian_softmax(simplex)": lambda: gaussian_softmax(
                logits, 10**6, multiclass="simplex"
            ),
        },
        args.repeat,
    )
    print_ratios("links on 10^6 x 10 float64 scores", links, "scipy.special.softmax")
    print_target(
        "gaussian_softmax / softmax",
        links,
        "gaussian_softmax",
        "scipy.special.softmax",
        2.5,
    )

    scores = rng.normal(scale=3.0, size=10**6)
    # labels as the scores say (the sigmoid is right) and labels of a shifted,
    # sharper sigmoid (the calibrator has work to do)
    regimes = {"expit(s)": scores, "expit(2s - 1)": 2 * scores - 1}
    for regime, logits in regimes.items():
        labels = (rng.random(10**6) < expit(logits)).astype(int)
        fits = interleaved_medians(
            {
                "sklearn sigmoid calibration": lambda: _SigmoidCalibration().fit(
                    scores, labels
                ),
                # the flag's state (threshold, conformal reference) included
                "calibrator link=gaussian": lambda: GaussianSoftmaxCalibrator(
                    uncertainty_rules=("low_confidence",)
                ).fit(scores, labels),
                "calibrator link=softmax": lambda: GaussianSoftmaxCalibrator(
                    link="softmax", uncertainty_rules=("low_confidence",)
                ).fit(scores, labels),
                # the default flag: low_confidence and novelty, gaussian link
                "calibrator default rules": lambda: GaussianSoftmaxCalibrator().fit(
                    scores, labels
                ),
            },
            args.repeat,
        )
        print_ratios(
            f"fit on 10^6 binary scores, labels from {regime}",
            fits,
            "sklearn sigmoid calibration",
        )
        for name in ("calibrator link=gaussian", "calibrator default rules"):
            print_target(
                f"{name} fit / sigmoid fit",
                fits,
                name,
                "sklearn sigmoid calibration",
                1.0,
            )


if __name__ == "__main__":
    main()

"""Speed of the links and of the calibrator's fit, side by side with scipy and
scikit-learn in one run (issue 2's targets).

    python benchmarks/bench_links.py [--repeat 7]

Prints the median time of each and the ratios; the targets are
gaussian_softmax / scipy.special.softmax <= 2.5 on 10^6 x 10 float64 scores and
GaussianSoftmaxCalibrator(link="gaussian").fit / scikit-learn's sigmoid
calibration <= 1.0 on 10^6 binary scores. The runs alternate, so that load on a
shared machine hits both sides alike.
"""

import argparse

import numpy as np
from _timing import interleaved_medians, print_ratios, print_target
from scipy.special import softmax
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
    labels = (rng.random(10**6) < 1 / (1 + np.exp(-(2 * scores - 1)))).astype(int)
    fits = interleaved_medians(
        {
            "sklearn sigmoid calibration": lambda: _SigmoidCalibration().fit(
                scores, labels
            ),
            "calibrator link=gaussian": lambda: GaussianSoftmaxCalibrator().fit(
                scores, labels
            ),
            "calibrator link=softmax": lambda: GaussianSoftmaxCalibrator(
                link="softmax"
            ).fit(scores, labels),
        },
        args.repeat,
    )
    print_ratios("fit on 10^6 binary scores", fits, "sklearn sigmoid calibration")
    print_target(
        "calibrator(gaussian) fit / sigmoid fit",
        fits,
        "calibrator link=gaussian",
        "sklearn sigmoid calibration",
        1.0,
    )


if __name__ == "__main__":
    main()

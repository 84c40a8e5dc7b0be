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
import statistics
import time

import numpy as np
from scipy.special import softmax
from sklearn.calibration import _SigmoidCalibration

from sklearn_gsoftmax import GaussianSoftmaxCalibrator, gaussian_softmax


def _interleaved_medians(functions, repeat):
    times = {name: [] for name in functions}
    for _ in range(repeat):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)

    logits = rng.normal(scale=3.0, size=(10**6, 10))
    links = _interleaved_medians(
        {
            "scipy.special.softmax": lambda: softmax(logits, axis=1),
            "gaussian_softmax": lambda: gaussian_softmax(logits, 10**6),
            "gaussian_softmax(simplex)": lambda: gaussian_softmax(
                logits, 10**6, multiclass="simplex"
            ),
        },
        args.repeat,
    )
    base = links["scipy.special.softmax"]
    print("links on 10^6 x 10 float64 scores (median seconds, ratio to scipy):")
    for name, seconds in links.items():
        print(f"  {name:28s} {seconds:8.4f}  {seconds / base:5.2f}x")
    ratio = links["gaussian_softmax"] / base
    print(f"  target gaussian_softmax <= 2.5x: ratio {ratio:.2f}")

    scores = rng.normal(scale=3.0, size=10**6)
    labels = (rng.random(10**6) < 1 / (1 + np.exp(-(2 * scores - 1)))).astype(int)
    fits = _interleaved_medians(
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
        max(3, args.repeat // 2),
    )
    base = fits["sklearn sigmoid calibration"]
    print("fit on 10^6 binary scores (median seconds, ratio to scikit-learn):")
    for name, seconds in fits.items():
        print(f"  {name:28s} {seconds:8.4f}  {seconds / base:5.2f}x")
    ratio = fits["calibrator link=gaussian"] / base
    print(f"  target calibrator(gaussian) <= 1.0x: ratio {ratio:.2f}")


if __name__ == "__main__":
    main()

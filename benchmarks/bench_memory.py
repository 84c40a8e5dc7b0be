"""Peak memory of GaussianSoftmaxCalibrator.predict_proba on 10^7 binary scores
(issue 5's target: at most about 4x the memory of the output).

    python benchmarks/bench_memory.py [--n 10000000]

numpy reports its allocations to tracemalloc, so the traced peak during the call
is the memory the call itself allocated (the input scores are allocated before).
"""

import argparse
import tracemalloc

import numpy as np

from sklearn_gsoftmax import GaussianSoftmaxCalibrator


def peak_ratio(function, scores):
    tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    output = function(scores)
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    return peak, output.nbytes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10**7)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    train = rng.normal(scale=3.0, size=10**5)
    labels = (rng.random(10**5) < 1 / (1 + np.exp(-train))).astype(int)
    scores = rng.normal(scale=3.0, size=args.n)
    print(f"predict_proba on {args.n:.0e} binary scores:")
    for link in ("gaussian", "linear", "softmax"):
        for dtype in (np.float64, np.float32):
            model = GaussianSoftmaxCalibrator(link=link).fit(train, labels)
            peak, out = peak_ratio(model.predict_proba, scores.astype(dtype))
            verdict = "met" if peak <= 4 * out else "MISSED"
            name = np.dtype(dtype).name
            print(
                f"  link={link:8s} {name:7s} peak {peak / 2**20:7.1f} MiB"
                f"  output {out / 2**20:7.1f} MiB  ratio {peak / out:4.2f}"
                f"  (target <= 4: {verdict})"
            )


if __name__ == "__main__":
    main()

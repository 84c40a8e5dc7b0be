"""A small network's argmax under calibration (issue 24's accuracy target).

    python benchmarks/bench_argmax.py [--splits 6]

An MLP is trained on half of digits; its log-probabilities (logits up to a
shift per row) on a quarter (449 rows) calibrate, the other quarter (450 rows)
tests. Over ``--splits`` random splits it prints the test accuracy of the
network's own argmax, of ``GaussianSoftmaxCalibrator()`` (the default,
``fit_intercept="auto"``), of the same with the offsets always fitted
(``fit_intercept=True``) and of temperature scaling, and how often the default
kept the offsets. Target: the default loses no accuracy against the network
beyond sampling noise, i.e. the mean paired difference over all test rows is
at least minus two of its standard errors.
"""

import argparse
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sklearn_gsoftmax import GaussianSoftmaxCalibrator

CALIBRATORS = {
    "default (fit_intercept='auto')": {},
    "offsets always (fit_intercept=True)": {"fit_intercept": True},
    "temperature (link='softmax', no offsets)": {
        "link": "softmax",
        "fit_intercept": False,
    },
}


def one_split(X, y, seed: int) -> dict:
    """Per method, whether each test row's prediction is right; and whether
    the default kept its offsets."""
    X_train, X_rest, y_train, y_rest = train_test_split(
        X, y, train_size=0.5, stratify=y, random_state=seed
    )
    X_cal, X_test, y_cal, y_test = train_test_split(
        X_rest, y_rest, train_size=449, stratify=y_rest, random_state=seed
    )
    scaler = StandardScaler().fit(X_train)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the MLP's ConvergenceWarning
        network = MLPClassifier(
            hidden_layer_sizes=(32,), max_iter=300, random_state=seed
        ).fit(scaler.transform(X_train), y_train)
    cal, test = (
        network.predict_log_proba(scaler.transform(part)) for part in (X_cal, X_test)
    )
    right = {"network argmax": network.classes_[test.argmax(axis=1)] == y_test}
    kept = None
    for name, params in CALIBRATORS.items():
        model = GaussianSoftmaxCalibrator(uncertainty_rules=(), **params)
        model.fit(cal, y_cal)
        right[name] = model.predict(test) == y_test
        if kept is None:
            kept = bool(np.any(model.intercept_ != 0.0))
    return right, kept


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=6)
    args = parser.parse_args(argv)
    X, y = load_digits(return_X_y=True)
    rows, kept = {}, 0
    with threadpool_limits(1):
        for seed in range(args.splits):
            right, offsets = one_split(X, y, seed)
            kept += offsets
            for name, values in right.items():
                rows.setdefault(name, []).append(values)
    right = {name: np.concatenate(values) for name, values in rows.items()}
    print(
        f"digits, MLP(32), {args.splits} splits: 449 calibration and 450 test "
        "rows each; test accuracy over all splits"
    )
    for name, values in right.items():
        print(f"  {name:45s} {values.mean():.4f}")
    print(f"  the default kept its offsets in {kept} of {args.splits} splits")
    default = right["default (fit_intercept='auto')"]
    difference = default.astype(float) - right["network argmax"]
    mean = difference.mean()
    se = difference.std(ddof=1) / np.sqrt(len(difference))
    met = mean >= -2.0 * se
    print(
        f"target default - network accuracy >= -2 SE: {mean:+.4f} "
        f"(SE {se:.4f}): {'met' if met else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Speed of GaussianSoftmaxCalibrator and GaussianSoftmaxClassifier against
scikit-learn's calibration, side by side in one run (issue 24's targets).

    python benchmarks/bench_speed.py [--cases meta,binary,logits,table]
        [--repeat 3] [--threads 1,default] [--logits 20000x100,50000x1000]
        [--timeout 900] [--table-m 10000,100000] [--table-k 2,10,100,1000]
        [--table-timeout 300] [--table-max-mib 400]

Every figure is measured under ``threadpoolctl.threadpool_limits(1)`` ("1
thread") and with the default thread settings ("default"), printed side by
side: on two cores oversubscribed BLAS threads slow scipy's optimisers many
times over. The sides of each comparison alternate (interleaved medians), so
that load on a shared machine hits both alike.

* meta: ``GaussianSoftmaxClassifier(est, cv=5).fit`` with the default rules
  (target <= 1.5x) and with ``uncertainty_rules=()`` (<= 1.1x) against
  ``CalibratedClassifierCV(est, method="sigmoid", cv=5)``: LogisticRegression on
  20 000 x 20 binary and on digits (half of each fitted), RidgeClassifier on
  10 000 x 20 with 5 classes (no target). Beside them, the base model's five
  folds alone and with a calibrator without the flag fitted on each fold's
  scores: what the calibration may cost at each target, against what it costs
  and what the calibrators alone cost. Then
  ``predict_proba`` of the fitted models on the other half (<= 1.2x).
* binary: ``GaussianSoftmaxCalibrator().fit`` on 10^6 binary scores, default rules
  and ``uncertainty_rules=("low_confidence",)``, against scikit-learn's
  ``_SigmoidCalibration`` (<= 1.0x), labels from expit(s) and from expit(2s - 1);
  beside them ``uncertainty_rules=()``, without the flag (no target).
* logits: float32 network logits whose true calibration is a temperature (labels
  drawn from softmax(logits / 1.5); the argmax is right 75 % of the time), size
  ``MxK`` to fit on and as many test rows: ``GaussianSoftmaxCalibrator()``
  against temperature scaling,
  ``CalibratedClassifierCV(FrozenEstimator(model), method="temperature")``: fit
  time (<= 3x), predict_proba time (<= 2x), the fit's peak traced memory over the
  logits' nbytes (ours <= 6x), test log-loss (<= 1.01x), and on the test logits
  scaled by 3 (a network grown overconfident) the log-loss and the largest
  single-sample loss (no target: the bounded link's advantage should be kept);
  and the test log-loss of the calibrator fitted on the test rows themselves:
  the floor of any fit of the spec's link, which says whether 1.01x is within
  its reach.
  Each case runs in fresh processes; the library's first fit gets ``--timeout``
  seconds, and one that does not finish is reported so.
* table: ``GaussianSoftmaxCalibrator().fit`` time on float32 logits for each m and
  K, one thread, one run each in a fresh process, for the docs' scaling page
  (``--table-timeout`` seconds a cell; the larger m of a K that timed out, and
  logits above ``--table-max-mib``, are skipped).

Ends with a summary of every target. A quick run:
``python benchmarks/bench_speed.py --repeat 1 --logits 5000x10 --table-m 1000``.
"""

import argparse
import contextlib
import time

import numpy as np
from _timing import call_with_timeout, interleaved_medians, traced_peak
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration
from sklearn.datasets import load_digits, make_classification
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from sklearn_gsoftmax import GaussianSoftmaxCalibrator, GaussianSoftmaxClassifier

ONE = "1 thread"
DEFAULT = "default"
#: The true temperature of the network logits, the share of their argmax that
#: is right, and the factor of the shifted (overconfident) test logits.
T_TRUE = 1.5
ACCURACY = 0.75
SHIFT_SCALE = 3.0
OURS = "GaussianSoftmaxCalibrator"
UNFLAGGED = "calibrator rules=() (no target: without the flag)"
TEMPERATURE = "temperature scaling"


def threads(setting: str):
    """The context of a thread setting: one thread in every pool, or as is."""
    return threadpool_limits(1) if setting == ONE else contextlib.nullcontext()


class Report:
    """Prints each figure per thread setting side by side and keeps the targets
    for the summary."""

    def __init__(self, settings):
        self.settings = settings
        self.targets = []

    def header(self, title: str) -> None:
        print(f"\n{title}")
        print(f"  {'':60s}" + "".join(f"{s:>18s}" for s in self.settings))

    def row(self, label: str, values: dict, fmt: str = "{:10.4f}") -> None:
        """``values[setting]``: a number, or a string printed as it is."""
        cells = [values.get(s, "-") for s in self.settings]
        cells = [c if isinstance(c, str) else fmt.format(c) for c in cells]
        print(f"  {label:60s}" + "".join(f"{c:>18s}" for c in cells))

    def medians(self, title: str, medians: dict, base: str) -> None:
        """``medians[setting][name]`` seconds, each with its ratio to ``base``."""
        self.header(f"{title} (median seconds, ratio to {base}):")
        for name in medians[self.settings[0]]:
            self.row(
                name,
                {
                    s: f"{m[name]:9.4f} {m[name] / m[base]:6.2f}x"
                    for s, m in medians.items()
                },
            )

    def target(
        self, label, ratios: dict, limit, words=("met", "MISSED"), missing="MISSED"
    ):
        """``ratios[setting]``: a ratio, or a string saying why there is none
        (then the verdict is ``missing``)."""
        verdicts = {}
        for setting, ratio in ratios.items():
            if isinstance(ratio, str):
                verdicts[setting] = f"{ratio} ({missing})"
            else:
                word = words[0] if ratio <= limit else words[1]
                verdicts[setting] = f"{ratio:.3f} ({word})"
        line = f"target {label} <= {limit}"
        print(f"  {line}: " + ", ".join(f"{s} {v}" for s, v in verdicts.items()))
        self.targets.append((line, verdicts))

    def summary(self) -> None:
        print("\nsummary of the targets (ratio and verdict per thread setting):")
        for line, verdicts in self.targets:
            print(f"  {line}")
            print("      " + "; ".join(f"{s}: {v}" for s, v in verdicts.items()))


# meta-estimator: fit and predict_proba --------------------------------------

SIGMOID = "CalibratedClassifierCV(sigmoid)"
RULES = "GaussianSoftmaxClassifier default rules"
NO_FLAG = "GaussianSoftmaxClassifier rules=()"


def meta_cases():
    """(title, estimator factory, X_train, X_test, y_train, y_test, targets?)."""
    X, y = make_classification(
        n_samples=40_000, n_features=20, n_informative=10, flip_y=0.05, random_state=0
    )
    yield (
        "LogisticRegression, 20 000 x 20 binary",
        lambda: LogisticRegression(max_iter=1000),
        *train_test_split(X, y, test_size=0.5, random_state=0),
        True,
    )
    X, y = load_digits(return_X_y=True)
    yield (
        "LogisticRegression (scaled), digits, 10 classes",
        lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        *train_test_split(X, y, test_size=0.5, random_state=0, stratify=y),
        True,
    )
    X, y = make_classification(
        n_samples=20_000, n_features=20, n_informative=10, n_classes=5, random_state=0
    )
    yield (
        "RidgeClassifier, 10 000 x 20, 5 classes",
        RidgeClassifier,
        *train_test_split(X, y, test_size=0.5, random_state=0),
        False,
    )


def meta_models(estimator):
    return {
        SIGMOID: lambda: CalibratedClassifierCV(estimator(), method="sigmoid", cv=5),
        RULES: lambda: GaussianSoftmaxClassifier(estimator(), cv=5),
        NO_FLAG: lambda: GaussianSoftmaxClassifier(
            estimator(), cv=5, uncertainty_rules=()
        ),
    }


BASE_FOLDS = "the base model's 5 folds alone (fit, scores)"
MAP_FIT = "those + GaussianSoftmaxCalibrator(rules=()).fit on each"


def base_folds(estimator, X, y, calibrate: bool = False) -> None:
    """What every side's fit does at least: the base model fitted on each of
    ``CalibratedClassifierCV``'s folds and scoring its held-out rows; with
    ``calibrate``, also a calibrator without the flag fitted on those scores
    (what the meta-estimator does per fold, less its pooling)."""
    for train, test in StratifiedKFold(5).split(X, y):
        scores = estimator().fit(X[train], y[train]).decision_function(X[test])
        if calibrate:
            GaussianSoftmaxCalibrator(uncertainty_rules=()).fit(scores, y[test])


def budget(fits: dict) -> None:
    """What the calibration may cost beside the base model's folds at each
    target, against what it costs (a target below the calibrators' own fits
    cannot be met by any flag or refit schedule)."""
    for setting, m in fits.items():
        own = {name: m[name] - m[BASE_FOLDS] for name in (SIGMOID, RULES, NO_FLAG)}
        allowed = {limit: limit * m[SIGMOID] - m[BASE_FOLDS] for limit in (1.5, 1.1)}
        print(
            f"  {setting}: beyond the base model's folds, sigmoid's calibration "
            f"takes {own[SIGMOID]:.4f} s; the targets allow {allowed[1.5]:.4f} s "
            f"(1.5x) and {allowed[1.1]:.4f} s (1.1x); ours takes "
            f"{own[RULES]:.4f} s (default rules) and {own[NO_FLAG]:.4f} s "
            f"(rules=()); a calibrator's fit on each fold's scores alone "
            f"takes {m[MAP_FIT] - m[BASE_FOLDS]:.4f} s"
        )


def bench_meta(report: Report, repeat: int) -> None:
    for title, estimator, X_train, X_test, y_train, _, has_targets in meta_cases():
        makers = meta_models(estimator)
        fits, predicts = {}, {}
        for setting in report.settings:
            with threads(setting):
                fits[setting] = interleaved_medians(
                    {
                        **{
                            name: lambda make=make: make().fit(X_train, y_train)
                            for name, make in makers.items()
                        },
                        BASE_FOLDS: lambda: base_folds(estimator, X_train, y_train),
                        MAP_FIT: lambda: base_folds(
                            estimator, X_train, y_train, calibrate=True
                        ),
                    },
                    repeat,
                )
                models = {
                    name: make().fit(X_train, y_train) for name, make in makers.items()
                }
                predicts[setting] = interleaved_medians(
                    {
                        name: lambda model=model: model.predict_proba(X_test)
                        for name, model in models.items()
                    },
                    repeat * 4,
                )
        rows = f"{len(y_train)} rows"
        report.medians(f"meta fit, {title}, cv=5, on {rows}", fits, SIGMOID)
        budget(fits)
        if has_targets:
            for name, limit in ((RULES, 1.5), (NO_FLAG, 1.1)):
                report.target(
                    f"meta fit {title}: {name} / sigmoid",
                    {s: m[name] / m[SIGMOID] for s, m in fits.items()},
                    limit,
                )
        report.medians(
            f"predict_proba, {title}, on {len(X_test)} test rows", predicts, SIGMOID
        )
        if has_targets:
            report.target(
                f"predict_proba {title}: {RULES} / sigmoid",
                {s: m[RULES] / m[SIGMOID] for s, m in predicts.items()},
                1.2,
            )


# calibrator on 10^6 binary scores --------------------------------------------


def bench_binary(report: Report, repeat: int) -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(scale=3.0, size=10**6)
    reference = "sklearn sigmoid calibration"
    sides = {
        reference: lambda y: _SigmoidCalibration().fit(scores, y),
        "calibrator default rules": lambda y: GaussianSoftmaxCalibrator().fit(
            scores, y
        ),
        "calibrator rules=(low_confidence,)": lambda y: GaussianSoftmaxCalibrator(
            uncertainty_rules=("low_confidence",)
        ).fit(scores, y),
        UNFLAGGED: lambda y: GaussianSoftmaxCalibrator(uncertainty_rules=()).fit(
            scores, y
        ),
    }
    # labels as the scores say (the sigmoid is right) and labels of a shifted,
    # sharper sigmoid (the calibrator has work to do), as in bench_links.py
    for regime, logits in {"expit(s)": scores, "expit(2s - 1)": 2 * scores - 1}.items():
        labels = (rng.random(10**6) < expit(logits)).astype(int)
        fits = {}
        for setting in report.settings:
            with threads(setting):
                fits[setting] = interleaved_medians(
                    {name: lambda f=f: f(labels) for name, f in sides.items()}, repeat
                )
        report.medians(
            f"calibrator fit on 10^6 binary scores, labels from {regime}",
            fits,
            reference,
        )
        for name in [n for n in sides if n not in (reference, UNFLAGGED)]:
            report.target(
                f"fit 10^6 binary, {regime}: {name} / sigmoid",
                {s: m[name] / m[reference] for s, m in fits.items()},
                1.0,
            )


# network logits ---------------------------------------------------------------


class LogitsModel(ClassifierMixin, BaseEstimator):
    """A fitted network's stand-in: its decision function is the logits it is
    given as ``X``."""

    def __init__(self, n_classes=2):
        self.n_classes = n_classes

    def fit(self, X=None, y=None):
        self.classes_ = np.arange(self.n_classes)
        return self

    def decision_function(self, X):
        return np.asarray(X)

    def predict(self, X):
        return self.classes_[np.argmax(X, axis=1)]


def top_boost(k: int) -> float:
    """The boost of each row's top logit (times a uniform draw in [0, 2]) that
    makes the logits' argmax right ``ACCURACY`` of the time, on average over
    4 000 rows, when labels are drawn from softmax(logits / T_TRUE)."""
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((4000, k))
    spread = rng.uniform(0, 2, 4000)

    def accuracy(boost):
        z = noise.copy()
        z[:, 0] += boost * spread
        return softmax(z / T_TRUE, axis=1)[np.arange(4000), z.argmax(axis=1)].mean()

    low, high = 0.0, 100.0
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (middle, high) if accuracy(middle) < ACCURACY else (low, middle)
    return high


def network_logits(m: int, k: int, seed: int):
    """``m`` rows of float32 logits for ``k`` classes (normal noise, one boosted
    logit per row, the classes in equal shares) and labels drawn from
    softmax(logits / T_TRUE): temperature scaling with T = 1.5 is the truth."""
    rng = np.random.default_rng(seed)
    top = rng.permutation(np.arange(m) % k)
    logits = rng.standard_normal((m, k), dtype=np.float32)
    boost = top_boost(k) * rng.uniform(0, 2, m)
    logits[np.arange(m), top] += boost.astype(np.float32)
    labels = np.empty(m, dtype=np.int64)
    for start in range(0, m, 4096):  # Gumbel-max sampling, in chunks
        rows = logits[start : start + 4096] / T_TRUE
        noisy = rows + rng.gumbel(size=rows.shape)
        labels[start : start + 4096] = noisy.argmax(axis=1)
    return logits, labels


def fit_side(side: str, logits, labels):
    if side == OURS:
        return GaussianSoftmaxCalibrator().fit(logits, labels)
    model = FrozenEstimator(LogitsModel(logits.shape[1]).fit())
    return CalibratedClassifierCV(model, method="temperature").fit(logits, labels)


def traced_fit(side: str, m: int, k: int, setting: str) -> dict:
    """Run in a fresh process: one fit of ``side`` on the case's logits under
    tracemalloc; its seconds, peak bytes and the logits' nbytes."""
    logits, labels = network_logits(m, k, seed=0)
    with threads(setting):
        start = time.perf_counter()
        _, peak = traced_peak(lambda: fit_side(side, logits, labels))
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak": peak, "nbytes": logits.nbytes}


def sample_losses(model, logits, labels) -> np.ndarray:
    """-ln p(true class) of each row, p floored at 1e-300 (a float32 zero would
    be an infinite loss)."""
    proba = model.predict_proba(logits)
    true = proba[np.arange(len(labels)), labels].astype(np.float64)
    return -np.log(np.maximum(true, 1e-300))


def compare_sides(
    sides, m: int, k: int, setting: str, repeat: int, floor: bool = True
) -> dict:
    """Run in a fresh process: median fit and predict_proba seconds of each side
    (alternating), and their losses on the test logits and the shifted ones;
    with ``floor``, also the loss of ours fitted on the test rows."""
    logits, labels = network_logits(m, k, seed=0)
    test, test_labels = network_logits(m, k, seed=1)
    shifted = test * np.float32(SHIFT_SCALE)
    figures = {"accuracy": float(np.mean(test.argmax(axis=1) == test_labels))}
    with threads(setting):
        # the first fits (kept for predicting) warm up the timed ones
        models = {side: fit_side(side, logits, labels) for side in sides}
        figures["fit"] = interleaved_medians(
            {s: lambda s=s: fit_side(s, logits, labels) for s in sides},
            repeat,
            warm_up=False,
        )
        figures["predict"] = interleaved_medians(
            {s: lambda s=s: models[s].predict_proba(test) for s in sides},
            repeat * 2,
        )
    for side, model in models.items():
        test_loss = sample_losses(model, test, test_labels)
        shifted_loss = sample_losses(model, shifted, test_labels)
        figures[side] = {
            "test": test_loss.mean(),
            "shifted": shifted_loss.mean(),
            "shifted max": shifted_loss.max(),
        }
    if floor and OURS in sides:
        # the link's floor: its fit on the test rows themselves, which no fit
        # on other rows beats (up to the prior's pull)
        with threads(setting):
            floor = fit_side(OURS, test, test_labels)
        figures["floor"] = sample_losses(floor, test, test_labels).mean()
    return figures


def logits_case(report: Report, m: int, k: int, repeat: int, timeout: float):
    traced, compared, floor = {}, {}, {}
    for setting in report.settings:
        ours = call_with_timeout(traced_fit, (OURS, m, k, setting), timeout)
        theirs = call_with_timeout(traced_fit, (TEMPERATURE, m, k, setting))
        traced[setting] = {OURS: ours, TEMPERATURE: theirs}
        sides = (TEMPERATURE, OURS) if ours else (TEMPERATURE,)
        # the floor is a loss, not a time: fitted in the first setting only
        compared[setting] = call_with_timeout(
            compare_sides, (sides, m, k, setting, repeat, not floor)
        )
        floor = floor or {"floor": compared[setting].get("floor")}
    for figures in compared.values():
        figures.update(floor)

    def values(get, side=OURS, unfinished="no fit"):
        """``get(compared figures, traced figures)`` per setting; ``unfinished``
        where ``side`` is ours and our first fit did not finish."""
        return {
            s: unfinished
            if side == OURS and traced[s][OURS] is None
            else get(compared[s], traced[s])
            for s in report.settings
        }

    timed_out = f"> {timeout:g} s"

    accuracy = compared[report.settings[0]]["accuracy"]
    report.header(
        f"network logits {m} x {k} float32, fitted on {m} rows, tested on {m} "
        f"(T = {T_TRUE}, argmax right {accuracy:.1%}); seconds are medians:"
    )
    for side in (TEMPERATURE, OURS):
        report.row(
            f"first fit (traced), {side}",
            values(lambda c, t, side=side: t[side]["seconds"], side, timed_out),
        )
    for name, key in (("fit", "fit"), ("predict_proba", "predict")):
        for side in (TEMPERATURE, OURS):
            report.row(
                f"{name}, {side}",
                values(
                    lambda c, t, key=key, side=side: c[key][side],
                    side,
                    timed_out if key == "fit" else "no fit",
                ),
            )
    for side in (TEMPERATURE, OURS):
        report.row(
            f"fit peak memory / logits nbytes, {side}",
            values(lambda c, t, side=side: t[side]["peak"] / t[side]["nbytes"], side),
            "{:9.2f}x",
        )
    for data in ("test", "shifted"):
        for side in (TEMPERATURE, OURS):
            report.row(
                f"{data} log-loss, {side}",
                values(lambda c, t, data=data, side=side: c[side][data], side),
            )
    report.row(
        f"test log-loss, {OURS} fitted on the test rows",
        values(lambda c, t: c["floor"]),
    )
    for side in (TEMPERATURE, OURS):
        report.row(
            f"shifted largest sample loss, {side}",
            values(lambda c, t, side=side: c[side]["shifted max"], side),
            "{:10.3f}",
        )

    case = f"logits {m} x {k}"
    for name, key, limit in (("fit", "fit", 3.0), ("predict_proba", "predict", 2.0)):
        report.target(
            f"{case}: {name} ours / temperature",
            values(
                lambda c, t, key=key: c[key][OURS] / c[key][TEMPERATURE],
                unfinished=f"fit {timed_out}",
            ),
            limit,
        )
    report.target(
        f"{case}: fit peak memory ours / logits nbytes",
        values(lambda c, t: t[OURS]["peak"] / t[OURS]["nbytes"]),
        6.0,
    )
    report.target(
        f"{case}: test log-loss ours / temperature",
        values(lambda c, t: c[OURS]["test"] / c[TEMPERATURE]["test"]),
        1.01,
    )
    report.target(
        f"{case}: test log-loss of the link fitted on the test rows / temperature "
        "(no target: the floor of any fit of the spec's link; above 1.01 the "
        "target above is out of the link's reach)",
        values(lambda c, t: c["floor"] / c[TEMPERATURE]["test"]),
        1.01,
        words=("within reach", "OUT OF REACH"),
        missing="no figure",
    )
    report.target(
        f"{case}: shifted (x{SHIFT_SCALE:g}) log-loss ours / temperature "
        "(no target; below 1: the bounded link's advantage kept)",
        values(lambda c, t: c[OURS]["shifted"] / c[TEMPERATURE]["shifted"]),
        1.0,
        words=("kept", "LOST"),
        missing="no figure",
    )


# fit time against m and K -----------------------------------------------------


def timed_fit(m: int, k: int) -> float:
    """Run in a fresh process: seconds of one GaussianSoftmaxCalibrator().fit
    on the case's logits, one thread."""
    logits, labels = network_logits(m, k, seed=0)
    with threadpool_limits(1):
        start = time.perf_counter()
        GaussianSoftmaxCalibrator().fit(logits, labels)
        return time.perf_counter() - start


def bench_table(ms, ks, timeout: float, max_mib: float) -> None:
    cells = {}
    for k in ks:
        timed_out = None
        for m in sorted(ms):
            if m * k * 4 > max_mib * 2**20:
                cells[m, k] = f"skipped: > {max_mib:g} MiB"
            elif timed_out:
                cells[m, k] = f"skipped (m={timed_out})"
            else:
                seconds = call_with_timeout(timed_fit, (m, k), timeout)
                if seconds is None:
                    timed_out = m
                    cells[m, k] = f"> {timeout:g} s"
                else:
                    cells[m, k] = f"{seconds:.3f} s"
    print(
        "\nGaussianSoftmaxCalibrator().fit seconds on m x K float32 logits "
        "(one thread, one run each, fresh process):"
    )
    print(f"  {'m':>10s}" + "".join(f"{f'K = {k}':>22s}" for k in ks))
    for m in sorted(ms):
        print(f"  {m:>10d}" + "".join(f"{cells[m, k]:>22s}" for k in ks))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="meta,binary,logits,table")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", default="1,default", help="1, default or both")
    parser.add_argument("--logits", default="20000x100,50000x1000", help="MxK,...")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--table-m", default="10000,100000")
    parser.add_argument("--table-k", default="2,10,100,1000")
    parser.add_argument("--table-timeout", type=float, default=300.0)
    parser.add_argument("--table-max-mib", type=float, default=400.0)
    args = parser.parse_args(argv)
    cases = args.cases.split(",")
    settings = [ONE if s == "1" else DEFAULT for s in args.threads.split(",")]
    report = Report(settings)
    start = time.perf_counter()
    if "meta" in cases:
        bench_meta(report, args.repeat)
    if "binary" in cases:
        bench_binary(report, args.repeat)
    if "logits" in cases:
        for size in args.logits.split(","):
            m, k = (int(n) for n in size.split("x"))
            logits_case(report, m, k, args.repeat, args.timeout)
    if "table" in cases:
        bench_table(
            [int(m) for m in args.table_m.split(",")],
            [int(k) for k in args.table_k.split(",")],
            args.table_timeout,
            args.table_max_mib,
        )
    report.summary()
    print(f"\n(whole run: {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()

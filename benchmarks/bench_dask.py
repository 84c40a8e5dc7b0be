"""The calibrator on a local Dask cluster against the in-memory fit.

Fits and predicts binary scores held on the cluster in chunks of ``--chunk``
rows (generated there, chunk by chunk: the driver never holds them) and the
in-memory calibrator on a tenth as many rows, and prints side by side:

* the time per row of the Dask fit (and of predict_proba, computed and
  summed on the cluster) over the in-memory one's (target: within 2x);
* the driver process's peak memory growth during the Dask fit over the data
  size (target: under 10 %);
* the passes over the data of the Dask fit, each one round trip to the
  cluster, by kind (with the flag off and with the default rules).

The issue's size is ``--rows 100000000`` (10^8 scores, 1.6 GB with labels);
on a small shared machine pass fewer.

    python benchmarks/bench_dask.py --rows 10000000 --chunk 1000000
"""

from __future__ import annotations

import argparse
import importlib
import resource
import time
import tracemalloc
from contextlib import contextmanager

import numpy as np


def _chunk(seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.normal(scale=3.0, size=size)
    labels = (rng.random(size) < 1.0 / (1.0 + np.exp(-scores))).astype(np.int8)
    return scores, labels


def _dask_data(rows: int, chunk: int):
    import dask.array as da
    from dask import delayed

    sizes = [min(chunk, rows - start) for start in range(0, rows, chunk)]
    parts = [delayed(_chunk)(seed, size) for seed, size in enumerate(sizes)]
    scores = da.concatenate(
        [da.from_delayed(p[0], (s,), np.float64) for p, s in zip(parts, sizes)]
    )
    labels = da.concatenate(
        [da.from_delayed(p[1], (s,), np.int8) for p, s in zip(parts, sizes)]
    )
    return scores.persist(), labels.persist()


@contextmanager
def counted_passes():
    """Count and time the Dask source's passes over the data (each one
    computation on the cluster), by the function each pass maps over the
    chunks: ``{name: [passes, seconds]}``."""
    from sklearn_gsoftmax._dask import DaskSource

    passes: dict = {}
    # every pass, map_reduce's too, is one call of map_reduce_each
    original_each = DaskSource.map_reduce_each
    stored_each = DaskSource.__dict__["map_reduce_each"]

    def name_of(fn) -> str:
        name = getattr(fn, "__qualname__", repr(fn))
        return name.replace(".<locals>", "").replace(".<lambda>", "")

    def counting_each(requests):
        # one computation for all: one pass, named by what it computes
        name = "+".join(name_of(fn) for _, fn, _ in requests)
        start = time.perf_counter()
        result = original_each(requests)
        count_seconds = passes.setdefault(name, [0, 0.0])
        count_seconds[0] += 1
        count_seconds[1] += time.perf_counter() - start
        return result

    DaskSource.map_reduce_each = staticmethod(counting_each)
    try:
        yield passes
    finally:
        DaskSource.map_reduce_each = stored_each


def _by_kind(passes: dict) -> str:
    return ", ".join(
        f"{count} {name} {seconds:.2f} s"
        for name, (count, seconds) in sorted(passes.items(), key=lambda x: -x[1][1])
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--chunk", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    import dask
    from distributed import Client, LocalCluster, wait

    from sklearn_gsoftmax import GaussianSoftmaxCalibrator

    memory_rows = max(args.rows // 10, args.chunk)
    scores, labels = _chunk(10_000, memory_rows)
    start = time.perf_counter()
    in_memory = GaussianSoftmaxCalibrator(uncertainty_rules=()).fit(scores, labels)
    memory_fit = (time.perf_counter() - start) / memory_rows
    start = time.perf_counter()
    in_memory.predict_proba(scores)[:, 1].sum()
    memory_predict = (time.perf_counter() - start) / memory_rows
    del scores, labels

    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        scores, labels = _dask_data(args.rows, args.chunk)
        wait([scores, labels])
        # the workers' first import of the library and of scipy (seconds, once
        # per worker process) is not the fit's cost per row
        client.run(importlib.import_module, "sklearn_gsoftmax")
        data_bytes = args.rows * (8 + 1)
        tracemalloc.start()
        start = time.perf_counter()
        with counted_passes() as passes:
            on_dask = GaussianSoftmaxCalibrator(uncertainty_rules=()).fit(
                scores, labels
            )
        dask_fit = (time.perf_counter() - start) / args.rows
        driver_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        with counted_passes() as default_passes:
            GaussianSoftmaxCalibrator().fit(scores, labels)
        start = time.perf_counter()
        dask.compute(on_dask.predict_proba(scores)[:, 1].sum())
        dask_predict = (time.perf_counter() - start) / args.rows

    print(
        f"rows on Dask {args.rows:.2e} in chunks of {args.chunk:.0e}, "
        f"in memory {memory_rows:.2e}, {args.workers} worker processes"
    )
    print(
        f"fit     ns/row: dask {dask_fit * 1e9:8.1f}  memory "
        f"{memory_fit * 1e9:8.1f}  ratio {dask_fit / memory_fit:5.2f} (target < 2)"
    )
    print(
        f"predict ns/row: dask {dask_predict * 1e9:8.1f}  memory "
        f"{memory_predict * 1e9:8.1f}  ratio {dask_predict / memory_predict:5.2f}"
    )
    print(
        f"driver peak allocation during the fit {driver_peak / 1e6:.1f} MB = "
        f"{driver_peak / data_bytes:.2%} of the data ({data_bytes / 1e6:.0f} MB; "
        "target < 10 %); process max RSS "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB"
    )
    for title, counted in (("rules=()", passes), ("default rules", default_passes)):
        print(
            f"passes over the data (round trips to the cluster) of the fit with "
            f"{title}: {sum(count for count, _ in counted.values())} "
            f"({_by_kind(counted)})"
        )
    print(
        f"scale: dask {on_dask.scale_:.9f}  memory {in_memory.scale_:.9f} "
        "(different data)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

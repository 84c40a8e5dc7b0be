"""Shared timing helpers of the benchmark scripts."""

import multiprocessing
import statistics
import time
import tracemalloc


def interleaved_medians(functions: dict, repeat: int, warm_up: bool = True) -> dict:
    """Median seconds of each function over ``repeat`` rounds; every round runs
    them all in turn, so that load on a shared machine hits each side alike.
    One untimed round first warms caches and the allocator for every side
    (unless ``warm_up`` is false: for calls too slow to run one more time)."""
    if warm_up:
        for function in functions.values():
            function()
    times = {name: [] for name in functions}
    for _ in range(repeat):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def print_ratios(title: str, medians: dict, base: str) -> None:
    """Print each median and its ratio to ``medians[base]``."""
    print(f"{title} (median seconds, ratio to {base}):")
    for name, seconds in medians.items():
        print(f"  {name:34s} {seconds:8.4f}  {seconds / medians[base]:5.2f}x")


def print_target(label: str, medians: dict, name: str, base: str, limit: float):
    ratio = medians[name] / medians[base]
    verdict = "met" if ratio <= limit else "MISSED"
    print(f"  target {label} <= {limit}: ratio {ratio:.2f} ({verdict})")


def traced_peak(function):
    """``function()``'s return value and the peak bytes it allocated, as
    tracemalloc sees them (numpy reports its buffers to it): the traced peak
    during the call minus what was traced when it started."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        result = function()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    return result, peak


def call_with_timeout(function, args=(), timeout=None):
    """``function(*args)`` run in a fresh (spawned) process: its return value, or
    ``None`` when it did not return within ``timeout`` seconds (the process is
    then terminated). ``function`` must be defined at a module's top level and
    its arguments and result picklable; its exceptions are raised here."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply_async(function, args)
        try:
            return result.get(timeout)
        except multiprocessing.TimeoutError:
            return None

"""Shared timing helpers of the benchmark scripts."""

import statistics
import time


def interleaved_medians(functions: dict, repeat: int) -> dict:
    """Median seconds of each function over ``repeat`` rounds; every round runs
    them all in turn, so that load on a shared machine hits each side alike.
    One untimed round first warms caches and the allocator for every side."""
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

"""Mutation testing of the suite on a random sample of mutants (issue 15).

mutmut makes about 7 800 mutants of ``sklearn_gsoftmax/`` (configured in
``pyproject.toml``); each runs, in a forked process, the tests that call the
mutated function: about 8 mutants a minute on 2 cores, some 16 hours for all of
them. This script runs a seeded random sample (a prefix of one shuffle, so a
larger ``--size`` extends a smaller one) and prints the share of mutants the
suite catches with its 95 % confidence interval, per module and overall. From
the repository root::

    python -m pip install -e ".[dev]"
    python tests/mutation_sample.py --size 400 --seed 20261202
    python tests/mutation_sample.py --summary      # the last results again
    python tests/mutation_sample.py --rerun        # survivors again, after new tests
    python tests/mutation_sample.py --recheck      # survivors against new tests

mutmut keeps a mutant's result until the mutated function changes and maps
tests to functions once, so tests written after a run do not reach its
survivors: ``--recheck`` runs each survivor against its module's test files
as they are now (see ``TESTS_OF``).

Survivors are listed for ``mutmut show NAME``. Not a test module: pytest does
not collect it (its name does not start with ``test_``).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MUTANTS = Path("mutants")
_ONE_THREAD = dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"), "1")


def _results() -> dict:
    results = {}
    for meta in sorted(MUTANTS.glob("sklearn_gsoftmax/*.meta")):
        results.update(json.loads(meta.read_text())["exit_code_by_key"])
    return results


def _forget_survivors(sample: list[str]) -> None:
    """Mark the sample's survivors unchecked: mutmut keeps a result until the
    mutated function changes, not when the tests do."""
    for meta in sorted(MUTANTS.glob("sklearn_gsoftmax/*.meta")):
        data = json.loads(meta.read_text())
        codes = data["exit_code_by_key"]
        for name in set(sample) & set(codes):
            if _status(codes[name]) in ("survived", "no tests"):
                codes[name] = None
        meta.write_text(json.dumps(data))


# The test files that exercise each module: a survivor is run against them
# (a subset of the suite: what they kill, the suite kills).
TESTS_OF = {
    "__main__": ["test_main.py", "test_cli.py"],
    "_calibrator": ["test_calibrator.py", "test_uncertainty.py", "test_novelty.py"],
    "_classifier": ["test_classifier.py", "test_sklearn_compat.py", "test_novelty.py"],
    "_cli": ["test_cli.py"],
    "_io": ["test_cli.py"],
    "_columns": ["test_cli.py"],
    "_fitting": ["test_fit_guards.py", "test_robust_fit.py", "test_derivatives.py"],
    "_search": ["test_robust_fit.py", "test_fit_guards.py"],
    "_labeling": ["test_labeling.py"],
    "_links": ["test_links.py", "test_derivatives.py"],
    "_novelty": ["test_novelty.py"],
    "_persistence": ["test_persistence.py"],
    "_shift": ["test_shift.py"],
    "_uncertainty": ["test_uncertainty.py", "test_novelty.py", "test_shift.py"],
    "_validation": ["test_links.py", "test_bad_input.py", "test_calibrator.py"],
    "metrics": ["test_metrics.py"],
    "plotting": ["test_plotting.py"],
}


def _recheck(name: str) -> bool:
    """Whether the tests of the mutant's module fail with it switched on."""
    files = [f"tests/{f}" for f in TESTS_OF[name.split(".")[1]]]
    diff = subprocess.run(["mutmut", "show", name], capture_output=True, text=True)
    if "_dask" in diff.stdout:
        files.append("tests/test_dask.py")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:randomly",
         "-o", "addopts=", *files],
        cwd=MUTANTS,
        env=dict(os.environ, MUTANT_UNDER_TEST=name, **_ONE_THREAD),
        capture_output=True,
    )  # fmt: skip
    print(f"{'killed' if result.returncode == 1 else 'alive '} {name}", flush=True)
    return result.returncode == 1


def _recheck_survivors(sample: list[str]) -> None:
    """Run each survivor against its module's test files with the mutant
    switched on (mutmut's trampolines read ``MUTANT_UNDER_TEST``), with the
    tests as they are now, plus ``tests/test_dask.py`` where the mutated
    function calls into ``_dask`` (left out of mutmut's runs: its LocalCluster
    deadlocks mutmut's forked workers). Records those the tests fail."""
    shutil.copytree("tests", MUTANTS / "tests", dirs_exist_ok=True)
    metas = sorted(MUTANTS.glob("sklearn_gsoftmax/*.meta"))
    data = {meta: json.loads(meta.read_text()) for meta in metas}
    alive = [
        (meta, name)
        for meta in metas
        for name in sorted(set(sample) & set(data[meta]["exit_code_by_key"]))
        if _status(data[meta]["exit_code_by_key"][name]) in ("survived", "no tests")
    ]
    # two at a time: each is one single-threaded pytest process
    with ThreadPoolExecutor(max_workers=2) as pool:
        caught = list(pool.map(lambda item: _recheck(item[1]), alive))
    for (meta, name), killed in zip(alive, caught):
        if killed:
            data[meta]["exit_code_by_key"][name] = 1
    for meta in metas:
        meta.write_text(json.dumps(data[meta]))


def _status(code) -> str:
    """mutmut's reading of a mutant's exit code: killed, survived, no tests,
    timeout (the CPU limit, SIGXCPU), not checked, ..."""
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code[code]


def _wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % interval of a proportion ``k / n`` (Wilson's score interval)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def summary(sample: list[str], equivalent: set[str]) -> str:
    """Kill rate of the sample, per module and overall; ``equivalent`` are the
    survivors judged equivalent (left out of the denominator)."""
    results = _results()
    by_module = collections.defaultdict(collections.Counter)
    survivors = []
    for name in sample:
        status = _status(results.get(name))
        if status == "survived" and name in equivalent:
            status = "equivalent"
        by_module[name.split(".")[1]][status] += 1
        if status not in ("killed", "timeout", "equivalent", "not checked"):
            survivors.append(f"{status:9} {name}")
    lines = [
        f"{'module':16} {'caught':>7} {'alive':>6} {'equiv.':>6} {'unrun':>6}"
        f" {'rate':>6}"
    ]
    total = collections.Counter()
    for module, counts in sorted(by_module.items()):
        total.update(counts)
        lines.append(_row(module, counts))
    lines.append(_row("all", total))
    return "\n".join([*lines, "", *survivors])


def _row(name: str, counts: collections.Counter) -> str:
    # a mutant that makes the tests run past their CPU limit is caught (a run
    # of the suite would not finish); one no test calls is not; one not
    # checked yet counts as neither
    killed = counts["killed"] + counts["timeout"]
    alive = sum(counts.values()) - killed - counts["equivalent"] - counts["not checked"]
    rate = killed / (killed + alive) if killed + alive else float("nan")
    low, high = _wilson(killed, killed + alive)
    return (
        f"{name:16} {killed:7d} {alive:6d} {counts['equivalent']:6d} "
        f"{counts['not checked']:6d} {rate:6.1%}"
        f"  (95 % interval {low:.1%} to {high:.1%})"
    )


def _equivalent_names(path: Path) -> set[str]:
    """Mutant names listed (in backticks) in the "Equivalent mutants" section
    of ``tests/MUTATION.md``."""
    if not path.exists():
        return set()
    text = path.read_text().split("## Equivalent mutants", 1)[-1]
    section = text.split("\n## ", 1)[0]
    return set(re.findall(r"`([^`\s]+__mutmut_\d+)`", section))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=400)
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--summary", action="store_true", help="print, do not run")
    parser.add_argument(
        "--rerun", action="store_true", help="run the survivors of the sample again"
    )
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="run the survivors against their module's tests as they are now",
    )
    args = parser.parse_args()
    if not MUTANTS.exists():
        # generates the mutants and maps tests to functions; runs no mutant
        subprocess.run(["mutmut", "run", "no_such_mutant*"], check=True)
    names = sorted(_results())
    # a prefix of one seeded shuffle: a larger --size extends a smaller sample
    random.Random(args.seed).shuffle(names)
    sample = sorted(names[: args.size])
    if args.rerun:
        _forget_survivors(sample)
    if not (args.summary or args.recheck):
        # one thread per library: mutmut forks a worker per mutant from a
        # process whose OpenMP and BLAS thread pools do not survive a fork
        # (the workers then hang, using no CPU, until the wall-clock limit)
        subprocess.run(
            ["mutmut", "run", "--max-children", "2", *sample],
            check=True,
            env=dict(os.environ, **_ONE_THREAD),
        )
    if args.recheck:
        _recheck_survivors(sample)
    equivalent = _equivalent_names(Path("tests/MUTATION.md"))
    print(f"{len(sample)} of {len(names)} mutants (seed {args.seed}, random)")
    print(summary(sample, equivalent))


if __name__ == "__main__":
    main()

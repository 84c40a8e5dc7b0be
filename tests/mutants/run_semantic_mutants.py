"""Plant the hand-written semantic mutants one at a time and run the suite.

Each ``tests/mutants/NN-name.patch`` is a unified diff of one package module
(a plausible bug of meaning: a wrong column, a wrong denominator, a missing
case, an off-by-one in a rank, a skipped branch), with a short description
above it. For each one this script, in a scratch copy of the repository (the
working tree as it is, without ``.git`` and caches):

1. applies the patch (``git apply``), alone;
2. runs the suite there, ``python -m pytest -x -q -p no:cacheprovider``, with
   the copy as the working directory and on ``PYTHONPATH`` (a plugin asserts
   at the start of the session that ``sklearn_gsoftmax`` is imported from the
   copy, not from the installed package);
3. records the mutant as *caught* (a test failed, or the run exceeded the time
   limit: the suite would not finish) or *alive* (every test passed), with the
   first failing test;
4. reverts the patch and checks that the module is the original again.

The whole suite runs, the mutated module's own test files first (so that a
caught mutant stops early under ``-x``), leaving out only what
``tests/MUTATION.md`` leaves out of the mutmut runs: the tests that run the
examples, the docs and the README in subprocesses (``test_examples.py``,
``test_docs.py``, ``test_readme.py``; minutes, and the same code is tested
in-process). ``--subset`` runs only the mutated module's own test files: a
quicker first look, whose *caught* verdicts hold for the suite and whose
*alive* ones need the full run. From the repository root::

    python tests/mutants/run_semantic_mutants.py              # every mutant
    python tests/mutants/run_semantic_mutants.py --only 03 17 # some of them
    python tests/mutants/run_semantic_mutants.py --subset     # own tests only

Not a test module: pytest does not collect it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MUTANTS = Path(__file__).resolve().parent

#: Left out of every run, as in tests/MUTATION.md: they run the examples, the
#: docs and the README in subprocesses.
#: test_mutants.py checks that the patches apply to the unmutated code: under
#: a planted mutant its own patch does not, which would "catch" every mutant.
EXCLUDED = ("test_examples.py", "test_docs.py", "test_readme.py", "test_mutants.py")

#: The test files of each module, run first.
OWN_TESTS = {
    "_shift": ["test_shift.py", "test_reference.py"],
    "_labeling": ["test_labeling.py", "test_reference.py"],
    "_novelty": ["test_novelty.py", "test_reference.py"],
    "_conformal": ["test_uncertainty.py", "test_reference.py"],
    "_selective": ["test_uncertainty.py", "test_reference.py", "test_metrics.py"],
    "_ties": ["test_rounding.py", "test_uncertainty.py", "test_reference.py"],
    "_source": [
        "test_source.py",
        "test_dask.py",
        "test_shift.py",
        "test_robust_fit.py",
    ],
    "_dask": ["test_dask.py"],
    "_io": ["test_cli.py"],
    "_cli": ["test_cli.py", "test_main.py"],
    "metrics": ["test_metrics.py", "test_reference.py"],
    "plotting": ["test_plotting.py"],
    "_refine": ["test_refine.py", "test_calibrator.py"],
    "_map": ["test_calibrator.py", "test_refine.py", "test_uncertainty.py"],
    "_search": ["test_robust_fit.py", "test_fit_guards.py"],
}

#: A plugin the runs load (``-p``): stops the session with this exit code when
#: the package is not the copy's.
WRONG_PACKAGE = 99
_GUARD = f"""
import os, pytest

def pytest_sessionstart(session):
    import sklearn_gsoftmax
    copy = os.path.realpath(os.environ["SEMANTIC_MUTANT_COPY"])
    found = os.path.realpath(sklearn_gsoftmax.__file__)
    if not found.startswith(copy + os.sep):
        message = "sklearn_gsoftmax imported from " + found
        pytest.exit(message, returncode={WRONG_PACKAGE})
"""


def patches(only=()) -> list[Path]:
    found = sorted(MUTANTS.glob("*.patch"))
    if only:
        found = [p for p in found if any(p.name.startswith(o) for o in only)]
    return found


def patched_file(patch: Path) -> str:
    return re.search(r"^\+\+\+ b/(\S+)", patch.read_text(), re.M).group(1)


def module_of(patch: Path) -> str:
    return Path(patched_file(patch)).stem


def make_copy(workdir: Path) -> Path:
    copy = workdir / "repo"
    shutil.copytree(
        ROOT,
        copy,
        ignore=shutil.ignore_patterns(
            ".git",
            "__pycache__",
            "*.egg-info",
            ".hypothesis",
            ".pytest_cache",
            ".ruff_cache",
            ".ci-venv*",
            "_build",
            "auto_examples",
        ),
    )
    (copy / "_semantic_mutant_guard.py").write_text(_GUARD)
    return copy


def environment(copy: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(copy)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env["SEMANTIC_MUTANT_COPY"] = str(copy)
    return env


def check_import(copy: Path, env: dict) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sklearn_gsoftmax; print(sklearn_gsoftmax.__file__)",
        ],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    found = Path(out).resolve()
    assert copy.resolve() in found.parents, f"sklearn_gsoftmax imported from {found}"


def test_order(module: str, subset: bool) -> list[str]:
    own = [f"tests/{name}" for name in OWN_TESTS.get(module, [])]
    if subset:
        return own
    rest = [
        f"tests/{path.name}"
        for path in sorted((ROOT / "tests").glob("test_*.py"))
        if path.name not in EXCLUDED and f"tests/{path.name}" not in own
    ]
    return own + rest + ["sklearn_gsoftmax"]  # the doctests


def run_one(patch: Path, copy: Path, env: dict, subset: bool, timeout: float) -> dict:
    target = copy / patched_file(patch)
    original = target.read_bytes()
    subprocess.run(["git", "apply", str(patch)], cwd=copy, check=True)
    assert target.read_bytes() != original, f"{patch.name} changed nothing"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "_semantic_mutant_guard",
        *test_order(module_of(patch), subset),
    ]
    start = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout
        )
        code, output = done.returncode, done.stdout + done.stderr
    except subprocess.TimeoutExpired:
        code, output = None, ""
    finally:
        subprocess.run(["git", "apply", "-R", str(patch)], cwd=copy, check=True)
        assert target.read_bytes() == original, f"{patch.name} not reverted"
    if code == WRONG_PACKAGE:
        raise SystemExit(f"{patch.name}: the suite did not import the copy\n{output}")
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, re.M)
    verdict = {0: "alive", 1: "caught", None: "caught (time limit)"}.get(
        code, f"caught (pytest exit {code})"
    )
    if code == 5:
        verdict = "no tests"
    return {
        "mutant": patch.stem,
        "module": module_of(patch),
        "verdict": verdict,
        "by": failed[0] if failed else "",
        "seconds": round(time.monotonic() - start),
        "tail": output.strip().splitlines()[-1:] if output else [],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=(), help="patch name prefixes")
    parser.add_argument(
        "--subset", action="store_true", help="only the mutated module's test files"
    )
    parser.add_argument("--timeout", type=float, default=2400.0, help="seconds a run")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="semantic-mutants-") as workdir:
        copy = make_copy(Path(workdir))
        env = environment(copy)
        check_import(copy, env)
        for patch in patches(args.only):
            result = run_one(patch, copy, env, args.subset, args.timeout)
            results.append(result)
            print(
                f"{result['mutant']:45} {result['verdict']:22} {result['seconds']:5d}s "
                f"{result['by']}",
                flush=True,
            )
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
    caught = sum(r["verdict"].startswith("caught") for r in results)
    rate = 100 * caught / max(len(results), 1)
    print(f"caught {caught} of {len(results)}: {rate:.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The command line, run as users run it: ``python -m sklearn_gsoftmax``."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "sklearn_gsoftmax", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize("dataset", ["digits", "breast_cancer"])
def test_main_job_prints_both_test_sets(dataset):
    result = run("--dataset", dataset)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "in-distribution test set:" in out and "shifted test set:" in out
    for column in ("log_loss", "brier", "max_log_loss", "min_proba"):
        assert len(re.findall(rf"\b{column}\b", out)) == 2
    assert len(re.findall(r"\berrors_flagged\b", out)) == 3  # 2 tables, 1 legend
    for row in (
        "uncalibrated",
        "sklearn sigmoid",
        "sklearn isotonic",
        "gsoftmax gaussian",
    ):
        assert row in out


def test_bad_arguments_exit_with_usage():
    result = run("--shifted-fraction", "1.5")
    assert result.returncode == 2
    assert "--shifted-fraction must lie in (0, 1)" in result.stderr
    assert run("--dataset", "mnist").returncode == 2

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
    assert "argument --shifted-fraction: must lie in (0, 1), got 1.5" in result.stderr
    assert run("--dataset", "mnist").returncode == 2


def test_main_job_in_process(capsys):
    """The report's own lines, word for word (the tables are checked above)."""
    from sklearn_gsoftmax.__main__ import _main

    argv = ["--dataset", "breast_cancer", "--shifted-fraction", "0.3"]
    assert _main(argv, demo_by_default=True) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "dataset breast_cancer: 278 training samples, 120 in-distribution test, "
        "171 shifted"
    )
    assert lines[1:3] == ["", "in-distribution test set:"]
    assert "shifted test set:" in lines
    # the tables' rows depend on the scikit-learn version (temperature: >= 1.8)
    legend = next(i for i, line in enumerate(lines) if line.startswith("flagged: "))
    assert lines[legend - 1] == ""
    assert lines[legend] == (
        "flagged: share of predictions GaussianSoftmaxClassifier's uncertain flag "
        "(default rules: low_confidence, threshold chosen for 95% accuracy on "
        "held-out training predictions, and novelty, at most about 5% of "
        "in-distribution samples) routes to review;"
    )
    assert (
        lines[legend + 1] == "errors_flagged: share of its errors that the flag caught."
    )
    assert re.fullmatch(
        r"On the shifted set the default flag of gsoftmax gaussian catches \d+% of "
        r"its errors\.",
        lines[legend + 3],
    )
    assert lines[legend + 5] == (
        "shift_report of gsoftmax gaussian (each batch without labels):"
    )
    assert lines[legend + 6].split() == [
        "samples",
        "shifted",
        "checks",
        "that",
        "fired",
    ]
    assert lines[legend + 7].split()[:4] == ["in-distribution", "test", "120", "False"]
    assert lines[legend + 8].split()[:3] == ["shifted", "171", "True"]


def test_main_dispatches_commands_and_checks_its_arguments(capsys):
    from sklearn_gsoftmax.__main__ import _main

    with pytest.raises(SystemExit) as info:
        _main(["info", "--help"], demo_by_default=True)
    assert info.value.code == 0
    assert "usage: sklearn-gsoftmax info" in capsys.readouterr().out
    with pytest.raises(SystemExit) as info:
        _main(["--help"], demo_by_default=True)
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith(
        "usage: python -m sklearn_gsoftmax [-h] [--version] [--dataset"
    )
    assert (
        "Compare CalibratedClassifierCV and GaussianSoftmaxClassifier on a logistic "
        "regression, in-distribution and on shifted data."
    ) in text
    assert (
        "On score files exported from any model: fit, predict, report, info "
        "(sklearn-gsoftmax --help lists them;"
    ) in text
    assert "--seed SEED random seed of the split" in text
    assert (
        "share of the samples, furthest along the first principal component, held "
        "out as the shifted test set (default 0.3)"
    ) in text
    for fraction in ("0", "1"):
        with pytest.raises(SystemExit) as info:
            _main(["--shifted-fraction", fraction], demo_by_default=True)
        assert info.value.code == 2
        assert (
            f"argument --shifted-fraction: must lie in (0, 1), got {fraction}"
        ) in capsys.readouterr().err

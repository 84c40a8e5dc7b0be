"""The command line on score files: ``fit``, ``predict``, ``report``, ``info``.

Each subcommand runs once as users run it (a subprocess of ``sys.executable``);
the error paths, where a subprocess would only add a second of imports, run
in-process through ``main(argv)``.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

skops_io = pytest.importorskip("skops.io")

from sklearn_gsoftmax import (  # noqa: E402
    TRUSTED_TYPES,
    GaussianSoftmaxCalibrator,
    __version__,
)
from sklearn_gsoftmax._cli import main  # noqa: E402
from sklearn_gsoftmax.metrics import calibration_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["cat", "dog", "eel"]
SCORES = ["a", "b", "c"]
FRAME_COLUMNS = ["prediction", "proba_cat", "proba_dog", "proba_eel", "uncertain"]
# predict's columns with --id-column id, for a model of the default rules
NOVELTY_OUTPUT = ["id", *FRAME_COLUMNS[:-1], "novelty_pvalue", "uncertain", "reasons"]
M = 300


def run(*args, pythonpath=()):
    path = os.pathsep.join([str(ROOT), *map(str, pythonpath)])
    return subprocess.run(
        [sys.executable, "-m", "sklearn_gsoftmax", *map(str, args)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=path),
        timeout=300,
    )


def make_scores(m, *, seed=0, shrink=1.0):
    """Three-class logits with the true class pushed up, ids and string labels."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, m)
    logits = rng.normal(size=(m, 3))
    logits[np.arange(m), y] += 2.5
    frame = pd.DataFrame(logits * shrink, columns=SCORES)
    frame.insert(0, "id", np.arange(1000, 1000 + m))
    frame["y"] = np.array(CLASSES)[y]
    return frame


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A labelled score file (CSV and Parquet) and a calibrator fitted on it."""
    root = tmp_path_factory.mktemp("cli")
    frame = make_scores(M)
    frame.to_csv(root / "scores.csv", index=False)
    frame.to_parquet(root / "scores.parquet")
    # low_confidence only: the expected outputs then do not depend on the
    # randomised folds of the novelty rule
    code = cli(
        "fit", root / "scores.csv", "--label-column", "y", "--id-column", "id",
        "--rules", "low_confidence", "-o", root / "model.skops",
    )  # fmt: skip
    assert code == 0
    model = skops_io.load(root / "model.skops", trusted=TRUSTED_TYPES)
    return root, frame, model


@pytest.fixture(scope="module")
def unnamed_model(files, tmp_path_factory):
    """A calibrator fitted on an array (no column names), saved: ``(path, model)``."""
    _, frame, _ = files
    unnamed = GaussianSoftmaxCalibrator(uncertainty_rules=["low_confidence"])
    unnamed.fit(frame[SCORES].to_numpy(), frame["y"])
    path = tmp_path_factory.mktemp("unnamed") / "unnamed.skops"
    skops_io.dump(unnamed, path)
    return path, unnamed


def cli(*argv):
    """Run main in-process, as the shell would pass the arguments."""
    return main([str(a) for a in argv])


def error_of(capsys, *argv):
    """Run main in-process; return its one-line error after checking exit 2."""
    capsys.readouterr()
    code = cli(*argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("sklearn-gsoftmax: error: ")
    return err


# -- fit -----------------------------------------------------------------------


def test_fit_saves_a_calibrator_that_remembers_columns_and_classes(files, tmp_path):
    root, frame, model = files
    out = tmp_path / "m.skops"
    result = run(
        "fit", root / "scores.parquet", "--label-column", "y", "--id-column", "id",
        "--link", "linear", "--n-samples", 5000, "--target-accuracy", 0.9,
        "--rules", "low_confidence,out_of_range", "-o", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    fitted = skops_io.load(out, trusted=TRUSTED_TYPES)
    assert list(fitted.feature_names_in_) == SCORES  # id and label left out
    assert list(fitted.classes_) == CLASSES
    assert fitted.n_samples_ == 5000 and fitted.link == "linear"
    assert fitted.target_accuracy == 0.9
    for name in ("n (probability bound 1/n)", "score map", "offsets", "threshold"):
        assert name in result.stdout
    assert (
        f"score map                    matrix, mean diagonal {fitted.scale_:.6g}, "
        in (result.stdout)
    )
    assert f"n of the link (ceiling)      {fitted.n_link_:.6g}" in result.stdout
    assert f"coverage on the fitted data  {fitted.coverage_:.4g}" in result.stdout
    # without --n-samples, n is the file's row count
    assert model.n_samples_ == M


@pytest.mark.parametrize("command", ["fit", "predict", "report", "info"])
def test_help_of_each_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"usage: sklearn-gsoftmax {command}" in text
    if command == "fit":  # what the file should hold, and what n is
        assert "NOT trained on" in text
        assert "training-set size when known" in text and "row count" in text
        assert (
            "probabilities to about [1/n, 1 - 1/n] (default: the file's row count)"
        ) in text
    else:
        assert (
            "comma-separated score columns, in the fitted order (default: the "
            "columns the model was fitted on)"
        ) in text or command == "info"


def test_top_level_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "fit fit a calibrator on labelled scores" in text


def test_fit_needs_the_label_column(files, tmp_path, capsys):
    root, _, _ = files
    with pytest.raises(SystemExit) as info:
        cli("fit", root / "scores.csv", "-o", tmp_path / "m.skops")
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "the following arguments are required: --label-column" in err


def test_fit_with_explicit_score_columns(files, tmp_path, capsys):
    root, _, _ = files
    out = tmp_path / "m.skops"
    argv = ["fit", root / "scores.csv", "--label-column", "y"]
    assert (
        cli(*argv, "--score-columns", "c,a,b", "--rules", "ambiguous", "-o", out) == 0
    )
    fitted = skops_io.load(out, trusted=TRUSTED_TYPES)
    assert list(fitted.feature_names_in_) == ["c", "a", "b"]
    assert list(fitted.uncertainty_rules) == ["ambiguous"]


# -- predict -------------------------------------------------------------------


def test_predict_streams_the_frame_next_to_the_ids(files, tmp_path, capsys):
    root, frame, model = files
    expected = model.predict_frame(frame[SCORES])
    out = tmp_path / "out.parquet"
    capsys.readouterr()
    # a chunk size that does not divide the rows: the last chunk is short
    assert cli(
        "predict", root / "model.skops", root / "scores.csv", "-o", out,
        "--id-column", "id", "--chunksize", 70,
    ) == 0  # fmt: skip
    written = pd.read_parquet(out)
    assert list(written.columns) == ["id", *FRAME_COLUMNS, "reasons"]
    np.testing.assert_array_equal(written["id"], frame["id"])
    pd.testing.assert_frame_equal(written.drop(columns="id"), expected)
    flagged = int(expected["uncertain"].sum())
    assert 0 < flagged < M
    # the count adds up over the five chunks
    assert capsys.readouterr().out == (
        f"{M} rows scored, {flagged} flagged uncertain; "
        f"wrote {M} rows to {str(out)!r}\n"
    )


def test_predict_as_users_run_it(files, tmp_path):
    root, frame, model = files
    out = tmp_path / "out.csv"
    result = run("predict", root / "model.skops", root / "scores.csv", "-o", out,
                 "--only-uncertain", "--chunksize", 64)  # fmt: skip
    assert result.returncode == 0, result.stderr
    flagged = int(model.predict_uncertain(frame[SCORES]).sum())
    assert f"{M} rows scored, {flagged} flagged uncertain; wrote {flagged} " in (
        result.stdout
    )
    assert len(pd.read_csv(out)) == flagged


@pytest.mark.parametrize("source", ["scores.csv", "scores.parquet"])
@pytest.mark.parametrize("output", ["out.csv", "out.parquet"])
def test_predict_only_uncertain_in_each_format(files, tmp_path, source, output):
    root, frame, model = files
    expected = model.predict_frame(frame[SCORES])
    expected = expected[expected["uncertain"]]
    out = tmp_path / output
    argv = ["predict", root / "model.skops", root / source, "-o", out]
    assert cli(*argv, "--only-uncertain", "--chunksize", "64") == 0
    written = pd.read_csv(out) if output.endswith("csv") else pd.read_parquet(out)
    assert list(written.columns) == [*FRAME_COLUMNS, "reasons"]
    np.testing.assert_array_equal(written["prediction"], expected["prediction"])
    np.testing.assert_allclose(written["proba_dog"], expected["proba_dog"])
    assert written["uncertain"].all() and len(written) == len(expected)


def test_predict_with_no_row_flagged_writes_the_columns(files, tmp_path):
    root, frame, _ = files
    confident = frame.iloc[:0].copy()
    confident.loc[0] = [1, 10.0, 0.0, 0.0, "cat"]  # far on cat's side
    confident.to_parquet(tmp_path / "one.parquet")
    out = tmp_path / "out.parquet"
    argv = ["predict", root / "model.skops", tmp_path / "one.parquet", "-o", out]
    assert cli(*argv, "--only-uncertain", "--id-column", "id") == 0
    written = pd.read_parquet(out)
    assert len(written) == 0 and list(written.columns)[:2] == ["id", "prediction"]


def test_predict_with_default_rules_round_trips(files, tmp_path):
    """The default rules (novelty included) save, load and predict."""
    root, frame, _ = files
    model_file = tmp_path / "default.skops"
    argv = ["fit", root / "scores.csv", "--label-column", "y", "--id-column", "id"]
    assert cli(*argv, "-o", model_file) == 0
    out = tmp_path / "out.csv"
    argv = ["predict", model_file, root / "scores.csv", "-o", out, "--id-column", "id"]
    assert cli(*argv) == 0
    written = pd.read_csv(out)
    assert len(written) == M and list(written.columns) == NOVELTY_OUTPUT


# -- report --------------------------------------------------------------------


def printed(out: str, name: str) -> float:
    return float(re.search(rf"^\s*{name}\s+(\S+)$", out, re.MULTILINE).group(1))


def test_report_prints_calibration_and_no_shift(files, capsys):
    root, frame, model = files
    capsys.readouterr()
    assert cli("report", root / "model.skops", root / "scores.csv",
               "--label-column", "y") == 0  # fmt: skip
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert (
        lines[0] == f"calibration on {M} labelled rows of {str(root / 'scores.csv')!r}:"
    )
    proba = model.predict_proba(frame[SCORES])
    expected = calibration_report(frame["y"], proba, labels=model.classes_)
    for name in ("log_loss", "brier", "ece", "max_log_loss", "accuracy"):
        assert printed(out, name) == pytest.approx(expected[name], rel=1e-3)
    uncertain = model.predict_uncertain(frame[SCORES])
    correct = model.predict(frame[SCORES]) == frame["y"].to_numpy()
    assert printed(out, "flagged") == pytest.approx(uncertain.mean(), rel=1e-3)
    assert printed(out, "accepted_accuracy") == pytest.approx(
        correct[~uncertain].mean(), rel=1e-3
    )
    assert (
        "  (flagged: share of predictions the uncertain flag routes to review; "
        "accepted_accuracy: accuracy of the others)\n\n"
        "shift of this batch from the fitted data:\n"
    ) in out
    header = lines[lines.index("shift of this batch from the fitted data:") + 1]
    assert header.split() == ["observed", "expected", "p_value", "shifted", "test"]
    assert lines[-1] == "no sign of shift from the fitted data"


def test_report_as_users_run_it(files):
    root, _, _ = files
    result = run("report", root / "model.skops", root / "scores.csv",
                 "--label-column", "y")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "log_loss" in result.stdout and "no sign of shift" in result.stdout


def test_report_says_when_the_batch_looks_shifted(files, tmp_path, capsys):
    root, _, _ = files
    make_scores(M, seed=1, shrink=0.3).to_csv(tmp_path / "s.csv", index=False)
    capsys.readouterr()
    argv = ["report", root / "model.skops", tmp_path / "s.csv", "--label-column", "y"]
    assert cli(*argv) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert re.fullmatch(
        r"the batch looks SHIFTED from the fitted data \(by flag rate: "
        r"low_confidence(, [^,]+)*\): its probabilities and the flag's threshold "
        r"may not hold on it",
        last,
    ), last


def test_calibration_table_with_every_prediction_flagged(files):
    from sklearn_gsoftmax._cli import _calibration_table

    _, frame, model = files
    proba = model.predict_proba(frame[SCORES])
    everything = np.ones(M, dtype=bool)
    row = _calibration_table(frame["y"].to_numpy(), proba, model, everything)
    assert row["flagged"] == 1.0 and np.isnan(row["accepted_accuracy"])


def test_report_on_a_small_batch_skips_the_shift_test(files, tmp_path, capsys):
    root, frame, _ = files
    frame.iloc[:10].to_csv(tmp_path / "small.csv", index=False)
    capsys.readouterr()
    argv = ["report", root / "model.skops", tmp_path / "small.csv"]
    assert cli(*argv, "--label-column", "y") == 0
    out = capsys.readouterr().out
    assert "log_loss" in out and "shift: not tested" in out


# -- info ----------------------------------------------------------------------


def test_info_shows_parameters_and_the_saving_version(files, capsys):
    root, _, model = files
    capsys.readouterr()
    assert cli("info", root / "model.skops") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == (
        f"{str(root / 'model.skops')!r}: GaussianSoftmaxCalibrator saved by "
        f"sklearn-gsoftmax {__version__} (this is {__version__})"
    )
    assert lines[1] == "parameters:" and "fitted:" in lines
    assert "link                   'gaussian'" in out
    assert "classes                      cat, dog, eel" in out
    assert (
        "score columns                in the fitted order (paired with the sorted "
        "labels: cat <- a, dog <- b, eel <- c)\n"
    ) in out
    assert f"{model.uncertainty_threshold_:.6g}" in out
    low, high = model.score_range_
    ranges = ", ".join(
        f"{name} [{lo:.4g}, {hi:.4g}]" for name, lo, hi in zip(SCORES, low, high)
    )
    assert lines[-1].split(None, 5)[-1] == ranges
    assert lines[-1].startswith("  score range seen in fit  ")


def test_info_of_a_model_fitted_on_an_unnamed_array(
    files, tmp_path, capsys, unnamed_model
):
    _, frame, _ = files
    unnamed_file, unnamed = unnamed_model
    capsys.readouterr()
    assert cli("info", unnamed_file) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert re.fullmatch(
        r"  score range seen in fit +0 \[.*\], 1 \[.*\], 2 \[.*\]", last
    )


def test_info_as_users_run_it(files):
    root, _, _ = files
    result = run("info", root / "model.skops")
    assert result.returncode == 0, result.stderr
    assert f"saved by sklearn-gsoftmax {__version__}" in result.stdout


@pytest.mark.parametrize("chunksize, ok", [("1", True), ("0", False), ("-3", False)])
def test_chunksize_must_be_a_positive_integer(files, tmp_path, capsys, chunksize, ok):
    root, _, _ = files
    argv = ["predict", root / "model.skops", root / "scores.csv"]
    argv += ["-o", tmp_path / "o.csv", "--chunksize", chunksize]
    if ok:
        assert cli(*argv) == 0
        return
    with pytest.raises(SystemExit) as info:
        cli(*argv)
    assert info.value.code == 2
    assert f"must be a positive integer, got {chunksize}" in capsys.readouterr().err


# -- errors: one line, exit 2 --------------------------------------------------


def test_error_is_one_line_and_untrusted_code_never_runs(files, tmp_path):
    """A model file with a type we do not trust is refused before it is loaded:
    the payload's __setstate__ would write the marker."""
    module = tmp_path / "payload_module.py"
    module.write_text(
        "from pathlib import Path\n"
        "class Payload:\n"
        "    def __setstate__(self, state):\n"
        "        Path(state['marker']).write_text('ran')\n"
    )
    marker = tmp_path / "marker"
    sys.path.insert(0, str(tmp_path))
    try:
        from payload_module import Payload

        payload = Payload.__new__(Payload)  # dumping does not call __setstate__
        payload.marker = str(marker)
        skops_io.dump(payload, tmp_path / "evil.skops")
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("payload_module", None)
    root, _, _ = files
    result = run(
        "predict", tmp_path / "evil.skops", root / "scores.csv", "-o",
        tmp_path / "out.csv", pythonpath=[tmp_path],
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.startswith("sklearn-gsoftmax: error: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "payload_module.Payload" in result.stderr and "not loaded" in result.stderr
    assert not marker.exists()
    assert not (tmp_path / "out.csv").exists()


def test_model_file_that_is_not_ours(files, tmp_path, capsys):
    root, _, _ = files
    from sklearn.linear_model import LogisticRegression

    other = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    skops_io.dump(other, tmp_path / "lr.skops")
    (tmp_path / "text.skops").write_text("not a model")
    err = error_of(capsys, "info", tmp_path / "lr.skops")
    assert "holds a LogisticRegression" in err
    err = error_of(capsys, "info", tmp_path / "text.skops")
    assert "not a model file of sklearn-gsoftmax (not a skops file" in err
    assert "no such file" in error_of(capsys, "info", tmp_path / "none.skops")


def write_csv(path, frame, row, column, value):
    """``frame`` with data row ``row`` (1-based) of ``column`` set to ``value``."""
    frame = frame.astype({column: object})
    frame.loc[row - 1, column] = value
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("chunksize", ["1000000", "50"])
def test_bad_scores_name_the_first_bad_row(files, tmp_path, capsys, chunksize):
    root, frame, _ = files
    model = root / "model.skops"
    options = ["-o", tmp_path / "out.csv", "--chunksize", chunksize]
    text = write_csv(tmp_path / "t.csv", frame, 123, "b", "oops")
    err = error_of(capsys, "predict", model, text, *options)
    assert "score column 'b' is not numeric: data row 123 holds 'oops'" in err
    nan = write_csv(tmp_path / "n.csv", frame, 77, "c", np.nan)
    err = error_of(capsys, "predict", model, nan, *options)
    assert "score column 'c' has a missing value (NaN) at data row 77" in err
    # the output of a failed run is not left half-written
    assert list(tmp_path.glob("out*")) == []
    err = error_of(
        capsys, "fit", nan, "--label-column", "y", "--id-column", "id", "-o",
        tmp_path / "m.skops",
    )  # fmt: skip
    assert "data row 77" in err
    err = error_of(capsys, "report", model, text, "--label-column", "y")
    assert "data row 123" in err


def test_missing_columns_and_files(files, tmp_path, capsys):
    root, frame, _ = files
    model, scores = root / "model.skops", root / "scores.csv"
    out = ["-o", tmp_path / "out.csv"]
    err = error_of(
        capsys, "fit", scores, "--label-column", "z", "-o", tmp_path / "m.skops"
    )
    assert "has no label column 'z'; its columns are id, a, b, c, y" in err
    err = error_of(capsys, "report", model, scores, "--label-column", "z")
    assert "has no label column 'z'" in err
    frame.drop(columns="b").to_csv(tmp_path / "no_b.csv", index=False)
    err = error_of(capsys, "predict", model, tmp_path / "no_b.csv", *out)
    assert "has no score column 'b'" in err
    err = error_of(capsys, "predict", model, scores, *out, "--id-column", "key")
    assert "has no id column 'key'" in err
    err = error_of(capsys, "predict", model, tmp_path / "none.csv", *out)
    assert "no such file: " in err
    err = error_of(capsys, "predict", tmp_path / "none.skops", scores, *out)
    assert "no such file: " in err


def test_column_count_that_does_not_match_the_calibrator(files, tmp_path, capsys):
    root, _, _ = files
    argv = ["predict", root / "model.skops", root / "scores.csv"]
    err = error_of(capsys, *argv, "-o", tmp_path / "o.csv", "--score-columns", "a,b")
    assert "--score-columns gives 2 score column(s) but the calibrator was " in err
    assert "fitted on 3" in err
    # the right count under other names is read in the fitted order
    assert cli(*argv, "-o", tmp_path / "o.csv", "--score-columns", "a,b,c") == 0


def test_model_fitted_on_an_unnamed_array(files, tmp_path, capsys, unnamed_model):
    """Such a model takes every column but the id's, if their count fits."""
    root, frame, model = files
    unnamed_file, unnamed = unnamed_model
    argv = ["predict", unnamed_file, root / "scores.csv"]
    err = error_of(capsys, *argv, "-o", tmp_path / "o.csv", "--id-column", "id")
    assert "the file has (besides 'id') 4 score column(s)" in err
    assert cli(*argv, "-o", tmp_path / "o.csv", "--score-columns", "a,b,c") == 0
    written = pd.read_csv(tmp_path / "o.csv")
    np.testing.assert_allclose(
        written["proba_cat"], model.predict_proba(frame[SCORES])[:, 0]
    )


def test_unreadable_files(files, tmp_path, capsys):
    root, frame, _ = files
    model = root / "model.skops"
    out = ["-o", tmp_path / "out.csv"]
    (tmp_path / "scores.txt").write_text("a,b\n1,2\n")
    err = error_of(capsys, "predict", model, tmp_path / "scores.txt", *out)
    assert "cannot tell the format of" in err
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    err = error_of(capsys, "predict", model, tmp_path / "bad.parquet", *out)
    assert "cannot read" in err and "as parquet" in err
    text = frame.to_csv(index=False).splitlines()
    text[200] = '1200,"0.5'  # a quote left open past the first chunk
    (tmp_path / "open.csv").write_text("\n".join(text) + "\n")
    err = error_of(
        capsys, "predict", model, tmp_path / "open.csv", *out, "--chunksize", "50"
    )
    assert "line 201 of " in err and "(data row 200, " in err
    assert err.endswith("a quote left open joins lines 201 to 301\n")
    text[200] = "1200,\xff"  # not UTF-8
    (tmp_path / "latin.csv").write_bytes("\n".join(text).encode("latin-1"))
    err = error_of(capsys, "predict", model, tmp_path / "latin.csv", *out)
    assert "cannot read" in err and "as csv: 'utf-8' codec can't decode" in err
    (tmp_path / "empty.csv").write_text("")
    err = error_of(
        capsys, "fit", tmp_path / "empty.csv", "--label-column", "y", "-o",
        tmp_path / "m.skops",
    )  # fmt: skip
    assert "cannot read" in err
    frame.iloc[:0].to_csv(tmp_path / "header.csv", index=False)
    err = error_of(capsys, "predict", model, tmp_path / "header.csv", *out)
    assert "has no data rows" in err
    err = error_of(capsys, "predict", model, root / "scores.csv", "-o",
                   root / "scores.csv")  # fmt: skip
    assert "would overwrite the input" in err


def test_labels_and_parameters_the_model_rejects(files, tmp_path, capsys):
    root, frame, _ = files
    bad = frame.copy()
    bad.loc[4, "y"] = "fox"
    bad.to_csv(tmp_path / "fox.csv", index=False)
    err = error_of(
        capsys, "report", root / "model.skops", tmp_path / "fox.csv",
        "--label-column", "y",
    )  # fmt: skip
    assert "label 'fox' at data row 5 is not a class of the model" in err
    err = error_of(
        capsys, "fit", root / "scores.csv", "--label-column", "y", "--id-column",
        "id", "--target-accuracy", "1.5", "-o", tmp_path / "m.skops",
    )  # fmt: skip
    assert "target_accuracy" in err


def test_readme_file_workflow_runs(files, tmp_path, monkeypatch, capsys):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", readme, flags=re.S).group(1)
    commands = [shlex.split(line) for line in block.splitlines()]
    assert [c[:2] for c in commands] == [
        ["sklearn-gsoftmax", command] for command in ("fit", "predict", "report")
    ]
    _, frame, _ = files
    monkeypatch.chdir(tmp_path)
    frame.to_csv("scores.csv", index=False)
    frame.to_parquet("new.parquet")
    frame.to_csv("labelled.csv", index=False)
    for command in commands:
        assert cli(*command[1:]) == 0, capsys.readouterr().err


def test_parquet_output_keeps_its_types_when_the_first_chunk_is_empty(files, tmp_path):
    """The first chunk's (empty) selection cannot tell a column's type; the
    frame it came from does."""
    root, frame, model = files
    confident = frame.iloc[:10].copy()
    confident[SCORES] = [20.0, 0.0, 0.0]  # far on cat's side: never flagged
    source = pd.concat([confident, frame], ignore_index=True)
    source.to_csv(tmp_path / "s.csv", index=False)
    out = tmp_path / "out.parquet"
    argv = ["predict", root / "model.skops", tmp_path / "s.csv", "-o", out]
    assert cli(*argv, "--only-uncertain", "--chunksize", "10") == 0
    written = pd.read_parquet(out)
    expected = model.predict_frame(frame[SCORES])
    expected = expected[expected["uncertain"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(written, expected)


def test_unreadable_file_message():
    from sklearn_gsoftmax._io import _unreadable

    error = _unreadable("x.csv", ValueError("line 3:\n  expected 2 fields"))
    assert str(error) == "cannot read 'x.csv' as csv: line 3: expected 2 fields"
    # an exception without a message is named by its type
    assert str(_unreadable("x.parquet", OSError())) == (
        "cannot read 'x.parquet' as parquet: OSError"
    )


def test_report_of_a_model_fitted_on_an_unnamed_array(
    files, tmp_path, capsys, unnamed_model
):
    """Its scores are every column but the label's."""
    _, frame, _ = files
    unnamed_file, unnamed = unnamed_model
    frame[[*SCORES, "y"]].to_csv(tmp_path / "s.csv", index=False)
    capsys.readouterr()
    argv = ["report", unnamed_file, tmp_path / "s.csv"]
    assert cli(*argv, "--label-column", "y") == 0
    assert printed(capsys.readouterr().out, "accuracy") == pytest.approx(
        np.mean(unnamed.predict(frame[SCORES].to_numpy()) == frame["y"]), rel=1e-3
    )


def test_missing_skops_names_the_extra(files, monkeypatch, capsys):
    root, _, _ = files
    monkeypatch.setitem(sys.modules, "skops.io", None)
    err = error_of(capsys, "info", root / "model.skops")
    assert err.rstrip("\n").endswith(
        "model files are saved with skops, which is not installed; install it "
        "with: pip install 'sklearn-gsoftmax[cli]'"
    )


def test_scores_stored_as_text_are_read_as_numbers(files, tmp_path):
    root, frame, model = files
    text = frame.astype({"a": str})
    text.to_parquet(tmp_path / "text.parquet")
    assert pd.read_parquet(tmp_path / "text.parquet")["a"].dtype != np.float64
    out = tmp_path / "m.skops"
    argv = ["fit", tmp_path / "text.parquet", "--label-column", "y", "--id-column"]
    assert cli(*argv, "id", "--rules", "low_confidence", "-o", out) == 0
    fitted = skops_io.load(out, trusted=TRUSTED_TYPES)
    np.testing.assert_allclose(fitted.scale_, model.scale_, rtol=1e-12)


def test_report_reads_the_scores_under_other_names(files, tmp_path, capsys):
    root, frame, _ = files
    renamed = frame.rename(columns={"a": "x", "b": "y2", "c": "z"})
    renamed.to_csv(tmp_path / "r.csv", index=False)
    argv = ["report", root / "model.skops", tmp_path / "r.csv", "--label-column"]
    assert cli(*argv, "y", "--score-columns", "x,y2,z") == 0
    assert "log_loss" in capsys.readouterr().out


def test_missing_pyarrow_names_the_extra(files, tmp_path, monkeypatch, capsys):
    root, _, _ = files
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    err = error_of(
        capsys, "predict", root / "model.skops", root / "scores.parquet", "-o",
        tmp_path / "o.csv",
    )  # fmt: skip
    assert "Parquet files need pyarrow, which failed to import (" in err
    assert err.rstrip("\n").endswith(
        "install it with: pip install 'sklearn-gsoftmax[parquet]'"
    )


def test_parquet_with_damaged_data_pages(files, tmp_path, capsys):
    """The footer reads, the data does not: a one-line error too."""
    root, frame, _ = files
    path = tmp_path / "damaged.parquet"
    frame.to_parquet(path, row_group_size=50, compression="snappy")
    data = bytearray(path.read_bytes())
    # "PAR1", the pages, the footer, its 4-byte length and "PAR1" again
    footer = int.from_bytes(data[-8:-4], "little") + 8
    data[4:-footer] = b"\xff" * (len(data) - footer - 4)
    path.write_bytes(bytes(data))
    err = error_of(
        capsys, "predict", root / "model.skops", path, "-o", tmp_path / "o.csv",
        "--chunksize", "50",
    )  # fmt: skip
    assert f"cannot read {str(path)!r} as parquet: " in err


def test_fit_prints_what_it_fitted(files, tmp_path, capsys):
    root, _, _ = files
    capsys.readouterr()
    argv = ["fit", root / "scores.csv", "--label-column", "y", "--id-column", "id"]
    out = tmp_path / "m.skops"
    assert cli(*argv, "--rules", "low_confidence,out_of_range", "-o", out) == 0
    text = capsys.readouterr().out
    assert re.search(r"^  uncertainty rules +low_confidence, out_of_range$", text, re.M)
    assert text.endswith(f"saved to {str(out)!r}\n")


def test_fit_skips_text_columns_it_cannot_read_as_scores(files, tmp_path):
    root, frame, model = files
    noted = frame.assign(note="free text")
    noted.to_csv(tmp_path / "noted.csv", index=False)
    out = tmp_path / "m.skops"
    argv = ["fit", tmp_path / "noted.csv", "--label-column", "y", "--id-column", "id"]
    assert cli(*argv, "--rules", "low_confidence", "-o", out) == 0
    fitted = skops_io.load(out, trusted=TRUSTED_TYPES)
    assert list(fitted.feature_names_in_) == SCORES


def test_messages_name_every_missing_column_and_the_formats(files, tmp_path, capsys):
    root, _, _ = files
    argv = [
        "fit",
        root / "scores.csv",
        "--label-column",
        "y",
        "-o",
        tmp_path / "m.skops",
    ]
    err = error_of(capsys, *argv, "--score-columns", "p,a,q")
    assert "has no score column 'p', 'q'; its columns are id, a, b, c, y" in err
    (tmp_path / "scores.txt").write_text("a,b\n1,2\n")
    err = error_of(capsys, "predict", root / "model.skops", tmp_path / "scores.txt",
                   "-o", tmp_path / "o.csv")  # fmt: skip
    assert err.rstrip("\n").endswith(
        "from its name; name it *.csv (or *.csv.gz) or *.parquet"
    )


def test_unnamed_model_on_a_file_without_an_id(files, tmp_path, capsys, unnamed_model):
    root, frame, _ = files
    unnamed_file, unnamed = unnamed_model
    argv = ["predict", unnamed_file, root / "scores.csv"]
    err = error_of(capsys, *argv, "-o", tmp_path / "o.csv")
    # id, a, b, c: every numeric column of the file
    assert "the file has (besides none) 5 score column(s)" in err


def test_subcommand_help_and_required_arguments(files, tmp_path, capsys):
    root, _, _ = files
    with pytest.raises(SystemExit) as info:
        main(["--link", "linear"])  # an option of a command, without the command
    assert info.value.code == 2
    assert "argument command: invalid choice: 'linear'" in capsys.readouterr().err
    for command, phrase in (
        ("predict", "Write a row for every row of a score file, with the columns:"),
        ("report", "--label-column LABEL_COLUMN the column of labels"),
        (
            "report",
            "the accepted predictions on a labelled score file; says when the batch "
            "looks shifted from the data the calibrator was fitted on.",
        ),
    ):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert phrase in " ".join(capsys.readouterr().out.split())
    with pytest.raises(SystemExit) as info:
        cli("report", root / "model.skops", root / "scores.csv")
    assert info.value.code == 2
    assert "required: --label-column" in capsys.readouterr().err


def test_predict_reads_the_file_in_chunks_of_the_given_size(
    files, tmp_path, monkeypatch
):
    from sklearn_gsoftmax._io import ScoreTable

    root, _, _ = files
    sizes = []
    chunks = ScoreTable.chunks

    def spy(self, columns, chunksize):
        sizes.append(chunksize)
        return chunks(self, columns, chunksize)

    monkeypatch.setattr(ScoreTable, "chunks", spy)
    argv = ["predict", root / "model.skops", root / "scores.csv"]
    assert cli(*argv, "-o", tmp_path / "o.csv", "--chunksize", "70") == 0
    assert sizes == [70]


def test_output_closed_by_the_reader_stops_quietly(files, monkeypatch):
    """``sklearn-gsoftmax info model | head -1``: no traceback, exit 1."""
    root, _, _ = files
    read, write = os.pipe()
    os.close(read)
    stdout = os.fdopen(write, "w", buffering=1)
    monkeypatch.setattr(sys, "stdout", stdout)
    try:
        assert cli("info", root / "model.skops") == 1
    finally:
        monkeypatch.undo()
        try:
            stdout.close()
        except OSError:
            pass


# -- malformed rows ------------------------------------------------------------


def csv_lines(frame, edits, *, blank_after=None):
    """``frame`` as CSV lines, data row ``r`` (1-based) replaced by ``edits[r](line)``;
    a blank line after data row ``blank_after``."""
    lines = frame.to_csv(index=False).splitlines()
    for row, edit in edits.items():
        lines[row] = edit(lines[row])
    if blank_after is not None:
        lines.insert(blank_after + 1, "")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("command", ["fit", "report", "predict"])
def test_rows_with_more_or_fewer_fields_than_the_header(
    files, tmp_path, capsys, command
):
    """pandas would take the first column as the index (every row one field
    long), drop the extra field of the columns not read, or pad a short row
    with NaN: each is an error naming the file's line and the data row."""
    root, frame, _ = files
    argv = {
        "fit": ["fit", "--label-column", "y", "-o", tmp_path / "m.skops"],
        "report": ["report", root / "model.skops", "--label-column", "y"],
        "predict": ["predict", root / "model.skops", "-o", tmp_path / "o.csv"],
    }[command]
    chunks = ["--chunksize", "50"] if command == "predict" else []
    bad = tmp_path / "bad.csv"

    def error(text):
        bad.write_text(text)
        return error_of(capsys, *argv[:-2], bad, *argv[-2:], *chunks)

    every = csv_lines(frame, {r: lambda s: s + ",9" for r in range(1, M + 1)})
    err = error(every)
    assert f"line 2 of {str(bad)!r} (data row 1, rows counted from 1, header " in err
    assert "has 6 field(s) where the header has 5: fix or drop that row (a field " in (
        err
    )
    long = csv_lines(frame, {137: lambda s: s + ",x"}, blank_after=20)
    assert "line 139 of " in error(long) and "(data row 137, " in error(long)
    short = csv_lines(frame, {201: lambda s: s.rsplit(",", 1)[0]})
    err = error(short)
    assert "line 202 of " in err and "data row 201, " in err
    assert "has 4 field(s) where the header has 5" in err
    assert not (tmp_path / "o.csv").exists() and not (tmp_path / "m.skops").exists()


def test_field_count_check_reads_compressed_csv_as_pandas_does(files, tmp_path):
    import gzip
    import zipfile

    from sklearn_gsoftmax._io import CLIError, check_field_counts

    _, frame, _ = files
    text = csv_lines(frame, {5: lambda s: s + ",9"})
    with gzip.open(tmp_path / "s.csv.gz", "wt") as stream:
        stream.write(text)
    with zipfile.ZipFile(tmp_path / "s.csv.zip", "w") as archive:
        archive.writestr("s.csv", text)
    for name in ("s.csv.gz", "s.csv.zip"):
        with pytest.raises(CLIError, match=r"^line 6 of .*\(data row 5, "):
            check_field_counts(tmp_path / name)
    with zipfile.ZipFile(tmp_path / "two.csv.zip", "w") as archive:
        archive.writestr("a.csv", text)
        archive.writestr("b.csv", text)
    with pytest.raises(CLIError, match="a zip archive of 2 files, not 1"):
        check_field_counts(tmp_path / "two.csv.zip")


# -- the bare command, --version and demo --------------------------------------


@pytest.mark.parametrize("demo_by_default", [False, True])
def test_version(capsys, demo_by_default):
    with pytest.raises(SystemExit) as info:
        main(["--version"], demo_by_default=demo_by_default)
    assert info.value.code == 0
    assert capsys.readouterr().out == f"sklearn-gsoftmax {__version__}\n"


@pytest.fixture
def demo_calls(monkeypatch):
    """The arguments of each run of the demo, which is not run."""
    import sklearn_gsoftmax._cli as cli_module

    calls = []
    monkeypatch.setattr(cli_module, "demo", lambda args: calls.append(args) or 0)
    return calls


def test_bare_console_script_prints_the_help(demo_calls, capsys):
    from sklearn_gsoftmax.__main__ import _main

    assert _main([]) == 0
    assert demo_calls == []
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: sklearn-gsoftmax [-h] [--version] {fit,")
    for line in (
        "fit fit a calibrator on labelled scores",
        "info a model file's parameters and the version that saved it",
        "demo the demo on a bundled dataset (what `python -m sklearn_gsoftmax` runs)",
        "`sklearn-gsoftmax demo` runs the demo, as does `python -m sklearn_gsoftmax` "
        "without a command.",
    ):
        assert line in text


def test_demo_runs_from_either_entry_point(demo_calls, capsys):
    from sklearn_gsoftmax.__main__ import _main

    assert _main(["demo", "--dataset", "wine", "--seed", "3"]) == 0
    assert _main([], demo_by_default=True) == 0
    assert _main(["--shifted-fraction", "0.2"], demo_by_default=True) == 0
    assert [(a.dataset, a.seed, a.shifted_fraction) for a in demo_calls] == [
        ("wine", 3, 0.3),
        ("digits", 0, 0.3),
        ("digits", 0, 0.2),
    ]
    # a command goes to the command either way
    with pytest.raises(SystemExit):
        _main(["info", "--help"], demo_by_default=True)
    assert len(demo_calls) == 3
    with pytest.raises(SystemExit) as info:
        _main(["demo", "--shifted-fraction", "1"])
    assert info.value.code == 2
    assert "argument --shifted-fraction: must lie in (0, 1), got 1" in (
        capsys.readouterr().err
    )
    with pytest.raises(SystemExit):
        _main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert text.startswith("usage: sklearn-gsoftmax demo [-h] [--dataset")
    assert text.endswith(
        "On score files exported from any model: fit, predict, report, info "
        "(sklearn-gsoftmax --help lists them; sklearn-gsoftmax COMMAND --help, or "
        "python -m sklearn_gsoftmax COMMAND --help, says more)."
    )


def test_console_script_without_arguments_as_users_run_it():
    script = Path(sys.executable).with_name("sklearn-gsoftmax")
    if not script.exists():
        pytest.skip("the console script is not installed next to the interpreter")
    result = subprocess.run([script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: sklearn-gsoftmax [-h] [--version]")
    assert result.stderr == ""


# -- model file formats --------------------------------------------------------


@pytest.mark.parametrize(
    "name, said", [("m.pkl", "says .pkl"), ("m.joblib", "says .joblib"),
                   ("model", "has no suffix")]
)  # fmt: skip
def test_fit_writes_skops_files_only(files, tmp_path, capsys, name, said):
    root, _, _ = files
    out = tmp_path / name
    argv = ["fit", root / "scores.csv", "--label-column", "y", "--id-column", "id"]
    err = error_of(capsys, *argv, "-o", out)
    assert f"the model file name {str(out)!r} {said}, but fit saves with skops, " in err
    assert err.rstrip("\n").endswith("load without running code; name it *.skops")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["predict", "report", "info"])
def test_pickled_models_are_refused_unloaded(files, tmp_path, capsys, command):
    """Loading a pickle runs the code it holds: the payload would write the
    marker."""
    import pickle

    root, _, _ = files
    marker = tmp_path / "marker"
    payload = (Path.write_text, (marker, "ran"))
    evil = type("Evil", (), {"__reduce__": lambda self: payload})()
    rest = {
        "predict": [root / "scores.csv", "-o", tmp_path / "o.csv"],
        "report": [root / "scores.csv", "--label-column", "y"],
        "info": [],
    }[command]
    for name in ("m.pkl", "m.pickle", "m.joblib"):
        (tmp_path / name).write_bytes(pickle.dumps(evil))
        err = error_of(capsys, command, tmp_path / name, *rest)
        assert f"{str(tmp_path / name)!r} is named as a pickle: the command line " in (
            err
        )
        assert (
            "since loading one runs any code it holds; save the model with skops"
            in (err)
        )
    assert not marker.exists()


def test_model_and_scores_given_in_the_wrong_order(files, tmp_path, capsys):
    root, _, _ = files
    argv = ["predict", root / "scores.csv", root / "model.skops"]
    err = error_of(capsys, *argv, "-o", tmp_path / "o.csv")
    assert "is named as a score file, not a model file: the model file comes " in err


# -- which column scores which class -------------------------------------------

WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
         "nine"]  # fmt: skip
SORTED_WORDS = sorted(WORDS)  # eight, five, four, nine, one, seven, six, three, ...


def make_digit_words(m, *, seed=0):
    """Ten classes named by words, one logit column per class in the order of
    the digits (not of the sorted labels), the true class pushed up."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, m)
    logits = rng.normal(size=(m, 10))
    logits[np.arange(m), y] += 3.0
    frame = pd.DataFrame(logits, columns=[f"logit_{w}" for w in WORDS])
    frame.insert(0, "id", np.arange(m))
    frame["label"] = np.array(WORDS)[y]
    return frame


def fit_quietly(capsys, *argv):
    """Run fit in-process with the fast rule; return (stdout, stderr)."""
    capsys.readouterr()
    assert cli("fit", *argv, "--rules", "low_confidence") == 0
    return capsys.readouterr()


def test_score_columns_matched_to_labels_by_name(tmp_path, capsys):
    frame = make_digit_words(600)
    frame.to_csv(tmp_path / "digits.csv", index=False)
    model_file = tmp_path / "m.skops"
    argv = [tmp_path / "digits.csv", "--label-column", "label", "--id-column", "id"]
    out, err = fit_quietly(capsys, *argv, "-o", model_file)
    assert err == ""
    matched = ", ".join(f"{w} <- logit_{w}" for w in SORTED_WORDS)
    assert (
        f"  score columns                matched to labels by name: {matched}\n" in out
    )
    model = skops_io.load(model_file, trusted=TRUSTED_TYPES)
    assert list(model.classes_) == SORTED_WORDS
    assert list(model.feature_names_in_) == [f"logit_{w}" for w in SORTED_WORDS]
    # predict reads the columns by name, whatever their order in the file
    shuffled = frame.sample(frac=1.0, axis=1, random_state=0)
    shuffled.to_csv(tmp_path / "new.csv", index=False)
    out_file = tmp_path / "p.csv"
    assert cli("predict", model_file, tmp_path / "new.csv", "-o", out_file) == 0
    predicted = pd.read_csv(out_file)["prediction"].to_numpy()
    raw = np.array(WORDS)[np.argmax(frame[[f"logit_{w}" for w in WORDS]], axis=1)]
    truth = frame["label"].to_numpy()
    assert np.mean(raw == truth) > 0.85
    assert np.mean(predicted == truth) >= np.mean(raw == truth) - 0.01
    capsys.readouterr()
    assert cli("info", model_file) == 0
    assert f"matched to labels by name: {matched}\n" in capsys.readouterr().out


@pytest.mark.parametrize(
    "columns, labels, expected",
    [
        (["proba_cat", "proba_dog"], ["cat", "dog"], ["proba_cat", "proba_dog"]),
        (["dog_p", "cat_p"], ["cat", "dog"], ["cat_p", "dog_p"]),
        (["score_1", "score_0"], [0, 1], ["score_0", "score_1"]),
        (["1", "0"], [0, 1], ["0", "1"]),
        (["p10", "p1", "p11"], [1, 10, 11], ["p1", "p10", "p11"]),
        # the longest common prefix, logit_s, would cut into the labels
        (["logit_six", "logit_seven"], ["seven", "six"], ["logit_seven", "logit_six"]),
        (["a", "b", "c"], ["cat", "dog", "eel"], None),
        (["proba_cat", "proba_dog", "other"], ["cat", "dog"], None),
        (["proba_cat", "proba_dog"], ["cat", "dog", "eel"], None),
        (["cat", "dog_score"], ["cat", "dog"], None),  # no common pattern
        (["x_cat", "y_dog"], ["cat", "dog"], None),
        (["proba_Cat", "proba_Dog"], ["cat", "dog"], None),  # case-sensitive
    ],
)
def test_match_to_labels(columns, labels, expected):
    from sklearn_gsoftmax._columns import match_to_labels

    assert match_to_labels(columns, labels) == expected


def test_positional_pairing_warns_when_it_looks_wrong(tmp_path, capsys):
    frame = make_digit_words(600)
    frame.columns = ["id", *[f"s{k}" for k in range(10)], "label"]
    frame.to_csv(tmp_path / "s.csv", index=False)
    argv = [tmp_path / "s.csv", "--label-column", "label", "--id-column", "id"]
    out, err = fit_quietly(capsys, *argv, "-o", tmp_path / "m.skops")
    pairs = ", ".join(f"{w} <- s{k}" for k, w in enumerate(SORTED_WORDS))
    assert (
        "score columns                in the file's order (paired with the sorted "
        f"labels: {pairs})\n"
    ) in out
    assert err.count("\n") == 1
    assert re.fullmatch(
        r"sklearn-gsoftmax: warning: the score columns may be paired with the wrong "
        r"classes: the highest score is the row's label on \d+\.\d% of the rows, no "
        r"more than always answering the most common class \(\d+\.\d%\); the fitted "
        r"map is flat \(its probabilities differ from their mean by 0\.\d% on "
        rf"average\)\. They are paired in the file's order with the sorted labels "
        rf"\({pairs}\); if that is wrong, rename the columns to contain the labels "
        r"\(e\.g\. score_eight\) or pass --score-columns in the order of the sorted "
        rf"labels: {', '.join(SORTED_WORDS)}\n",
        err,
    ), err
    # the columns in the order of the sorted labels: no warning
    order = ",".join(f"s{WORDS.index(w)}" for w in SORTED_WORDS)
    out, err = fit_quietly(
        capsys, *argv, "--score-columns", order, "-o", tmp_path / "m.skops"
    )
    assert err == ""
    assert "score columns                in the order of --score-columns (" in out


def test_info_says_when_the_names_disagree_with_the_pairing(tmp_path, capsys):
    frame = make_scores(M).rename(columns={"a": "p_eel", "b": "p_cat", "c": "p_dog"})
    # fitted by the library, not by fit: paired by position, against the names
    model = GaussianSoftmaxCalibrator(uncertainty_rules=["low_confidence"])
    model.fit(frame[["p_eel", "p_cat", "p_dog"]], frame["y"])
    skops_io.dump(model, tmp_path / "m.skops")
    capsys.readouterr()
    assert cli("info", tmp_path / "m.skops") == 0
    assert (
        "in the fitted order (paired with the sorted labels: cat <- p_eel, dog <- "
        "p_cat, eel <- p_dog); BEWARE: their names say cat <- p_cat, dog <- p_dog, "
        "eel <- p_eel\n"
    ) in capsys.readouterr().out


def test_binary_margin_needs_no_pairing(tmp_path, capsys):
    frame = make_scores(M)
    frame["y"] = np.where(frame["y"] == "cat", "yes", "no")
    frame[["a", "y"]].to_csv(tmp_path / "b.csv", index=False)
    out, err = fit_quietly(
        capsys, tmp_path / "b.csv", "--label-column", "y", "-o", tmp_path / "m.skops"
    )
    assert err == ""
    assert (
        "score columns                a (one binary score: positive means yes, the "
        "second of the sorted labels)\n"
    ) in out


def test_score_columns_that_do_not_fit_the_classes(files, tmp_path, capsys):
    root, frame, _ = files
    argv = [
        "fit",
        root / "scores.csv",
        "--label-column",
        "y",
        "-o",
        tmp_path / "m.skops",
    ]
    err = error_of(capsys, *argv, "--score-columns", "a,b")
    assert (
        "2 score column(s) (a, b) for 3 classes (cat, dog, eel): a calibrator takes "
        "one score column per class, or one for two classes; list them with "
        "--score-columns (or leave ids and weights out with --id-column and "
        "--weight-column)"
    ) in err


# -- an id among the scores ----------------------------------------------------


@pytest.mark.parametrize("binary", [True, False])
def test_an_id_column_is_not_taken_for_a_score(files, tmp_path, capsys, binary):
    root, frame, _ = files
    if binary:  # id and one score: the count of two columns for two classes fits
        frame = frame[["id", "a", "y"]].assign(y=np.where(frame["y"] == "cat", 1, 0))
    frame.sample(frac=1.0, random_state=0).to_csv(tmp_path / "s.csv", index=False)
    argv = ["fit", tmp_path / "s.csv", "--label-column", "y"]
    err = error_of(capsys, *argv, "-o", tmp_path / "m.skops")
    assert err == (
        "sklearn-gsoftmax: error: column 'id' looks like a row id, not a score "
        "(distinct integers, one per row): leave it out with --id-column id (or, if "
        "it is a score, list the scores with --score-columns)\n"
    )
    assert cli(*argv, "--id-column", "id", "-o", tmp_path / "m.skops") == 0


def test_integer_columns_that_are_not_ids():
    from sklearn_gsoftmax._columns import looks_like_ids

    assert looks_like_ids(pd.Series([5, 3, 9]))
    assert not looks_like_ids(pd.Series([5, 3, 5]))  # a repeated value
    assert not looks_like_ids(pd.Series([5.0, 3.0, 9.0]))  # real numbers
    assert not looks_like_ids(pd.Series([7]))


# -- weights -------------------------------------------------------------------


def test_fit_weights_count_as_repeated_rows(files, tmp_path, capsys):
    root, frame, _ = files
    weights = np.random.default_rng(3).integers(0, 4, M)
    frame.assign(w=weights).to_csv(tmp_path / "w.csv", index=False)
    frame.loc[frame.index.repeat(weights)].to_csv(tmp_path / "r.csv", index=False)
    argv = ["--label-column", "y", "--id-column", "id"]
    out, _ = fit_quietly(capsys, tmp_path / "w.csv", *argv, "--weight-column", "w",
                         "-o", tmp_path / "w.skops")  # fmt: skip
    assert f"on {M} rows of {str(tmp_path / 'w.csv')!r} (n from the sum of the " in (
        out
    )
    fit_quietly(capsys, tmp_path / "r.csv", *argv[:2], "--score-columns", "a,b,c",
                "-o", tmp_path / "r.skops")  # fmt: skip
    weighted = skops_io.load(tmp_path / "w.skops", trusted=TRUSTED_TYPES)
    repeated = skops_io.load(tmp_path / "r.skops", trusted=TRUSTED_TYPES)
    assert list(weighted.feature_names_in_) == SCORES  # the weights are no score
    assert weighted.n_samples_ == repeated.n_samples_ == weights.sum()
    np.testing.assert_allclose(weighted.scale_, repeated.scale_, rtol=1e-5)
    np.testing.assert_allclose(weighted.intercept_, repeated.intercept_, atol=1e-5)


@pytest.mark.parametrize(
    "value, holds",
    [(-1.0, "-1.0"), (np.nan, "a missing value"), ("many", "'many'"),
     (np.inf, "inf")],
)  # fmt: skip
def test_bad_weights_name_the_first_bad_row(files, tmp_path, capsys, value, holds):
    root, frame, _ = files
    weighted = frame.assign(w=1.0)
    path = write_csv(tmp_path / "w.csv", weighted, 42, "w", value)
    argv = ["--label-column", "y", "--weight-column", "w"]
    err = error_of(capsys, "fit", path, *argv, "--id-column", "id", "-o",
                   tmp_path / "m.skops")  # fmt: skip
    assert f"weight column 'w' holds {holds} at data row 42 (rows counted from 1, " in (
        err
    )
    assert err.rstrip("\n").endswith(
        "weights are frequency weights: non-negative numbers"
    )
    err = error_of(capsys, "report", root / "model.skops", path, *argv)
    assert f"weight column 'w' holds {holds} at data row 42" in err


def test_weights_all_zero_and_a_weight_among_the_scores(files, tmp_path, capsys):
    root, frame, _ = files
    frame.assign(w=0).to_csv(tmp_path / "w.csv", index=False)
    argv = ["fit", tmp_path / "w.csv", "--label-column", "y", "--id-column", "id"]
    out = ["-o", tmp_path / "m.skops"]
    err = error_of(capsys, *argv, "--weight-column", "w", *out)
    assert "weight column 'w' is zero in every row; at least one row needs a " in err
    err = error_of(
        capsys, *argv, "--weight-column", "a", "--score-columns", "a,b,c", *out
    )
    assert "the weight column 'a' is also a score column" in err
    err = error_of(capsys, *argv, "--weight-column", "v", *out)
    assert "has no weight column 'v'" in err
    # the model's columns are read by name: one of them cannot be the weights
    err = error_of(capsys, "report", root / "model.skops", root / "scores.csv",
                   "--label-column", "y", "--weight-column", "b")  # fmt: skip
    assert "the weight column 'b' is also a score column" in err
    err = error_of(capsys, "predict", root / "model.skops", root / "scores.csv",
                   "-o", tmp_path / "o.csv", "--id-column", "c")  # fmt: skip
    assert "the id column 'c' is also a score column" in err


def test_report_weighted(files, tmp_path, capsys):
    root, frame, model = files
    # the eels weigh most: the weighted metrics differ from the plain ones
    weights = np.random.default_rng(4).uniform(0, 1, M) * np.where(
        frame["y"] == "eel", 10.0, 1.0
    )
    frame.assign(w=weights).to_csv(tmp_path / "w.csv", index=False)
    capsys.readouterr()
    assert cli("report", root / "model.skops", tmp_path / "w.csv",
               "--label-column", "y", "--weight-column", "w") == 0  # fmt: skip
    out = capsys.readouterr().out
    assert out.startswith(
        f"calibration on {M} labelled rows of {str(tmp_path / 'w.csv')!r}, weighted "
        "by 'w':\n"
    )
    proba = model.predict_proba(frame[SCORES])
    expected = calibration_report(
        frame["y"], proba, labels=model.classes_, sample_weight=weights
    )
    unweighted = calibration_report(frame["y"], proba, labels=model.classes_)
    for name in ("log_loss", "brier", "ece", "accuracy"):
        assert printed(out, name) == pytest.approx(expected[name], rel=1e-3)
    assert expected["log_loss"] != pytest.approx(unweighted["log_loss"], rel=0.05)
    uncertain = model.predict_uncertain(frame[SCORES])
    correct = model.predict(frame[SCORES]) == frame["y"].to_numpy()
    assert printed(out, "flagged") == pytest.approx(
        np.average(uncertain, weights=weights), rel=1e-3
    )
    assert printed(out, "accepted_accuracy") == pytest.approx(
        np.average(correct[~uncertain], weights=weights[~uncertain]), rel=1e-3
    )
    assert "\nshift of this batch from the fitted data, each row counted once:\n" in (
        out
    )


# -- labels --------------------------------------------------------------------


def test_labels_that_mix_text_and_numbers(files, tmp_path, monkeypatch, capsys):
    """pyarrow writes no such Parquet column, but other writers can: the frame
    read is what matters."""
    from sklearn_gsoftmax._io import ScoreTable

    root, frame, _ = files
    mixed = frame.astype({"y": object})
    mixed.loc[6, "y"] = 3
    monkeypatch.setattr(ScoreTable, "read", lambda self, columns: mixed[columns])
    err = error_of(capsys, "fit", root / "scores.parquet", "--label-column", "y",
                   "--id-column", "id", "-o", tmp_path / "m.skops")  # fmt: skip
    first = frame["y"][0]
    assert (
        f"label column 'y' mixes text and other values: data row 1 holds {first!r} "
        "and data row 7 3 (rows counted from 1, header excluded); store the labels "
        "as one type, all text or all numbers"
    ) in err


def test_labels_read_as_text_for_a_model_of_numbers(files, tmp_path, capsys):
    root, frame, _ = files
    numbered = frame.assign(y=frame["y"].map({"cat": 0, "dog": 1, "eel": 2}))
    numbered.to_csv(tmp_path / "n.csv", index=False)
    argv = ["fit", tmp_path / "n.csv", "--label-column", "y", "--id-column", "id"]
    assert cli(*argv, "--rules", "low_confidence", "-o", tmp_path / "m.skops") == 0
    numbered.astype({"y": str}).to_parquet(tmp_path / "t.parquet")
    err = error_of(capsys, "report", tmp_path / "m.skops", tmp_path / "t.parquet",
                   "--label-column", "y")  # fmt: skip
    first = numbered["y"][0]
    assert err.rstrip("\n").endswith(
        f"label '{first}' at data row 1 is not a class of the model (0, 1, 2); the "
        "model's classes are numbers: store the labels as numbers"
    )


def test_predict_help_names_every_output_column(capsys):
    """Those of a model with the novelty rule, next to an id column (as
    test_predict_with_default_rules_round_trips writes them)."""
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = capsys.readouterr().out
    generic = {"id": "<id column>", **{f"proba_{c}": "proba_<class>" for c in CLASSES}}
    for column in NOVELTY_OUTPUT:  # on a line of its own, then what it holds
        name = re.escape(generic.get(column, column))
        assert re.search(rf"^  {name} +\w", text, re.M), column


def test_no_column_drops_out_unsaid(files, tmp_path, capsys):
    root, frame, _ = files
    frame.assign(note="free text", w=1.0).to_csv(tmp_path / "s.csv", index=False)
    argv = [tmp_path / "s.csv", "--label-column", "y", "--id-column", "id"]
    out = ["-o", tmp_path / "m.skops"]
    text, _ = fit_quietly(capsys, *argv, "--weight-column", "w", *out)
    assert (
        "\n  columns left out             id (id), y (label), note (no numbers), "
        "w (weight)\n"
    ) in text
    text, _ = fit_quietly(capsys, *argv, "--score-columns", "a,c,b", *out)
    assert (
        "\n  columns left out             id (id), y (label), note (not in "
        "--score-columns), w (not in --score-columns)\n"
    ) in text
    # a column named twice would be read once
    err = error_of(capsys, "fit", *argv, "--score-columns", "a,b,a", *out)
    assert err.rstrip("\n").endswith("--score-columns names 'a' twice")
    err = error_of(capsys, "predict", root / "model.skops", root / "scores.csv", "-o",
                   tmp_path / "o.csv", "--score-columns", "b,b,c")  # fmt: skip
    assert "--score-columns names 'b' twice" in err
    text = frame.to_csv(index=False).replace("id,a,b,c,y", "id,a,b,a,y", 1)
    (tmp_path / "twice.csv").write_text(text)
    err = error_of(capsys, "fit", tmp_path / "twice.csv", *argv[1:], *out)
    assert "names the column(s) 'a' more than once; give each column its own " in err


# -- adapting to other class proportions -----------------------------------------


def resampled(frame, priors, m, seed):
    """Rows of ``frame`` drawn class by class to the proportions ``priors``."""
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(m, priors)
    rows = np.concatenate(
        [
            rng.choice(np.flatnonzero(frame["y"] == label), count)
            for label, count in zip(CLASSES, counts)
        ]
    )
    return frame.iloc[rows].reset_index(drop=True)


@pytest.mark.parametrize("given", ["0.1,0.1,0.8", "eel=0.8,cat=0.1,dog=0.1"])
def test_predict_with_given_priors(files, tmp_path, capsys, given):
    root, frame, model = files
    out = tmp_path / "out.csv"
    capsys.readouterr()
    argv = ["predict", root / "model.skops", root / "scores.csv", "-o", out]
    assert cli(*argv, "--priors", given) == 0
    printed_lines = capsys.readouterr().out
    assert "class proportions cat=0.1, dog=0.1, eel=0.8 (given)" in printed_lines
    adapted = model.adapt_priors(priors=[0.1, 0.1, 0.8])
    expected = adapted.predict_frame(frame[SCORES])
    written = pd.read_csv(out, keep_default_na=False)
    np.testing.assert_allclose(
        written[expected.columns[1:4]], expected.iloc[:, 1:4], rtol=1e-12
    )
    np.testing.assert_array_equal(written["uncertain"], expected["uncertain"])
    assert not np.allclose(
        written["proba_eel"], model.predict_proba(frame[SCORES])[:, 2]
    )


def test_predict_and_report_estimate_the_priors_of_the_file(files, tmp_path, capsys):
    root, frame, model = files
    batch = resampled(frame, [0.1, 0.1, 0.8], 400, seed=3)
    batch.to_csv(tmp_path / "batch.csv", index=False)
    adapted = model.adapt_priors(batch[SCORES])
    assert adapted.class_priors_[2] > 0.6
    out = tmp_path / "out.parquet"
    capsys.readouterr()
    argv = [root / "model.skops", tmp_path / "batch.csv"]
    assert cli("predict", *argv, "-o", out, "--adapt-priors", "--chunksize", 90) == 0
    text = capsys.readouterr().out
    assert "(estimated from the file; test of unchanged proportions p=" in text
    pd.testing.assert_frame_equal(
        pd.read_parquet(out), adapted.predict_frame(batch[SCORES])
    )
    assert cli("report", *argv, "--label-column", "y", "--adapt-priors") == 0
    text = capsys.readouterr().out
    expected = calibration_report(
        batch["y"], adapted.predict_proba(batch[SCORES]), labels=model.classes_
    )
    assert printed(text, "log_loss") == pytest.approx(expected["log_loss"], rel=1e-3)
    assert "a class-mix shift" in text


@pytest.mark.parametrize(
    "priors, message",
    [
        ("0.5,0.5", "one proportion for each class"),
        ("cat=0.5,cow=0.5", "not classes of the model"),
        ("a,b,c", "must be numbers"),
        ("0.2,0.2,0.2", "must sum to 1"),
    ],
)
def test_bad_priors_are_one_line_errors(files, tmp_path, capsys, priors, message):
    root, _, _ = files
    argv = ["predict", root / "model.skops", root / "scores.csv", "-o",
            tmp_path / "o.csv"]  # fmt: skip
    assert message in error_of(capsys, *argv, "--priors", priors)


def test_adapt_priors_and_priors_together_are_refused(files, tmp_path, capsys):
    root, _, _ = files
    argv = ["report", root / "model.skops", root / "scores.csv", "--label-column",
            "y", "--adapt-priors", "--priors", "0.2,0.3,0.5"]  # fmt: skip
    assert "not both" in error_of(capsys, *argv)

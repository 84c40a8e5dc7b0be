"""Subcommands on score files: ``fit``, ``predict``, ``report`` and ``info``;
and ``demo``.

Scores exported from any model (a network's logits, a boosting service, a vendor
API) are calibrated by :class:`GaussianSoftmaxCalibrator`, saved with skops and
applied to new files. One function per subcommand; every error about the user's
files or arguments is caught once, in :func:`main`, and printed as one line.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from ._io import (
    CLIError,
    ScoreTable,
    TableWriter,
    check_model_name,
    default_score_columns,
    labels_of,
    load_model,
    save_model,
    saved_by,
    score_matrix,
)

PROG = "sklearn-gsoftmax"
MODULE_PROG = "python -m sklearn_gsoftmax"
SCORE_COMMANDS = ("fit", "predict", "report", "info")
COMMANDS = (*SCORE_COMMANDS, "demo")
DEFAULT_CHUNKSIZE = 10**6


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


def _check_distinct(source, output) -> None:
    if Path(output).resolve() == Path(source).resolve():
        raise CLIError(f"the output {str(output)!r} would overwrite the input")


def _model_columns(model, table: ScoreTable, requested, exclude):
    """The file's columns to read as the model's scores, and the names the model
    knows them by (``None`` for a model fitted on an unnamed array)."""
    names = getattr(model, "feature_names_in_", None)
    names = None if names is None else [str(n) for n in names]
    expected = model.n_features_in_
    if requested is not None:
        columns = requested
        source = "--score-columns gives"
    elif names is not None:
        columns = names
        source = "the model names"
    else:
        columns = [c for c in table.columns if c not in exclude]
        besides = ", ".join(repr(c) for c in sorted(exclude) if c is not None)
        source = f"the file has (besides {besides or 'none'})"
    if len(columns) != expected:
        raise CLIError(
            f"{source} {len(columns)} score column(s) but the calibrator was fitted "
            f"on {expected}; pass --score-columns with {expected} column name(s)"
        )
    table.require(columns, "score")
    return columns, names


def _scores(frame, columns, names):
    scores = score_matrix(frame, columns, names)
    # a model fitted on an unnamed array warns about named input: hand it numbers
    return scores if names is not None else scores.to_numpy()


def _map_line(model) -> tuple[str, str]:
    if model.coef_ is None:
        return ("score map", f"affine, scale {model.scale_:.6g}")
    off = np.abs(model.coef_[~np.eye(len(model.coef_), dtype=bool)]).max()
    return (
        "score map",
        f"matrix, mean diagonal {model.scale_:.6g}, largest off-diagonal |W| {off:.4g}",
    )


def _describe(model) -> list[tuple[str, str]]:
    """What a fitted calibrator holds, as (name, value) lines for fit and info."""
    classes = [str(c) for c in model.classes_]
    names = getattr(model, "feature_names_in_", None)
    offsets = ", ".join(f"{c} {b:.6g}" for c, b in zip(classes, model.intercept_))
    return [
        ("classes", ", ".join(classes)),
        (
            "score columns",
            ", ".join(map(str, names))
            if names is not None
            else f"{model.n_features_in_} (unnamed)",
        ),
        ("n (probability bound 1/n)", f"{model.n_samples_:g}"),
        ("n of the link (ceiling)", f"{model.n_link_:.6g}"),
        _map_line(model),
        ("offsets", offsets),
        ("uncertainty rules", ", ".join(model.uncertainty_rules)),
        ("threshold (low_confidence)", f"{model.uncertainty_threshold_:.6g}"),
        (
            "coverage on the fitted data",
            f"{model.coverage_:.4g} (accuracy of those accepted "
            f"{model.accepted_accuracy_:.4g})",
        ),
    ]


def _print_pairs(pairs, indent: str = "  ") -> None:
    width = max(len(name) for name, _ in pairs)
    for name, value in pairs:
        print(f"{indent}{name:<{width}}  {value}")


def fit(args) -> int:
    from ._calibrator import GaussianSoftmaxCalibrator

    _check_distinct(args.scores, args.output)
    check_model_name(args.output)
    table = ScoreTable(args.scores)
    table.require([args.label_column], "label")
    exclude = {args.label_column, args.id_column}
    requested = _split(args.score_columns)
    if requested is not None:
        table.require(requested, "score")
        if args.label_column in requested:
            raise CLIError(
                f"the label column {args.label_column!r} is also a score column"
            )
        frame = table.read([args.label_column, *requested])
        columns = requested
    else:
        frame = table.read(table.columns)
        columns = default_score_columns(frame, exclude)
        if not columns:
            raise CLIError(
                f"{args.scores!r} has no numeric column besides the label; pass "
                "--score-columns"
            )
    y = labels_of(frame, args.label_column)
    scores = score_matrix(frame, columns)
    calibrator = GaussianSoftmaxCalibrator(
        link=args.link,
        multiclass=args.multiclass,
        n_samples=args.n_samples,
        target_accuracy=args.target_accuracy,
        **({} if args.rules is None else {"uncertainty_rules": _split(args.rules)}),
    ).fit(scores, y)
    save_model(calibrator, args.output)
    n_source = "--n-samples" if args.n_samples is not None else "the file's row count"
    print(
        f"fitted GaussianSoftmaxCalibrator(link={args.link!r}) on {len(y)} rows "
        f"of {args.scores!r} (n from {n_source}):"
    )
    _print_pairs(_describe(calibrator))
    print(f"saved to {args.output!r}")
    return 0


def predict(args) -> int:
    _check_distinct(args.scores, args.output)
    model = load_model(args.model)
    table = ScoreTable(args.scores)
    id_columns = [] if args.id_column is None else [args.id_column]
    table.require(id_columns, "id")
    columns, names = _model_columns(
        model, table, _split(args.score_columns), set(id_columns)
    )
    total = flagged = written = 0
    with TableWriter(args.output) as writer:
        for chunk in table.chunks(id_columns + columns, args.chunksize):
            frame = model.predict_frame(_scores(chunk, columns, names))
            for column in id_columns:
                if column in frame.columns:
                    raise CLIError(
                        f"the id column {column!r} has the name of an output column"
                    )
                frame.insert(0, column, chunk[column].to_numpy())
            uncertain = frame["uncertain"].to_numpy()
            total += len(frame)
            flagged += int(uncertain.sum())
            kept = frame[uncertain] if args.only_uncertain else frame
            written += len(kept)
            writer.write(kept, template=frame)
    print(
        f"{total} rows scored, {flagged} flagged uncertain; wrote {written} rows "
        f"to {args.output!r}"
    )
    return 0


def _calibration_table(y, proba, model, uncertain) -> dict:
    """The calibration metrics of one model's predictions, plus what the flag
    does: the share it routes to review and the accuracy of the rest."""
    from .metrics import calibration_report

    row = dict(calibration_report(y, proba, labels=model.classes_))
    accepted = ~uncertain
    correct = model.classes_[np.argmax(proba, axis=1)] == y
    row["flagged"] = float(uncertain.mean())
    row["accepted_accuracy"] = (
        float(correct[accepted].mean()) if accepted.any() else float("nan")
    )
    return row


def report(args) -> int:
    model = load_model(args.model)
    table = ScoreTable(args.scores)
    table.require([args.label_column], "label")
    columns, names = _model_columns(
        model, table, _split(args.score_columns), {args.label_column}
    )
    frame = table.read([args.label_column, *columns])
    y = labels_of(frame, args.label_column)
    unknown = ~np.isin(y, model.classes_)
    if unknown.any():
        row = int(np.argmax(unknown))
        raise CLIError(
            f"label {y[row]!r} at data row {row + 1} is not a class of the model "
            f"({', '.join(map(str, model.classes_))})"
        )
    scores = _scores(frame, columns, names)
    proba = model.predict_proba(scores)
    uncertain = model.predict_uncertain(scores)
    metrics = _calibration_table(y, proba, model, uncertain)
    print(f"calibration on {len(y)} labelled rows of {args.scores!r}:")
    _print_pairs([(str(k), f"{v:.4g}") for k, v in metrics.items()])
    print(
        "  (flagged: share of predictions the uncertain flag routes to review; "
        "accepted_accuracy: accuracy of the others)"
    )
    _report_shift(model, scores, y)
    return 0


def _report_shift(model, scores, y) -> None:
    try:
        checks = model.shift_report(scores, y)
    except ValueError as exc:  # too few rows to test
        print(f"\nshift: not tested ({' '.join(str(exc).split())})")
        return
    print("\nshift of this batch from the fitted data:")
    # to_string never wraps or elides columns, whatever the display options
    print(checks.to_string(float_format="{:.4g}".format))
    shifted = checks.index[checks["shifted"].to_numpy(dtype=bool)]
    if len(shifted):
        print(
            "the batch looks SHIFTED from the fitted data (by "
            f"{', '.join(map(str, shifted))}): its probabilities and the flag's "
            "threshold may not hold on it"
        )
    else:
        print("no sign of shift from the fitted data")


def info(args) -> int:
    from ._version import __version__

    model = load_model(args.model)
    print(
        f"{args.model!r}: GaussianSoftmaxCalibrator saved by sklearn-gsoftmax "
        f"{saved_by(args.model)} (this is {__version__})"
    )
    print("parameters:")
    _print_pairs([(k, repr(v)) for k, v in sorted(model.get_params().items())])
    print("fitted:")
    names = getattr(model, "feature_names_in_", None)
    names = range(model.n_features_in_) if names is None else names
    ranges = ", ".join(
        f"{name} [{low:.4g}, {high:.4g}]"
        for name, low, high in zip(names, *model.score_range_)
    )
    _print_pairs([*_describe(model), ("score range seen in fit", ranges)])
    return 0


def demo(args) -> int:
    import pandas as pd

    from ._demo import ShiftedSplit, compare_models, shift_verdicts

    split = ShiftedSplit(
        args.dataset, shifted_fraction=args.shifted_fraction, seed=args.seed
    )
    table, models = compare_models(split)
    print(
        f"dataset {args.dataset}: {len(split.y_train)} training samples, "
        f"{len(split.y_test)} in-distribution test, {len(split.y_shifted)} shifted"
    )
    titles = {"test": "in-distribution test set", "shifted": "shifted test set"}
    with pd.option_context(
        "display.width",
        200,
        "display.max_columns",
        None,
        "display.float_format",
        "{:.4g}".format,
    ):
        for part, title in titles.items():
            print(f"\n{title}:")
            print(table[part])
    print(
        "\nflagged: share of predictions GaussianSoftmaxClassifier's uncertain flag "
        "(default rules: low_confidence, threshold chosen for 95% accuracy on "
        "held-out training predictions, and novelty, at most about 5% of "
        "in-distribution samples) routes to review;\nerrors_flagged: share of its "
        "errors that the flag caught."
    )
    gaussian = "gsoftmax gaussian"
    caught = table.loc[gaussian, ("shifted", "errors_flagged")]
    print(
        f"\nOn the shifted set the default flag of {gaussian} catches "
        f"{caught:.0%} of its errors."
    )
    print(f"\nshift_report of {gaussian} (each batch without labels):")
    with pd.option_context(
        "display.width", 200, "display.max_colwidth", 80, "display.max_columns", None
    ):
        print(shift_verdicts(models[gaussian], split))
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _open_fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must lie in (0, 1), got {text}")
    return value


DEMO_HELP = """\
Compare CalibratedClassifierCV and GaussianSoftmaxClassifier on a logistic
regression, in-distribution and on shifted data."""

# line breaks of our own: argparse would break the program's name at its hyphen
DEMO_EPILOG = f"""\
On score files exported from any model: {", ".join(SCORE_COMMANDS)}
({PROG} --help lists them; {PROG} COMMAND --help,
or {MODULE_PROG} COMMAND --help, says more)."""


def _add_demo_arguments(parser) -> None:
    from ._demo import DATASETS

    parser.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the split")
    parser.add_argument(
        "--shifted-fraction",
        type=_open_fraction,
        default=0.3,
        help="share of the samples, furthest along the first principal component, "
        "held out as the shifted test set (default 0.3)",
    )
    parser.set_defaults(run=demo)


def _add_version(parser) -> None:
    from ._version import __version__

    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")


def build_demo_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m sklearn_gsoftmax`` without a command: the demo's."""
    parser = argparse.ArgumentParser(
        prog=MODULE_PROG,
        description=DEMO_HELP,
        epilog=DEMO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_version(parser)
    _add_demo_arguments(parser)
    return parser


FIT_HELP = """\
Fit a GaussianSoftmaxCalibrator on a CSV or Parquet file of scores and labels
and save it with skops. The file should hold the scores of samples the scoring
model was NOT trained on (a validation set, or out-of-fold scores): scores of
training samples are over-confident, and the calibrator would learn that.
One score column for two classes (positive: the second label in sorted order),
or one column per class in the order of the sorted labels."""


MODEL_HELP = "a model file saved by 'fit' (*.skops)"


def _add_model_and_scores(parser, scores_help: str) -> None:
    """The arguments of the subcommands that apply a saved model to a file."""
    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument("scores", help=scores_help)
    parser.add_argument(
        "--score-columns",
        help="comma-separated score columns, in the fitted order (default: the "
        "columns the model was fitted on)",
    )


def build_parser() -> argparse.ArgumentParser:
    from ._calibrator import GaussianSoftmaxCalibrator
    from ._links import LINKS
    from ._uncertainty import RULES
    from ._validation import MULTICLASS_FORMS

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Calibrate exported scores from any model, apply the "
        f"calibration to files and flag the predictions to review. `{PROG} demo` "
        f"runs the demo, as does `{MODULE_PROG}` without a command.",
    )
    _add_version(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    formatter = argparse.RawDescriptionHelpFormatter

    p = commands.add_parser(
        "fit",
        help="fit a calibrator on labelled scores",
        description=FIT_HELP,
        formatter_class=formatter,
    )
    p.add_argument("scores", help="CSV (.csv, .csv.gz) or Parquet (.parquet) file")
    p.add_argument("--label-column", required=True, help="the column of labels")
    p.add_argument(
        "--score-columns",
        help="comma-separated score columns (default: every numeric column but "
        "the label and the id column)",
    )
    p.add_argument("--id-column", help="a column to leave out of the scores")
    p.add_argument("--link", choices=LINKS, default="gaussian")
    p.add_argument("--multiclass", choices=MULTICLASS_FORMS, default="vs_top")
    p.add_argument(
        "--n-samples",
        type=int,
        help="the scoring model's training-set size when known: it bounds the "
        "probabilities to about [1/n, 1 - 1/n] (default: the file's row count)",
    )
    p.add_argument(
        "--target-accuracy",
        type=float,
        default=0.95,
        help="accuracy the accepted predictions should reach; sets the "
        "low-confidence threshold (default 0.95)",
    )
    default_rules = ",".join(GaussianSoftmaxCalibrator().uncertainty_rules)
    p.add_argument(
        "--rules",
        help="comma-separated rules of the uncertain flag, among "
        f"{', '.join(RULES)} (default: {default_rules})",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="the model file, *.skops (skops loads it without running code; "
        "pickle and joblib files are refused, since loading one runs code)",
    )
    p.set_defaults(run=fit)

    p = commands.add_parser(
        "predict",
        help="calibrated probabilities and the uncertain flag for a score file",
        description="Write predict_frame's columns (prediction, proba_<class>, "
        "uncertain, reasons) for every row of a score file, next to its id "
        "column. The file is read and written in chunks, so memory does not grow "
        "with it.",
    )
    _add_model_and_scores(p, "CSV or Parquet file with the model's columns")
    p.add_argument(
        "-o", "--output", required=True, help="output file, .csv or .parquet"
    )
    p.add_argument("--id-column", help="a column to copy to the output")
    p.add_argument(
        "--only-uncertain",
        action="store_true",
        help="write only the rows flagged uncertain: the ones to review",
    )
    p.add_argument(
        "--chunksize",
        type=_positive_int,
        default=DEFAULT_CHUNKSIZE,
        help=f"rows per chunk (default {DEFAULT_CHUNKSIZE})",
    )
    p.set_defaults(run=predict)

    p = commands.add_parser(
        "report",
        help="calibration report on labelled scores, and a shift check",
        description="Log-loss, Brier score, calibration error, the largest "
        "single-sample loss, the share flagged and the accuracy of the accepted "
        "predictions on a labelled score file; says when the batch looks shifted "
        "from the data the calibrator was fitted on.",
    )
    _add_model_and_scores(p, "CSV or Parquet file of scores and labels")
    p.add_argument("--label-column", required=True, help="the column of labels")
    p.set_defaults(run=report)

    p = commands.add_parser(
        "info",
        help="a model file's parameters and the version that saved it",
        description="Print a model file's parameters, fitted values and the "
        "sklearn-gsoftmax version that saved it.",
    )
    p.add_argument("model", help=MODEL_HELP)
    p.set_defaults(run=info)

    p = commands.add_parser(
        "demo",
        help=f"the demo on a bundled dataset (what `{MODULE_PROG}` runs)",
        description=DEMO_HELP,
        epilog=DEMO_EPILOG,
        formatter_class=formatter,
    )
    _add_demo_arguments(p)
    return parser


def _warn_on_one_line(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {message}", file=sys.stderr)


def main(argv=None, *, demo_by_default: bool = False) -> int:
    """Run a subcommand; return the exit code (2 for an error in the input).

    Parameters
    ----------
    argv : list of str, default=None
        The arguments after the program name; ``None`` reads ``sys.argv``.
    demo_by_default : bool, default=False
        Arguments without a command are the demo's (``python -m
        sklearn_gsoftmax``, whose main job is the demo). Otherwise (the console
        script) no arguments at all print the help, which lists the commands.

    Returns
    -------
    code : int
        0 on success, 2 when a file or an argument is wrong.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if demo_by_default and not (argv and argv[0] in COMMANDS):
        parser = build_demo_parser()
    else:
        parser = build_parser()
        if not argv:
            # asking what the program does is no mistake: the help, on stdout,
            # exit 0, as pip does
            parser.print_help()
            return 0
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _warn_on_one_line
        try:
            return args.run(args)
        except BrokenPipeError:  # output piped to `head`: stop quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 1
        # ValueError: the estimator's own checks of the data and parameters
        except (CLIError, ValueError, OSError) as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            print(f"{PROG}: error: {message}", file=sys.stderr)
            return 2

"""The command line: ``fit``, ``predict``, ``report`` and ``info`` on score
files, and ``demo``.

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
import pandas as pd

from ._columns import (
    agreement_with_chance,
    default_score_columns,
    describe_fitted_pairing,
    label_pairs,
    looks_like_ids,
    match_to_labels,
    pairing_of,
)
from ._io import (
    CLIError,
    ScoreTable,
    TableWriter,
    check_model_name,
    labels_of,
    load_model,
    save_model,
    saved_by,
    score_matrix,
    weights_of,
)
from ._ties import first_index_of_max

PROG = "sklearn-gsoftmax"
MODULE_PROG = "python -m sklearn_gsoftmax"
SCORE_COMMANDS = ("fit", "predict", "report", "info")
COMMANDS = (*SCORE_COMMANDS, "demo")
DEFAULT_CHUNKSIZE = 10**6

#: A fitted map whose probabilities differ from their mean by less than this on
#: average (total-variation distance) hardly tells the rows apart: flat.
FLAT = 0.05


def _split(text: str | None) -> list[str] | None:
    return None if text is None else [c.strip() for c in text.split(",") if c.strip()]


def _score_columns(args) -> list[str] | None:
    """``--score-columns``, each named once: a column named twice would be read
    once, and the model would get one score column fewer than asked for."""
    columns = _split(args.score_columns)
    twice = sorted({c for c in columns or () if columns.count(c) > 1})
    if twice:
        raise CLIError(f"--score-columns names {', '.join(map(repr, twice))} twice")
    return columns


def _check_distinct(source, output) -> None:
    if Path(output).resolve() == Path(source).resolve():
        raise CLIError(f"the output {str(output)!r} would overwrite the input")


def _roles(args, table: ScoreTable | None = None) -> dict:
    """The columns given another role than scores (label, id, weight), by name;
    each is required in ``table`` when given."""
    roles = {
        getattr(args, f"{role}_column", None): role
        for role in ("label", "id", "weight")
    }
    roles.pop(None, None)
    for column, role in roles.items():
        if table is not None:
            table.require([column], role)
    return roles


def _weights(args, frame):
    column = getattr(args, "weight_column", None)
    return None if column is None else weights_of(frame, column)


def _refuse_roles(columns, roles: dict) -> None:
    for column in columns:
        if column in roles:
            raise CLIError(
                f"the {roles[column]} column {column!r} is also a score column"
            )


def _model_columns(model, table: ScoreTable, requested, roles: dict):
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
        columns = [c for c in table.columns if c not in roles]
        besides = ", ".join(repr(c) for c in sorted(roles))
        source = f"the file has (besides {besides or 'none'})"
    if len(columns) != expected:
        raise CLIError(
            f"{source} {len(columns)} score column(s) but the calibrator was fitted "
            f"on {expected}; pass --score-columns with {expected} column name(s)"
        )
    table.require(columns, "score")
    _refuse_roles(columns, roles)
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


def _describe(model, pairing: str) -> list[tuple[str, str]]:
    """What a fitted calibrator holds, as (name, value) lines for fit and info;
    ``pairing`` says which score column scores which class."""
    classes = [str(c) for c in model.classes_]
    offsets = ", ".join(f"{c} {b:.6g}" for c, b in zip(classes, model.intercept_))
    return [
        ("classes", ", ".join(classes)),
        ("score columns", pairing),
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


def _fit_columns(args, table: ScoreTable):
    """The rows to fit on, the score columns, and where their order comes from."""
    roles = _roles(args, table)
    requested = _score_columns(args)
    if requested is not None:
        table.require(requested, "score")
        _refuse_roles(requested, roles)
        frame = table.read(list(dict.fromkeys([*roles, *requested])))
        return frame, requested, "the order of --score-columns"
    frame = table.read(table.columns)
    columns = default_score_columns(frame, roles)
    if not columns:
        raise CLIError(
            f"{args.scores!r} has no numeric column besides the "
            f"{', '.join(roles.values())} column(s); pass --score-columns"
        )
    for column in columns:
        if looks_like_ids(frame[column]):
            # it would be fitted as a class's score
            raise CLIError(
                f"column {column!r} looks like a row id, not a score (distinct "
                f"integers, one per row): leave it out with --id-column {column} "
                "(or, if it is a score, list the scores with --score-columns)"
            )
    return frame, columns, "the file's order"


def _order_by_labels(columns: list, classes, order: str):
    """The score columns in the order of ``classes``, and the source of that
    order (``None`` when matched by name or for a single binary score)."""
    if len(columns) == 1 and len(classes) == 2:
        return columns, None
    if len(columns) != len(classes):
        raise CLIError(
            f"{len(columns)} score column(s) ({', '.join(map(str, columns))}) for "
            f"{len(classes)} classes ({', '.join(map(str, classes))}): a calibrator "
            "takes one score column per class, or one for two classes; list them "
            "with --score-columns (or leave ids and weights out with --id-column "
            "and --weight-column)"
        )
    matched = match_to_labels(columns, classes)
    return (columns, order) if matched is None else (matched, None)


def _warn_if_mispaired(model, scores, y, weights, order: str) -> None:
    """Warn when score columns paired with the classes by position look paired
    with the wrong ones: a flat fit, or the highest score no better than chance."""
    classes, columns = model.classes_, model.feature_names_in_
    agreement, chance = agreement_with_chance(scores.to_numpy(), y, classes, weights)
    proba = model.predict_proba(scores)
    mean = np.average(proba, axis=0, weights=weights)
    movement = np.average(0.5 * np.abs(proba - mean).sum(axis=1), weights=weights)
    facts = []
    if agreement <= chance:
        facts.append(
            f"the highest score is the row's label on {agreement:.1%} of the rows, "
            f"no more than always answering the most common class ({chance:.1%})"
        )
    if movement < FLAT:
        facts.append(
            "the fitted map is flat (its probabilities differ from their mean by "
            f"{movement:.1%} on average)"
        )
    if facts:
        warnings.warn(
            f"the score columns may be paired with the wrong classes: "
            f"{'; '.join(facts)}. They are paired in {order} with the sorted "
            f"labels ({label_pairs(classes, columns)}); if that is wrong, rename "
            f"the columns to contain the labels (e.g. score_{classes[0]}) or pass "
            "--score-columns in the order of the sorted labels: "
            f"{', '.join(map(str, classes))}",
            UserWarning,
            stacklevel=2,
        )


def _left_out(args, file_columns, columns) -> str:
    """The file's columns that are not scores, and why: none drops out unsaid."""
    roles = _roles(args)
    why = "not in --score-columns" if args.score_columns else "no numbers"
    left = [f"{c} ({roles.get(c, why)})" for c in file_columns if c not in columns]
    return ", ".join(left) or "none"


def _n_source(args) -> str:
    if args.n_samples is not None:
        return "--n-samples"
    if args.weight_column is not None:
        return f"the sum of the weights in {args.weight_column!r}"
    return "the file's row count"


def fit(args) -> int:
    from ._calibrator import GaussianSoftmaxCalibrator

    _check_distinct(args.scores, args.output)
    check_model_name(args.output)
    table = ScoreTable(args.scores)
    frame, columns, order = _fit_columns(args, table)
    y = labels_of(frame, args.label_column)
    weights = _weights(args, frame)
    columns, order = _order_by_labels(columns, np.unique(y), order)
    scores = score_matrix(frame, columns)
    calibrator = GaussianSoftmaxCalibrator(
        link=args.link,
        multiclass=args.multiclass,
        n_samples=args.n_samples,
        target_accuracy=args.target_accuracy,
        **({} if args.rules is None else {"uncertainty_rules": _split(args.rules)}),
    ).fit(scores, y, sample_weight=weights)
    if order is not None:
        _warn_if_mispaired(calibrator, scores, y, weights, order)
    save_model(calibrator, args.output)
    print(
        f"fitted GaussianSoftmaxCalibrator(link={args.link!r}) on {len(y)} rows "
        f"of {args.scores!r} (n from {_n_source(args)}):"
    )
    lines = _describe(calibrator, pairing_of(calibrator.classes_, columns, order))
    lines.insert(2, ("columns left out", _left_out(args, table.columns, columns)))
    _print_pairs(lines)
    print(f"saved to {args.output!r}")
    return 0


def _parse_priors(text: str, classes) -> dict:
    """``--priors``: proportions in the order of the classes (``0.2,0.8``) or
    by label (``cat=0.2,dog=0.8``), as a dict from class to proportion."""
    names = [str(label) for label in classes]
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        if all("=" in part for part in parts):
            pairs = dict(part.split("=", 1) for part in parts)
            unknown = sorted(set(pairs) - set(names))
            if unknown:
                raise CLIError(
                    f"--priors names labels {unknown} that are not classes of the "
                    f"model ({', '.join(names)})"
                )
            values = [float(pairs.get(name, "nan")) for name in names]
        else:
            values = [float(part) for part in parts]
    except ValueError as exc:
        raise CLIError(
            f"--priors must be numbers, comma-separated in the order of the classes "
            f"({', '.join(names)}) or as label=value pairs; got {text!r}"
        ) from exc
    if len(values) != len(names) or any(v != v for v in values):
        raise CLIError(
            f"--priors must give one proportion for each class ({', '.join(names)}), "
            f"got {text!r}"
        )
    return dict(zip(classes, values))


def _adapt(args, model, all_scores):
    """The model adapted to ``--priors`` or, with ``--adapt-priors``, to the
    proportions estimated from ``all_scores()`` (the whole file); the model
    itself without either."""
    if args.priors is not None and args.adapt_priors:
        raise CLIError("give --adapt-priors or --priors, not both")
    if args.priors is not None:
        adapted = model.adapt_priors(priors=_parse_priors(args.priors, model.classes_))
        how = "given"
    elif args.adapt_priors:
        adapted = model.adapt_priors(all_scores())
        how = (
            "estimated from the file; test of unchanged proportions "
            f"p={adapted.class_mix_pvalue_:.3g}"
        )
    else:
        return model
    proportions = ", ".join(
        f"{label}={q:.4g}" for label, q in zip(model.classes_, adapted.class_priors_)
    )
    print(f"class proportions {proportions} ({how})")
    return adapted


def predict(args) -> int:
    _check_distinct(args.scores, args.output)
    model = load_model(args.model)
    table = ScoreTable(args.scores)
    roles = _roles(args, table)
    id_columns = list(roles)
    columns, names = _model_columns(model, table, _score_columns(args), roles)

    def all_scores():
        # a first pass over the file: the estimate needs every row
        return pd.concat(
            [
                _scores(chunk, columns, names)
                for chunk in table.chunks(columns, args.chunksize)
            ]
        )

    model = _adapt(args, model, all_scores)
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


def _calibration_table(y, proba, model, uncertain, weights=None) -> dict:
    """The calibration metrics of one model's predictions, plus what the flag
    does: the share it routes to review and the accuracy of the rest (each
    weighted by ``weights`` when given)."""
    from .metrics import calibration_report

    row = dict(
        calibration_report(y, proba, labels=model.classes_, sample_weight=weights)
    )
    accepted = ~uncertain
    correct = model.classes_[first_index_of_max(proba)] == y
    weights = np.ones(len(y)) if weights is None else weights
    row["flagged"] = float(np.average(uncertain, weights=weights))
    row["accepted_accuracy"] = (
        float(np.average(correct[accepted], weights=weights[accepted]))
        if weights[accepted].sum() > 0
        else float("nan")
    )
    return row


def _check_known_labels(y, classes) -> None:
    unknown = ~np.isin(y, classes)
    if not unknown.any():
        return
    row = int(np.argmax(unknown))
    hint = ""
    if str(y[row]) in map(str, classes):  # "1" read as text, 1 fitted as a number
        kind = "text" if isinstance(classes[0], str) else "numbers"
        hint = f"; the model's classes are {kind}: store the labels as {kind}"
    raise CLIError(
        f"label {y[row]!r} at data row {row + 1} is not a class of the model "
        f"({', '.join(map(str, classes))}){hint}"
    )


def report(args) -> int:
    model = load_model(args.model)
    table = ScoreTable(args.scores)
    roles = _roles(args, table)
    columns, names = _model_columns(model, table, _score_columns(args), roles)
    frame = table.read([*roles, *columns])
    y = labels_of(frame, args.label_column)
    _check_known_labels(y, model.classes_)
    weights = _weights(args, frame)
    scores = _scores(frame, columns, names)
    fitted, model = model, _adapt(args, model, lambda: scores)
    proba = model.predict_proba(scores)
    uncertain = model.predict_uncertain(scores)
    metrics = _calibration_table(y, proba, model, uncertain, weights)
    weighted = "" if weights is None else f", weighted by {args.weight_column!r}"
    print(f"calibration on {len(y)} labelled rows of {args.scores!r}{weighted}:")
    _print_pairs([(str(k), f"{v:.4g}") for k, v in metrics.items()])
    print(
        "  (flagged: share of predictions the uncertain flag routes to review; "
        "accepted_accuracy: accuracy of the others)"
    )
    _report_shift(fitted, scores, y, weighted=weights is not None)
    return 0


def _report_shift(model, scores, y, *, weighted: bool) -> None:
    try:
        checks = model.shift_report(scores, y)
    except ValueError as exc:  # too few rows to test
        print(f"\nshift: not tested ({' '.join(str(exc).split())})")
        return
    # the tests count rows: a weight is not a number of rows there
    unweighted = ", each row counted once" if weighted else ""
    print(f"\nshift of this batch from the fitted data{unweighted}:")
    # to_string never wraps or elides columns, whatever the display options
    print(checks.to_string(float_format="{:.4g}".format))
    shifted = checks.index[checks["shifted"].to_numpy(dtype=bool)]
    if checks.attrs.get("verdict") == "class mix":
        print(
            "the classes come in other proportions, the features of each class "
            "look as fitted (a class-mix shift): --adapt-priors adapts the "
            "probabilities and the flag to them"
        )
    elif checks.attrs.get("verdict") == "features":
        print(
            "the batch's features look changed, beyond what other class "
            "proportions explain: labels from this batch would tell more than "
            "adapting to new proportions"
        )
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
    if names is None:
        pairing = f"{model.n_features_in_} (unnamed)"
        names = range(model.n_features_in_)
    else:
        pairing = describe_fitted_pairing(model.classes_, list(names))
    ranges = ", ".join(
        f"{name} [{low:.4g}, {high:.4g}]"
        for name, low, high in zip(names, *model.score_range_)
    )
    _print_pairs([*_describe(model, pairing), ("score range seen in fit", ranges)])
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
or one column per class. Columns whose names are the labels between one prefix
and suffix common to all (logit_cat, logit_dog; cat_p, dog_p) are matched to
the labels by name; other columns are paired with the sorted labels in their
order (the file's, or that of --score-columns), and fit warns when the result
looks mis-paired. fit prints which column scores which class."""


MODEL_HELP = "a model file saved by 'fit' (*.skops)"


PREDICT_HELP = """\
Write a row for every row of a score file, with the columns:
  <id column>     with --id-column: the file's id, copied first
  prediction      the most probable class
  proba_<class>   the calibrated probability of each class, one column per
                  class, in the order of the model's classes ('info' lists them)
  novelty_pvalue  when the model's rules include novelty: the share of held-out
                  training rows at least as novel (small: unlike the fitted data)
  uncertain       True when a rule flags the row: review it rather than act on it
  reasons         the rules that flagged the row, comma-separated (empty if none)
The file is read and written in chunks, so memory does not grow with it."""


def _add_model_and_scores(parser, scores_help: str) -> None:
    """The arguments of the subcommands that apply a saved model to a file."""
    parser.add_argument("model", help=MODEL_HELP)
    parser.add_argument("scores", help=scores_help)
    parser.add_argument(
        "--score-columns",
        help="comma-separated score columns, in the fitted order (default: the "
        "columns the model was fitted on)",
    )


def _add_priors_arguments(parser) -> None:
    """``--adapt-priors`` and ``--priors``: a batch whose classes come in
    other proportions than in fit."""
    parser.add_argument(
        "--adapt-priors",
        action="store_true",
        help="estimate the class proportions of this file (at least 20 rows; "
        "kept as fitted unless a test finds they moved) and adapt the "
        "probabilities and the flag to them",
    )
    parser.add_argument(
        "--priors",
        help="adapt to these class proportions: comma-separated in the order of "
        "the classes ('info' lists them) or label=value pairs, e.g. "
        "cat=0.2,dog=0.8; they must sum to 1",
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
        "the label, id and weight columns; a column of distinct integers is "
        "refused as an id)",
    )
    p.add_argument("--id-column", help="a column to leave out of the scores")
    p.add_argument(
        "--weight-column",
        help="a column of sample weights (frequency weights: non-negative numbers); "
        "without --n-samples, n is then their sum",
    )
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
        description=PREDICT_HELP,
        formatter_class=formatter,
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
    _add_priors_arguments(p)
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
    p.add_argument(
        "--weight-column",
        help="a column of sample weights: the metrics, the share flagged and the "
        "accuracy of the accepted predictions are weighted (the shift check "
        "counts each row once)",
    )
    _add_priors_arguments(p)
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

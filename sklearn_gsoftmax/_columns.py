"""Which of a score file's columns are scores, and which class each one scores.

A calibrator pairs its score columns with the sorted labels by position. A file
whose columns follow another order (``logit_zero`` ... ``logit_nine``, whose
sorted labels begin eight, five, four) would be fitted silently wrong, so when
the columns' names spell the labels they are matched by name instead, and the
command line says which way it paired them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def default_score_columns(frame: pd.DataFrame, exclude) -> list[str]:
    """Every column but ``exclude`` that holds numbers.

    A column of text with a few numbers in it is kept, so that its bad values
    are reported with their row instead of the column silently dropping out of
    the scores; a column without a single number (a name, a date) is skipped.
    """
    columns = []
    for name in frame.columns:
        if name in exclude:
            continue
        values = frame[name]
        if pd.api.types.is_numeric_dtype(values) or (
            pd.to_numeric(values, errors="coerce").notna().any()
        ):
            columns.append(name)
    return columns


def looks_like_ids(values: pd.Series) -> bool:
    """Whether a column holds distinct integers, one per row: a row id.

    Scores are real numbers; a column of integers in which no two rows agree
    numbers the rows instead.
    """
    return (
        len(values) > 1
        and pd.api.types.is_integer_dtype(values)
        and bool(values.is_unique)
    )


def match_to_labels(columns, labels) -> list | None:
    """The column of each label, in the order of ``labels``, if the names say it.

    A column matches a label when its name is the label's text between a prefix
    and a suffix that are the same for every label: ``logit_zero`` ...
    ``logit_nine`` for the labels ``zero`` ... ``nine`` (prefix ``logit_``),
    ``cat_proba`` and ``dog_proba``, ``p1`` ... ``p12``, or the labels
    themselves. Every label must match exactly one column and every column one
    label, and all the prefix and suffix pairs that do so must agree on the
    pairing; otherwise the names say nothing and the result is ``None``.

    Parameters
    ----------
    columns : sequence
        The score columns' names.
    labels : sequence
        The distinct labels (their ``str`` is matched, case-sensitively).

    Returns
    -------
    matched : list or None
        ``columns`` reordered to the order of ``labels``, or ``None``.
    """
    names = {str(c): c for c in columns}
    texts = [str(label) for label in labels]
    if len(names) != len(texts) or "" in texts or len(set(texts)) != len(texts):
        return None
    pairings = set()
    first = texts[0]
    for name in names:
        start = name.find(first)
        while start >= 0:
            prefix, suffix = name[:start], name[start + len(first) :]
            wanted = [prefix + text + suffix for text in texts]
            # distinct labels make distinct names: all found is a bijection
            if all(w in names for w in wanted):
                pairings.add(tuple(wanted))
            start = name.find(first, start + 1)
    if len(pairings) != 1:
        return None
    return [names[name] for name in pairings.pop()]


def label_pairs(labels, columns) -> str:
    """``label <- column, ...``: which column scores which class."""
    return ", ".join(f"{label} <- {column}" for label, column in zip(labels, columns))


def pairing_of(classes, columns, order: str | None) -> str:
    """How the score columns are paired with the classes, for fit and info.

    Parameters
    ----------
    classes : ndarray
        The sorted labels.
    columns : sequence or None
        The score columns in the fitted order, ``None`` when unnamed.
    order : str or None
        Where a positional order came from (``"the file's order"``); ``None``
        when the columns were matched by name.
    """
    if len(columns) == 1:
        return (
            f"{columns[0]} (one binary score: positive means {classes[-1]}, the "
            "second of the sorted labels)"
        )
    if order is None:
        return f"matched to labels by name: {label_pairs(classes, columns)}"
    return (
        f"in {order} (paired with the sorted labels: {label_pairs(classes, columns)})"
    )


def describe_fitted_pairing(classes, columns) -> str:
    """How a fitted model's named score columns are paired with its classes."""
    if len(columns) == 1:
        return pairing_of(classes, columns, None)
    matched = match_to_labels(columns, classes)
    if matched == list(columns):
        return pairing_of(classes, columns, None)
    text = pairing_of(classes, columns, "the fitted order")
    if matched is not None:  # fitted elsewhere than by fit, in another order
        text += f"; BEWARE: their names say {label_pairs(classes, matched)}"
    return text


def agreement_with_chance(scores: np.ndarray, y, classes, weights) -> tuple:
    """The (weighted) share of rows whose highest score is their label's column,
    and the share of the most common class: what a constant answer reaches."""
    hits = classes[np.argmax(scores, axis=1)] == np.asarray(y)
    shares = [np.average(np.asarray(y) == label, weights=weights) for label in classes]
    return float(np.average(hits, weights=weights)), float(max(shares))

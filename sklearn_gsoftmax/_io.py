"""The command line's files: score tables (CSV or Parquet) and model files (skops).

Tables are read whole for ``fit`` and ``report`` and in chunks for ``predict``,
whose output is appended chunk by chunk, so that its memory does not grow with the
file. Every problem with a file is raised as :class:`CLIError` with a message that
names the file, the column and, for bad values, the first bad row; a CSV row
with more or fewer fields than the header is refused with its line, before
pandas would pad or shift it.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import gzip
import io
import json
import lzma
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from ._calibrator import GaussianSoftmaxCalibrator
from ._persistence import TRUSTED_TYPES

#: Suffixes of the table formats; pandas reads the compressed CSV ones too.
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".csv.zst", ".csv.zip")
PARQUET_SUFFIXES = (".parquet", ".pq")

#: How the row numbers in the messages count.
ROWS_COUNTED = "rows counted from 1, header excluded"


class CLIError(Exception):
    """A problem with the user's files or arguments: one line on stderr, exit 2."""


def table_format(path: str | os.PathLike) -> str:
    """``"csv"`` or ``"parquet"``, from the file name's suffix."""
    name = Path(path).name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    raise CLIError(
        f"cannot tell the format of {str(path)!r} from its name; name it *.csv "
        "(or *.csv.gz) or *.parquet"
    )


def check_exists(path: str | os.PathLike) -> None:
    if not Path(path).is_file():
        raise CLIError(f"no such file: {str(path)!r}")


def _parquet():
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:  # absent, or built for another numpy
        raise CLIError(
            "Parquet files need pyarrow, which failed to import "
            f"({exc}); install it with: pip install 'sklearn-gsoftmax[parquet]'"
        ) from None
    return pyarrow, pyarrow.parquet


def _unreadable(path, exc: Exception | str) -> CLIError:
    message = " ".join(str(exc).split()) or type(exc).__name__
    return CLIError(f"cannot read {str(path)!r} as {table_format(path)}: {message}")


class ScoreTable:
    """A CSV or Parquet file of scores (and labels, ids) to read whole or in chunks.

    Parameters
    ----------
    path : str or path-like
        The file; its suffix says the format.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = path
        self.format = table_format(path)
        check_exists(path)
        self.columns = self._column_names()

    def _column_names(self) -> list[str]:
        if self.format == "parquet":
            pyarrow, parquet = _parquet()
            try:
                return list(parquet.ParquetFile(self.path).schema_arrow.names)
            except (OSError, pyarrow.ArrowException) as exc:
                raise _unreadable(self.path, exc) from None
        try:
            return [str(c) for c in pd.read_csv(self.path, nrows=0).columns]
        except (ValueError, OSError) as exc:  # ParserError, EmptyDataError, decoding
            raise _unreadable(self.path, exc) from None

    def require(self, columns, what: str) -> None:
        """Raise unless every one of ``columns`` is in the file."""
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise CLIError(
                f"{str(self.path)!r} has no {what} column "
                f"{', '.join(map(repr, missing))}; its columns are "
                f"{', '.join(self.columns)}"
            )

    def read(self, columns: list[str]) -> pd.DataFrame:
        """The whole table, restricted to ``columns``."""
        return next(self.chunks(columns, chunksize=None))

    def chunks(self, columns: list[str], chunksize: int | None) -> Iterator:
        """The table in chunks of ``chunksize`` rows (one chunk for ``None``),
        restricted to ``columns``, indexed by 0-based row number."""
        self.require(columns, "requested")
        if self.format == "parquet":
            reader = self._parquet_chunks(columns, chunksize)
        else:
            reader = self._csv_chunks(columns, chunksize)
        start = 0
        while True:
            try:
                chunk = next(reader)
            except StopIteration:
                if start == 0:
                    raise CLIError(f"{str(self.path)!r} has no data rows") from None
                return
            except (ValueError, OSError) as exc:  # a malformed line mid-file
                raise _unreadable(self.path, exc) from None
            if len(chunk) == 0:
                continue
            chunk.index = pd.RangeIndex(start, start + len(chunk))
            start += len(chunk)
            yield chunk[columns]

    def _csv_chunks(self, columns, chunksize):
        check_field_counts(self.path)
        # a header one field short of the rows would make pandas read the first
        # column as the index; check_field_counts refuses such rows already
        options = {"usecols": columns, "index_col": False}
        if chunksize is None:
            yield pd.read_csv(self.path, **options)
            return
        with pd.read_csv(self.path, chunksize=chunksize, **options) as reader:
            yield from reader

    def _parquet_chunks(self, columns, chunksize):
        pyarrow, parquet = _parquet()
        try:
            # pre-buffering keeps every row group read so far in arrow's memory
            # pool: memory would grow with the file
            file = parquet.ParquetFile(self.path, pre_buffer=False)
            if chunksize is None:
                yield file.read(columns=columns).to_pandas()
                return
            for batch in file.iter_batches(batch_size=chunksize, columns=columns):
                yield batch.to_pandas()
        except pyarrow.ArrowException as exc:
            raise _unreadable(self.path, exc) from None


def _open_zstd(path, mode):
    try:
        import zstandard
    except ImportError:
        raise CLIError(
            f"{str(path)!r} is compressed with zstandard, which is not installed; "
            "install it with: pip install zstandard"
        ) from None
    return zstandard.open(path, mode)


#: How pandas decompresses a CSV file, by the file name's last suffix.
_DECOMPRESS = {"gz": gzip.open, "bz2": bz2.open, "xz": lzma.open, "zst": _open_zstd}


@contextlib.contextmanager
def _csv_text(path):
    """The CSV file as text, decompressed as pandas decompresses it."""
    suffix = Path(path).name.lower().rsplit(".", 1)[-1]
    with contextlib.ExitStack() as stack:
        if suffix == "zip":
            archive = stack.enter_context(zipfile.ZipFile(path))
            names = archive.namelist()
            if len(names) != 1:  # as pandas
                raise _unreadable(path, f"a zip archive of {len(names)} files, not 1")
            binary = stack.enter_context(archive.open(names[0]))
        else:
            binary = stack.enter_context(_DECOMPRESS.get(suffix, open)(path, "rb"))
        yield io.TextIOWrapper(binary, encoding="utf-8", newline="")


def _bad_row(path, line, last_line, row, fields, header) -> CLIError:
    quotes = (
        f"; a quote left open joins lines {line} to {last_line}"
        if last_line > line
        else " (a field that holds a comma needs quotes)"
    )
    return CLIError(
        f"line {line} of {str(path)!r} (data row {row}, {ROWS_COUNTED}) has "
        f"{len(fields)} field(s) where the header has {len(header)}: fix or drop "
        f"that row{quotes}"
    )


def _check_distinct_names(path, header: list[str]) -> None:
    # pandas renames the second "a" to "a.1": it could become a score column
    twice = sorted({name for name in header if header.count(name) > 1})
    if twice:
        raise CLIError(
            f"the header of {str(path)!r} names the column(s) "
            f"{', '.join(map(repr, twice))} more than once; give each column its "
            "own name"
        )


def check_field_counts(path: str | os.PathLike) -> None:
    """Raise on the first CSV row with more or fewer fields than the header.

    pandas fills a short row's missing fields with NaN, and when it reads only
    some columns it drops a long row's extra fields (or, when every row has one
    more, takes the first column as the index): the row's values would be
    shifted or padded instead of refused. The file is streamed, once, by the
    :mod:`csv` module, whose quoting rules are pandas' defaults.
    """
    line = row = 0
    try:
        with _csv_text(path) as text:
            reader = csv.reader(text)
            header = next(reader, None)
            _check_distinct_names(path, header or [])
            line = reader.line_num + 1
            for fields in reader:
                if fields:  # pandas skips blank lines
                    row += 1
                    if len(fields) != len(header):
                        raise _bad_row(path, line, reader.line_num, row, fields, header)
                line = reader.line_num + 1
    except (csv.Error, lzma.LZMAError, zipfile.BadZipFile) as exc:
        raise _unreadable(path, f"line {line}: {exc}") from None


def _first_row(frame: pd.DataFrame, mask) -> int | None:
    """The 1-based data row of the file (the header not counted) of the first
    True in ``mask``, read from the frame's 0-based row index; ``None`` if none."""
    mask = np.asarray(mask)
    if not mask.any():
        return None
    return int(frame.index[int(np.argmax(mask))]) + 1


def score_matrix(frame: pd.DataFrame, columns: list[str], names=None) -> pd.DataFrame:
    """The score columns as float64, named ``names`` (default: ``columns``).

    Raises on a non-numeric or missing value, naming the first bad row.
    """
    arrays = {}
    for column, name in zip(columns, columns if names is None else names):
        values = frame[column]
        if not pd.api.types.is_numeric_dtype(values):
            numeric = pd.to_numeric(values, errors="coerce")
            row = _first_row(frame, numeric.isna() & values.notna())
            if row is not None:
                raise CLIError(
                    f"score column {column!r} is not numeric: data row {row} holds "
                    f"{values.loc[row - 1]!r} ({ROWS_COUNTED}); scores must be "
                    "numbers"
                )
            values = numeric
        array = values.to_numpy(dtype=np.float64, na_value=np.nan)
        row = _first_row(frame, np.isnan(array))
        if row is not None:
            raise CLIError(
                f"score column {column!r} has a missing value (NaN) at data row "
                f"{row} ({ROWS_COUNTED}); drop or fill the rows without scores"
            )
        arrays[name] = array
    return pd.DataFrame(arrays, index=frame.index)


def labels_of(frame: pd.DataFrame, column: str) -> np.ndarray:
    """The label column as an array; raises on the first missing label and on
    labels that mix text and numbers (which cannot be sorted into classes)."""
    values = frame[column]
    row = _first_row(frame, values.isna())
    if row is not None:
        raise CLIError(
            f"label column {column!r} has a missing value at data row {row} "
            f"({ROWS_COUNTED})"
        )
    if pd.api.types.infer_dtype(values) in ("mixed", "mixed-integer"):
        text = values.map(lambda label: isinstance(label, str))
        first_text, first_other = _first_row(frame, text), _first_row(frame, ~text)
        raise CLIError(
            f"label column {column!r} mixes text and other values: data row "
            f"{first_text} holds {values.loc[first_text - 1]!r} and data row "
            f"{first_other} {values.loc[first_other - 1]!r} ({ROWS_COUNTED}); "
            "store the labels as one type, all text or all numbers"
        )
    return values.to_numpy()


def weights_of(frame: pd.DataFrame, column: str) -> np.ndarray:
    """The weight column as float64; raises on the first row without a
    non-negative finite number, and on weights that are all zero."""
    values = frame[column]
    numeric = pd.to_numeric(values, errors="coerce")
    weights = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
    row = _first_row(frame, ~(weights >= 0) | np.isinf(weights))
    if row is not None:
        value = values.loc[[row - 1]].tolist()[0]  # a Python scalar, for repr
        holds = "a missing value" if pd.isna(value) else repr(value)
        raise CLIError(
            f"weight column {column!r} holds {holds} at data row {row} "
            f"({ROWS_COUNTED}); weights are frequency weights: non-negative "
            "numbers"
        )
    if not weights.any():
        raise CLIError(
            f"weight column {column!r} is zero in every row; at least one row "
            "needs a positive weight"
        )
    return weights


class TableWriter:
    """Write a table chunk by chunk, to a temporary file renamed on success.

    A run that fails halfway leaves no half-written output behind.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.format = table_format(path)
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._parquet_writer = None
        self._schema = None
        self._started = False

    def __enter__(self):
        return self

    def write(self, frame: pd.DataFrame, template: pd.DataFrame | None = None):
        """Append ``frame``; the first call's ``template`` (default ``frame``)
        fixes the column types, which an empty ``frame`` cannot tell."""
        if self.format == "csv":
            frame.to_csv(
                self._partial,
                mode="a" if self._started else "w",
                header=not self._started,
                index=False,
            )
        else:
            pyarrow, parquet = _parquet()
            if self._schema is None:
                like = frame if template is None else template
                self._schema = pyarrow.Schema.from_pandas(like, preserve_index=False)
                self._parquet_writer = parquet.ParquetWriter(
                    self._partial, self._schema
                )
            try:
                table = pyarrow.Table.from_pandas(
                    frame, schema=self._schema, preserve_index=False
                )
            except pyarrow.ArrowException as exc:
                raise CLIError(
                    f"cannot write rows {frame.index[0] + 1}.. to {str(self.path)!r}: "
                    f"a column changed type between chunks ({exc})"
                ) from None
            self._parquet_writer.write_table(table)
        self._started = True

    def __exit__(self, exc_type, exc, traceback):
        if self._parquet_writer is not None:
            self._parquet_writer.close()
        if exc_type is None:
            os.replace(self._partial, self.path)
        else:
            self._partial.unlink(missing_ok=True)
        return False


# -- model files ---------------------------------------------------------------


def _skops():
    try:
        import skops.io
    except ImportError:
        raise CLIError(
            "model files are saved with skops, which is not installed; install it "
            "with: pip install 'sklearn-gsoftmax[cli]'"
        ) from None
    return skops.io


#: The suffix of the model files ``fit`` writes, and of the pickle family the
#: command line refuses: loading a pickle or joblib file runs any code it holds.
MODEL_SUFFIX = ".skops"
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")


def check_model_name(path: str | os.PathLike) -> None:
    """Refuse to save a model under a name that says another format."""
    suffix = Path(path).suffix.lower()
    if suffix == MODEL_SUFFIX:
        return
    said = f"says {suffix}" if suffix else "has no suffix"
    raise CLIError(
        f"the model file name {str(path)!r} {said}, but fit saves with skops, "
        f"which predict, report and info load without running code; name it "
        f"*{MODEL_SUFFIX}"
    )


def _refuse_by_name(path: str | os.PathLike) -> None:
    """Refuse a model file whose name says it is a pickle or a score table."""
    name = Path(path).name.lower()
    if name.endswith(PICKLE_SUFFIXES):
        raise CLIError(
            f"{str(path)!r} is named as a pickle: the command line does not load "
            "pickle or joblib files, since loading one runs any code it holds; "
            f"save the model with skops (skops.io.dump(model, 'model{MODEL_SUFFIX}'),"
            " or 'fit ... -o model.skops')"
        )
    if name.endswith(CSV_SUFFIXES + PARQUET_SUFFIXES):
        raise CLIError(
            f"{str(path)!r} is named as a score file, not a model file: the model "
            "file comes first (COMMAND MODEL SCORES)"
        )


def save_model(model, path: str | os.PathLike) -> None:
    _skops().dump(model, path)


def load_model(path: str | os.PathLike):
    """Load a calibrator saved by ``fit``, trusting only our types.

    The types a file would create are listed from its schema before anything is
    loaded; a file with a type that is neither one of ``TRUSTED_TYPES`` nor one
    skops trusts by default is refused, so loading never runs untrusted code.
    """
    _refuse_by_name(path)
    sio = _skops()
    check_exists(path)
    not_ours = f"{str(path)!r} is not a model file of sklearn-gsoftmax"
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # a zip without a skops schema, or not a zip at all
        raise CLIError(f"{not_ours} (not a skops file: {exc})") from None
    refused = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if refused:
        raise CLIError(
            f"{not_ours}: it holds types sklearn-gsoftmax does not trust "
            f"({', '.join(refused)}), so it was not loaded"
        )
    try:
        model = sio.load(path, trusted=TRUSTED_TYPES)
    except Exception as exc:  # a damaged file, or one of an incompatible version
        raise CLIError(f"cannot load {str(path)!r}: {exc}") from None
    if not isinstance(model, GaussianSoftmaxCalibrator):
        raise CLIError(
            f"{not_ours}: it holds a {type(model).__name__}, not the "
            "GaussianSoftmaxCalibrator that 'fit' saves"
        )
    return model


def saved_by(path: str | os.PathLike) -> str:
    """The library version stamped in a model file's state, read from its schema
    (the loaded model drops the stamp once it is checked)."""
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
        stamp = schema["content"]["content"]["_gsoftmax_version"]["content"]
        return str(json.loads(stamp))
    except (KeyError, TypeError, ValueError, zipfile.BadZipFile):
        return "unknown (no version stamp)"

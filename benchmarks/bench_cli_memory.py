"""Peak memory of ``sklearn-gsoftmax predict`` on a 10^7-row score file (issue 14's
target: under 1 GiB, because the file is streamed in chunks).

    python benchmarks/bench_cli_memory.py [--rows 10000000] [--formats csv,parquet]

Writes files of random three-class logits with an id and a label column (in
chunks, in a temporary folder), fits a calibrator on 10^4 rows with ``fit``, then
runs ``predict`` on a tenth of the rows (a single chunk) and on all of them,
side by side. Each run's peak resident memory is the ``ru_maxrss`` of
``RUSAGE_CHILDREN`` read in a fresh process that ran only that command, so that
runs do not mix; it includes the interpreter and its imports.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

GIB = 2**30
WRITE_CHUNK = 10**6

# Runs the command given as arguments and prints its peak RSS in bytes (Linux
# reports ru_maxrss in KiB).
MEASURE = """\
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def scores(rows: int, start: int, rng) -> pd.DataFrame:
    y = rng.integers(0, 3, rows)
    logits = rng.normal(size=(rows, 3))
    logits[np.arange(rows), y] += 2.0
    frame = pd.DataFrame(logits, columns=["a", "b", "c"])
    frame.insert(0, "id", np.arange(start, start + rows))
    frame["y"] = y
    return frame


def write(path: Path, rows: int, seed: int = 0) -> None:
    """A score file of ``rows`` rows, written chunk by chunk."""
    rng = np.random.default_rng(seed)
    writer = None
    for start in range(0, rows, WRITE_CHUNK):
        frame = scores(min(WRITE_CHUNK, rows - start), start, rng)
        if path.suffix == ".csv":
            frame.to_csv(
                path, mode="a" if start else "w", header=not start, index=False
            )
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            writer = writer or pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
    if writer is not None:
        writer.close()


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "sklearn_gsoftmax", *map(str, args)]


def peak_rss(command: list[str]) -> tuple[int, float]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, *command],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout.split()[-1]), time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10**7)
    parser.add_argument("--formats", default="csv,parquet")
    parser.add_argument(
        "--rules", help="uncertainty rules of the fitted model (default: its default)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        write(folder / "train.csv", 10**4, seed=1)
        fit = ["fit", folder / "train.csv", "--label-column", "y", "--id-column", "id"]
        if args.rules:
            fit += ["--rules", args.rules]
        subprocess.run(cli(*fit, "-o", folder / "m.skops"), check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        print("predict on three-class scores, peak RSS against the 1 GiB target:")
        for suffix in args.formats.split(","):
            for rows in (args.rows // 10, args.rows):
                source = folder / f"scores_{rows}.{suffix}"
                write(source, rows)
                out = folder / f"out.{suffix}"
                command = cli("predict", folder / "m.skops", source, "-o", out,
                              "--id-column", "id")  # fmt: skip
                peak, seconds = peak_rss(command)
                verdict = "met" if peak < GIB else "MISSED"
                print(
                    f"  {suffix:7s} {rows:>10,d} rows  file "
                    f"{source.stat().st_size / 2**20:7.0f} MiB  output "
                    f"{out.stat().st_size / 2**20:7.0f} MiB  peak RSS "
                    f"{peak / 2**20:6.0f} MiB  ({peak / GIB:4.2f} GiB, target < 1: "
                    f"{verdict})  {seconds:5.1f} s"
                )
                source.unlink()
                out.unlink()


if __name__ == "__main__":
    main()

"""Throughput and peak memory of a streamed (out-of-core) fit against an in-memory fit.

Usage::

    python benchmarks/streaming_fit.py                              # 300k rows x 30 features, a few minutes
    python benchmarks/streaming_fit.py --rows 10000000 --in-memory-rows 2000000   # the 10M-row run

Writes ``--rows`` rows x ``--features`` correlated Gaussian features as a
Parquet directory (row groups of ``--row-group`` rows, generated chunk by
chunk), then fits :class:`anomvae.AnomalyVAE` twice, each in a fresh process
so that peak resident memory is the fit's own: once streamed from the Parquet
directory, once in memory on the first ``--in-memory-rows`` rows (the largest
size that fits, read into a DataFrame). Prints rows/s (rows x epochs / fit
seconds, survey and calibration included) and the process's peak RSS (Python
and torch included), as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def write_parquet(folder: Path, rows: int, features: int, row_group: int, seed: int = 0) -> None:
    """``rows`` rows in files of at most 1M rows, generated one row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(features, features)) / np.sqrt(features)
    names = [f"x{i}" for i in range(features)]
    written, part = 0, 0
    while written < rows:
        size = min(1_000_000, rows - written)
        with pq.ParquetWriter(folder / f"part-{part:04d}.parquet",
                              pa.schema([(name, pa.float32()) for name in names])) as writer:
            for start in range(0, size, row_group):
                block = (rng.normal(size=(min(row_group, size - start), features)) @ mixing).astype(np.float32)
                writer.write_table(pa.Table.from_arrays(list(block.T), names=names))
        written, part = written + size, part + 1


def fit_once(mode: str, folder: str, rows: int, epochs: int, batch_size: int) -> dict:
    """Fit in this process and return its figures (run by the parent in a child process)."""
    from anomvae import AnomalyVAE

    detector = AnomalyVAE(epochs=epochs, patience=None, batch_size=batch_size, random_state=0)
    if mode == "in-memory":
        import pyarrow.dataset as ds

        source = ds.dataset(folder).head(rows).to_pandas()
    else:
        source = folder
    started = time.perf_counter()
    detector.fit(source)
    seconds = time.perf_counter() - started
    epochs_run = len(detector.history_["epoch"])
    return {
        "mode": mode, "rows": rows, "epochs": epochs_run, "fit_seconds": round(seconds, 1),
        "rows_per_second": round(rows * epochs_run / seconds),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--in-memory-rows", type=int, default=None,
                        help="default: --rows; 0 skips the in-memory fit")
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--row-group", type=int, default=65_536)
    parser.add_argument("--dir", type=Path, default=None, help="Parquet folder (kept); default: a temporary one")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(fit_once(args.child[0], str(args.dir), int(args.child[1]), args.epochs, args.batch_size)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        if not any(folder.glob("*.parquet")):
            write_parquet(folder, args.rows, args.features, args.row_group)
        results = []
        in_memory_rows = args.rows if args.in_memory_rows is None else args.in_memory_rows
        runs = [("streamed", args.rows)] + ([("in-memory", in_memory_rows)] if in_memory_rows else [])
        for mode, rows in runs:
            command = [sys.executable, __file__, "--dir", str(folder), "--epochs", str(args.epochs),
                       "--batch-size", str(args.batch_size), "--child", mode, str(rows)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(output.strip().splitlines()[-1]))
    print(f"AnomalyVAE, {args.features} features, batch {args.batch_size}, "
          f"row groups of {args.row_group}\n")
    print("| mode | rows | epochs | fit s | rows/s | peak RSS MB |\n|---|---|---|---|---|---|")
    for result in results:
        print(f"| {result['mode']} | {result['rows']:,} | {result['epochs']} | {result['fit_seconds']} "
              f"| {result['rows_per_second']:,} | {result['peak_rss_mb']} |")


if __name__ == "__main__":
    main()

"""How often does ``anomvae.monitor`` alarm on normal batches? False-alarm rates per statistic and batch size.

The default ``AnomalyVAE(random_state=fit)`` is fitted on 2,000 rows of a
correlated six-feature Gaussian table; fresh rows of the same table are then
monitored in batches of each size, and the alarms of each kind (drift, KS,
PSI, flag rate) are counted. Every alarm on these batches is a false alarm;
``monitor`` promises about ``significance`` for the flag-rate test and for the
drift alarm (KS and PSI at half the level each). The issue behind it is 12.

Command (about a minute on two cores)::

    python benchmarks/monitor_false_alarms.py --fits 0 1 2 --sizes 1 5 20 100 1000 --batches 300
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd

import anomvae
from anomvae import AnomalyVAE

N_FEATURES = 6


def normal_rows(n_rows: int, seed: int) -> pd.DataFrame:
    """Rows of the correlated Gaussian table: standard normals times a fixed mixing matrix."""
    mixing = np.random.default_rng(100).normal(size=(N_FEATURES, N_FEATURES))
    values = np.random.default_rng(seed).normal(size=(n_rows, N_FEATURES)) @ mixing
    return pd.DataFrame(values, columns=[f"f{i}" for i in range(N_FEATURES)])


def count_alarms(detector, size: int, batches: int, seed: int, significance: float) -> dict[str, int]:
    """Alarms of each kind over ``batches`` fresh normal batches of ``size`` rows."""
    data = normal_rows(size * batches, seed)
    counts = {"drift": 0, "KS": 0, "PSI": 0, "flag rate": 0}
    for start in range(0, size * batches, size):
        report = anomvae.monitor(detector, data.iloc[start:start + size], significance=significance,
                                 n_top_features=0)
        counts["drift"] += report.drift_alarm
        counts["KS"] += report.ks_alarm
        counts["PSI"] += report.psi_alarm
        counts["flag rate"] += report.flag_rate_alarm
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fits", type=int, nargs="+", default=[0, 1, 2], help="seeds of the fitted models")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 20, 100, 1000], help="batch rows")
    parser.add_argument("--batches", type=int, default=300, help="fresh normal batches per fit and size")
    parser.add_argument("--significance", type=float, default=0.01)
    parser.add_argument("--train-rows", type=int, default=2000,
                        help="training rows of each fit (under 2,000 the default threshold cross-fits)")
    args = parser.parse_args(argv)
    totals = {size: {"drift": 0, "KS": 0, "PSI": 0, "flag rate": 0} for size in args.sizes}
    for fit in args.fits:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            detector = AnomalyVAE(random_state=fit).fit(normal_rows(args.train_rows, 1000 + fit))
        for size in args.sizes:
            counts = count_alarms(detector, size, args.batches, 50 + 10 * fit + size, args.significance)
            for kind, count in counts.items():
                totals[size][kind] += count
    n = len(args.fits) * args.batches
    print(f"False alarms on {n} normal batches per size (fits {args.fits}, {args.train_rows} training rows, "
          f"drift reference {detector.drift_reference_source_}, significance {args.significance})\n")
    print("| batch rows | drift | KS | PSI | flag rate |")
    print("|---:|---:|---:|---:|---:|")
    for size, counts in totals.items():
        cells = " | ".join(f"{counts[kind]} ({counts[kind] / n:.2%})" for kind in ("drift", "KS", "PSI", "flag rate"))
        print(f"| {size} | {cells} |")


if __name__ == "__main__":
    main()

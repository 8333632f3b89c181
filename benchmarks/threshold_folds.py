"""How many folds should the default threshold cross-fit? Recall, false alarms and fit time by fold count.

On the development tables of ``benchmarks/threshold_defaults.py`` (``--datasets development``: those with
enough normal rows), training sizes 50, 200 and 1,000, planted anomalies at 0, 5 and 10% of the training
rows, the default ``AnomalyVAE`` is fitted with ``RobustFalsePositiveRate(0.01, folds=k)`` for each ``k``
and judged on fresh rows as there: recall of freshly planted anomalies, false-alarm rate (FAR) on fresh
normal rows beside the stated rate, and fit seconds (the cross-fitted clones are most of a small fit).

    OMP_NUM_THREADS=1 python benchmarks/threshold_folds.py --folds 5 3 --seeds 0 1 2 \\
        --journal benchmarks/results/threshold_folds.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from anomvae import AnomalyVAE
from anomvae.calibration import RobustFalsePositiveRate
from threshold_defaults import part_tables, training_sets


def run(folds: list[int], sizes: list[int], seeds: list[int], journal: Path) -> None:
    """Append one line per fit to ``journal``."""
    tables = part_tables(["development"], sizes)
    with open(journal, "a") as out:
        for dataset, n, contamination, seed, (train, fresh_normal, fresh_anomalies) in training_sets(
                tables, sizes, [0.0, 0.05, 0.1], seeds):
            for k in folds:
                started = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = AnomalyVAE(random_state=seed, threshold=RobustFalsePositiveRate(0.01, folds=k)).fit(train)
                row = {"dataset": dataset, "n": n, "c": contamination, "seed": seed, "folds": k,
                       "fit_s": time.perf_counter() - started,
                       "recall": float(np.mean(model.predict(fresh_anomalies) == -1)),
                       "far": float(np.mean(model.predict(fresh_normal) == -1)),
                       "stated": float(model.threshold_.expected_rate)}
                out.write(json.dumps(row) + "\n")
                out.flush()


def summary(journal: Path) -> str:
    """Per fold count: cells (dataset x size x contamination) with FAR within 2x the stated rate, mean recall
    and FAR, total fit seconds, over the fits every fold count has."""
    rows = [json.loads(line) for line in open(journal)]
    fits = defaultdict(dict)
    for row in rows:
        fits[(row["dataset"], row["n"], row["c"], row["seed"])][row["folds"]] = row
    counts = sorted({row["folds"] for row in rows}, reverse=True)
    paired = [key for key, by_folds in fits.items() if all(k in by_folds for k in counts)]
    lines = [f"{len(paired)} fits per fold count", "| folds | cells with FAR <= 2x stated | mean recall | mean FAR "
             "| fit seconds |", "|---|---|---|---|---|"]
    for k in counts:
        cells = defaultdict(list)
        for key in paired:
            cells[key[:3]].append(fits[key][k])
        within = sum(np.mean([r["far"] for r in c]) <= 2 * np.mean([r["stated"] for r in c]) + 1e-9
                     for c in cells.values())
        lines.append(f"| {k} | {within} of {len(cells)} | {np.mean([fits[key][k]['recall'] for key in paired]):.3f} "
                     f"| {np.mean([fits[key][k]['far'] for key in paired]):.4f} "
                     f"| {sum(fits[key][k]['fit_s'] for key in paired):.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folds", nargs="+", type=int, default=[5, 3])
    parser.add_argument("--sizes", nargs="+", type=int, default=[50, 200, 1000])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--summary", action="store_true", help="only summarise --journal")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if not args.summary:
        run(args.folds, args.sizes, args.seeds, args.journal)
    print(summary(args.journal))


if __name__ == "__main__":
    main()

"""Mean ROC-AUC as the share of anomalies in the training data grows.

For each rate, ``anomvae bench --contamination-rate RATE`` trains every
detector on the clean semi-supervised half plus injected anomalies making up
RATE of the training rows, and tests on the rest
(:func:`anomvae.benchmark.protocols.split`). The curve is written as a
markdown table beside one results folder per rate.

    nice -n 5 python benchmarks/contamination_curve.py --datasets confirmation --seeds 2 \
        --max-rows 5000 --out benchmarks/results/generalisation/contamination
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import numpy as np

from anomvae.benchmark import run_benchmark
from anomvae.benchmark.protocols import contaminated_protocol
from anomvae.datasets import shared_data_dir

RATES = (0.0, 0.01, 0.02, 0.05, 0.1)
DETECTORS = "AnomalyVAE,KNN,IForest"


def curve(records_by_rate: dict[float, list[dict]]) -> str:
    """Markdown table: one row per rate, one column per detector, mean ROC-AUC over datasets."""
    detectors = sorted({r["detector"] for records in records_by_rate.values() for r in records})
    lines = ["| training contamination | " + " | ".join(detectors) + " |",
             "|---:|" + "---:|" * len(detectors)]
    for rate, records in sorted(records_by_rate.items()):
        cells = []
        for detector in detectors:
            per_dataset: dict[str, list[float]] = {}
            for record in records:
                if record["detector"] == detector and record["status"] == "ok":
                    per_dataset.setdefault(record["dataset"], []).append(record["roc_auc"])
            cells.append(f"{np.mean([np.mean(v) for v in per_dataset.values()]):.3f}")
        lines.append(f"| {rate:.0%} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder of tables (default: ../shared/data/tabular)")
    parser.add_argument("--datasets", default="confirmation")
    parser.add_argument("--detectors", default=DETECTORS)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--max-rows", type=int, default=5000)
    parser.add_argument("--rates", type=float, nargs="+", default=list(RATES))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    data = args.data or shared_data_dir() / "tabular"
    records_by_rate = {}
    for rate in args.rates:
        result = run_benchmark(
            "tabular", data, detectors=args.detectors, datasets=args.datasets, seeds=args.seeds,
            protocol=contaminated_protocol(rate), max_rows=args.max_rows, threads=1, jobs=args.jobs,
            out=args.out / f"rate-{rate:g}", plots=False, progress=False, resume=True,
        )
        records_by_rate[rate] = result["records"]
    command = shlex.join(["python", "benchmarks/contamination_curve.py", *(argv or sys.argv[1:])])
    table = curve(records_by_rate)
    (args.out / "curve.md").write_text(
        f"# Mean ROC-AUC against training contamination\n\nCommand: `{command}`\n\n{table}\n")
    print(table)


if __name__ == "__main__":
    main()

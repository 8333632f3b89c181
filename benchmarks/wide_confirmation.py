"""Confirm a wide architecture on the MVTec-AD embeddings, beside the default and PyOD's AutoEncoder.

The architecture for wide inputs is chosen on the wide development set
(``benchmarks/wide_development.py``); this script is run once afterwards, to
report. It runs exactly the splits of ``anomvae bench --suite images
--datasets MVTec --max-rows 2000`` (the 15 ResNet-18 embedding tables of 512
features, semi-supervised protocol) through the bench's own runner, for
``AnomalyVAE()`` as the checked-out code defaults it, for ``AnomalyVAE`` with
each candidate architecture given explicitly (``"512x256-32"``: anomvae's
former default), and for PyOD's AutoEncoder and KNN. Each run is appended to
a JSON-lines journal as it finishes; a rerun skips the finished ones.

Run from the repository root::

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n 10 python benchmarks/wide_confirmation.py \\
        --candidates 512x256-32 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pandas as pd

from wide_development import parse_candidate

from anomvae import AnomalyVAE
from anomvae.benchmark.detectors import select_detectors
from anomvae.benchmark.runner import Job, execute
from anomvae.benchmark.suites import discover_tasks
from anomvae.datasets import shared_data_dir

PEERS = ("AnomalyVAE", "PyOD-AutoEncoder", "PyOD-KNN")
RESULTS = Path(__file__).parent / "results" / "wide_development"


def candidate_detector(name: str):
    """The bench's AnomalyVAE detector, renamed ``name``, with the candidate's parameters."""
    params = parse_candidate(name)
    return dataclasses.replace(
        select_detectors(["AnomalyVAE"])[0], name=name,
        build=lambda n_features, random_state, overrides: AnomalyVAE(random_state=random_state, **params),
    )


def summary(journal: pd.DataFrame) -> pd.DataFrame:
    """Per detector: mean ROC-AUC over the tables for each seed, their mean, spread and fit seconds."""
    per_seed = journal.pivot_table(index="detector", columns="seed", values="roc_auc", aggfunc="mean")
    table = pd.DataFrame({f"seed {seed}": per_seed[seed] for seed in per_seed.columns})
    table["mean"] = per_seed.mean(axis=1)
    table["spread"] = per_seed.max(axis=1) - per_seed.min(axis=1)
    table["fit s (sum)"] = journal.groupby("detector")["fit_seconds"].sum()
    table["runs"] = journal.groupby("detector").size()
    return table.sort_values("mean", ascending=False)


def main(argv: list[str] | None = None) -> None:
    """Run the missing MVTec-AD fits of the journal, then print and write the summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", default="512x256-32")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated bench detectors (or empty)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", type=Path, default=None, help="shared data folder (default: ../shared/data)")
    parser.add_argument("--datasets", default="MVTec", help="part of the embedding tables' names to keep")
    parser.add_argument("--journal", type=Path, default=RESULTS / "mvtec-confirmation.jsonl")
    parser.add_argument("--out", type=Path, default=RESULTS / "mvtec-confirmation.md")
    args = parser.parse_args(argv)
    peers = [name for name in args.peers.split(",") if name]
    detectors = {d.name: d for d in select_detectors(peers)} if peers else {}
    detectors.update({name: candidate_detector(name) for name in args.candidates.split(",") if name})
    tasks = discover_tasks("images", (args.data or shared_data_dir()) / "images", args.datasets)
    args.journal.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.journal.exists():
        done = {(r["dataset"], r["detector"], r["seed"]) for r in map(json.loads, args.journal.read_text().splitlines())}
    for seed in args.seeds:
        for task in tasks:
            for name in detectors:
                if (task.name, name, seed) in done:
                    continue
                record = execute(Job(task, name, seed, "semi-supervised", 2000), detectors)
                print(json.dumps(record), flush=True)
                with args.journal.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
    journal = pd.read_json(args.journal, lines=True)
    journal = journal[journal["detector"].isin(detectors) & journal["seed"].isin(args.seeds)]
    table = summary(journal)
    lines = ["# Wide architecture confirmed on the MVTec-AD ResNet-18 embeddings (512 features)", "",
             "Command: `PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n 10 python benchmarks/wide_confirmation.py "
             f"--candidates {args.candidates} --seeds {' '.join(map(str, args.seeds))}`", "",
             f"Splits of `anomvae bench --suite images --datasets MVTec --max-rows 2000`, {len(tasks)} tables; "
             "mean ROC-AUC over tables per seed; spread = best minus worst seed. `AnomalyVAE` is the default "
             f"of the checked-out code. Journal: [{args.journal.name}]({args.journal.name}).", "",
             "| detector | " + " | ".join(table.columns) + " |", "|---" * (len(table.columns) + 1) + "|"]
    for name, row in table.iterrows():
        lines.append(f"| {name} | " + " | ".join(
            f"{value:.3f}" if column.startswith(("seed", "mean", "spread")) else f"{value:,.0f}"
            for column, value in row.items()) + " |")
    args.out.write_text("\n".join(lines) + "\n")
    print(args.out.read_text())


if __name__ == "__main__":
    main()

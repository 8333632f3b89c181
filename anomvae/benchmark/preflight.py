"""Check every dataset once, before any run: readable, sound, large enough, and fingerprinted.

A table that cannot be run (see :mod:`anomvae.benchmark.tables` for what is
checked) is skipped with its reason, once, instead of failing every detector
and seed. The size rule: under the run's protocol, every seed's split must
leave at least :data:`MIN_TRAIN_ROWS` training rows and a test part holding
both an anomaly and a normal row (ROC-AUC needs both). The semi-supervised
protocol trains on half the normal rows, so a table needs about twice
:data:`MIN_TRAIN_ROWS` normal rows.

Each checked table carries a fingerprint of its content (SHA-256 of the
file's bytes, plus the ``--label-column`` when one is given), recorded with
every run, so that ``--resume`` can tell a journalled run made on other data.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np

from .protocols import split
from .suites import TableTask

MIN_TRAIN_ROWS = 10
"""Fewest training rows a split may leave; smaller tables are skipped."""


class NoUsableDataset(ValueError):
    """Every dataset of a benchmark was skipped: nothing can run (``anomvae bench`` exits 1, as when every run fails)."""


def fingerprint(path: str | Path, label_column: str | None = None) -> str:
    """``"sha256:<hex>"`` of the file's bytes, with ``"+label=<name>"`` when a label column is named."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()}" + (f"+label={label_column}" if label_column is not None else "")


def split_problem(y: np.ndarray, protocol: str, seeds: list[int], max_rows: int | None) -> str | None:
    """Why the splits of labels ``y`` cannot be benchmarked (the size rule above), or None."""
    for label, name in ((1, "anomaly (label 1)"), (0, "normal row (label 0)")):
        if not np.any(y == label):
            return f"no {name}"
    for seed in seeds:
        train, test = split(y, protocol, seed, max_rows)
        if len(train) < MIN_TRAIN_ROWS:
            return (f"too small: the {protocol} split of seed {seed} leaves {len(train)} training row(s), "
                    f"fewer than {MIN_TRAIN_ROWS} ({int(np.sum(y == 0))} normal, {int(np.sum(y == 1))} anomalous rows)")
        if len(set(y[test])) < 2:
            return f"too small: the {protocol} split of seed {seed} leaves no anomaly or no normal row to test on"
    return None


def check_tasks(tasks: list, protocol: str, seeds: list[int],
                max_rows: int | None) -> tuple[list, list[dict], list[str]]:
    """Split ``tasks`` into those that can run and those skipped.

    Tables are read, checked and fingerprinted once each; other tasks (one-class
    MNIST) pass unchecked.

    Returns
    -------
    usable : list
        The tasks to run, tables with their ``fingerprint`` set.
    skipped : list of dict
        ``{"dataset", "file", "reason"}`` per table that cannot run.
    notes : list of str
        What was done to read the usable tables (a dropped index column).
    """
    usable, skipped, notes = [], [], []
    for task in tasks:
        if not isinstance(task, TableTask):
            usable.append(task)
            continue
        try:
            table = task.read()
        except ValueError as error:
            skipped.append({"dataset": task.name, "file": task.path, "reason": str(error)})
            continue
        problem = split_problem(table.y, protocol, seeds, max_rows)
        if problem:
            skipped.append({"dataset": task.name, "file": task.path, "reason": f"{task.path}: {problem}"})
            continue
        notes += table.notes
        usable.append(dataclasses.replace(task, fingerprint=fingerprint(task.path, task.label_column)))
    return usable, skipped, notes

"""Does the default threshold hold at every training size, clean or contaminated?

For each shared dataset, training size ``n`` and contamination ``c``, the
training set is ``n (1 - c)`` normal rows plus ``n c`` planted anomalies; the
default ``AnomalyVAE(random_state=seed)`` and scikit-learn's
``IsolationForest(contamination="auto")`` are fitted on it and judged on fresh
rows never trained on: their **recall** of freshly planted anomalies and their
**false-alarm rate** on fresh normal rows. The default's stated expected rate
(``threshold_.expected_rate``) is printed beside its false-alarm rate; the
goal (issue 12) is recall at least IsolationForest's with a false-alarm rate
within 2x the stated rate, in every cell. IsolationForest("auto") flags far
more normal rows than 1% on small training sets, so the ranking is compared
apart from the thresholds too: each method's recall at the threshold that
flags 1% of the fresh normal rows (``@1%``), and the default's at the rate
IsolationForest realised (``@IF FAR``).

A planted anomaly is a normal row (of the dataset's normal class) with
``max(1, round(0.1 d))`` of its ``d`` features, chosen at random, pushed 6
training standard deviations up or down: the kind of row the issue's
transactions table had (one amount multiplied by 20), in any table.

The rule was chosen on development tables (``--datasets development``,
``benchmarks/README.md``); the default five mix both parts, 32_shuttle,
22_magic.gamma and 33_skin being confirmation tables.

With ``--compare-old`` two earlier defaults run beside: split-conformal
``FalsePositiveRate(0.01)`` on the held-out rows (``old``), and the robust rate
on the held-out rows only, never cross-fitted (``held-out``: the default
``"reconstruction+knn"`` rule before its cross-fitted scores were put on the
final model's scale).

    nice -n 5 python benchmarks/threshold_defaults.py --threads 1 --seeds 0 1 2 --compare-old \\
        --out benchmarks/results/threshold_defaults.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.ensemble import IsolationForest

from anomvae import AnomalyVAE
from anomvae.benchmark.suites import PARTS
from anomvae.calibration import RobustFalsePositiveRate
from anomvae.datasets import load_npz, shared_data_dir
from anomvae.thresholds import FalsePositiveRate

DATASETS = ("32_shuttle", "22_magic.gamma", "5_campaign", "10_cover", "33_skin")
"""Shared datasets with at least 12,200 normal rows (10,000 to train, fresh rows to test)."""

SIZES = (50, 200, 1000, 10000)
CONTAMINATIONS = (0.0, 0.01, 0.05, 0.1)
SHIFT_SD = 6.0
FRESH_NORMAL, FRESH_ANOMALIES = 2000, 200


def plant(rows: np.ndarray, sd: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Copies of ``rows`` with ``max(1, round(0.1 d))`` features each pushed ``SHIFT_SD`` sd away."""
    planted = rows.copy()
    d = rows.shape[1]
    count = max(1, round(0.1 * d))
    for row in planted:
        chosen = rng.choice(d, count, replace=False)
        row[chosen] += rng.choice([-1.0, 1.0], count) * SHIFT_SD * sd[chosen]
    return planted


def training_set(normal: np.ndarray, n: int, contamination: float, seed: int):
    """``n`` training rows with ``round(n * contamination)`` planted anomalies, fresh normal rows and fresh
    planted anomalies, all drawn from ``normal`` by ``seed``."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(normal))
    n_planted = round(n * contamination)
    train_normal = normal[order[: n - n_planted]]
    sd = train_normal.std(axis=0) + 1e-12
    planted = plant(normal[order[n: n + n_planted + FRESH_ANOMALIES]], sd, rng)
    return np.vstack([train_normal, planted[:n_planted]]), normal[order[-FRESH_NORMAL:]], planted[n_planted:]


def part_tables(names, sizes, data_dir=None) -> list[str]:
    """``names`` with ``development`` or ``confirmation`` replaced by that part's tables
    (:data:`anomvae.benchmark.suites.PARTS`) that have enough normal rows for the largest of ``sizes``."""
    folder = Path(data_dir or shared_data_dir()) / "tabular"
    needed = max(sizes) + FRESH_ANOMALIES + FRESH_NORMAL
    tables = []
    for name in names:
        if name not in PARTS:
            tables.append(name)
            continue
        for table in PARTS[name]:
            _, y = load_npz(folder / f"{table}.npz")
            if int((y == 0).sum()) >= needed:
                tables.append(table)
    return tables


def training_sets(datasets, sizes, contaminations, seeds, data_dir=None):
    """``(dataset, n, contamination, seed, (train, fresh_normal, fresh_anomalies))`` for every combination."""
    folder = Path(data_dir or shared_data_dir()) / "tabular"
    for dataset in datasets:
        X, y = load_npz(folder / f"{dataset}.npz")
        normal = X[y == 0]
        for n in sizes:
            if n + FRESH_ANOMALIES + FRESH_NORMAL > len(normal):
                raise ValueError(f"{dataset} has too few normal rows ({len(normal)}) for n = {n}")
            for contamination in contaminations:
                for seed in seeds:
                    yield dataset, n, contamination, seed, training_set(normal, n, contamination, seed)


def cell(sets: tuple, n: int, contamination: float, seed: int, compare_old: bool) -> list[dict]:
    """Fit every method on one training set; recall and false-alarm rate on fresh rows.

    ``sets`` is ``(train, fresh_normal, fresh_anomalies)`` from :func:`training_set`.
    """
    train, fresh_normal, fresh_anomalies = sets
    methods = {"AnomalyVAE default": lambda: AnomalyVAE(random_state=seed)}
    if compare_old:
        methods["AnomalyVAE old default"] = lambda: AnomalyVAE(threshold=FalsePositiveRate(0.01), random_state=seed)
        methods["AnomalyVAE held-out robust"] = lambda: AnomalyVAE(
            threshold=RobustFalsePositiveRate(0.01, folds=0), random_state=seed)
    methods["IsolationForest auto"] = lambda: IsolationForest(contamination="auto", random_state=seed)
    results, scores = [], {}
    for name, make in methods.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = make().fit(train)
        stated = getattr(getattr(model, "threshold_", None), "expected_rate", np.nan)
        scores[name] = (-model.score_samples(fresh_normal), -model.score_samples(fresh_anomalies))
        results.append({
            "n": n, "contamination": contamination, "seed": seed, "method": name,
            "recall": float(np.mean(model.predict(fresh_anomalies) == -1)),
            "false_alarm_rate": float(np.mean(model.predict(fresh_normal) == -1)),
            "stated_rate": float(stated),
            "source": getattr(getattr(model, "threshold_", None), "source", ""),
            "recall_at_1pct": recall_at(*scores[name], 0.01),
        })
    forest_rate = results[-1]["false_alarm_rate"]
    for result in results:
        result["recall_at_forest_rate"] = recall_at(*scores[result["method"]], forest_rate)
    return results


def recall_at(normal_scores: np.ndarray, anomaly_scores: np.ndarray, rate: float) -> float:
    """Recall at the threshold that flags ``rate`` of the fresh normal rows: ranking alone, no calibration."""
    if rate <= 0:
        return float(np.mean(anomaly_scores > normal_scores.max()))
    return float(np.mean(anomaly_scores > np.quantile(normal_scores, 1.0 - rate)))


def evaluate(datasets=DATASETS, sizes=SIZES, contaminations=CONTAMINATIONS, seeds=(0,), data_dir=None,
             compare_old: bool = False) -> pd.DataFrame:
    """One row per dataset, size, contamination, seed and method."""
    rows = []
    for dataset, n, contamination, seed, sets in training_sets(datasets, sizes, contaminations, seeds, data_dir):
        for result in cell(sets, n, contamination, seed, compare_old):
            rows.append({"dataset": dataset, **result})
            print(rows[-1], file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def summary(results: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, size and contamination: the default beside IsolationForest, and whether the goal holds."""
    mean = results.groupby(["dataset", "n", "contamination", "method"])[
        ["recall", "false_alarm_rate", "stated_rate", "recall_at_1pct", "recall_at_forest_rate"]
    ].mean().unstack("method")
    default, forest = "AnomalyVAE default", "IsolationForest auto"
    table = pd.DataFrame({
        "VAE recall": mean[("recall", default)],
        "IF recall": mean[("recall", forest)],
        "VAE FAR": mean[("false_alarm_rate", default)],
        "stated rate": mean[("stated_rate", default)],
        "IF FAR": mean[("false_alarm_rate", forest)],
        "VAE recall @IF FAR": mean[("recall_at_forest_rate", default)],
        "VAE recall @1%": mean[("recall_at_1pct", default)],
        "IF recall @1%": mean[("recall_at_1pct", forest)],
    })
    if ("recall", "AnomalyVAE old default") in mean.columns:
        table["old recall"] = mean[("recall", "AnomalyVAE old default")]
        table["old FAR"] = mean[("false_alarm_rate", "AnomalyVAE old default")]
        table["held-out recall"] = mean[("recall", "AnomalyVAE held-out robust")]
        table["held-out FAR"] = mean[("false_alarm_rate", "AnomalyVAE held-out robust")]
        table["held-out stated"] = mean[("stated_rate", "AnomalyVAE held-out robust")]
    table["recall >= IF"] = table["VAE recall"] >= table["IF recall"] - 1e-9
    table["FAR <= 2x stated"] = table["VAE FAR"] <= 2 * table["stated rate"] + 1e-9
    return table.reset_index()


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table, floats to three decimals (no tabulate dependency)."""
    def cell(value):
        return f"{value:.3f}" if isinstance(value, float) else str(value)
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS),
                        help="tables, or 'development' / 'confirmation': the part's tables large enough for --sizes")
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--contaminations", nargs="+", type=float, default=list(CONTAMINATIONS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 on a shared machine)")
    parser.add_argument("--compare-old", action="store_true", help="also run the old default threshold")
    parser.add_argument("--out", type=Path, help="write the tables as Markdown here (and the raw rows as CSV beside)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = evaluate(part_tables(args.datasets, args.sizes), args.sizes, args.contaminations, args.seeds, compare_old=args.compare_old)
    table = summary(results)
    by_size = table.groupby(["n", "contamination"])[
        ["VAE recall", "IF recall", "VAE FAR", "stated rate", "IF FAR", "VAE recall @IF FAR", "VAE recall @1%",
         "IF recall @1%", "recall >= IF", "FAR <= 2x stated"]].mean()
    text = "\n\n".join([
        f"Command: `python benchmarks/{Path(__file__).name} {shlex.join(argv if argv is not None else sys.argv[1:])}`",
        "Mean over datasets (the goal columns: share of datasets meeting it):",
        markdown(by_size.reset_index()),
        "Every cell:",
        markdown(table),
    ])
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
        results.to_csv(args.out.with_suffix(".csv"), index=False)


if __name__ == "__main__":
    main()

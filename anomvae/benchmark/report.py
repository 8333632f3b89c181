"""Tables, plots and the JSON record of a benchmark run.

Summaries are computed per (dataset, detector) as the mean over seeds of the
successful runs. A detector that failed every seed of a dataset shows the
failure in the table, is left out of its mean and median (the ``failed`` row
counts such datasets) and takes the worst rank on that dataset, so a failure
can never improve a detector's mean rank.
"""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn
import torch

from ..version import __version__
from .protocols import CONTAMINATED_PREFIX
from .runner import available_cores

METRICS = {"roc_auc": "ROC-AUC", "average_precision": "Average precision"}


def environment() -> dict[str, Any]:
    """Versions and hardware of this machine."""
    versions = {"python": platform.python_version(), "anomvae": __version__,
                "torch": torch.__version__, "numpy": np.__version__, "scikit-learn": sklearn.__version__,
                "pandas": pd.__version__}
    try:
        import pyod

        versions["pyod"] = pyod.__version__
    except ImportError:
        versions["pyod"] = None
    hardware = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                "available_cores": available_cores(), "torch_threads": torch.get_num_threads(),
                "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    return {"versions": versions, "hardware": hardware}


def write_results(out: str | Path, name: str, result: dict[str, Any], markdown: str,
                  command: str = "") -> dict[str, Path]:
    """Write ``<name>.json`` (with the command and :func:`environment`) and ``<name>.md`` into ``out``.

    Returns
    -------
    dict
        ``{"json": path, "markdown": path}``.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"json": folder / f"{name}.json", "markdown": folder / f"{name}.md"}
    files["json"].write_text(json.dumps({"command": command, "environment": environment(), **result}, indent=1))
    files["markdown"].write_text(markdown + (f"\nCommand: `{command}`\n" if command else ""))
    return files


def summary_frame(records: list[dict[str, Any]], metric: str) -> pd.DataFrame:
    """Dataset x detector mean of ``metric`` over successful seeds (NaN where every seed failed)."""
    frame = pd.DataFrame(records)
    datasets = list(dict.fromkeys(frame["dataset"]))
    detectors = list(dict.fromkeys(frame["detector"]))
    ok = frame[frame["status"] == "ok"]
    if metric in ok:
        table = ok.pivot_table(index="dataset", columns="detector", values=metric, aggfunc="mean")
    else:
        table = pd.DataFrame()
    return table.reindex(index=datasets, columns=detectors)


def failure_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Dataset x detector: the status of the first failed seed where no seed succeeded, else ''."""
    frame = pd.DataFrame(records)
    cells = {}
    for (dataset, detector), group in frame.groupby(["dataset", "detector"], sort=False):
        cells[(dataset, detector)] = "" if (group["status"] == "ok").any() else group["status"].iloc[0]
    series = pd.Series(cells)
    return series.unstack().reindex(index=summary_frame(records, "roc_auc").index,
                                    columns=summary_frame(records, "roc_auc").columns).fillna("")


def ranks(table: pd.DataFrame) -> pd.DataFrame:
    """Per-dataset rank of each detector (1 = best); missing results rank last."""
    return table.fillna(-np.inf).rank(axis=1, ascending=False, method="average")


def aggregate(table: pd.DataFrame) -> pd.DataFrame:
    """Rows ``mean``, ``median``, ``mean rank`` and ``failed`` under a summary table."""
    return pd.DataFrame(
        {"mean": table.mean(), "median": table.median(), "mean rank": ranks(table).mean(),
         "failed": table.isna().sum()}
    ).T


def markdown_table(records: list[dict[str, Any]], metric: str) -> str:
    """Markdown of the dataset x detector table with its aggregate rows; failures shown by status."""
    table = summary_frame(records, metric)
    failures = failure_frame(records)
    best = table.max(axis=1)
    header = "| dataset | " + " | ".join(table.columns) + " |"
    lines = [header, "|---|" + "---:|" * len(table.columns)]
    for dataset, row in table.iterrows():
        digits = _distinguishing_digits(row.dropna().to_numpy(), best[dataset])
        cells = [f"*{failures.loc[dataset, detector] or 'failed'}*" if math.isnan(value)
                 else _score_cell(value, best[dataset], digits) for detector, value in row.items()]
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    summary = aggregate(table)
    for name, row in summary.iterrows():
        if name == "failed":
            cells = [str(int(v)) for v in row]
        else:
            cells = ["-" if math.isnan(v) else f"{v:.2f}" if name == "mean rank" else f"{v:.3f}" for v in row]
        lines.append(f"| **{name}** | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _distinguishing_digits(values, best: float, most: int = 6) -> int:
    """Fewest decimals (3 to ``most``) at which no lesser value of a row reads as the best."""
    lesser = [value for value in values if value < best]
    for digits in range(3, most + 1):
        if all(f"{value:.{digits}f}" != f"{best:.{digits}f}" for value in lesser):
            return digits
    return most


def _score_cell(value: float, best: float, digits: int = 3) -> str:
    """Three decimals, bold for the best; more, for the best and the values that would read as it at three."""
    near = f"{value:.3f}" == f"{best:.3f}"
    shown = f"{value:.{digits if near else 3}f}"
    return f"**{shown}**" if value >= best else shown


def speed_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Per detector: median fit rows/s, score rows/s, peak memory and total fit time of successful runs."""
    frame = pd.DataFrame(records)
    ok = frame[frame["status"] == "ok"]
    detectors = list(dict.fromkeys(frame["detector"]))
    if ok.empty:
        return pd.DataFrame(index=detectors)
    grouped = ok.groupby("detector")
    speed = pd.DataFrame({
        "fit rows/s (median)": grouped["fit_rows_per_second"].median(),
        "score rows/s (median)": grouped["score_rows_per_second"].median(),
        "peak memory MB (median)": grouped["peak_memory_mb"].median(),
        "peak memory MB (max)": grouped["peak_memory_mb"].max(),
        "fit seconds (total)": grouped["fit_seconds"].sum(),
    })
    return speed.reindex(detectors)


def markdown_speed(records: list[dict[str, Any]]) -> str:
    """Markdown table of fit and score throughput and peak memory per detector."""
    speed = speed_frame(records)
    lines = ["| detector | " + " | ".join(speed.columns) + " |", "|---|" + "---:|" * len(speed.columns)]
    for detector, row in speed.iterrows():
        lines.append(f"| {detector} | " + " | ".join(
            "n/a" if pd.isna(v) else f"{v:,.0f}" if v >= 100 else f"{v:.1f}" for v in row) + " |")
    return "\n".join(lines)


def failure_list(records: list[dict[str, Any]]) -> list[str]:
    """One Markdown bullet per failed run: dataset, detector, seed, status and error."""
    return [f"- {r['dataset']} / {r['detector']} / seed {r['seed']}: **{r['status']}** {r.get('error') or ''}"
            for r in records if r["status"] != "ok"]


def skipped_list(config: dict[str, Any]) -> list[str]:
    """One Markdown bullet per dataset skipped before any run, with its reason."""
    return [f"- {entry['dataset']}: {entry['reason']}" for entry in config.get("skipped_datasets") or []]


def contamination_notes(records: list[dict[str, Any]]) -> list[str]:
    """Bullets for the datasets whose realised training contamination fell short of the protocol's rate.

    Only the ``contaminated-<rate>`` protocol asks for a rate; at most half of
    a dataset's anomalies move into training, so a dataset with few anomalies
    gets less. Runs journalled before the training anomalies were recorded are passed over.
    """
    notes, seen = [], set()
    for record in records:
        protocol, dataset = str(record.get("protocol", "")), record["dataset"]
        if not protocol.startswith(CONTAMINATED_PREFIX) or "n_train_anomalies" not in record or dataset in seen:
            continue
        rate = float(protocol[len(CONTAMINATED_PREFIX):])
        anomalies, clean = record["n_train_anomalies"], record["n_train"] - record["n_train_anomalies"]
        if anomalies < round(rate / (1 - rate) * clean):
            seen.add(dataset)
            notes.append(f"- {dataset}: asked {100 * rate:g}% of the training rows, realised "
                         f"{100 * record['anomaly_share_train']:.2f}% ({anomalies} of {record['n_train']} rows, "
                         f"seed {record['seed']}): at most half of its anomalies move into training")
    return notes


def write_markdown(records: list[dict[str, Any]], config: dict[str, Any], env: dict[str, Any],
                   path: Path) -> None:
    """Write ``results.md``: the metric tables, speed and memory, failures, command and machine."""
    seeds = sorted({r["seed"] for r in records})
    lines = [
        f"# anomvae benchmark: {config.get('suite')} suite, {config.get('protocol')} protocol",
        "",
        f"Seeds {seeds}; datasets over {config.get('max_rows')} rows subsampled (stratified). "
        "Cells are means over seeds of successful runs; **bold** is the best per dataset; "
        "*italics* name a failure (every seed failed). Failed cells are left out of mean and "
        "median and rank last.",
        "",
        f"Command: `{config.get('command', '')}`",
        "",
        f"Machine: {env['hardware']['processor']}, {env['hardware']['available_cores']} cores, "
        f"CUDA: {env['hardware']['cuda']}; torch {env['versions']['torch']}, pyod {env['versions']['pyod']}, "
        f"anomvae {env['versions']['anomvae']}.",
        "",
    ]
    for metric, title in METRICS.items():
        lines += [f"## {title}", "", markdown_table(records, metric), ""]
    lines += ["## Speed and memory", "",
              "Fit rows/s = training rows / fit seconds (all epochs); score rows/s = test rows / "
              "scoring seconds; peak memory = peak resident size during fit and scoring minus the "
              "resident size before fit (one worker process per run sequence).", "",
              markdown_speed(records), ""]
    failures = failure_list(records)
    lines += ["## Failures", "", *(failures or ["None."]), ""]
    skipped = skipped_list(config)
    if skipped:
        lines += ["## Datasets skipped", "", "Checked before any run and not run (no detector's failure):",
                  "", *skipped, ""]
    contamination = contamination_notes(records)
    if contamination:
        lines += ["## Realised contamination", "", *contamination, ""]
    path.write_text("\n".join(lines))


def write_plots(records: list[dict[str, Any]], folder: Path) -> list[str]:
    """Rank plot, per-dataset AUC spread and fit time vs AUC as PNG files; returns their names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = summary_frame(records, "roc_auc")
    names = []
    order = ranks(table).mean().sort_values().index

    figure, axis = plt.subplots(figsize=(7, 0.4 * len(order) + 1.5))
    rank_table = ranks(table)[order]
    axis.boxplot([rank_table[c] for c in order], orientation="horizontal", tick_labels=list(order))
    axis.scatter(rank_table.mean(), range(1, len(order) + 1), color="crimson", zorder=3, label="mean rank")
    axis.invert_yaxis()
    axis.set_xlabel("rank per dataset (1 = best ROC-AUC)")
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(folder / "rank.png", dpi=110)
    plt.close(figure)
    names.append("rank.png")

    figure, axis = plt.subplots(figsize=(max(7, 0.35 * len(table) + 2), 4.5))
    for offset, detector in enumerate(order):
        axis.scatter(np.arange(len(table)) + (offset - len(order) / 2) * 0.6 / len(order),
                     table[detector], s=14, label=detector)
    axis.set_xticks(np.arange(len(table)), table.index, rotation=70, fontsize=7)
    axis.set_ylabel("ROC-AUC (mean over seeds)")
    axis.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(folder / "auc_per_dataset.png", dpi=110)
    plt.close(figure)
    names.append("auc_per_dataset.png")

    speed = speed_frame(records)
    if "fit seconds (total)" in speed:
        figure, axis = plt.subplots(figsize=(6, 4.5))
        for detector in order:
            axis.scatter(speed.loc[detector, "fit seconds (total)"], table[detector].mean(), s=40)
            axis.annotate(detector, (speed.loc[detector, "fit seconds (total)"], table[detector].mean()),
                          fontsize=7, xytext=(4, 2), textcoords="offset points")
        axis.set_xscale("log")
        axis.set_xlabel("total fit seconds over all runs (log)")
        axis.set_ylabel("mean ROC-AUC")
        figure.tight_layout()
        figure.savefig(folder / "fit_time_vs_auc.png", dpi=110)
        plt.close(figure)
        names.append("fit_time_vs_auc.png")
    return names


def write_report(records: list[dict[str, Any]], config: dict[str, Any], folder: str | Path,
                 plots: bool = True) -> dict[str, Path]:
    """Write ``results.json``, ``results.md`` and the plots into ``folder``.

    Returns
    -------
    dict of str to Path
        The files written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    env = environment()
    written = {"json": folder / "results.json", "markdown": folder / "results.md"}
    written["json"].write_text(json.dumps({"config": config, "environment": env, "runs": records},
                                          indent=1, default=_json_default))
    write_markdown(records, config, env, written["markdown"])
    if plots:
        for name in write_plots(records, folder):
            written[name] = folder / name
    return written


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "__dataclass_fields__"):
        return {key: getattr(value, key) for key in value.__dataclass_fields__}
    return str(value)

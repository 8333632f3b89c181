"""The per-task ROC-AUC markdown table shared by the image benchmark scripts."""

from __future__ import annotations

import pandas as pd


def markdown_auc_table(results: pd.DataFrame, task: str, title: str, command: str, settings: str,
                       anchors: dict[str, dict] | None = None) -> str:
    """Tasks as rows, methods as columns, a mean row, and the seconds per method.

    Parameters
    ----------
    results : DataFrame
        One row per run with columns ``task``, ``method``, ``roc_auc`` and ``seconds``.
    task : str
        Name of the task column (``"digit"``, ``"category"``).
    title, command, settings : str
        Heading, the command that produced the results, and a settings line.
    anchors : dict, optional
        Published figures per column name, keyed by task, added as columns.
    """
    table = results.pivot(index=task, columns="method", values="roc_auc")
    for name, values in (anchors or {}).items():
        table[name] = [values[key] for key in table.index]
    table.loc["mean"] = table.mean()
    seconds = results.groupby("method")["seconds"].sum()
    lines = [
        f"# {title}", "", f"Command: `{command}`", "", settings, "",
        f"| {task} | " + " | ".join(table.columns) + " |",
        "|---" * (len(table.columns) + 1) + "|",
    ]
    for key, row in table.iterrows():
        lines.append(f"| {key} | " + " | ".join(f"{value:.3f}" for value in row) + " |")
    lines += ["", f"Seconds (fit + scoring, summed over {task}s): "
              + ", ".join(f"{method} {value:.1f}" for method, value in seconds.items()), ""]
    return "\n".join(lines)

"""A self-contained HTML report of a fitted detector on a set of rows.

One page a person can read without MLflow: the data, the threshold in force
and how it was set, the score distribution (split by label when labels are
known), precision/recall/F1 and confusion counts at the threshold, ROC-AUC
and average precision, the most
anomalous rows with the features driving them and their p-values (tabular
models; an image model gets its per-pixel contribution map instead), the
per-feature contributions, the loss curves and any health warnings.

Figures are PNGs inlined as ``data:`` URIs and the styling is inline CSS:
the page needs no network and runs no script. ``anomvae report`` writes it
from the shell; :func:`anomvae.lifecycle.tracking.log_training` logs it with every
training run as ``report.html``.

>>> from anomvae.report import write_report
>>> write_report(detector, X_eval, y_eval, "report.html")      # doctest: +SKIP
"""

from __future__ import annotations

import base64
import datetime
import html
import io
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (average_precision_score, confusion_matrix, precision_recall_fscore_support,
                             roc_auc_score)
from sklearn.utils.validation import check_is_fitted

from .metrics import check_labels
from .thresholds import conformal_p_values
from .request_scoring import explained_positions

TOP_ROWS = 20
TOP_FEATURES_PER_ROW = 3
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
.warning { background: #fff3cd; border: 1px solid #e0b000; padding: 0.5em 1em; margin: 0.3em 0; }
.ok { color: #2a7a2a; } img { max-width: 100%; } .note { color: #666; font-size: 0.9em; }
"""


def build_report(detector, X, y=None, *, title: str | None = None, top_rows: int = TOP_ROWS) -> str:
    """The HTML report of ``detector`` on rows ``X``.

    Parameters
    ----------
    detector : BaseDeepDetector
        A fitted detector.
    X : array-like, DataFrame or image batch
        The rows to report on, usually held-out evaluation rows.
    y : array-like of {0, 1}, optional
        Labels of ``X`` (1 = anomaly): adds the split histogram,
        precision/recall/F1 and the confusion counts.
    title : str, optional
    top_rows : int
        How many of the highest-scoring rows to list (0 for none).

    Returns
    -------
    str
        A complete HTML document.

    Raises
    ------
    ValueError
        When ``y`` does not have one label per row, or holds values other
        than 0/1 (or booleans), or ``top_rows`` is negative.
    """
    check_is_fitted(detector)
    _check_top_rows(top_rows)
    return report_from_scores(detector, X, detector.anomaly_score(X), detector.feature_scores(X), y,
                              title=title, top_rows=top_rows)


def report_from_scores(detector, X, scores, contributions, y=None, *, title: str | None = None,
                       top_rows: int = TOP_ROWS) -> str:
    """:func:`build_report` from scores already computed, so that a caller scores ``X`` once.

    Parameters
    ----------
    detector : BaseDeepDetector
        The fitted detector that scored ``X``.
    X : array-like, DataFrame or image batch
        The rows reported on.
    scores : array-like of shape (n_rows,)
        ``detector.anomaly_score(X)`` (higher = more anomalous).
    contributions : array-like
        ``detector.feature_scores(X)``.
    y, title, top_rows
        As in :func:`build_report`.

    Returns
    -------
    str
        A complete HTML document.
    """
    from .lifecycle import plots  # matplotlib, loaded only to draw

    _check_top_rows(top_rows)
    scores = np.asarray(scores, dtype=np.float64)
    labels = None if y is None else check_labels(y)
    if labels is not None and len(labels) != len(scores):
        raise ValueError(f"y has {len(labels)} labels for {len(scores)} rows")
    threshold = float(-detector.offset_)
    flagged = scores > threshold
    contributions = np.asarray(contributions, dtype=np.float64)
    names = _feature_names(detector, contributions)
    title = title or f"{type(detector).__name__} anomaly report"
    sections = [
        f"<h1>{_text(title)}</h1>",
        f'<p class="note">anomvae, written {datetime.datetime.now().isoformat(timespec="seconds")}; '
        "score = anomaly score, higher = more anomalous (-score_samples).</p>",
        _data_section(detector, X, scores, flagged, labels),
        _threshold_section(detector, threshold),
        _health_section(detector),
        _figure_section("Score distribution", plots.score_histogram(scores, threshold, labels, rows="scored rows"),
                        "score-histogram"),
    ]
    if labels is not None:
        sections.append(_classification_section(labels, flagged, scores))
    if not detector.is_image_:
        sections.append(_top_rows_section(detector, X, scores, contributions, names, top_rows))
    sections.append(_figure_section("Per-feature contributions",
                                    plots.feature_contributions(contributions, names), "contributions"))
    sections.append(_figure_section("Loss curves", plots.loss_curves(detector.history_), "loss-curves"))
    body = "\n".join(sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_text(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def write_report(detector, X, y=None, path: str | Path = "report.html", **options) -> Path:
    """Write :func:`build_report` to ``path``; returns the path."""
    path = Path(path)
    if path.is_dir() or not path.parent.is_dir():
        raise ValueError(f"cannot write the report to {path}: "
                         + ("it is a folder" if path.is_dir() else f"no folder {path.parent}"))
    path.write_text(build_report(detector, X, y, **options), encoding="utf-8")
    return path


def _check_top_rows(top_rows) -> None:
    if isinstance(top_rows, bool) or not isinstance(top_rows, (int, np.integer)) or top_rows < 0:
        raise ValueError(f"top_rows must be a non-negative whole number, got {top_rows!r}")


def _text(value) -> str:
    return html.escape(str(value))


def _number(value: float) -> str:
    return f"{value:.4g}"


def _table(header: list[str], rows: list[list], id_: str | None = None, text_columns: int = 1) -> str:
    def cell(tag: str, index: int, value) -> str:
        kind = ' class="text"' if index < text_columns else ""
        return f"<{tag}{kind}>{_text(value)}</{tag}>"

    head = "".join(cell("th", index, name) for index, name in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", index, value) for index, value in enumerate(row)) + "</tr>"
                   for row in rows)
    identifier = f' id="{id_}"' if id_ else ""
    return f"<table{identifier}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure_section(heading: str, figure, id_: str) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return f'<h2>{_text(heading)}</h2><img id="{id_}" alt="{_text(heading)}" src="data:image/png;base64,{encoded}">'


def _feature_names(detector, contributions: np.ndarray) -> list[str]:
    if detector.is_image_:
        return []
    from .lifecycle.serving_inputs import input_columns

    names = list(input_columns(detector))
    return names if len(names) == contributions.shape[1] else [f"x{i}" for i in range(contributions.shape[1])]


def _data_section(detector, X, scores, flagged, labels) -> str:
    rows = [
        ["rows scored", len(scores)],
        ["features", detector.n_features_in_],
        ["input", "images " + "x".join(map(str, detector.input_shape_)) if detector.is_image_ else "table"],
        ["rows flagged", int(flagged.sum())],
        ["flag rate", _number(float(flagged.mean()))],
        ["score median / 99th percentile", f"{_number(float(np.median(scores)))} / "
                                           f"{_number(float(np.quantile(scores, 0.99)))}"],
        ["epochs trained (weights kept from)", f"{detector.history_['epoch'][-1]} (epoch {_kept_epoch(detector)})"],
    ]
    if labels is not None:
        rows.append(["labelled anomalies (y=1)", int(labels.sum())])
    if isinstance(X, pd.DataFrame):
        kinds = X.dtypes.astype(str).value_counts()
        rows.append(["column types", ", ".join(f"{count} {kind}" for kind, count in kinds.items())])
    return "<h2>Data</h2>" + _table(["", "value"], rows, "data-summary")


def _kept_epoch(detector) -> int | str:
    """The epoch, counted over every ``fit`` and ``partial_fit`` call, whose weights the model kept."""
    diagnostics = getattr(detector, "diagnostics_", {})
    if "kept_epoch" not in diagnostics or "epochs_run" not in diagnostics:
        return "?"
    return detector.history_["epoch"][-1] - diagnostics["epochs_run"] + diagnostics["kept_epoch"]


def _threshold_section(detector, threshold: float) -> str:
    rows = [["threshold (flag score >)", _number(threshold)]]
    strategy = getattr(detector, "threshold_", None)
    if strategy is not None:
        document = strategy.to_dict()
        interval = document.get("confidence_interval")
        rows += [
            ["how it was set", document.get("method", "?")],
            ["parameters", ", ".join(f"{key}={value}" for key, value in document.get("params", {}).items())],
            ["expected alarm rate", _number(float(document["expected_rate"]))],
            ["confidence interval", "n/a" if interval is None else
             f"{round(100 * document.get('confidence_level', 0.95))}% [{_number(interval[0])}, {_number(interval[1])}]"],
            ["reference scores", f"{document.get('reference', {}).get('n', '?')} ({document.get('source', '?')})"],
        ]
        description = f'<p class="note">{_text(strategy)}</p>'
    else:
        description = '<p class="note">from the contamination quantile of the training scores</p>'
    return "<h2>Threshold</h2>" + _table(["", "value"], rows, "threshold") + description


def _health_section(detector) -> str:
    threshold = getattr(detector, "threshold_", None)
    warnings = list(getattr(detector, "health_warnings_", [])) + list(getattr(threshold, "warnings", ()))
    if not warnings:
        return '<h2>Training health</h2><p class="ok" id="health">no warnings</p>'
    items = "".join(f'<div class="warning">{_text(message)}</div>' for message in warnings)
    return f'<h2>Training health</h2><div id="health">{items}</div>'


def _classification_section(labels: np.ndarray, flagged: np.ndarray, scores: np.ndarray) -> str:
    predicted = flagged.astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(labels, predicted, average="binary",
                                                               zero_division=np.nan)
    (true_negative, false_positive), (false_negative, true_positive) = confusion_matrix(
        labels, predicted, labels=[0, 1])
    if np.isnan(precision) or np.isnan(recall):
        f1 = np.nan
    undefined = {"precision at the threshold": "n/a (no row flagged)",
                 "recall at the threshold": "n/a (no labelled anomaly)",
                 "F1 at the threshold": "n/a (precision or recall undefined)"}
    ranking = [["ROC-AUC (threshold-free)", _number(roc_auc_score(labels, scores))],
               ["average precision (threshold-free)", _number(average_precision_score(labels, scores))]
               ] if len(np.unique(labels)) == 2 else []
    metrics = _table(["against the labels", "value"],
                     [[name, undefined[name] if np.isnan(value) else _number(value)]
                      for name, value in (("precision at the threshold", precision),
                                          ("recall at the threshold", recall), ("F1 at the threshold", f1))]
                     + ranking, "classification")
    confusion = _table(["", "flagged", "not flagged"],
                       [["anomaly (y=1)", true_positive, false_negative],
                        ["normal (y=0)", false_positive, true_negative]], "confusion")
    return "<h2>Against the labels</h2>" + metrics + confusion


def _top_rows_section(detector, X, scores, contributions, names, top_rows: int) -> str:
    order = np.argsort(-scores, kind="stable")[:top_rows]
    p_values = (conformal_p_values(detector.reference_scores_, scores[order]) if hasattr(detector, "reference_scores_")
                else np.full(len(order), np.nan))
    index = X.index[order] if isinstance(X, pd.DataFrame) else order
    candidates = explained_positions(names, detector)
    rows = []
    for rank, (row, label) in enumerate(zip(order, index), start=1):
        top = candidates[np.argsort(-contributions[row, candidates], kind="stable")[:TOP_FEATURES_PER_ROW]]
        drivers = ", ".join(f"{names[feature]} ({_number(contributions[row, feature])})" for feature in top)
        rows.append([label, rank, _number(scores[row]), _number(p_values[rank - 1]),
                     "yes" if scores[row] > -detector.offset_ else "no", drivers])
    header = ["row", "rank", "score", "p-value", "flagged", f"top {TOP_FEATURES_PER_ROW} features (contribution)"]
    table = _table(header, rows, "top-rows")
    return f"<h2>Most anomalous rows (top {len(order)})</h2>" + table

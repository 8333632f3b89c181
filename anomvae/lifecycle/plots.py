"""Figures logged with a training run: loss curves, score histogram, feature contributions.

Figures are built on :class:`matplotlib.figure.Figure` directly, without
pyplot, so logging touches no global plotting state and needs no display.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

TOP_FEATURES_SHOWN = 20


def loss_curves(history: dict[str, list[float]]) -> Figure:
    """Every per-epoch quantity of ``history_`` against the epoch, one panel each."""
    keys = [key for key in history if key != "epoch"]
    figure = Figure(figsize=(6, 2.2 * max(1, len(keys))), layout="constrained")
    axes = figure.subplots(max(1, len(keys)), 1, squeeze=False)[:, 0]
    for axis, key in zip(axes, keys):
        axis.plot(history["epoch"][: len(history[key])], history[key], marker=".")
        axis.set_ylabel(key)
        axis.grid(alpha=0.3)
    axes[-1].set_xlabel("epoch")
    return figure


def score_histogram(scores: np.ndarray, threshold: float, labels: np.ndarray | None = None,
                    rows: str = "training rows") -> Figure:
    """Histogram of anomaly scores with the threshold marked; split by label when given, else
    labelled ``rows`` (what was scored)."""
    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axis = figure.subplots()
    bins = np.histogram_bin_edges(scores, bins=50)
    if labels is None:
        axis.hist(scores, bins=bins, color="tab:blue", alpha=0.8, label=rows)
    else:
        labels = np.asarray(labels).astype(bool)
        axis.hist(scores[~labels], bins=bins, color="tab:blue", alpha=0.6, label="normal (y=0)")
        axis.hist(scores[labels], bins=bins, color="tab:red", alpha=0.6, label="anomaly (y=1)")
    axis.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4g}")
    axis.set_xlabel("anomaly score (higher = more anomalous)")
    axis.set_ylabel("rows")
    axis.set_yscale("log")
    axis.legend()
    return figure


def feature_contributions(contributions: np.ndarray, names: list[str]) -> Figure:
    """Mean contribution of the :data:`TOP_FEATURES_SHOWN` largest features, or a pixel map.

    Parameters
    ----------
    contributions : ndarray of shape (n, d) or (n, C, H, W)
        ``detector.feature_scores`` of the training rows.
    names : list of str
        Column names (tabular input).
    """
    mean = contributions.mean(axis=0)
    figure = Figure(figsize=(6, 4), layout="constrained")
    axis = figure.subplots()
    if mean.ndim == 3:
        image = axis.imshow(mean.mean(axis=0), cmap="magma")
        figure.colorbar(image, ax=axis, label="mean contribution")
        axis.set_title("mean per-pixel contribution to the anomaly score")
        axis.set_axis_off()
        return figure
    order = np.argsort(mean)[::-1][:TOP_FEATURES_SHOWN]
    axis.barh([names[i] for i in order][::-1], mean[order][::-1], color="tab:orange")
    axis.set_xlabel("mean contribution to the anomaly score")
    axis.set_title(f"top {len(order)} features")
    return figure

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
    low, high = axis_range(scores, threshold)
    shown = np.clip(scores, low, high)
    bins = np.histogram_bin_edges(shown, bins=50)
    if labels is None:
        axis.hist(shown, bins=bins, color="tab:blue", alpha=0.8, label=rows)
    else:
        labels = np.asarray(labels).astype(bool)
        for chosen, colour, name in ((~labels, "tab:blue", "normal (y=0)"), (labels, "tab:red", "anomaly (y=1)")):
            if chosen.any():
                axis.hist(shown[chosen], bins=bins, color=colour, alpha=0.6, label=name)
    axis.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.4g}")
    beyond = int(np.count_nonzero((scores < low) | (scores > high)))
    axis.set_xlabel("anomaly score (higher = more anomalous)"
                    + (f"; {beyond} row(s) beyond the axis, piled at its ends" if beyond else ""))
    axis.set_ylabel("rows")
    axis.set_yscale("log")
    axis.legend()
    return figure


def axis_range(scores: np.ndarray, threshold: float, reach: float = 3.0) -> tuple[float, float]:
    """Score axis of a histogram: the 1st-99th percentile span and ``reach`` times it on each side.

    One extreme score (1.6e12 beside a median of 6) would otherwise stretch
    50 bins over the whole range and put every other row, and the threshold,
    in the first. The threshold is always inside.
    """
    if not scores.size:
        return threshold - 1.0, threshold + 1.0
    first, last = np.quantile(scores, [0.01, 0.99])
    span = max(last - first, 1e-12)
    low = max(float(scores.min()), first - reach * span)
    high = min(float(scores.max()), last + reach * span)
    return min(low, threshold), max(high, threshold)


def short_names(names: list[str], width: int = 32) -> list[str]:
    """``names`` cut to ``width`` characters with an ellipsis in the middle, kept distinct.

    The start and the end of a long column name (``sensor_23_..._tag_23``) are
    usually what tells it apart; names still equal after cutting get their
    position appended.
    """
    half = (width - 1) // 2
    cut = [name if len(name) <= width else f"{name[:half]}\u2026{name[-half:]}" for name in names]
    repeated = {name for name in cut if cut.count(name) > 1}
    return [f"{name} [{index}]" if name in repeated else name for index, name in enumerate(cut)]


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
    axis.barh(short_names([str(names[i]) for i in order])[::-1], mean[order][::-1], color="tab:orange")
    axis.set_xlabel("mean contribution to the anomaly score")
    axis.set_title(f"top {len(order)} features")
    return figure

"""Which features drive a batch's alarms: per-feature scores of the flagged rows against the reference.

Used by :func:`anomvae.monitor`; the per-feature scores come from each
estimator's ``feature_scores`` and the baseline from its
``reference_feature_scores_``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .request_scoring import explained_positions

FEATURE_ROWS = 10_000
"""Most rows whose per-feature scores :func:`monitor` computes."""


@dataclass(frozen=True)
class FeatureContribution:
    """How much one feature drives the alarms of a batch.

    Features are ranked by ``excess``: how far their mean per-feature score
    over the flagged rows exceeds their mean over the reference rows
    (``reference_feature_scores_`` of the detector).

    Attributes
    ----------
    name : str
    mean_score : float
        Mean per-feature anomaly score over the flagged rows.
    reference_score : float
        Mean over the reference rows.
    excess : float
        ``mean_score - reference_score``.
    share : float
        Its share of the summed positive excess of all features.
    lift : float or None
        ``mean_score / reference_score``; None when ``reference_score`` is not positive.
    """

    name: str
    mean_score: float
    reference_score: float
    excess: float
    share: float
    lift: float | None


def _feature_names(detector, batch, n_columns: int) -> list[str]:
    if isinstance(batch, pd.DataFrame):
        return [str(column) for column in batch.columns]
    if getattr(detector, "is_image_", False):
        return [f"pixel_{index}" for index in range(n_columns)]
    names = getattr(detector, "feature_names_in_", None)
    if names is not None and len(names) == n_columns:
        return [str(name) for name in names]
    return [f"x{index}" for index in range(n_columns)]


def _select_rows(batch, mask: np.ndarray):
    """The rows of ``batch`` where ``mask`` is true, keeping the batch's type."""
    if isinstance(batch, pd.DataFrame):
        return batch.iloc[mask]
    if isinstance(batch, torch.Tensor):
        return batch[torch.from_numpy(mask)]
    return np.asarray(batch)[mask]


def top_features(detector, batch, flagged: np.ndarray, count: int) -> list[FeatureContribution]:
    """The ``count`` features whose mean score over the flagged rows most exceeds the reference's.

    Parameters
    ----------
    detector : fitted anomvae estimator
    batch : ndarray, DataFrame, Tensor or image batch
    flagged : ndarray of bool, shape (n_rows,)
    count : int

    Returns
    -------
    list of FeatureContribution
        Largest excess first.
    """
    # Per-feature scores of the flagged rows only (at most FEATURE_ROWS of them, or of
    # all rows when none is flagged): for image batches the full array can be large.
    chosen = flagged.copy() if flagged.any() else np.ones_like(flagged)
    chosen[np.flatnonzero(chosen)[FEATURE_ROWS:]] = False
    rows = _select_rows(batch, chosen)
    values = np.asarray(detector.feature_scores(rows), dtype=np.float64).reshape(int(chosen.sum()), -1)
    names = _feature_names(detector, batch, values.shape[1])
    mean_score = values.mean(axis=0)
    baseline = getattr(detector, "reference_feature_scores_", None)
    if baseline is None:  # a model saved before baselines were stored: rank by mean score
        baseline = np.zeros_like(mean_score)
    excess = mean_score - baseline
    candidates = explained_positions(names, detector)
    total = np.clip(excess[candidates], 0, None).sum()
    top = candidates[np.argsort(-excess[candidates], kind="stable")[:count]]
    return [
        FeatureContribution(
            name=names[index],
            mean_score=float(mean_score[index]),
            reference_score=float(baseline[index]),
            excess=float(excess[index]),
            share=float(max(excess[index], 0.0) / total) if total > 0 else 0.0,
            lift=float(mean_score[index] / baseline[index]) if baseline[index] > 0 else None,
        )
        for index in top
    ]

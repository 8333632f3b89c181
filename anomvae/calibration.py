"""The default threshold: a false-alarm rate that holds at every training size, clean or contaminated.

``contamination="auto"`` resolves to :class:`RobustFalsePositiveRate`. Two
problems of a plain split-conformal threshold (:class:`~anomvae.thresholds.FalsePositiveRate`
on the held-out rows) are addressed, each by measurement
(``benchmarks/threshold_defaults.py``, ``docs/thresholds.md``):

* **Too few held-out rows.** A 1% rate needs at least 99 calibration rows; the
  10% validation split of 600 rows has 60, and its largest score becomes the
  threshold. When the held-out split is smaller than
  :attr:`RobustFalsePositiveRate.min_held_out`, ``fit`` calibrates on
  cross-fitted out-of-fold scores of *every* training row instead: ``K``
  clones of the estimator are each trained on ``K - 1`` folds and score the
  fold they did not see (cross-conformal calibration, Vovk, "Cross-conformal
  predictors", Annals of Mathematics and Artificial Intelligence 2015). A
  fold model's scores are put on the final model's scale by the ratio of
  their medians over the rows each was fitted on (:func:`cross_fitted_scores`).
* **Anomalies among the calibration rows.** A quantile of contaminated scores
  sits inside the anomalies and flags almost none of them. Scores far
  outside the bulk, beyond :attr:`RobustFalsePositiveRate.fence` robust
  standard deviations on a log scale (median and MAD of the log scores,
  Hampel's identifier; Rousseeuw & Hubert, "Robust statistics for outlier
  detection", WIREs 2011), are set aside as estimated contamination before
  the conformal quantile is taken, interpolated between order statistics so
  that setting a few rows aside does not push it up to the largest kept one.
  The fence, 4.5, was chosen by measurement on development tables
  (:mod:`anomvae.thresholds.robust`): on clean out-of-fold scores it sets
  aside 0.06-1.8% of normal rows (3% on the one-hot campaign table), which is
  what it costs in false-alarm rate; it catches gross anomalies (e.g.
  amounts x20) and a third of planted rows at 5% contamination, not the ones
  inside the normal tail.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
from sklearn.base import clone

from .inference import map_batches
from .thresholds import Contamination, ThresholdStrategy
from .thresholds.robust import RobustFalsePositiveRate, contamination_mask, log_scale
from .thresholds.strategy import rate_interval

MIN_CROSS_FIT_ROWS = 5
"""Fewest rows for which ``fit`` cross-fits calibration scores (and at least one per fold).

From 20 rows down to 5 since the 10-19 row fits held out a single row, whose
score was the threshold (stated alarm rate 0.5, realised 0.57-0.71 on fresh
normal rows), and 5-9 row fits calibrated on in-sample scores (realised
0.24-0.41 against a stated 0.10-0.17); cross-fitted, the same fits realised
0.02-0.09 (Gaussian rows in 3 correlated features, 8 seeds per size)."""

def check_calibration_rows(n_rows: int, what: str, minimum: int = MIN_CROSS_FIT_ROWS) -> None:
    """Refuse a fit or update of fewer than ``minimum`` rows (:data:`MIN_CROSS_FIT_ROWS`).

    Its threshold would be a quantile of the scores of the rows the model
    had just trained on: measured, 2- to 4-row fits and updates stated alarm
    rates of 0.20-0.33 and flagged 2-99.6% of fresh normal rows (correlated
    Gaussian rows, AnomalyVAE, two seeds per size).

    Raises
    ------
    ValueError
        Naming ``what`` (``"fit"``, ``"partial_fit"``) and the row count.
    """
    if n_rows < minimum:
        raise ValueError(
            f"{what} needs at least {minimum} rows, got {n_rows}: the threshold is calibrated on "
            "scores of rows the model did not train on (out of fold), and fewer rows leave none; about 1,000 "
            "rows give a threshold that holds its rate"
        )


MIN_FOLD_TRAINING_ROWS = 2
"""Fewest rows a fold model must train on after its own held-out split (the latent kNN term's minimum)."""

MAX_CROSS_FIT_ROWS = 20_000
"""Most rows for which ``fit`` cross-fits; larger sets have a large enough held-out split."""


class ThresholdWarning(UserWarning):
    """A fitted threshold cannot honour its target false-alarm rate (too few calibration rows)."""


def cross_fitted_scores(estimator, encoded: np.ndarray, folds: int, seed: int,
                        final_scores: np.ndarray, start=None) -> np.ndarray:
    """Out-of-fold anomaly scores of every row of ``encoded``, on the final model's scale.

    Each of ``folds`` clones of ``estimator`` (same parameters, inputs already
    encoded so ``scaling="none"``, epochs scaled up so that it takes as many
    gradient steps as the final model) is trained on the other folds and scores
    its own fold. The clones' thresholds are never used (a cheap
    :class:`~anomvae.thresholds.Contamination` avoids recursion and bootstraps);
    their training-health warnings are the final model's business and are
    silenced.

    Every model scores on a scale of its own: a latent-distance term depends on
    the codes that model learned, a reconstruction error on how far it trained.
    Each clone's out-of-fold scores are therefore divided by the median of its
    own scores of the rows it was fitted on, and the pooled ratios multiplied
    by the median of ``final_scores``, the final model's scores of the rows it
    was fitted on (medians over distinct rows, :func:`distinct_median`): the
    folds are combined as in cross-conformal prediction (Vovk, "Cross-conformal
    predictors", Annals of Mathematics and Artificial Intelligence 2015), each
    fold ranked against its own model's scale, without keeping the clones for
    scoring. Scores that are not all positive (negative
    ELBOs) are pooled as they are.

    Parameters
    ----------
    estimator : BaseDeepDetector
        Unfitted or fitted; only its parameters are used.
    encoded : ndarray of shape (n, n_features)
        Encoded tabular rows, as ``fit`` trains on them.
    folds : int
        Number of folds, at least 2.
    seed : int
        Seeds the fold assignment and each clone.
    final_scores : ndarray of shape (n,)
        The final model's anomaly scores of ``encoded``.
    start : BaseDeepDetector, optional
        For an update by ``partial_fit``: the fitted estimator before it. Each
        fold model is then a copy of it updated on the other folds (the same
        number of gradient steps), as the final model was updated on all rows.

    Returns
    -------
    ndarray of shape (n,)
        Anomaly scores (higher = more anomalous).
    """
    rng = np.random.default_rng(seed)
    assignment = rng.permutation(len(encoded)) % folds
    scores = np.empty(len(encoded), dtype=np.float64)
    in_sample_medians = np.empty(folds, dtype=np.float64)
    for fold in range(folds):
        inside = assignment == fold
        fold_seed = int(rng.integers(np.iinfo(np.int32).max))
        model = (clone(estimator) if start is None else copy.deepcopy(start)).set_params(
            threshold=Contamination(0.1, n_bootstrap=0), verbose=False, random_state=fold_seed,
            # As many gradient steps as the final model takes on all rows: an under-trained
            # fold model scores high, and the threshold would then flag nothing.
            epochs=math.ceil(estimator.epochs * len(encoded) / int((~inside).sum())),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if start is None:
                model.set_params(scaling="none")._fit_fold(encoded[~inside])
            else:
                model._fold_update(encoded[~inside], fold_seed)
        scores[inside] = _encoded_scores(model, encoded[inside])
        in_sample_medians[fold] = distinct_median(_encoded_scores(model, encoded[~inside]), encoded[~inside])
    final_median = distinct_median(final_scores, encoded)
    if final_median > 0 and np.all(in_sample_medians > 0):
        scores *= final_median / in_sample_medians[assignment]
    return scores


def distinct_median(scores: np.ndarray, rows: np.ndarray) -> float:
    """Median of ``scores`` with each distinct row of ``rows`` counted once.

    A row repeated over half the table would otherwise *be* the median, and a
    model's scale would then be the score of that one row: near the floor of
    every term for a row the model reconstructs exactly, so that the other
    rows' out-of-fold scores could not be put on the final model's scale (a
    review found thresholds flagging every distinct row, or none, at 90%
    duplicates). Without repeated rows this is the plain median.
    """
    _, first = np.unique(rows, axis=0, return_index=True)
    return float(np.median(scores[first]))


def _encoded_scores(model, encoded: np.ndarray) -> np.ndarray:
    """``model``'s anomaly scores of rows already encoded (by the fold models' common encoder)."""
    return map_batches(model.scorer_.anomaly_score, encoded, model.scorer_.device, dtype=model.scorer_.dtype)


def should_cross_fit(strategy: ThresholdStrategy, n_rows: int, n_held_out: int, image: bool,
                     validation_fraction: float = 0.0) -> bool:
    """Whether ``fit`` calibrates ``strategy`` on cross-fitted scores rather than the held-out ones.

    Never when a fold model would be left fewer than :data:`MIN_FOLD_TRAINING_ROWS` rows to train on
    once it holds out its own ``validation_fraction`` (a 5-row fit holding out 75%): the final model
    trains, and calibrates on its held-out rows.
    """
    folds = getattr(strategy, "folds", 0)
    if not (isinstance(strategy, RobustFalsePositiveRate) and folds >= 2 and not image
            and n_held_out < strategy.min_held_out and max(MIN_CROSS_FIT_ROWS, folds) <= n_rows <= MAX_CROSS_FIT_ROWS):
        return False
    fold_rows = n_rows - math.ceil(n_rows / folds)
    return fold_rows - int(fold_rows * validation_fraction) >= MIN_FOLD_TRAINING_ROWS


__all__ = [
    "RobustFalsePositiveRate",
    "ThresholdWarning",
    "check_calibration_rows",
    "contamination_mask",
    "cross_fitted_scores",
    "log_scale",
    "rate_interval",
    "should_cross_fit",
]

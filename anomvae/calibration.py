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
  fold model sees fewer rows than the final one, so its scores lean high and
  the threshold errs towards fewer alarms.
* **Anomalies among the calibration rows.** A quantile of contaminated scores
  sits inside the anomalies and flags almost none of them. Scores far
  outside the bulk, beyond :attr:`RobustFalsePositiveRate.fence` robust
  standard deviations on a log scale (median and MAD of the log scores,
  Hampel's identifier; Rousseeuw & Hubert, "Robust statistics for outlier
  detection", WIREs 2011), are set aside as estimated contamination before
  the conformal quantile is taken. On clean held-out scores of ten shared
  datasets at most 0.5% of normal rows lay beyond 5 such deviations, so the
  fence costs at most that much false-alarm rate; it only catches gross
  anomalies (e.g. amounts x20), not ones just beyond the normal tail.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .thresholds import Contamination, ThresholdStrategy

MIN_CROSS_FIT_ROWS = 20
"""Fewest rows for which ``fit`` cross-fits calibration scores (each fold needs a few rows)."""

MAX_CROSS_FIT_ROWS = 20_000
"""Most rows for which ``fit`` cross-fits; larger sets have a large enough held-out split."""


class ThresholdWarning(UserWarning):
    """A fitted threshold cannot honour its target false-alarm rate (too few calibration rows)."""


def log_scale(scores: np.ndarray) -> np.ndarray:
    """Scores on a log scale: ``log(s)`` when all are positive, else shifted to be.

    The shift puts the smallest score as far above zero as the median is above
    the smallest, so the transform is invariant to adding a constant to every
    score (negative ELBOs can be negative).
    """
    low = float(scores.min())
    if low > 0:
        return np.log(scores)
    spread = float(np.median(scores)) - low
    return np.log(scores - low + (spread if spread > 0 else 1.0))


def contamination_mask(scores: np.ndarray, fence: float) -> np.ndarray:
    """True for scores beyond ``fence`` robust standard deviations above the median, on a log scale.

    Parameters
    ----------
    scores : ndarray of shape (n,)
        Anomaly scores, higher = more anomalous.
    fence : float
        Robust z-score (``(t - median) / (1.4826 MAD)`` of the log scores ``t``)
        beyond which a score counts as contamination.

    Returns
    -------
    ndarray of bool, shape (n,)
        All False when the scores have no spread.
    """
    logged = log_scale(scores)
    centre = np.median(logged)
    spread = 1.4826 * np.median(np.abs(logged - centre))
    if not spread > 0:
        return np.zeros(scores.shape, dtype=bool)
    return (logged - centre) / spread > fence


def rate_interval(expected_rate: float, n: int, confidence: float) -> tuple[float, float]:
    """Central ``confidence`` interval of the realised false-alarm rate of a threshold.

    A threshold set at the ``k``-th smallest of ``n`` calibration scores lets a
    fraction of new normal rows through that is Beta(n + 1 - k, k) distributed
    over calibration sets (Vovk, "Conditional validity of inductive conformal
    predictors", ACML 2012); ``expected_rate = (n + 1 - k) / (n + 1)`` is its
    mean. For other strategies the same Beta law with that mean is an
    approximation.
    """
    from scipy.stats import beta

    alarms = max(expected_rate * (n + 1), 1e-9)
    tail = (1.0 - confidence) / 2.0
    low, high = beta.ppf([tail, 1.0 - tail], alarms, max(n + 1 - alarms, 1e-9))
    return float(low), float(high)


@dataclass(frozen=True, repr=False)
class RobustFalsePositiveRate(ThresholdStrategy):
    """Target false-alarm rate, calibrated on clean-looking held-out or out-of-fold scores.

    The default threshold of every anomvae estimator (``contamination="auto"``).
    Scores beyond the contamination fence (:func:`contamination_mask`) are set
    aside; the threshold is the split-conformal order statistic of the rest,
    ``k = ceil((n' + 1)(1 - rate))`` of the ``n'`` kept scores, as in
    :class:`~anomvae.thresholds.FalsePositiveRate`. In ``fit`` the scores are
    those of the held-out rows, or cross-fitted out-of-fold scores of all rows
    when fewer than :attr:`min_held_out` rows are held out (see the module
    docstring).

    Parameters
    ----------
    rate : float in (0, 1), default=0.01
        Target false-alarm rate on normal rows.
    fence : float, default=5.0
        Robust z-score on the log scale beyond which a calibration score counts
        as contamination; ``inf`` keeps every score.
    folds : int, default=5
        Folds of the cross-fitting; 0 or 1 never cross-fits (held-out rows only).
    """

    rate: float = 0.01
    fence: float = 5.0
    folds: int = 5
    method: ClassVar[str] = "robust_false_positive_rate"
    needs_clean_reference: ClassVar[bool] = True

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.rate, bool) or not isinstance(self.rate, (int, float, np.floating)):
            raise TypeError(f"rate must be a float, got {type(self.rate).__name__}")
        if not 0 < self.rate < 1:
            raise ValueError(f"rate must be in (0, 1), got {self.rate!r}")
        if isinstance(self.fence, bool) or not isinstance(self.fence, (int, float)) or not self.fence > 0:
            raise ValueError(f"fence must be a positive number, got {self.fence!r}")
        if isinstance(self.folds, bool) or not isinstance(self.folds, (int, np.integer)) or self.folds < 0:
            raise ValueError(f"folds must be a non-negative int, got {self.folds!r}")

    @property
    def min_held_out(self) -> int:
        """Held-out rows below which ``fit`` cross-fits: twice the fewest the rate needs."""
        return math.ceil(2.0 / self.rate)

    def _kept(self, scores: np.ndarray) -> np.ndarray:
        kept = scores[~contamination_mask(scores, self.fence)] if math.isfinite(self.fence) else scores
        return kept if kept.size else scores

    def _rank(self, n: int) -> int:
        return min(math.ceil((n + 1) * (1.0 - self.rate) - 1e-9), n)

    def threshold_value(self, scores):
        kept = self._kept(scores)
        index = self._rank(kept.size) - 1
        return float(np.partition(kept, index)[index])

    def expected_rate(self, scores, value):
        n = self._kept(scores).size
        return (n + 1 - self._rank(n)) / (n + 1)

    def effective_size(self, scores: np.ndarray) -> int:
        return int(self._kept(scores).size)

    def estimated_contamination(self, scores: np.ndarray) -> float:
        return 1.0 - self._kept(scores).size / scores.size


def cross_fitted_scores(estimator, encoded: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold anomaly scores of every row of ``encoded``.

    Each of ``folds`` clones of ``estimator`` (same parameters, inputs already
    encoded so ``scaling="none"``, epochs scaled up so that it takes as many
    gradient steps as the final model) is trained on the other folds and scores
    its own fold. The clones' thresholds are never used (a cheap
    :class:`~anomvae.thresholds.Contamination` avoids recursion and bootstraps);
    their training-health warnings are the final model's business and are
    silenced.

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

    Returns
    -------
    ndarray of shape (n,)
        Anomaly scores (higher = more anomalous).
    """
    from sklearn.base import clone

    rng = np.random.default_rng(seed)
    assignment = rng.permutation(len(encoded)) % folds
    scores = np.empty(len(encoded), dtype=np.float64)
    for fold in range(folds):
        inside = assignment == fold
        model = clone(estimator).set_params(
            threshold=Contamination(0.1, n_bootstrap=0), scaling="none", verbose=False,
            random_state=int(rng.integers(np.iinfo(np.int32).max)),
            # As many gradient steps as the final model takes on all rows: an under-trained
            # fold model scores high, and the threshold would then flag nothing.
            epochs=math.ceil(estimator.epochs * len(encoded) / int((~inside).sum())),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(encoded[~inside])
        scores[inside] = -model.score_samples(encoded[inside])
    return scores


def should_cross_fit(strategy: ThresholdStrategy, n_rows: int, n_held_out: int, image: bool) -> bool:
    """Whether ``fit`` calibrates ``strategy`` on cross-fitted scores rather than the held-out ones."""
    folds = getattr(strategy, "folds", 0)
    return (
        isinstance(strategy, RobustFalsePositiveRate) and folds >= 2 and not image
        and n_held_out < strategy.min_held_out and MIN_CROSS_FIT_ROWS <= n_rows <= MAX_CROSS_FIT_ROWS
    )


__all__ = [
    "RobustFalsePositiveRate",
    "ThresholdWarning",
    "contamination_mask",
    "cross_fitted_scores",
    "log_scale",
    "rate_interval",
    "should_cross_fit",
]

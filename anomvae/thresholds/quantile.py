"""Quantile thresholds: scikit-learn's contamination and the conformal false-positive rate.

Both are order statistics of the calibration scores, whose bootstrap
distribution is known in closed form (:class:`_OrderStatistic`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.stats import binom

from .robust import RobustFalsePositiveRate
from .strategy import ThresholdStrategy, _check_rate

AUTO_FALSE_ALARM_RATE = 0.01
"""With ``contamination="auto"`` the threshold targets this fraction of normal
rows as false alarms (:class:`anomvae.calibration.RobustFalsePositiveRate`)."""


class _OrderStatistic:
    """Mixin for strategies whose value is the ``rank(n)``-th smallest score.

    The bootstrap distribution of an order statistic is known in closed form:
    the ``k``-th smallest of ``n`` rows resampled with replacement is at most
    the ``j``-th smallest original score exactly when at least ``k`` draws fall
    at or below it, a Binomial(n, j/n) event. Bootstrap values are drawn from
    that distribution by inverting it, which costs one sort instead of
    ``n_bootstrap`` resamples of ``n`` rows (seconds for a million rows).
    """

    def _rank(self, n: int) -> int:
        raise NotImplementedError

    def _bootstrap_values(self, scores, rng):
        ordered = np.sort(scores)
        n, rank = ordered.size, self._rank(ordered.size)
        reach = int(10 * math.sqrt(n)) + 10  # the binomial has no mass beyond 10 standard deviations
        candidates = np.arange(max(1, rank - reach), min(n, rank + reach) + 1)
        below = binom.sf(rank - 1, n, candidates / n)  # P(k-th resampled score <= candidate-th score)
        chosen = np.minimum(np.searchsorted(below, rng.random(self.n_bootstrap)), candidates.size - 1)
        return ordered[candidates[chosen] - 1]


@dataclass(frozen=True, repr=False)
class Contamination(_OrderStatistic, ThresholdStrategy):
    """Flag a fixed share of the calibration rows: scikit-learn's ``contamination``.

    The threshold is the ``1 - fraction`` quantile of the scores, computed as
    :class:`sklearn.ensemble.IsolationForest` computes ``offset_``. In ``fit``
    it is calibrated on all training rows, which are assumed to hold that
    share of outliers; ``fraction`` is then the share of rows like the
    training rows that are flagged, anomalies included. The model fits its
    own training rows better than new ones, so on clean data new normal rows
    are flagged more often than ``fraction``: at 0.05, 0.091, 0.068 and 0.054
    after fits of 100, 500 and 2,000 Gaussian rows (AnomalyVAE, 3 seeds
    each). For a false-alarm rate on normal rows, use
    :class:`FalsePositiveRate` or the default.

    Parameters
    ----------
    fraction : float in (0, 0.5]
        Expected share of outliers.
    """

    fraction: float = 0.1
    method: ClassVar[str] = "contamination"

    def __post_init__(self):
        super().__post_init__()
        _check_rate("fraction", self.fraction, 0.0, 0.5, high_closed=True)

    def threshold_value(self, scores):
        return -float(np.percentile(-scores, 100.0 * self.fraction))

    def _rank(self, n):
        # The order statistic nearest to the interpolated quantile, for the bootstrap.
        return round((1.0 - self.fraction) * (n - 1)) + 1

    def expected_rate(self, scores, value):
        return float(self.fraction)


@dataclass(frozen=True, repr=False)
class FalsePositiveRate(_OrderStatistic, ThresholdStrategy):
    """Bound the false-alarm rate on normal data, by split conformal calibration.

    With ``n`` clean reference scores, the threshold is the ``k``-th smallest,
    ``k = ceil((n + 1)(1 - rate))``, so a new normal row, exchangeable with the
    reference rows, exceeds it with probability ``(n + 1 - k) / (n + 1) <= rate``
    (Vovk, Gammerman & Shafer, *Algorithmic Learning in a Random World*, 2005;
    Bates et al., "Testing for outliers with conformal p-values", Annals of
    Statistics 2023). Flagging then agrees with :meth:`p_values` ``<= rate``.
    When ``n < 1 / rate - 1`` the bound cannot be met; the threshold is the
    largest score and :attr:`FittedThreshold.expected_rate` says ``1 / (n + 1)``.

    Parameters
    ----------
    rate : float in (0, 1)
        Target false-positive rate.
    """

    rate: float = 0.01
    method: ClassVar[str] = "false_positive_rate"
    needs_clean_reference: ClassVar[bool] = True

    def __post_init__(self):
        super().__post_init__()
        _check_rate("rate", self.rate, 0.0, 1.0, high_closed=False)

    def _rank(self, n: int) -> int:
        # The small tolerance keeps e.g. (9 + 1) * (1 - 0.1) from rounding up to 10.
        return min(math.ceil((n + 1) * (1.0 - self.rate) - 1e-9), n)

    def threshold_value(self, scores):
        index = self._rank(scores.size) - 1
        return float(np.partition(scores, index)[index])

    def expected_rate(self, scores, value):
        return (scores.size + 1 - self._rank(scores.size)) / (scores.size + 1)


def resolve(threshold: ThresholdStrategy | None, contamination) -> ThresholdStrategy:
    """The strategy an estimator uses: ``threshold``, else one from ``contamination``.

    ``contamination="auto"`` is :class:`~anomvae.thresholds.robust.RobustFalsePositiveRate`
    at :data:`AUTO_FALSE_ALARM_RATE`; a float is :class:`Contamination`.
    """
    if threshold is not None:
        return threshold
    if contamination == "auto":
        return RobustFalsePositiveRate(AUTO_FALSE_ALARM_RATE)
    return Contamination(float(contamination))


def conformal_p_values(reference_scores: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``(1 + #{reference >= s}) / (n + 1)`` for each anomaly score ``s``.

    ``reference_scores`` must be sorted ascending. Under exchangeability of a
    normal row with the reference rows, ``P(p <= alpha) <= alpha``.
    """
    n = reference_scores.size
    at_or_above = n - np.searchsorted(reference_scores, scores, side="left")
    return (1.0 + at_or_above) / (n + 1.0)

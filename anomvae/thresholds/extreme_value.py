"""Extreme-value thresholds for very low false-alarm rates (peaks over threshold).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from scipy.stats import genpareto

from .strategy import ThresholdStrategy, _check_rate

@dataclass(frozen=True, repr=False)
class PeaksOverThreshold(ThresholdStrategy):
    """Extreme-value threshold for very low false-alarm rates.

    Scores above a high empirical quantile ``u`` (the ``1 - tail_fraction``
    quantile) are modelled by a generalised Pareto distribution
    (Pickands–Balkema–de Haan theorem), fitted by maximum likelihood with
    :data:`scipy.stats.genpareto`; the threshold is where its tail
    probability reaches ``rate``, which can lie beyond the largest reference
    score (Siffer et al., "Anomaly Detection in Streams with Extreme Value
    Theory", KDD 2017). Calibrated on clean held-out rows, like
    :class:`FalsePositiveRate`.

    Parameters
    ----------
    rate : float
        Target false-positive rate, below ``tail_fraction``.
    tail_fraction : float, default=0.1
        Share of the reference scores treated as the tail.
    min_exceedances : int, default=20
        Fewest tail scores the fit accepts.
    n_bootstrap : int, default=100
        Fewer than the quantile strategies: each resample is a likelihood fit.
    """

    rate: float = 0.001
    tail_fraction: float = 0.1
    min_exceedances: int = 20
    n_bootstrap: int = field(default=100, kw_only=True)
    method: ClassVar[str] = "peaks_over_threshold"
    needs_clean_reference: ClassVar[bool] = True

    def __post_init__(self):
        super().__post_init__()
        _check_rate("tail_fraction", self.tail_fraction, 0.0, 0.5, high_closed=True)
        _check_rate("rate", self.rate, 0.0, self.tail_fraction, high_closed=False)
        if isinstance(self.min_exceedances, bool) or not isinstance(self.min_exceedances, int):
            raise TypeError(f"min_exceedances must be an int, got {type(self.min_exceedances).__name__}")
        if self.min_exceedances < 3:
            raise ValueError(f"min_exceedances must be >= 3, got {self.min_exceedances}")

    def check_reference_size(self, n):
        needed = math.ceil(self.min_exceedances / self.tail_fraction)
        if n < needed:
            raise ValueError(
                f"PeaksOverThreshold(tail_fraction={self.tail_fraction}, min_exceedances="
                f"{self.min_exceedances}) needs at least {needed} calibration rows, got {n}: "
                "calibrate on more rows (in fit: raise validation_fraction), or lower min_exceedances"
            )

    def _excesses(self, scores: np.ndarray) -> tuple[float, np.ndarray]:
        """The tail quantile of ``scores`` and the excesses of the scores strictly above it."""
        initial = float(np.quantile(scores, 1.0 - self.tail_fraction))
        return initial, scores[scores > initial] - initial

    def threshold_value(self, scores):
        initial, excesses = self._excesses(scores)
        if excesses.size < self.min_exceedances:
            raise ValueError(
                f"peaks over threshold found {excesses.size} reference scores above the "
                f"{1 - self.tail_fraction:.3g} quantile, fewer than min_exceedances="
                f"{self.min_exceedances}; supply more reference rows or raise tail_fraction"
            )
        if self.rate * scores.size >= excesses.size:
            raise ValueError(
                f"peaks over threshold: rate={self.rate:g} asks for {self.rate * scores.size:g} of the "
                f"{scores.size} reference scores, but only {excesses.size} lie strictly above the "
                f"{1 - self.tail_fraction:.3g} quantile (tied scores); raise tail_fraction or lower the rate"
            )
        return self._tail_threshold(initial, excesses, scores.size)

    def _tail_threshold(self, initial: float, excesses: np.ndarray, n: int) -> float:
        """The score exceeded by ``rate`` of ``n`` rows under the generalised Pareto fit of the excesses."""
        shape, _, scale = genpareto.fit(excesses, floc=0.0)
        tail_probability = self.rate * n / excesses.size
        return initial + float(genpareto.isf(tail_probability, shape, loc=0.0, scale=scale))

    def expected_rate(self, scores, value):
        return float(self.rate)

    def _bootstrap_values(self, scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Thresholds of the resamples that keep ``min_exceedances`` scores strictly above their quantile.

        Resampling with replacement repeats scores, so a reference just large
        enough (``min_exceedances / tail_fraction`` rows) often leaves fewer
        scores strictly above the resample's quantile; those resamples are
        skipped rather than failing the fit. The survivors are a selected
        set, so when fewer than half survive no interval is given (an empty
        result) rather than a biased one.
        """
        values = []
        for _ in range(self.n_bootstrap):
            resample = scores[rng.integers(0, scores.size, scores.size)]
            initial, excesses = self._excesses(resample)
            if excesses.size >= self.min_exceedances and self.rate * resample.size < excesses.size:
                values.append(self._tail_threshold(initial, excesses, resample.size))
        return np.array(values) if 2 * len(values) >= self.n_bootstrap else np.array([])

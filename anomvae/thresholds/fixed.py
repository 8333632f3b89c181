"""A threshold chosen by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .strategy import ThresholdStrategy

@dataclass(frozen=True, repr=False)
class FixedScore(ThresholdStrategy):
    """A threshold chosen by hand: flag rows whose anomaly score exceeds ``value``.

    This is how a registered model's threshold is moved without retraining
    (:func:`anomvae.tracking.promote`). Calibration only estimates
    the share of normal rows above ``value`` from the clean reference scores
    (in ``fit``, the held-out rows): with ``m`` of ``n`` above it, the
    expected alarm rate is ``(m + 1) / (n + 2)``, the mean of the rate's
    Beta(m + 1, n - m + 1) posterior (Laplace's rule of succession). Never 0:
    a value above every reference score still lets some new normal rows
    through, about ``1 / (n + 2)`` of them.

    Parameters
    ----------
    value : float
        Anomaly-score threshold (higher = more anomalous).
    """

    value: float = 0.0
    n_bootstrap: int = field(default=0, kw_only=True)
    method: ClassVar[str] = "fixed_score"
    needs_clean_reference: ClassVar[bool] = True

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float, np.number)):
            raise TypeError(f"value must be a float, got {type(self.value).__name__}")
        if not math.isfinite(self.value):
            raise ValueError(f"value must be a finite number, got {self.value!r}")

    def threshold_value(self, scores):
        return float(self.value)

    def expected_rate(self, scores, value):
        return float((np.count_nonzero(scores > value) + 1) / (scores.size + 2))

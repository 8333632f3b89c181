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
    (:func:`anomvae.tracking.promote`). Calibration only measures the share of
    the clean reference scores (in ``fit``, the held-out rows) above ``value``,
    reported as the expected alarm rate.

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
        return float(np.mean(scores > value))

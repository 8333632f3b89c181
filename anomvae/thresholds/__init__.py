"""Thresholds: how a detector turns anomaly scores into alarms.

A strategy (:class:`Contamination`, :class:`FalsePositiveRate`,
:class:`PeaksOverThreshold`, :class:`PyThresh`, :class:`FixedScore`) is
calibrated on anomaly scores into a :class:`FittedThreshold`. The interface
is in :mod:`~anomvae.thresholds.strategy`, each family in a module of its own;
``docs/thresholds.md`` says how to choose one.

>>> import numpy as np
>>> from anomvae.thresholds import FalsePositiveRate
>>> scores = np.random.default_rng(0).exponential(size=999)
>>> fitted = FalsePositiveRate(0.01).calibrate(scores, random_state=0)
>>> fitted.expected_rate
0.01
"""

from .extreme_value import PeaksOverThreshold
from .fixed import FixedScore
from .pythresh import PYTHRESH_METHODS, PyThresh
from .robust import RobustFalsePositiveRate
from .quantile import AUTO_FALSE_ALARM_RATE, Contamination, FalsePositiveRate, conformal_p_values, resolve
from .strategy import FittedThreshold, ReferenceSummary, ThresholdStrategy, strategy_from_dict

__all__ = [
    "AUTO_FALSE_ALARM_RATE",
    "PYTHRESH_METHODS",
    "Contamination",
    "FalsePositiveRate",
    "FixedScore",
    "FittedThreshold",
    "PeaksOverThreshold",
    "PyThresh",
    "ReferenceSummary",
    "RobustFalsePositiveRate",
    "ThresholdStrategy",
    "conformal_p_values",
    "resolve",
    "strategy_from_dict",
]

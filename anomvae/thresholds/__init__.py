"""Thresholds: how a detector turns anomaly scores into alarms.

See :mod:`anomvae.thresholds.strategy` for the strategies and
``docs/thresholds.md`` for how to choose one.
"""

from .strategy import (
    PYTHRESH_METHODS,
    Contamination,
    FalsePositiveRate,
    FittedThreshold,
    FixedScore,
    PeaksOverThreshold,
    PyThresh,
    ReferenceSummary,
    ThresholdStrategy,
    conformal_p_values,
    resolve,
    strategy_from_dict,
)

__all__ = [
    "PYTHRESH_METHODS",
    "Contamination",
    "FalsePositiveRate",
    "FixedScore",
    "FittedThreshold",
    "PeaksOverThreshold",
    "PyThresh",
    "ReferenceSummary",
    "ThresholdStrategy",
    "conformal_p_values",
    "resolve",
    "strategy_from_dict",
]

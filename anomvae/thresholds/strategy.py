"""The threshold strategy interface and the calibrated threshold.

A *strategy* is a small frozen dataclass: immutable configuration, safe to
pass as the ``threshold`` parameter of any anomvae estimator and to
:func:`sklearn.base.clone`. Calibrating it on a set of anomaly scores (higher
= more anomalous) gives a :class:`FittedThreshold`: the value, the rate of
alarms it is expected to raise on normal data, a summary of the scores it was
calibrated on and a bootstrap confidence interval. Rows whose anomaly score is
strictly above the value are flagged, so on the ``score_samples`` scale
``offset_ = -value``. The strategies themselves live in one module per family
(:mod:`.quantile`, :mod:`.fixed`, :mod:`.extreme_value`, :mod:`.pythresh`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
from scipy.stats import beta

from ..python_values import python_scalars

REFERENCE_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999)
"""Levels of the quantiles kept in :class:`ReferenceSummary`."""

_STRATEGIES: dict[str, type[ThresholdStrategy]] = {}


def _as_scores(scores) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("calibrating a threshold needs at least one score, got none")
    if not np.all(np.isfinite(values)):
        raise ValueError("calibration scores contain NaN or infinite values")
    return values


def _check_rate(name: str, value, low: float, high: float, high_closed: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    inside = low < value <= high if high_closed else low < value < high
    if not inside:
        bracket = "]" if high_closed else ")"
        raise ValueError(f"{name} must be in ({low}, {high}{bracket}, got {value!r}")


@dataclass(frozen=True)
class ReferenceSummary:
    """Size and shape of the scores a threshold was calibrated on.

    Attributes
    ----------
    n : int
    mean, std, min, max : float
    quantiles : dict of str to float
        Keyed by level, e.g. ``"0.99"``, for the levels in :data:`REFERENCE_QUANTILES`.
    """

    n: int
    mean: float
    std: float
    min: float
    max: float
    quantiles: Mapping[str, float]

    @classmethod
    def of(cls, scores: np.ndarray) -> ReferenceSummary:
        """Summary of a one-dimensional array of scores."""
        levels = np.quantile(scores, REFERENCE_QUANTILES)
        return cls(
            n=int(scores.size),
            mean=float(scores.mean()),
            std=float(scores.std()),
            min=float(scores.min()),
            max=float(scores.max()),
            quantiles={str(level): float(value) for level, value in zip(REFERENCE_QUANTILES, levels)},
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable fields; ``ReferenceSummary(**d)`` rebuilds it."""
        return {**asdict(self), "quantiles": dict(self.quantiles)}


@dataclass(frozen=True, repr=False)
class ThresholdStrategy:
    """Base of the threshold strategies; not used directly.

    Parameters
    ----------
    confidence : float, default=0.95
        Level of the bootstrap confidence interval of the threshold value.
    n_bootstrap : int, default=200
        Bootstrap resamples of the calibration scores; 0 skips the interval.
        For the quantile strategies (:class:`Contamination`,
        :class:`FalsePositiveRate`) the resampled values are drawn from their
        exact bootstrap distribution: 0.2 s for a million scores, against 10 s
        by resampling.
    """

    confidence: float = field(default=0.95, kw_only=True)
    n_bootstrap: int = field(default=200, kw_only=True)

    method: ClassVar[str] = ""
    needs_clean_reference: ClassVar[bool] = False
    """True when the strategy must be calibrated on normal rows the model did
    not train on (``fit`` then uses its held-out validation rows)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.method:
            _STRATEGIES[cls.method] = cls

    def __post_init__(self):
        for parameter in fields(self):  # NumPy scalars as Python numbers: to_dict() is JSON, as saved files need
            object.__setattr__(self, parameter.name, python_scalars(getattr(self, parameter.name)))
        _check_rate("confidence", self.confidence, 0.0, 1.0, high_closed=False)
        if isinstance(self.n_bootstrap, bool) or not isinstance(self.n_bootstrap, (int, np.integer)):
            raise TypeError(f"n_bootstrap must be an int, got {type(self.n_bootstrap).__name__}")
        if self.n_bootstrap < 0:
            raise ValueError(f"n_bootstrap must be >= 0, got {self.n_bootstrap}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._describe_params()})"

    def _describe_params(self) -> str:
        """Own parameters first; the shared ones only where they differ from their default."""
        shown = [f for f in fields(self) if not f.kw_only] + [
            f for f in fields(self) if f.kw_only and getattr(self, f.name) != f.default
        ]
        return ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in shown)

    def check_reference_size(self, n: int) -> None:
        """Raise a ValueError when ``n`` calibration scores cannot be enough (checked before training)."""

    def threshold_value(self, scores: np.ndarray) -> float:
        """The threshold for ``scores``; rows scoring strictly above it are flagged."""
        raise NotImplementedError

    def expected_rate(self, scores: np.ndarray, value: float) -> float:
        """Share of normal rows expected above ``value``."""
        raise NotImplementedError

    def calibrate(self, scores, *, source: str = "supplied", random_state=None) -> FittedThreshold:
        """Fit the threshold to anomaly ``scores`` (higher = more anomalous).

        Parameters
        ----------
        scores : array-like of shape (n,)
        source : {"held-out", "training", "out-of-fold", "supplied"}, default="supplied"
            Where the scores come from, recorded in the result.
        random_state : int, Generator or None
            Seeds the bootstrap.

        Returns
        -------
        FittedThreshold
        """
        scores = _as_scores(scores)
        value = float(self.threshold_value(scores))
        if not math.isfinite(value):
            raise ValueError(f"{self!r} found no finite threshold on these {scores.size} scores")
        interval = None
        if self.n_bootstrap:
            resampled = self._bootstrap_values(scores, np.random.default_rng(random_state))
            if resampled.size:
                tail = (1.0 - self.confidence) / 2.0
                low, high = np.quantile(resampled, [tail, 1.0 - tail])
                interval = (float(low), float(high))
        expected = float(self.expected_rate(scores, value))
        n_effective = self.effective_size(scores)
        return FittedThreshold(
            strategy=self,
            value=value,
            expected_rate=expected,
            confidence_interval=interval,
            reference=ReferenceSummary.of(scores),
            source=source,
            rate_interval=rate_interval(expected, n_effective, self.confidence),
            estimated_contamination=self.estimated_contamination(scores),
            warnings=self._shortfall(expected, n_effective),
        )

    def effective_size(self, scores: np.ndarray) -> int:
        """Calibration scores the threshold is an order statistic of (all of them unless some are set aside)."""
        return int(scores.size)

    def estimated_contamination(self, scores: np.ndarray) -> float | None:
        """Share of calibration scores set aside as anomalies; None when the strategy does not estimate it."""
        return None

    def _shortfall(self, expected: float, n_effective: int) -> tuple[str, ...]:
        """A message when the expected rate exceeds a target ``rate`` the strategy cannot honour."""
        target = getattr(self, "rate", None)
        if target is None or expected <= target * (1 + 1e-9):
            return ()
        return (
            f"target false-alarm rate {target:g} cannot be honoured with {n_effective} calibration "
            f"scores: the threshold is their largest, so about {expected:.3g} of normal rows will be "
            f"flagged; at least {math.ceil(1 / target - 1)} are needed (more training rows, a larger "
            "validation_fraction, or set_threshold with clean reference rows)",
        )

    def _bootstrap_values(self, scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Threshold values of ``n_bootstrap`` resamples (with replacement) of ``scores``."""
        return np.array([
            self.threshold_value(scores[rng.integers(0, scores.size, scores.size)])
            for _ in range(self.n_bootstrap)
        ])

    def to_dict(self) -> dict[str, Any]:
        """``{"method": ..., **parameters}``, JSON-serialisable; inverse of :func:`strategy_from_dict`."""
        return {"method": self.method, **asdict(self)}


RATE_RULE = 2
"""Version of the rules behind saved expected rates: 2 since FixedScore states ``(m + 1) / (n + 2)``."""


def rate_interval(expected_rate: float, n: int, confidence: float) -> tuple[float, float]:
    """Central ``confidence`` interval of the realised false-alarm rate of a threshold.

    A threshold set at the ``k``-th smallest of ``n`` calibration scores lets a
    fraction of new normal rows through that is Beta(n + 1 - k, k) distributed
    over calibration sets (Vovk, "Conditional validity of inductive conformal
    predictors", ACML 2012); ``expected_rate = (n + 1 - k) / (n + 1)`` is its
    mean. For other strategies the same Beta law with that mean is an
    approximation.
    """
    alarms = max(expected_rate * (n + 1), 1e-9)
    tail = (1.0 - confidence) / 2.0
    low, high = beta.ppf([tail, 1.0 - tail], alarms, max(n + 1 - alarms, 1e-9))
    return float(low), float(high)


def strategy_from_dict(config: Mapping[str, Any]) -> ThresholdStrategy:
    """Rebuild a strategy from :meth:`ThresholdStrategy.to_dict`."""
    config = dict(config)
    method = config.pop("method", None)
    if method not in _STRATEGIES:
        raise ValueError(f"unknown threshold method {method!r}; known: {sorted(_STRATEGIES)}")
    accepted = [f.name for f in fields(_STRATEGIES[method])]
    unknown = sorted(set(config) - set(accepted))
    if unknown:
        raise ValueError(f"threshold method {method!r} takes no parameter(s) {unknown}; it takes {accepted}")
    return _STRATEGIES[method](**config)


@dataclass(frozen=True)
class FittedThreshold:
    """A strategy calibrated on a set of scores; ``threshold_`` of a fitted detector.

    Attributes
    ----------
    strategy : ThresholdStrategy
    value : float
        Anomaly-score threshold: rows scoring strictly above it are flagged.
    expected_rate : float
        Share of normal rows expected to be flagged.
    confidence_interval : (float, float) or None
        Bootstrap percentile interval of ``value`` at level ``strategy.confidence``.
    reference : ReferenceSummary
        The calibration scores: size and quantiles.
    source : str
        ``"held-out"`` (validation rows of ``fit``), ``"out-of-fold"`` (cross-fitted
        scores of every training row), ``"training"`` or ``"supplied"``.
    rate_interval : (float, float) or None
        Central interval, at level ``strategy.confidence``, of the false-alarm
        rate this threshold will realise on new normal rows: the spread to
        expect from a calibration set of this size
        (:func:`rate_interval`). None in files saved before it existed.
    estimated_contamination : float or None
        Share of calibration scores set aside as anomalies
        (:class:`~anomvae.calibration.RobustFalsePositiveRate`); None for strategies that do not estimate it.
    warnings : tuple of str
        Why the threshold cannot honour its target, if it cannot; ``fit`` also
        raises them as :class:`~anomvae.calibration.ThresholdWarning`.
    """

    strategy: ThresholdStrategy
    value: float
    expected_rate: float
    confidence_interval: tuple[float, float] | None
    reference: ReferenceSummary
    source: str
    rate_interval: tuple[float, float] | None = None
    estimated_contamination: float | None = None
    warnings: tuple[str, ...] = ()

    @property
    def method(self) -> str:
        """Name of the strategy's method, e.g. ``"false_positive_rate"``."""
        return self.strategy.method

    @property
    def offset(self) -> float:
        """The threshold on the ``score_samples`` scale (``offset_`` of the detector)."""
        return -self.value

    @property
    def upper_expected_rate(self) -> float:
        """Share of rows flagged if every calibration row set aside as contamination was normal.

        ``c + (1 - c) * expected_rate`` for an :attr:`estimated_contamination`
        ``c``; :attr:`expected_rate` when none was set aside. The rows set
        aside all score above the threshold, and no score alone tells planted
        anomalies from a heavy normal tail: on clean data whose tail the
        fence cuts (lognormal amounts, a review's example: 2.0% set aside),
        normal rows are flagged at about this rate (2.4% there), not at
        :attr:`expected_rate`; it is an expected rate, which one fit can
        exceed (a review's correlated lognormal table: 3.5-4.5% set aside,
        4.3-5.4% realised against 4.5-5.5%). :func:`anomvae.monitor` accepts
        any flag rate between the two.
        """
        share = self.estimated_contamination or 0.0
        return share + (1.0 - share) * self.expected_rate

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description, for saving and for MLflow."""
        return {
            "method": self.method,
            "params": {k: v for k, v in self.strategy.to_dict().items() if k != "method"},
            "value": self.value,
            "offset": self.offset,
            "expected_rate": self.expected_rate,
            "confidence_level": self.strategy.confidence,
            "confidence_interval": list(self.confidence_interval) if self.confidence_interval else None,
            "reference": self.reference.to_dict(),
            "source": self.source,
            "rate_interval": list(self.rate_interval) if self.rate_interval else None,
            "estimated_contamination": self.estimated_contamination,
            "warnings": list(self.warnings),
            "rate_rule": RATE_RULE,
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> FittedThreshold:
        """Inverse of :meth:`to_dict`.

        A ``fixed_score`` threshold saved before :data:`RATE_RULE` 2 stated
        the share ``m / n`` of reference scores above it (0 for a value above
        them all); it is restated as ``(m + 1) / (n + 2)``, as
        :class:`~anomvae.thresholds.FixedScore` now calibrates.
        """
        interval = document["confidence_interval"]
        strategy = strategy_from_dict({"method": document["method"], **document["params"]})
        reference = ReferenceSummary(**document["reference"])
        expected = float(document["expected_rate"])
        rates = tuple(document["rate_interval"]) if document.get("rate_interval") else None
        if document["method"] == "fixed_score" and document.get("rate_rule", 1) < 2:
            expected = (round(expected * reference.n) + 1) / (reference.n + 2)
            rates = rate_interval(expected, reference.n, strategy.confidence)
        return cls(
            strategy=strategy,
            value=float(document["value"]),
            expected_rate=expected,
            confidence_interval=tuple(interval) if interval else None,
            reference=reference,
            source=document["source"],
            rate_interval=rates,
            estimated_contamination=document.get("estimated_contamination"),
            warnings=tuple(document.get("warnings", ())),
        )

    def __str__(self) -> str:
        params = self.strategy._describe_params()
        interval = ""
        if self.confidence_interval:
            low, high = self.confidence_interval
            interval = f", {self.strategy.confidence:.0%} CI [{low:.4g}, {high:.4g}]"
        spread = ""
        if self.rate_interval:
            low, high = self.rate_interval
            spread = f" ({self.strategy.confidence:.0%} of calibrations: {low:.2g}-{high:.2g})"
        contamination = ""
        if self.estimated_contamination:
            contamination = (f"; {self.estimated_contamination:.1%} set aside as anomalies (flagged too: alarm "
                             f"rate about {self.upper_expected_rate:.2g} if they were normal)")
        text = (
            f"{self.method}({params}): flag scores > {self.value:.4g}{interval}; expected alarm "
            f"rate {self.expected_rate:.4g}{spread}; calibrated on {self.reference.n} {self.source} "
            f"scores{contamination}"
        )
        return text + "".join(f"; WARNING: {message}" for message in self.warnings)

"""Thresholds: how a detector turns anomaly scores into alarms.

A *strategy* (:class:`Contamination`, :class:`FalsePositiveRate`,
:class:`PeaksOverThreshold`, :class:`PyThresh`, :class:`FixedScore`) is a
small frozen dataclass: immutable configuration, safe to pass as the
``threshold`` parameter of any anomvae estimator and to
:func:`sklearn.base.clone`. Calibrating it on a set
of anomaly scores (higher = more anomalous) gives a :class:`FittedThreshold`:
the value, the rate of alarms it is expected to raise on normal data, a
summary of the scores it was calibrated on and a bootstrap confidence
interval. Rows whose anomaly score is strictly above the value are flagged,
so on the ``score_samples`` scale ``offset_ = -value``.

>>> import numpy as np
>>> from anomvae.thresholds import FalsePositiveRate
>>> scores = np.random.default_rng(0).exponential(size=999)
>>> fitted = FalsePositiveRate(0.01).calibrate(scores, random_state=0)
>>> fitted.expected_rate
0.01
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import numpy as np

REFERENCE_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999)
"""Levels of the quantiles kept in :class:`ReferenceSummary`."""

PYTHRESH_METHODS = (
    "aucp", "boot", "chau", "clf", "clust", "comb", "cpd", "decomp", "dsn", "dummy", "eb",
    "fgd", "filter", "fwfm", "gamgmm", "gesd", "hist", "iqr", "karch", "mad", "mcst", "meta",
    "mixmod", "moll", "mtt", "ocsvm", "qmcd", "regr", "vae", "wind", "yj", "zscore",
)
"""The thresholders of PyThresh 1.x (module names of ``pythresh.thresholds``).
``clust``, ``cpd`` and ``meta`` need PyThresh's optional extras (pyclustering,
ruptures, scikit-lego)."""

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
        source : {"held-out", "training", "supplied"}, default="supplied"
            Where the scores come from, recorded in the result.
        random_state : int, Generator or None
            Seeds the bootstrap.

        Returns
        -------
        FittedThreshold
        """
        from .calibration import rate_interval

        scores = _as_scores(scores)
        value = float(self.threshold_value(scores))
        interval = None
        if self.n_bootstrap:
            resampled = self._bootstrap_values(scores, np.random.default_rng(random_state))
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
        from scipy.stats import binom

        ordered = np.sort(scores)
        n, rank = ordered.size, self._rank(ordered.size)
        reach = int(10 * math.sqrt(n)) + 10  # the binomial has no mass beyond 10 standard deviations
        candidates = np.arange(max(1, rank - reach), min(n, rank + reach) + 1)
        below = binom.sf(rank - 1, n, candidates / n)  # P(k-th resampled score <= candidate-th score)
        chosen = np.minimum(np.searchsorted(below, rng.random(self.n_bootstrap)), candidates.size - 1)
        return ordered[candidates[chosen] - 1]


def strategy_from_dict(config: Mapping[str, Any]) -> ThresholdStrategy:
    """Rebuild a strategy from :meth:`ThresholdStrategy.to_dict`."""
    config = dict(config)
    method = config.pop("method", None)
    if method not in _STRATEGIES:
        raise ValueError(f"unknown threshold method {method!r}; known: {sorted(_STRATEGIES)}")
    return _STRATEGIES[method](**config)


@dataclass(frozen=True, repr=False)
class Contamination(_OrderStatistic, ThresholdStrategy):
    """Flag a fixed share of the calibration rows: scikit-learn's ``contamination``.

    The threshold is the ``1 - fraction`` quantile of the scores, computed as
    :class:`sklearn.ensemble.IsolationForest` computes ``offset_``. In ``fit``
    it is calibrated on all training rows, which are assumed to hold that
    share of outliers.

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

    def threshold_value(self, scores):
        from scipy.stats import genpareto

        initial = float(np.quantile(scores, 1.0 - self.tail_fraction))
        excesses = scores[scores > initial] - initial
        if excesses.size < self.min_exceedances:
            raise ValueError(
                f"peaks over threshold found {excesses.size} reference scores above the "
                f"{1 - self.tail_fraction:.3g} quantile, fewer than min_exceedances="
                f"{self.min_exceedances}; supply more reference rows or raise tail_fraction"
            )
        shape, _, scale = genpareto.fit(excesses, floc=0.0)
        tail_probability = self.rate * scores.size / excesses.size
        return initial + float(genpareto.isf(tail_probability, shape, loc=0.0, scale=scale))

    def expected_rate(self, scores, value):
        return float(self.rate)


@dataclass(frozen=True, repr=False)
class PyThresh(ThresholdStrategy):
    """Unsupervised threshold from a PyThresh thresholder.

    Wraps the thresholders of PyThresh (Kulik, https://github.com/KulikDM/pythresh),
    which estimate, without labels, where the outliers start in a set of
    scores that contains some. In ``fit`` they see all training scores, like
    :class:`Contamination`. The threshold is the highest score the method
    labels normal below its lowest outlier; the expected rate is the share of
    calibration rows it flags (its contamination estimate).

    Parameters
    ----------
    method : str, default="karch"
        A name from :data:`PYTHRESH_METHODS`, e.g. ``"karch"``, ``"iqr"``, ``"mad"``,
        ``"zscore"``, ``"dsn"``, ``"ocsvm"``.
    options : mapping, default={}
        Keyword arguments of the PyThresh class (e.g. ``{"random_state": 0}``).
    n_bootstrap : int, default=20
        Fewer than the other strategies: some thresholders take seconds per call.
    """

    name: str = "karch"
    options: Mapping[str, Any] = field(default_factory=dict)
    n_bootstrap: int = field(default=20, kw_only=True)
    method: ClassVar[str] = "pythresh"

    def __post_init__(self):
        super().__post_init__()
        if self.name not in PYTHRESH_METHODS:
            raise ValueError(f"unknown PyThresh method {self.name!r}; choose one of {PYTHRESH_METHODS}")
        if not isinstance(self.options, Mapping):
            raise TypeError(f"options must be a mapping, got {type(self.options).__name__}")
        object.__setattr__(self, "options", dict(self.options))

    def _thresholder(self):
        try:
            module = importlib.import_module(f"pythresh.thresholds.{self.name}")
        except ImportError as error:
            raise ImportError(
                f"PyThresh method {self.name!r} could not be imported ({error}); install "
                "pythresh, and for 'clust', 'cpd' or 'meta' its extra dependencies"
            ) from error
        return getattr(module, self.name.upper())(**self.options)

    def threshold_value(self, scores):
        if scores.min() == scores.max():  # nothing to separate; PyThresh would divide by zero
            return float(scores.max())
        labels = np.asarray(self._thresholder().eval(scores)).astype(bool)
        if not labels.any():
            return float(scores.max())
        lowest_outlier = scores[labels].min()
        below = scores[~labels & (scores < lowest_outlier)]
        return float(below.max()) if below.size else float(np.nextafter(lowest_outlier, -np.inf))

    def expected_rate(self, scores, value):
        return float(np.mean(scores > value))


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
        (:func:`anomvae.calibration.rate_interval`). None in files saved before it existed.
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
        return self.strategy.method

    @property
    def offset(self) -> float:
        """The threshold on the ``score_samples`` scale (``offset_`` of the detector)."""
        return -self.value

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
        }

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> FittedThreshold:
        """Inverse of :meth:`to_dict`."""
        interval = document["confidence_interval"]
        return cls(
            strategy=strategy_from_dict({"method": document["method"], **document["params"]}),
            value=float(document["value"]),
            expected_rate=float(document["expected_rate"]),
            confidence_interval=tuple(interval) if interval else None,
            reference=ReferenceSummary(**document["reference"]),
            source=document["source"],
            rate_interval=tuple(document["rate_interval"]) if document.get("rate_interval") else None,
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
            contamination = f"; {self.estimated_contamination:.1%} set aside as anomalies"
        text = (
            f"{self.method}({params}): flag scores > {self.value:.4g}{interval}; expected alarm "
            f"rate {self.expected_rate:.4g}{spread}; calibrated on {self.reference.n} {self.source} "
            f"scores{contamination}"
        )
        return text + "".join(f"; WARNING: {message}" for message in self.warnings)


def resolve(threshold: ThresholdStrategy | None, contamination) -> ThresholdStrategy:
    """The strategy an estimator uses: ``threshold``, else one from ``contamination``.

    ``contamination="auto"`` is :class:`~anomvae.calibration.RobustFalsePositiveRate`
    at :data:`anomvae.base.AUTO_FALSE_ALARM_RATE`; a float is :class:`Contamination`.
    """
    if threshold is not None:
        return threshold
    if contamination == "auto":
        from .base import AUTO_FALSE_ALARM_RATE
        from .calibration import RobustFalsePositiveRate

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

"""Monitoring a fitted detector on production batches.

:func:`monitor` compares one batch with the detector's reference (the scores
of the rows held out in ``fit``, or those given to ``set_threshold``) and
answers three questions: does the batch raise more (or fewer) alarms than the
threshold promises on normal data, has the distribution of anomaly scores
moved, and which features drive the alarms.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.utils.validation import check_is_fitted

PSI_BINS = 10
"""Population stability index bins: deciles of the reference scores."""

PSI_MODERATE, PSI_MAJOR = 0.1, 0.25
"""Conventional PSI levels (Siddiqi, *Credit Risk Scorecards*, 2006): below 0.1
stable, 0.1 to 0.25 a moderate shift, above 0.25 a major shift."""

BROAD_SHIFT = 0.25
"""KS statistic above which a drift is read as a move of the bulk of the rows
(at least this share of them) rather than a tail of anomalies, and
:attr:`MonitoringReport.update_recommended` is raised."""

FEATURE_ROWS = 10_000
"""Most rows whose per-feature scores :func:`monitor` computes."""

_PSI_FLOOR = 1e-4
"""Smallest bin share used in the PSI logarithm, so an empty bin stays finite."""


@dataclass(frozen=True)
class FeatureContribution:
    """How much one feature drives the alarms of a batch.

    Features are ranked by ``excess``: how far their mean per-feature score
    over the flagged rows exceeds their mean over the reference rows
    (``reference_feature_scores_`` of the detector).

    Attributes
    ----------
    name : str
    mean_score : float
        Mean per-feature anomaly score over the flagged rows.
    reference_score : float
        Mean over the reference rows.
    excess : float
        ``mean_score - reference_score``.
    share : float
        Its share of the summed positive excess of all features.
    lift : float or None
        ``mean_score / reference_score``; None when ``reference_score`` is not positive.
    """

    name: str
    mean_score: float
    reference_score: float
    excess: float
    share: float
    lift: float | None


@dataclass(frozen=True)
class MonitoringReport:
    """The result of :func:`monitor`.

    Attributes
    ----------
    n_rows, n_flagged : int
    flag_rate, expected_rate : float
        Observed share of flagged rows, and the share the threshold expects on normal data.
    flag_rate_p_value : float
        Two-sided exact binomial test of ``n_flagged`` against ``expected_rate``.
    ks_statistic, ks_p_value : float
        Two-sample Kolmogorov–Smirnov test, batch scores against reference scores.
    psi : float
        Population stability index of the batch scores over reference deciles.
    batch_quantiles, reference_quantiles : dict of str to float
        Median, 0.9 and 0.99 quantiles of the anomaly scores.
    top_features : list of FeatureContribution
        Features with the highest mean per-feature score over the flagged
        rows (over all rows when none is flagged).
    threshold : dict
        ``threshold_.to_dict()`` of the detector.
    significance : float
        Level at which the tests raise alarms.
    n_reference : int
        Number of reference scores.
    reference_source : str
        Where the reference scores come from: ``"held-out"``, ``"supplied"``,
        or ``"training"``, on which the model is optimistic, so drift and
        alarm-rate tests lean towards false alarms.
    """

    n_rows: int
    n_flagged: int
    flag_rate: float
    expected_rate: float
    flag_rate_p_value: float
    ks_statistic: float
    ks_p_value: float
    psi: float
    batch_quantiles: dict[str, float]
    reference_quantiles: dict[str, float]
    top_features: list[FeatureContribution]
    threshold: dict[str, Any]
    significance: float
    n_reference: int
    reference_source: str

    @property
    def flag_rate_alarm(self) -> bool:
        """The flag rate differs from the expected rate at level ``significance``."""
        return self.flag_rate_p_value < self.significance

    @property
    def drift_alarm(self) -> bool:
        """The score distribution moved: KS significant, or PSI above :data:`PSI_MAJOR`."""
        return self.ks_p_value < self.significance or self.psi > PSI_MAJOR

    @property
    def alarms(self) -> list[str]:
        """One readable line per alarm raised; empty when the batch looks like the reference."""
        raised = []
        if self.flag_rate_alarm:
            direction = "above" if self.flag_rate > self.expected_rate else "below"
            raised.append(
                f"flag rate {self.flag_rate:.2%} is {direction} the expected {self.expected_rate:.2%} "
                f"(binomial p = {self.flag_rate_p_value:.2g})"
            )
        if self.drift_alarm:
            raised.append(
                f"anomaly-score distribution drifted (KS D = {self.ks_statistic:.3f}, "
                f"p = {self.ks_p_value:.2g}; PSI = {self.psi:.3f})"
            )
        return raised

    @property
    def update_recommended(self) -> bool:
        """The batch as a whole moved: scores drifted and the KS statistic is
        above :data:`BROAD_SHIFT`.

        The KS statistic is a lower bound on the share of rows whose scores
        moved, so this singles out a shift of the bulk of the rows (a
        recalibrated sensor, a new season, a new product) from a tail of
        anomalies. If the moved rows are the new normal,
        ``detector.partial_fit(batch)`` adapts the model and its threshold to
        them; if they are an incident, do not.
        """
        return self.drift_alarm and self.ks_statistic > BROAD_SHIFT

    def metrics(self) -> dict[str, float]:
        """The numeric figures, as logged to MLflow (prefixed ``monitor.``)."""
        return {
            "flag_rate": self.flag_rate,
            "expected_rate": self.expected_rate,
            "flag_rate_p_value": self.flag_rate_p_value,
            "n_rows": float(self.n_rows),
            "n_flagged": float(self.n_flagged),
            "ks_statistic": self.ks_statistic,
            "ks_p_value": self.ks_p_value,
            "psi": self.psi,
            "score_median": self.batch_quantiles["0.5"],
            "score_q99": self.batch_quantiles["0.99"],
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable report, alarms included."""
        document = asdict(self)
        document["alarms"] = self.alarms
        document["flag_rate_alarm"] = self.flag_rate_alarm
        document["drift_alarm"] = self.drift_alarm
        document["update_recommended"] = self.update_recommended
        return document

    def __str__(self) -> str:
        threshold = self.threshold
        lines = [
            f"Monitoring report: {self.n_rows} rows; threshold {threshold['method']} "
            f"flags anomaly scores > {threshold['value']:.4g}; reference: "
            f"{self.n_reference} {self.reference_source} rows",
            f"  flag rate    {self.flag_rate:.2%} ({self.n_flagged} rows), expected "
            f"{self.expected_rate:.2%}, binomial p = {self.flag_rate_p_value:.2g}",
            f"  score drift  KS D = {self.ks_statistic:.3f} (p = {self.ks_p_value:.2g}), "
            f"PSI = {self.psi:.3f}",
            "  scores       " + ", ".join(
                f"q{level} {self.batch_quantiles[level]:.4g} (reference "
                f"{self.reference_quantiles[level]:.4g})"
                for level in self.batch_quantiles
            ),
        ]
        if self.top_features:
            rows = "flagged" if self.n_flagged else "all"
            lines.append(f"  top features ({rows} rows): " + ", ".join(
                f"{feature.name} {feature.share:.0%}"
                + (f" ({_format_lift(feature.lift)} reference)" if feature.lift is not None else "")
                for feature in self.top_features
            ))
        if self.update_recommended:
            lines.append(f"  RECOMMENDATION: at least {self.ks_statistic:.0%} of the rows moved; if "
                         "this is the new normal, update the model with detector.partial_fit(batch)")
        lines.append(
            "  ALARMS: " + "; ".join(self.alarms) if self.alarms
            else f"  no alarm at significance {self.significance}"
        )
        return "\n".join(lines)


def _format_lift(lift: float) -> str:
    # A feature whose reference score is near zero gets an enormous, meaningless ratio.
    return ">100x" if lift > 100 else f"{lift:.1f}x"


def population_stability_index(reference: np.ndarray, batch: np.ndarray, bins: int = PSI_BINS) -> float:
    """PSI of ``batch`` against ``reference`` over quantile bins of ``reference``.

    ``sum((b - r) * log(b / r))`` over the bins, with shares floored at
    :data:`_PSI_FLOOR`; 0 for identical distributions.
    """
    inner_edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    reference_share = np.bincount(np.searchsorted(inner_edges, reference, side="right"),
                                  minlength=inner_edges.size + 1) / reference.size
    batch_share = np.bincount(np.searchsorted(inner_edges, batch, side="right"),
                              minlength=inner_edges.size + 1) / batch.size
    reference_share = np.maximum(reference_share, _PSI_FLOOR)
    batch_share = np.maximum(batch_share, _PSI_FLOOR)
    return float(np.sum((batch_share - reference_share) * np.log(batch_share / reference_share)))


def _feature_names(detector, batch, n_columns: int) -> list[str]:
    if isinstance(batch, pd.DataFrame):
        return [str(column) for column in batch.columns]
    if getattr(detector, "is_image_", False):
        return [f"pixel_{index}" for index in range(n_columns)]
    names = getattr(detector, "feature_names_in_", None)
    if names is not None and len(names) == n_columns:
        return [str(name) for name in names]
    return [f"x{index}" for index in range(n_columns)]


def _select_rows(batch, mask: np.ndarray):
    """The rows of ``batch`` where ``mask`` is true, keeping the batch's type."""
    if isinstance(batch, pd.DataFrame):
        return batch.iloc[mask]
    if isinstance(batch, torch.Tensor):
        return batch[torch.from_numpy(mask)]
    return np.asarray(batch)[mask]


def _top_features(detector, batch, flagged: np.ndarray, count: int) -> list[FeatureContribution]:
    # Per-feature scores of the flagged rows only (at most FEATURE_ROWS of them, or of
    # all rows when none is flagged): for image batches the full array can be large.
    chosen = flagged.copy() if flagged.any() else np.ones_like(flagged)
    chosen[np.flatnonzero(chosen)[FEATURE_ROWS:]] = False
    rows = _select_rows(batch, chosen)
    values = np.asarray(detector.feature_scores(rows), dtype=np.float64).reshape(int(chosen.sum()), -1)
    names = _feature_names(detector, batch, values.shape[1])
    mean_score = values.mean(axis=0)
    baseline = getattr(detector, "reference_feature_scores_", None)
    if baseline is None:  # a model saved before baselines were stored: rank by mean score
        baseline = np.zeros_like(mean_score)
    excess = mean_score - baseline
    total = np.clip(excess, 0, None).sum()
    top = np.argsort(-excess, kind="stable")[:count]
    return [
        FeatureContribution(
            name=names[index],
            mean_score=float(mean_score[index]),
            reference_score=float(baseline[index]),
            excess=float(excess[index]),
            share=float(max(excess[index], 0.0) / total) if total > 0 else 0.0,
            lift=float(mean_score[index] / baseline[index]) if baseline[index] > 0 else None,
        )
        for index in top
    ]


def _quantiles(scores: np.ndarray) -> dict[str, float]:
    levels = (0.5, 0.9, 0.99)
    return {str(level): float(value) for level, value in zip(levels, np.quantile(scores, levels))}


def monitor(
    detector,
    batch,
    *,
    significance: float = 0.01,
    n_top_features: int = 5,
    log_to_mlflow: bool | None = None,
    step: int | None = None,
) -> MonitoringReport:
    """Check a production batch against a fitted detector's reference.

    Parameters
    ----------
    detector : BaseDeepDetector
        A fitted anomvae estimator (its ``threshold_`` and ``reference_scores_``
        are the baseline).
    batch : array-like, DataFrame or image batch
        New rows, in the format the detector was fitted on.
    significance : float, default=0.01
        Level of the binomial and Kolmogorov–Smirnov tests.
    n_top_features : int, default=5
        Features listed as driving the alarms (see :class:`FeatureContribution`);
        0 skips ``feature_scores``.
    log_to_mlflow : bool or None, default=None
        Log :meth:`MonitoringReport.metrics` as ``monitor.*`` metrics. None logs
        when an MLflow run is active; True logs in any case (starting a run
        if none is active, left open so later batches add steps); False never. mlflow is imported only to log.
    step : int or None
        MLflow step of this batch; None appends after the run's last
        ``monitor.flag_rate`` entry, so successive batches form a time series.

    Returns
    -------
    MonitoringReport

    Notes
    -----
    The binomial test treats the expected rate as exact; with a small
    reference set the threshold itself is uncertain (see
    ``threshold_.confidence_interval``), so expect some false alarms on very
    large batches. Likewise the KS test detects tiny shifts on large
    batches: read it with the PSI, an effect size.
    """
    check_is_fitted(detector)
    if not 0 < significance < 1:
        raise ValueError(f"significance must be in (0, 1), got {significance!r}")
    integer = isinstance(n_top_features, (int, np.integer)) and not isinstance(n_top_features, bool)
    if not integer or n_top_features < 0:
        raise ValueError(f"n_top_features must be a non-negative int, got {n_top_features!r}")
    reference = detector._reference()
    threshold = detector.threshold_
    if detector.offset_ != threshold.offset:
        raise ValueError(
            f"offset_ ({detector.offset_!r}) was changed without set_threshold, so threshold_ "
            f"(offset {threshold.offset!r}) no longer describes the alarms; use "
            "detector.set_threshold(FixedScore(value)) to set a threshold by hand"
        )
    scores = detector.anomaly_score(batch)
    flagged = scores > threshold.value
    n_flagged = int(flagged.sum())
    expected = threshold.expected_rate
    ks = stats.ks_2samp(scores, reference)
    report = MonitoringReport(
        n_rows=int(scores.size),
        n_flagged=n_flagged,
        flag_rate=n_flagged / scores.size,
        expected_rate=expected,
        flag_rate_p_value=float(stats.binomtest(n_flagged, scores.size, expected).pvalue),
        ks_statistic=float(ks.statistic),
        ks_p_value=float(ks.pvalue),
        psi=population_stability_index(reference, scores),
        batch_quantiles=_quantiles(scores),
        reference_quantiles=_quantiles(reference),
        top_features=_top_features(detector, batch, flagged, n_top_features) if n_top_features else [],
        threshold=threshold.to_dict(),
        significance=float(significance),
        n_reference=int(reference.size),
        reference_source=detector.reference_source_,
    )
    if log_to_mlflow or (log_to_mlflow is None and _mlflow_run_active()):
        _log_metrics(report, step)
    return report


def _mlflow_run_active() -> bool:
    """True when mlflow is already imported and has an active run (no import otherwise)."""
    mlflow = sys.modules.get("mlflow")
    return mlflow is not None and mlflow.active_run() is not None


def _log_metrics(report: MonitoringReport, step: int | None) -> None:
    import mlflow

    run = mlflow.active_run() or mlflow.start_run()
    if step is None:
        history = mlflow.tracking.MlflowClient().get_metric_history(run.info.run_id, "monitor.flag_rate")
        step = max((entry.step for entry in history), default=-1) + 1
    mlflow.log_metrics({f"monitor.{name}": value for name, value in report.metrics().items()}, step=step)


__all__ = ["FeatureContribution", "MonitoringReport", "monitor", "population_stability_index"]

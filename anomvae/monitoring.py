"""Monitoring a fitted detector on production batches.

:func:`monitor` compares one batch with the detector's reference (the scores
of the rows held out in ``fit``, or those given to ``set_threshold``) and
answers three questions: does the batch raise more (or fewer) alarms than the
threshold promises on normal data, has the distribution of anomaly scores
moved, and which features drive the alarms.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats
from sklearn.utils.validation import check_is_fitted

from .alarm_features import FeatureContribution, top_features
from .drift import (
    PSI_MAJOR,
    PSI_MIN_ROWS,
    flag_count_p_value,
    moved_share_lower_bound,
    population_stability_index,
    psi_test,
)

BROAD_SHIFT = 0.25
"""Share of a batch's rows that must have moved, at 95% confidence, for a drift
to be read as a move of the bulk of the rows rather than a tail of anomalies,
and :attr:`MonitoringReport.update_recommended` to be raised."""

KS_MIN_ROWS = 2
"""Fewest batch rows on which the KS test may raise a drift alarm; a single row is ``predict``'s business."""


@dataclass(frozen=True)
class MonitoringReport:
    """The result of :func:`monitor`.

    Attributes
    ----------
    n_rows, n_flagged : int
    flag_rate, expected_rate : float
        Observed share of flagged rows, and the share the threshold expects on normal data.
    upper_expected_rate : float
        The share expected if the calibration rows the threshold set aside as
        contamination were normal (:attr:`~anomvae.thresholds.FittedThreshold.upper_expected_rate`);
        ``expected_rate`` when none was set aside. A flag rate between the two
        raises no alarm.
    flag_rate_p_value : float
        Test of ``n_flagged`` against the threshold's calibration: the
        number of normal rows of a batch above a threshold set at an order
        statistic of ``n`` calibration scores is beta-binomial (the calibration
        itself is random), so small reference sets do not turn into false alarms
        on large batches (:func:`flag_count_p_value`). Two-sided, except for
        ``Contamination`` and ``PyThresh``, whose rate counts the anomalies
        among their calibration rows: only too many alarms count there.
    ks_statistic, ks_p_value : float
        Two-sample Kolmogorov–Smirnov test, batch scores against reference scores.
    psi : float or None
        Population stability index of the batch scores over reference deciles;
        None ("too few rows") for batches under :data:`PSI_MIN_ROWS` rows.
    psi_p_value : float or None
        Chance that a batch of as many rows from the reference's distribution
        has a PSI at least this large, simulated (:func:`anomvae.drift.psi_test`).
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
        Number of reference scores of the drift tests
        (``drift_reference_scores_`` of the detector).
    reference_source : str
        Where they come from: ``"held-out"``, ``"supplied"``, ``"training"``,
        on which the model is optimistic, or ``"out-of-fold"``, on which it is
        pessimistic; on the last two the drift tests lean towards false alarms.
    """

    n_rows: int
    n_flagged: int
    flag_rate: float
    expected_rate: float
    upper_expected_rate: float
    flag_rate_p_value: float
    ks_statistic: float
    ks_p_value: float
    psi: float | None
    psi_p_value: float | None
    batch_quantiles: dict[str, float]
    reference_quantiles: dict[str, float]
    top_features: list[FeatureContribution]
    threshold: dict[str, Any]
    significance: float
    n_reference: int
    reference_source: str

    @property
    def flag_rate_alarm(self) -> bool:
        """The flag rate differs from the expected rate (is above it, for ``Contamination`` and ``PyThresh``) at level ``significance``."""
        return self.flag_rate_p_value < self.significance

    @property
    def ks_alarm(self) -> bool:
        """KS significant at ``significance / 2`` (half the level: two drift tests share it), on at
        least :data:`KS_MIN_ROWS` rows: one row is not a distribution, however far out it lies (its
        exact p-value, about ``2 / (n_reference + 1)``, falls under 0.005 for references over 400 rows)."""
        return self.n_rows >= KS_MIN_ROWS and self.ks_p_value < self.significance / 2

    @property
    def psi_alarm(self) -> bool:
        """PSI above :data:`PSI_MAJOR` and significant at ``significance / 2``; never on too few rows."""
        return self.psi is not None and self.psi > PSI_MAJOR and self.psi_p_value < self.significance / 2

    @property
    def drift_alarm(self) -> bool:
        """The score distribution moved: :attr:`ks_alarm` or :attr:`psi_alarm`.

        Each test runs at half of ``significance`` (Bonferroni), so on normal
        batches a drift alarm fires at most at about the ``significance`` rate
        whatever the batch size.
        """
        return self.ks_alarm or self.psi_alarm

    @property
    def alarms(self) -> list[str]:
        """One readable line per alarm raised, naming the statistic that fired; empty when none."""
        raised = []
        if self.flag_rate_alarm:
            raised.append(
                f"flag rate {self.flag_rate:.2%} is {self._expected_text(above=self.flag_rate > self.expected_rate)} "
                f"(beta-binomial p = {self.flag_rate_p_value:.2g} < {self.significance:g})"
            )
        if self.ks_alarm:
            raised.append(
                f"anomaly-score distribution drifted: KS test D = {self.ks_statistic:.3f}, "
                f"p = {self.ks_p_value:.2g} < {self.significance / 2:g}"
            )
        if self.psi_alarm:
            raised.append(
                f"anomaly-score distribution drifted: PSI = {self.psi:.3f} > {PSI_MAJOR} "
                f"(p = {self.psi_p_value:.2g} < {self.significance / 2:g})"
            )
        return raised

    def _expected_text(self, above: bool | None = None) -> str:
        """"above the expected 1.00%", or with a range when calibration rows were set aside."""
        direction = "" if above is None else ("above " if above else "below ")
        if self.upper_expected_rate > self.expected_rate:
            return (f"{direction}the expected {self.expected_rate:.2%}-{self.upper_expected_rate:.2%} (the upper "
                    "figure if the calibration rows set aside as contamination were normal)")
        return f"{direction}the expected {self.expected_rate:.2%}"

    def _psi_text(self) -> str:
        if self.psi is None:
            return f"PSI: too few rows ({self.n_rows} < {PSI_MIN_ROWS}), not computed"
        rough = (f"; rough, over {_rows(self.n_reference, 'reference ')}: judge it by its p-value"
                 if self.n_reference < PSI_MIN_ROWS else "")
        return f"PSI = {self.psi:.3f} (p = {self.psi_p_value:.2g}{rough})"

    @property
    def update_recommended(self) -> bool:
        """The batch as a whole moved: scores drifted and, at 95% confidence,
        more than :data:`BROAD_SHIFT` of its rows moved.

        The KS statistic is a lower bound on the share of rows whose scores
        moved; less its sampling margin (:func:`~anomvae.drift.moved_share_lower_bound`) it
        singles out a shift of the bulk of the rows (a recalibrated sensor, a
        new season, a new product) from a tail of anomalies, and a batch of
        a few rows, however far out, never qualifies (``partial_fit`` on it
        would recalibrate the threshold on those few rows). If the moved rows
        are the new normal, ``detector.partial_fit(batch)`` adapts the model
        and its threshold to them; if they are an incident, do not.
        """
        return self.drift_alarm and self.moved_share > BROAD_SHIFT

    @property
    def moved_share(self) -> float:
        """The share of the batch's rows whose scores moved, 95% lower bound
        (:func:`~anomvae.drift.moved_share_lower_bound`)."""
        return moved_share_lower_bound(self.ks_statistic, self.n_rows)

    def metrics(self) -> dict[str, float]:
        """The numeric figures, as logged to MLflow (prefixed ``monitor.``).

        ``threshold`` (on the anomaly-score scale) is among them, so that a
        monitoring run shared by the versions of a registered model shows
        where a promotion changed it.
        """
        return {
            "threshold": float(self.threshold["value"]),
            "flag_rate": self.flag_rate,
            "expected_rate": self.expected_rate,
            "upper_expected_rate": self.upper_expected_rate,
            "flag_rate_p_value": self.flag_rate_p_value,
            "n_rows": float(self.n_rows),
            "n_flagged": float(self.n_flagged),
            "ks_statistic": self.ks_statistic,
            "ks_p_value": self.ks_p_value,
            **({"psi": self.psi, "psi_p_value": self.psi_p_value} if self.psi is not None else {}),
            "score_median": self.batch_quantiles["0.5"],
            "score_q99": self.batch_quantiles["0.99"],
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable report, alarms included."""
        document = asdict(self)
        document["alarms"] = self.alarms
        document["flag_rate_alarm"] = self.flag_rate_alarm
        document["drift_alarm"] = self.drift_alarm
        document["ks_alarm"] = self.ks_alarm
        document["psi_alarm"] = self.psi_alarm
        document["update_recommended"] = self.update_recommended
        return document

    def __str__(self) -> str:
        threshold = self.threshold
        lines = [
            f"Monitoring report: {_rows(self.n_rows)}; threshold {threshold['method']} "
            f"flags anomaly scores > {threshold['value']:.4g}; reference: "
            f"{_rows(self.n_reference, self.reference_source + ' ')}",
            f"  flag rate    {self.flag_rate:.2%} ({_rows(self.n_flagged)}), {self._expected_text()}, "
            f"beta-binomial p = {self.flag_rate_p_value:.2g}",
            f"  score drift  KS D = {self.ks_statistic:.3f} (p = {self.ks_p_value:.2g}), "
            + self._psi_text(),
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
            lines.append(f"  RECOMMENDATION: at least {self.moved_share:.0%} of the rows moved (95% confidence); "
                         "if this is the new normal, update the model (detector.partial_fit(batch) in Python) "
                         "or retrain it with anomvae train")
        lines.append(
            "  ALARMS: " + "; ".join(self.alarms) if self.alarms
            else f"  no alarm at significance {self.significance}"
        )
        return "\n".join(lines)


def _rows(count: int, kind: str = "") -> str:
    """``"1 held-out row"``, ``"20 held-out rows"``."""
    return f"{count} {kind}row{'' if count == 1 else 's'}"


def _format_lift(lift: float) -> str:
    # A feature whose reference score is near zero gets an enormous, meaningless ratio.
    return ">100x" if lift > 100 else f"{lift:.1f}x"


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
        A fitted anomvae estimator: its ``threshold_`` is the baseline of the
        flag-rate test, its ``drift_reference_scores_`` that of the drift tests.
    batch : array-like, DataFrame or image batch
        New rows, in the format the detector was fitted on.
    significance : float, default=0.01
        Rate of false alarms on normal batches, per alarm kind: the flag-rate
        test runs at this level, the two drift tests (KS, PSI) at half of it each.
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
    The flag-rate test accounts for the spread of the threshold's calibration
    (``threshold_.rate_interval``). The KS test detects tiny shifts on large
    batches: read it with the PSI, an effect size. The drift tests compare the
    batch with ``drift_reference_scores_``: the final model's scores of rows it
    did not train on (held-out or supplied), which new normal rows' scores are
    exchangeable with, so the tests hold their level at any reference size.
    Small training sets calibrate the threshold on cross-fitted out-of-fold
    scores instead, which come from models trained on fewer rows and lean
    high; they are the drift reference only when ``fit`` held out no row
    (``drift_reference_source_ == "out-of-fold"``), and then large batches of
    normal rows can show a shift towards lower scores that is no drift.
    """
    check_is_fitted(detector)
    if not 0 < significance < 1:
        raise ValueError(f"significance must be in (0, 1), got {significance!r}")
    integer = isinstance(n_top_features, (int, np.integer)) and not isinstance(n_top_features, bool)
    if not integer or n_top_features < 0:
        raise ValueError(f"n_top_features must be a non-negative int, got {n_top_features!r}")
    reference, reference_source = detector._drift_reference()
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
    with warnings.catch_warnings():  # a tiny reference beside a large batch: scipy's own asymptotic fallback
        warnings.filterwarnings("ignore", "ks_2samp: Exact calculation unsuccessful", RuntimeWarning)
        ks = stats.ks_2samp(scores, reference)
    psi, psi_p = psi_test(reference, scores) if scores.size >= PSI_MIN_ROWS else (None, None)
    report = MonitoringReport(
        n_rows=int(scores.size),
        n_flagged=n_flagged,
        flag_rate=n_flagged / scores.size,
        expected_rate=expected,
        upper_expected_rate=threshold.upper_expected_rate,
        flag_rate_p_value=flag_count_p_value(n_flagged, scores.size, threshold),
        ks_statistic=float(ks.statistic),
        ks_p_value=float(ks.pvalue),
        psi=psi,
        psi_p_value=psi_p,
        batch_quantiles=_quantiles(scores),
        reference_quantiles=_quantiles(reference),
        top_features=top_features(detector, batch, flagged, n_top_features) if n_top_features else [],
        threshold=threshold.to_dict(),
        significance=float(significance),
        n_reference=int(reference.size),
        reference_source=reference_source,
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


__all__ = [
    "FeatureContribution",
    "MonitoringReport",
    "monitor",
    "population_stability_index",
]

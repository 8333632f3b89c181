"""The statistics :func:`anomvae.monitor` tests a batch with, each calibrated to its level.

On normal batches each raises false alarms at about its level at every batch
size: the PSI only from :data:`PSI_MIN_ROWS` rows and with a simulated
p-value, the flag count against its exact beta-binomial law.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

PSI_BINS = 10
"""Population stability index bins: deciles of the reference scores."""

PSI_MODERATE, PSI_MAJOR = 0.1, 0.25
"""Conventional PSI levels (Siddiqi, *Credit Risk Scorecards*, 2006): below 0.1
stable, 0.1 to 0.25 a moderate shift, above 0.25 a major shift."""

PSI_MIN_ROWS = 10 * PSI_BINS
"""Fewest batch rows for which the PSI is computed: ten per bin. Over a handful of
rows most deciles are empty and the PSI is large whatever the data (40 of 40
normal batches of 5 rows gave PSI > 4); it is then reported as "too few rows"."""

_PSI_FLOOR = 1e-4
"""Smallest bin share used in the PSI logarithm, so an empty bin stays finite."""

PSI_NULL_DRAWS = 20_000
"""Simulated same-distribution batches behind each PSI p-value (:func:`psi_test`)."""

_PSI_NULL_SEED = 0
"""Seed of that simulation: a batch's p-value does not change from one call to the next."""


def _checked(reference, batch, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """``reference`` and ``batch`` as float arrays, refused unless non-empty, 1-d and finite."""
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be an integer of at least 2, got {bins!r}")
    arrays = []
    for name, values in (("reference", reference), ("batch", batch)):
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"{name} must be a non-empty 1-d array of scores, got shape {values.shape}")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} holds non-finite scores (NaN or inf); the PSI needs finite ones")
        arrays.append(values)
    return arrays[0], arrays[1]


def _bin_counts(reference: np.ndarray, batch: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts of ``reference`` and ``batch`` in the quantile bins of ``reference``.

    The inner edges are reference rows (the ``inverted_cdf`` quantiles, order
    statistics rather than interpolations between them) and the bins are
    ``[edge, next edge)``. When a tenth or more of the reference ties at its
    maximum, that value is an edge and its bin would also hold every larger
    batch score; an extra bin above the reference maximum keeps an upward
    shift visible (a shift downwards already lands in the empty lowest bin).
    """
    levels = np.linspace(0, 1, bins + 1)[1:-1]
    inner_edges = np.unique(np.quantile(reference, levels, method="inverted_cdf"))
    if inner_edges[-1] == reference.max():
        inner_edges = np.append(inner_edges, np.nextafter(inner_edges[-1], np.inf))

    def counts(values):
        return np.bincount(np.searchsorted(inner_edges, values, side="right"), minlength=inner_edges.size + 1)

    return counts(reference), counts(batch)


def _psi(reference_share: np.ndarray, batch_share: np.ndarray) -> np.ndarray:
    """PSI of the last axis of ``batch_share`` against ``reference_share``, shares floored."""
    reference_share = np.maximum(reference_share, _PSI_FLOOR)
    batch_share = np.maximum(batch_share, _PSI_FLOOR)
    return np.sum((batch_share - reference_share) * np.log(batch_share / reference_share), axis=-1)


BROAD_SHIFT_CONFIDENCE = 0.95
"""Confidence of the lower bound on the moved share (:func:`moved_share_lower_bound`)."""


def moved_share_lower_bound(ks_statistic: float, n_rows: int, confidence: float = BROAD_SHIFT_CONFIDENCE) -> float:
    """A lower confidence bound on the share of a batch's rows whose scores moved.

    The two-sample KS statistic bounds the moved share from below; its
    sampling error over a batch of ``n_rows`` is bounded by the
    Dvoretzky-Kiefer-Wolfowitz inequality with Massart's constant,
    ``sqrt(log(2 / (1 - confidence)) / (2 n_rows))``, which is subtracted. Over
    a handful of rows the bound is below zero: three outlying rows say
    nothing about where the bulk of the traffic went.

    Returns
    -------
    float
        ``ks_statistic - margin``; may be negative.
    """
    return ks_statistic - math.sqrt(math.log(2.0 / (1.0 - confidence)) / (2.0 * max(n_rows, 1)))


def population_stability_index(reference, batch, bins: int = PSI_BINS) -> float:
    """PSI of ``batch`` against ``reference`` over quantile bins of ``reference``.

    ``sum((b - r) * log(b / r))`` over the bins (:func:`psi_test` says which),
    with shares floored at :data:`_PSI_FLOOR`; 0 for identical distributions.

    Raises
    ------
    ValueError
        As :func:`psi_test`.
    """
    reference, batch = _checked(reference, batch, bins)
    reference_counts, batch_counts = _bin_counts(reference, batch, bins)
    return float(_psi(reference_counts / reference.size, batch_counts / batch.size))


def psi_test(reference, batch, bins: int = PSI_BINS, draws: int = PSI_NULL_DRAWS) -> tuple[float, float]:
    """PSI of ``batch`` against ``reference`` and its p-value under "same distribution".

    The bin edges are reference rows at the reference's deciles, so for
    continuous scores from one distribution the bin counts depend only on the
    ranks of the pooled rows, and the PSI's law is the same whatever that
    distribution is. That law is simulated rather than read off a chi-square.
    A bin's probability mass is a sum of spacings of uniform order
    statistics: Dirichlet-distributed, with parameters the reference rows the
    bin holds (the lowest bin one more: the spacing below the smallest row;
    the extra bin above an untied maximum, see below, takes the spacing above
    it from the bin of the maximum); the batch counts are multinomial given
    those masses. This is exact for
    continuous scores (ties make it an approximation). The chi-square
    approximation of the PSI (Yurdakul, "Statistical properties of population
    stability index", 2018) holds only with many rows per bin: at 100 batch
    rows it gave 2.1-3.5% false alarms at level 1% (reference sets of 60 and
    1,000 rows), the simulation about its level.

    Parameters
    ----------
    reference : array-like of shape (n,)
        Reference scores (at least one row, finite).
    batch : array-like of shape (m,)
        Batch scores (at least one row, finite).
    bins : int, default=PSI_BINS
        Quantile bins of the reference, at least 2.
    draws : int, default=PSI_NULL_DRAWS
        Simulated batches, at least 1; the p-value's resolution is
        ``1 / (draws + 1)``. The simulation is seeded, so equal inputs give
        equal p-values.

    Returns
    -------
    psi : float
        As :func:`population_stability_index`.
    p_value : float
        Share of simulated same-distribution batches whose PSI is at least ``psi``
        (``(1 + exceedances) / (draws + 1)``).

    Raises
    ------
    ValueError
        If either array is empty, not one-dimensional, or holds NaN or inf, or
        ``bins`` or ``draws`` is out of range.
    """
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise ValueError(f"draws must be a positive integer, got {draws!r}")
    reference, batch = _checked(reference, batch, bins)
    reference_counts, batch_counts = _bin_counts(reference, batch, bins)
    reference_share = reference_counts / reference.size
    observed = float(_psi(reference_share, batch_counts / batch.size))
    spacings = reference_counts.astype(np.float64)
    spacings[0] += 1.0
    if reference_counts[-1] == 0 and reference_counts[-2] == 1:
        # The extra bin above an untied maximum (_bin_counts adds it below ten reference rows)
        # holds the spacing above it, which the maximum's own bin would otherwise hold: a new row
        # exceeds all n reference rows with probability 1 / (n + 1).
        spacings[-2], spacings[-1] = 0.0, 1.0
    rng = np.random.default_rng(_PSI_NULL_SEED)
    # A bin of no spacing gets a sliver of mass: the maximum's alone, or the bin above a tied maximum,
    # where a batch row is all but impossible.
    masses = rng.dirichlet(np.maximum(spacings, 1e-3), size=draws)
    simulated = _psi(reference_share, rng.multinomial(batch.size, masses) / batch.size)
    exceedances = int(np.count_nonzero(simulated >= observed - 1e-12))
    return observed, (1 + exceedances) / (draws + 1)


def flag_count_p_value(n_flagged: int, n_rows: int, threshold) -> float:
    """P-value of ``n_flagged`` alarms among ``n_rows`` rows like the calibration rows (two-sided, or see below).

    A threshold at the ``k``-th smallest of ``n`` calibration scores lets a
    Beta(n + 1 - k, k) share of normal rows through (over calibration sets), so
    the count in a batch is beta-binomial; with ``expected_rate = (n + 1 - k) / (n + 1)``
    its parameters are ``expected_rate * (n + 1)`` and the rest of ``n + 1``.
    ``n`` is the calibration rows the order statistic was taken over (those
    not set aside as contamination).

    When calibration rows were set aside, whether they were anomalies or a
    heavy normal tail is unknown, so the null hypothesis is composite: a
    count is too high only if it is too high even when they were normal (the
    law of :attr:`~anomvae.thresholds.FittedThreshold.upper_expected_rate`:
    the set-aside rows count as alarms among all ``n_all + 1``), and too low
    only if it is too low even when they were anomalies (the law above). With
    none set aside the two laws are one.

    A strategy calibrated on rows that may hold anomalies (``Contamination``,
    ``PyThresh``: ``needs_clean_reference`` is False) states the share of
    rows *like the training rows* it flags, anomalies included; normal rows
    are flagged less often, by an unknown amount. A low count is then no
    evidence of change, and the test is one-sided: only too many alarms are
    significant.
    """
    share = threshold.estimated_contamination or 0.0
    n_all = float(threshold.reference.n)
    n_kept = n_all * (1.0 - share)
    alarms = max(threshold.expected_rate * (n_kept + 1), 1e-9)
    lower = stats.betabinom(n_rows, alarms, max(n_kept + 1 - alarms, 1e-9))
    alarms_upper = alarms + n_all * share
    upper = stats.betabinom(n_rows, alarms_upper, max(n_all + 1 - alarms_upper, 1e-9))
    if not threshold.strategy.needs_clean_reference:
        return float(upper.sf(n_flagged - 1))
    return float(min(1.0, 2 * min(lower.cdf(n_flagged), upper.sf(n_flagged - 1))))


__all__ = [
    "BROAD_SHIFT_CONFIDENCE",
    "PSI_BINS",
    "PSI_MAJOR",
    "PSI_MIN_ROWS",
    "PSI_MODERATE",
    "PSI_NULL_DRAWS",
    "flag_count_p_value",
    "moved_share_lower_bound",
    "population_stability_index",
    "psi_test",
]

"""The statistics :func:`anomvae.monitor` tests a batch with, each calibrated to its level.

On normal batches each raises false alarms at about its level at every batch
size: the PSI only from :data:`PSI_MIN_ROWS` rows and with a chi-square
p-value, the flag count against its exact beta-binomial law.
"""

from __future__ import annotations

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


def psi_p_value(psi: float, n_batch: int, n_reference: int, bins: int) -> float:
    """Approximate p-value of a PSI between two samples of one distribution.

    The PSI is the symmetrised Kullback–Leibler divergence of the binned
    shares; for samples of ``m`` and ``n`` rows, ``PSI / (1/m + 1/n)`` tends to
    a chi-square with ``bins - 1`` degrees of freedom (Yurdakul, "Statistical
    properties of population stability index", 2018).
    """
    return float(stats.chi2.sf(psi / (1.0 / n_batch + 1.0 / n_reference), bins - 1))


def flag_count_p_value(n_flagged: int, n_rows: int, threshold) -> float:
    """Two-sided p-value of ``n_flagged`` alarms among ``n_rows`` normal rows.

    A threshold at the ``k``-th smallest of ``n`` calibration scores lets a
    Beta(n + 1 - k, k) share of normal rows through (over calibration sets), so
    the count in a batch is beta-binomial; with ``expected_rate = (n + 1 - k) / (n + 1)``
    its parameters are ``expected_rate * (n + 1)`` and the rest of ``n + 1``.
    ``n`` is the calibration rows the order statistic was taken over (those
    not set aside as contamination).
    """
    expected = threshold.expected_rate
    n_reference = threshold.reference.n * (1.0 - (threshold.estimated_contamination or 0.0))
    alarms = max(expected * (n_reference + 1), 1e-9)
    law = stats.betabinom(n_rows, alarms, max(n_reference + 1 - alarms, 1e-9))
    return float(min(1.0, 2 * min(law.cdf(n_flagged), law.sf(n_flagged - 1))))


__all__ = [
    "PSI_BINS",
    "PSI_MAJOR",
    "PSI_MIN_ROWS",
    "PSI_MODERATE",
    "flag_count_p_value",
    "population_stability_index",
    "psi_p_value",
]

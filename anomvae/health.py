"""Training-health checks: failures that leave a model fitted but useless."""

from __future__ import annotations

import warnings

import numpy as np


class TrainingHealthWarning(UserWarning):
    """A fitted model shows a known failure mode (collapse, constant scores)."""


def assess(diagnostics: dict[str, float], training_scores: np.ndarray) -> list[str]:
    """Return one readable message per failure found.

    Parameters
    ----------
    diagnostics : dict
        Figures from :meth:`anomvae.scorer.Scorer.diagnostics`.
    training_scores : ndarray
        Anomaly scores of the training rows.
    """
    problems = []
    spread = float(np.std(training_scores))
    if spread <= 1e-8 * max(1.0, float(np.mean(np.abs(training_scores)))):
        problems.append(
            "constant scores: every training row gets the same anomaly score, so the "
            "detector cannot rank anything; check the input for constant columns"
        )
    if diagnostics.get("mean_kl", np.inf) < 1e-2:
        problems.append(
            f"posterior collapse: the mean KL is {diagnostics['mean_kl']:.2g} nats, the latent "
            "code carries no information about the input; lower beta or latent_dim"
        )
    return problems


def report(problems: list[str], estimator_name: str) -> None:
    """Emit one :class:`TrainingHealthWarning` per problem."""
    for problem in problems:
        warnings.warn(f"{estimator_name}: {problem}", TrainingHealthWarning, stacklevel=3)

"""Training-health checks: failures that leave a model fitted but useless."""

from __future__ import annotations

import warnings

import numpy as np

HYPERSPHERE_COLLAPSE_SPREAD = 5e-3
"""Deep SVDD embeddings whose variance per dimension is below this have
collapsed onto one point (Ruff et al., ICML 2018, section 3.3); it is half
the squared minimum centre coordinate, 0.1 ** 2 / 2."""

DISCRIMINATOR_WIN_ACCURACY = 0.99
"""A GAN discriminator this accurate on training rows and generated ones has won
the game outright (Larsen et al. 2016 balance their VAE-GAN to avoid it)."""


MIN_TRAINED_STEPS = 10
"""Weights kept after fewer mini-batch steps than this, while later epochs ran, are barely
trained: on a table under one batch early stopping may keep epoch 1 (14_glass, 92 rows)."""


class TrainingHealthWarning(UserWarning):
    """A fitted model shows a known failure mode (collapse, constant scores)."""


def assess(diagnostics: dict[str, float], training_scores: np.ndarray) -> list[str]:
    """Return one readable message per failure found.

    Parameters
    ----------
    diagnostics : dict
        Figures from :meth:`anomvae.scorer.Scorer.diagnostics`, plus the
        engine's ``kept_epoch`` and ``kept_steps`` (the epoch whose weights
        early stopping kept, and the mini-batch steps up to it, those of the
        fit before an update included) and ``epochs_run``.
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
    kept_steps, kept_epoch = diagnostics.get("kept_steps", np.inf), diagnostics.get("kept_epoch", 0)
    if kept_steps < MIN_TRAINED_STEPS and diagnostics.get("epochs_run", 0) > kept_epoch:
        problems.append(
            f"barely trained: early stopping kept the weights of epoch {kept_epoch} of "
            f"{diagnostics['epochs_run']}, {kept_steps} optimiser step(s) from initialisation, because the "
            "held-out loss rose after it; to train longer on so few rows set patience=None (AnomalyVAE: "
            "or min_batches_per_epoch=15), or fit on more rows"
        )
    if diagnostics.get("embedding_spread", np.inf) < HYPERSPHERE_COLLAPSE_SPREAD:
        problems.append(
            f"hypersphere collapse: the latent embeddings vary by only "
            f"{diagnostics['embedding_spread']:.2g} per dimension, so every row lies at about one "
            "point and its distance to the centre says nothing about it; lower svdd_weight or "
            "raise warmup_epochs"
        )
    if diagnostics.get("discriminator_accuracy", 0.0) >= DISCRIMINATOR_WIN_ACCURACY:
        problems.append(
            f"discriminator wins outright: it tells real rows from generated ones with accuracy "
            f"{diagnostics['discriminator_accuracy']:.3f} (generator loss "
            f"{diagnostics.get('generator_adversarial_loss', float('nan')):.3g} nats), so the "
            "generator no longer gets a useful adversarial signal and the learned similarity is "
            "unreliable; keep balance_margin on, lower learning_rate or fit on more rows"
        )
    return problems


def report(problems: list[str], estimator_name: str) -> None:
    """Emit one :class:`TrainingHealthWarning` per problem."""
    for problem in problems:
        warnings.warn(f"{estimator_name}: {problem}", TrainingHealthWarning, stacklevel=3)

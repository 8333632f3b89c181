"""Training step and scoring rules of the VAE-GAN scorer."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ...scorer import BatchSource, Phase, Scorer
from ...nn.posterior import active_units
from ...nn.vae_losses import gaussian_kl
from .losses import (
    discriminator_loss,
    fake_loss,
    feature_reconstruction_error,
    generator_adversarial_loss,
    input_nll,
    real_loss,
)
from .network import VAEGANNetwork

SCORINGS = ("input", "feature", "discriminator", "combined")

EQUILIBRIUM = 0.68
"""Discriminator loss (nats per row) around which the balance rule keeps the game,
close to ``log 2``, the loss of a discriminator that cannot tell; the authors' value."""


class VAEGANScorer(Scorer):
    """VAE-GAN of Larsen et al. ("Autoencoding beyond pixels using a learned
    similarity metric", ICML 2016) as an anomaly scorer.

    Every training step updates three optimiser groups in turn, each on a
    fresh forward pass, so each update sees the previous one:

    1. discriminator ``D``: minimise ``-L_GAN`` on real rows, reconstructions
       ``G(z)`` and prior samples ``G(z_p)``;
    2. decoder ``G``: minimise ``L_input + gamma * L_llike`` plus the
       (non-saturating) GAN term; ``z`` is computed without gradient, so the
       GAN gradient never reaches the encoder (as in the authors' code);
    3. encoder ``E``: minimise ``KL + L_input + L_llike``.

    ``L_llike`` is the squared error between the discriminator's hidden-layer
    features of ``x`` and of ``G(z)``; ``L_input`` is the VAE's input-space
    negative log-likelihood (:func:`~.losses.input_nll`), which Larsen et al.
    drop but an input-space anomaly score needs: without it the decoder is
    free to change pixels the discriminator's features ignore. The balance rule of the authors' code
    skips the discriminator update while the discriminator is too strong (a
    loss below ``EQUILIBRIUM - balance_margin`` on real or generated rows) and
    the decoder update while it is too weak (above ``EQUILIBRIUM +
    balance_margin``); if both would be skipped, both run.

    Parameters
    ----------
    network : VAEGANNetwork
    gamma : float
        Weight of ``L_llike`` against the GAN term in the decoder's loss.
    likelihood : {"calibrated", "gaussian", "bernoulli"}
        Input-space likelihood of ``L_input`` (see :func:`~.losses.input_nll`);
        the estimator uses Bernoulli for images and the calibrated Gaussian
        for tabular rows, the defaults of :class:`anomvae.AnomalyVAE`.
    balance_margin : float or None
        Half-width of the band around :data:`EQUILIBRIUM`; ``None`` always
        updates both.
    scoring : {"input", "feature", "discriminator", "combined"}
        Anomaly score of a row ``x`` with reconstruction ``x_hat = G(mean)``:
        ``"input"`` is ``||x - x_hat||^2``; ``"feature"`` is
        ``||D_l(x) - D_l(x_hat)||^2``; ``"discriminator"`` is ``-log D(x)``;
        ``"combined"`` is the mean squared error per input dimension plus the
        mean squared error per feature unit (f-AnoGAN's ``izi_f`` score with
        kappa = 1, Schlegl et al. 2019).
    """

    def __init__(self, network: VAEGANNetwork, *, gamma: float, balance_margin: float | None,
                 scoring: str, likelihood: str) -> None:
        super().__init__()
        self.network = network
        self.gamma = gamma
        self.likelihood = likelihood
        self.balance_margin = balance_margin
        self.scoring = scoring

    def optimizer_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        return {
            "encoder": list(self.network.encoder.parameters()),
            "decoder": list(self.network.decoder.parameters()),
            "discriminator": list(self.network.discriminator.parameters()),
        }

    def _balance(self, real_cost: float, fake_cost: float) -> tuple[bool, bool]:
        """``(update_discriminator, update_decoder)`` from the discriminator's losses."""
        if self.balance_margin is None:
            return True, True
        low, high = EQUILIBRIUM - self.balance_margin, EQUILIBRIUM + self.balance_margin
        update_discriminator = not (real_cost < low or fake_cost < low)
        update_decoder = not (real_cost > high or fake_cost > high)
        if not (update_discriminator or update_decoder):
            return True, True
        return update_discriminator, update_decoder

    def training_step(self, batch: Tensor) -> Iterator[Phase]:
        network, discriminator = self.network, self.network.discriminator
        with torch.no_grad():
            mean, log_variance = network.encode(batch)
            z = network.reparameterize(mean, log_variance)
            prior_z = torch.randn_like(z)
            reconstruction, prior_sample = network.decode(z), network.decode(prior_z)

        real_logits, _ = discriminator(batch)
        reconstruction_logits, _ = discriminator(reconstruction)
        prior_logits, _ = discriminator(prior_sample)
        real_cost = real_loss(real_logits).mean()
        fake_cost = 0.5 * (fake_loss(reconstruction_logits) + fake_loss(prior_logits)).mean()
        update_discriminator, update_decoder = self._balance(real_cost.item(), fake_cost.item())
        if update_discriminator:
            loss = discriminator_loss(real_logits, reconstruction_logits, prior_logits).mean()
            yield Phase(loss, optimizer="discriminator")

        if update_decoder:
            reconstruction, prior_sample = network.decode(z), network.decode(prior_z)
            with torch.no_grad():
                real_features = discriminator.features(batch)
            reconstruction_logits, reconstruction_features = discriminator(reconstruction)
            prior_logits, _ = discriminator(prior_sample)
            feature_error = feature_reconstruction_error(real_features, reconstruction_features)
            adversarial = generator_adversarial_loss(reconstruction_logits, prior_logits)
            likelihood_term = input_nll(batch, reconstruction, self.likelihood)
            yield Phase((likelihood_term + self.gamma * feature_error + adversarial).mean(),
                        optimizer="decoder", logs={"generator_adversarial": adversarial.mean()})

        mean, log_variance = network.encode(batch)
        reconstruction = network.decode(network.reparameterize(mean, log_variance))
        with torch.no_grad():
            real_features = discriminator.features(batch)
        feature_error = feature_reconstruction_error(real_features, discriminator.features(reconstruction))
        likelihood_term = input_nll(batch, reconstruction, self.likelihood)
        kl = gaussian_kl(mean, log_variance)
        yield Phase(
            (kl + likelihood_term + feature_error).mean(),
            optimizer="encoder",
            logs={
                "kl": kl.mean(),
                "input_nll": likelihood_term.mean(),
                "feature_error": feature_error.mean(),
                "discriminator_real_loss": real_cost.detach(),
                "discriminator_fake_loss": fake_cost.detach(),
                "discriminator_updated": torch.tensor(float(update_discriminator), device=batch.device),
                "decoder_updated": torch.tensor(float(update_decoder), device=batch.device),
            },
        )

    def reconstruct(self, x: Tensor) -> Tensor:
        """``G(mean)``: the reconstruction decoded from the posterior mean."""
        mean, _ = self.network.encode(x)
        return self.network.decode(mean)

    def validation_loss(self, batch: Tensor) -> Tensor:
        """Input-space negative log-likelihood of the posterior-mean reconstruction plus the KL.

        The adversarial losses chase a moving target and say little about
        progress; this pair does not depend on the discriminator and is the
        part of the training objective the ``"input"`` score measures.
        """
        mean, log_variance = self.network.encode(batch)
        error = input_nll(batch, self.network.decode(mean), self.likelihood)
        return (error + gaussian_kl(mean, log_variance)).mean()

    def anomaly_score(self, batch: Tensor) -> Tensor:
        discriminator = self.network.discriminator
        if self.scoring == "discriminator":
            logits, _ = discriminator(batch)
            return real_loss(logits).double()
        reconstruction = self.reconstruct(batch)
        input_error = (batch - reconstruction).pow(2).reshape(len(batch), -1).double()
        if self.scoring == "input":
            return input_error.sum(dim=1)
        feature_error = (discriminator.features(batch) - discriminator.features(reconstruction)).pow(2)
        feature_error = feature_error.double()
        if self.scoring == "feature":
            return feature_error.sum(dim=1)
        return input_error.mean(dim=1) + feature_error.mean(dim=1)

    def feature_scores(self, batch: Tensor) -> Tensor:
        """Squared input-space error per feature (or pixel) of ``G(mean)``.

        The feature-space and discriminator scores do not decompose over input
        features, so every ``scoring`` reports this decomposition; it sums to
        the ``"input"`` score.
        """
        return (batch - self.reconstruct(batch)).pow(2)

    def diagnostics(self, batches: BatchSource) -> dict[str, float]:
        """Mean KL, active latent units and how decisively the discriminator wins.

        ``discriminator_accuracy`` is the share of correct real/generated
        decisions on training rows (weight 1/2), their sampled reconstructions
        and as many prior samples (1/4 each); ``generator_adversarial_loss``
        is the decoder's non-saturating GAN loss on the same samples. An
        accuracy near 1 with a large generator loss means the discriminator
        won outright (see ``anomvae.health``).
        """
        network, discriminator = self.network, self.network.discriminator
        totals = dict.fromkeys(("kl", "accuracy", "adversarial"), 0.0)
        rows, means = 0, []
        with torch.no_grad():
            for batch in batches():
                mean, log_variance = network.encode(batch)
                z = network.reparameterize(mean, log_variance)
                real_logits, _ = discriminator(batch)
                reconstruction_logits, _ = discriminator(network.decode(z))
                prior_logits, _ = discriminator(network.decode(torch.randn_like(z)))
                correct = (0.5 * (real_logits > 0).float() + 0.25 * (reconstruction_logits < 0).float()
                           + 0.25 * (prior_logits < 0).float())
                totals["kl"] += gaussian_kl(mean, log_variance).sum().item()
                totals["accuracy"] += correct.sum().item()
                totals["adversarial"] += generator_adversarial_loss(
                    reconstruction_logits, prior_logits).sum().item()
                rows += len(batch)
                means.append(mean)
        active = active_units(torch.cat(means))
        return {
            "mean_kl": totals["kl"] / rows,
            "active_latent_units": float(active),
            "discriminator_accuracy": totals["accuracy"] / rows,
            "generator_adversarial_loss": totals["adversarial"] / rows,
        }

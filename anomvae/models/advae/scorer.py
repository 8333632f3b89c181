"""Two-step self-adversarial training and the scoring rule of adVAE."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ...scorer import BatchSource, Phase, Scorer
from ...nn.posterior import active_units
from ...nn.vae_losses import gaussian_kl
from .losses import encoder_kl, hinge, squared_error, transformer_kl
from .network import AdVAENetwork


class AdVAEScorer(Scorer):
    """adVAE (Wang et al., Knowledge-Based Systems 190:105187, 2020).

    A Gaussian transformer ``T`` turns each normal posterior into a nearby
    "abnormal" Gaussian. Every mini-batch runs the paper's two steps, each
    on a fresh forward pass:

    1. ``E`` frozen, ``G`` and ``T`` updated on ``L_T + lam * L_G`` with
       ``L_G = ||x - x_r||^2 + gamma*KL(E(x_r)) + [m_x - ||x_r - x_Tr||^2]+
       + gamma*[m_z - KL(E(x_Tr))]+``: ``G`` reconstructs, makes its
       reconstructions look normal to ``E`` and its transformed samples
       ``x_Tr`` look abnormal, while ``T`` stays close to the posterior;
    2. ``G`` and ``T`` frozen, ``E`` updated on ``||x - x_r||^2 +
       lam*KL(E(x)) + gamma*[m_z - KL(E(x_r))]+ + gamma*[m_z - KL(E(x_Tr))]+``:
       ``E`` learns to give generated rows a KL of at least ``m_z``.

    The KL is the ordinary non-negative one (the paper prints it with the
    wrong sign). In step 2 the generated rows enter the hinge terms as
    constants, so ``E`` is trained as a discriminator of fixed samples, as in
    IntroVAE (Huang et al. 2018) from which the scheme derives.

    Parameters
    ----------
    network : AdVAENetwork
    latent_dim : int
    gamma : float
        Weight of the KL hinge terms.
    lam : float
        ``lambda`` of the paper: weight of ``L_G`` in step 1 and of the KL in step 2.
    m_x : float
        Margin on ``||x_r - x_Tr||^2``.
    m_z : float
        Margin on the KL of generated rows.
    n_samples : int
        Latent draws L averaged in the score; fixed at construction.
    """

    def __init__(self, network: AdVAENetwork, *, latent_dim: int, gamma: float, lam: float,
                 m_x: float, m_z: float, n_samples: int) -> None:
        super().__init__()
        self.network = network
        self.gamma = gamma
        self.lam = lam
        self.m_x = m_x
        self.m_z = m_z
        self.register_buffer("score_noise", torch.randn(n_samples, latent_dim))

    def optimizer_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        return {
            "generator": [*self.network.decoder.parameters(), *self.network.transformer.parameters()],
            "encoder": list(self.network.encoder.parameters()),
        }

    def training_step(self, batch: Tensor) -> Iterator[Phase]:
        network, encoder = self.network, self.network.encoder

        with torch.no_grad():
            mean, log_variance = network.encode(batch)
        transformed_mean, transformed_log_variance = network.transformer(mean, log_variance)
        reconstruction = network.decode(network.reparameterize(mean, log_variance))
        transformed = network.decode(network.reparameterize(transformed_mean, transformed_log_variance))
        generator_loss = (
            squared_error(batch, reconstruction)
            + self.gamma * encoder_kl(encoder, reconstruction)
            + hinge(self.m_x, squared_error(reconstruction, transformed))
            + self.gamma * hinge(self.m_z, encoder_kl(encoder, transformed))
        )
        prior_gap = transformer_kl(mean, log_variance, transformed_mean, transformed_log_variance)
        yield Phase(
            (prior_gap + self.lam * generator_loss).mean(),
            optimizer="generator",
            logs={"transformer_kl": prior_gap.mean(), "generator_loss": generator_loss.mean()},
        )

        mean, log_variance = network.encode(batch)
        reconstruction = network.decode(network.reparameterize(mean, log_variance))
        with torch.no_grad():
            transformed_mean, transformed_log_variance = network.transformer(mean, log_variance)
            transformed = network.decode(
                network.reparameterize(transformed_mean, transformed_log_variance)
            )
        error = squared_error(batch, reconstruction)
        kl = gaussian_kl(mean, log_variance)
        kl_reconstructed = encoder_kl(encoder, reconstruction.detach())
        kl_transformed = encoder_kl(encoder, transformed)
        loss = (
            error + self.lam * kl
            + self.gamma * hinge(self.m_z, kl_reconstructed)
            + self.gamma * hinge(self.m_z, kl_transformed)
        )
        yield Phase(
            loss.mean(),
            optimizer="encoder",
            logs={
                "reconstruction": error.mean(),
                "kl": kl.mean(),
                "kl_reconstructed": kl_reconstructed.mean(),
                "kl_transformed": kl_transformed.mean(),
            },
        )

    def validation_loss(self, batch: Tensor) -> Tensor:
        """Squared error of the posterior-mean reconstruction plus ``lam`` times the KL."""
        mean, log_variance = self.network.encode(batch)
        error = squared_error(batch, self.network.decode(mean))
        return (error + self.lam * gaussian_kl(mean, log_variance)).mean()

    def mean_reconstruction(self, batch: Tensor) -> Tensor:
        """Average of the decoded samples ``G(mean + sigma * eps_l)`` over the fixed draws."""
        mean, log_variance = self.network.encode(batch)
        total = torch.zeros_like(batch)
        for noise in self.score_noise:
            total += self.network.decode(self.network.reparameterize(mean, log_variance,
                                                                     noise.expand_as(mean)))
        return total / len(self.score_noise)

    def anomaly_score(self, batch: Tensor) -> Tensor:
        """Squared error between ``x`` and its mean reconstruction (the paper's score)."""
        return self.feature_scores(batch).reshape(len(batch), -1).double().sum(dim=1)

    def feature_scores(self, batch: Tensor) -> Tensor:
        """Squared error per feature (or pixel) of the mean reconstruction; sums to the score."""
        return (batch - self.mean_reconstruction(batch)).pow(2)

    def diagnostics(self, batches: BatchSource) -> dict[str, float]:
        """Mean KL of the training rows and of their transformed samples, and active units.

        ``mean_kl_transformed`` well above ``mean_kl`` shows the encoder tells
        the transformer's pseudo-anomalies from normal rows.
        """
        network = self.network
        kl_total, transformed_total, rows, means = 0.0, 0.0, 0, []
        with torch.no_grad():
            for batch in batches():
                mean, log_variance = network.encode(batch)
                transformed = network.decode(
                    network.reparameterize(*network.transformer(mean, log_variance))
                )
                kl_total += gaussian_kl(mean, log_variance).sum().item()
                transformed_total += encoder_kl(network.encoder, transformed).sum().item()
                rows += len(batch)
                means.append(mean)
        active = active_units(torch.cat(means))
        return {
            "mean_kl": kl_total / rows,
            "mean_kl_transformed": transformed_total / rows,
            "active_latent_units": float(active),
        }

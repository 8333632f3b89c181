"""The adVAE networks: encoder, decoder and Gaussian transformer."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...nn.blocks import LOGVAR_RANGE
from ...nn.vae_network import VAENetwork


class GaussianTransformer(nn.Module):
    """Map a posterior ``(mean, log_variance)`` to an "abnormal" Gaussian.

    As in the authors' code, ``concat(mean, log_variance)`` passes through two
    sigmoid layers of width ``2 * latent_dim``; a linear head (our choice: a
    final sigmoid would confine the abnormal mean to (0, 1)) gives
    ``(mean_T, log_variance_T)``.
    """

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        width = 2 * latent_dim
        self.layers = nn.Sequential(
            nn.Linear(width, width), nn.Sigmoid(),
            nn.Linear(width, width), nn.Sigmoid(),
            nn.Linear(width, width),
        )

    def forward(self, mean: Tensor, log_variance: Tensor) -> tuple[Tensor, Tensor]:
        transformed_mean, transformed_log_variance = self.layers(
            torch.cat([mean, log_variance], dim=1)
        ).chunk(2, dim=1)
        return transformed_mean, transformed_log_variance.clamp(*LOGVAR_RANGE)


class AdVAENetwork(VAENetwork):
    """Self-adversarial VAE (Wang et al., "adVAE: A self-adversarial variational
    autoencoder with Gaussian anomaly prior knowledge for anomaly detection",
    Knowledge-Based Systems 190, 2020).

    Parameters
    ----------
    encoder : nn.Module
        Returns ``(mean, log_variance)`` of the posterior.
    decoder : nn.Module
        Maps latent codes to outputs in input units.
    transformer : GaussianTransformer
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, transformer: GaussianTransformer) -> None:
        super().__init__(encoder, decoder)
        self.transformer = transformer

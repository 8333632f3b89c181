"""The VAE network: a Gaussian encoder and a decoder, nothing about training."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class VAENetwork(nn.Module):
    """Variational autoencoder (Kingma & Welling, "Auto-Encoding Variational
    Bayes", ICLR 2014).

    Parameters
    ----------
    encoder : nn.Module
        Returns ``(mean, log_variance)`` of the posterior.
    decoder : nn.Module
        Maps latent codes to reconstructions (or Bernoulli logits).
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior ``(mean, log_variance)`` of ``x``, each of shape ``(n, latent)``."""
        return self.encoder(x)

    @staticmethod
    def reparameterize(mean: Tensor, log_variance: Tensor, noise: Tensor | None = None) -> Tensor:
        """Sample ``z = mean + sigma * noise``; fresh standard noise when ``noise`` is None."""
        if noise is None:
            noise = torch.randn_like(mean)
        return mean + torch.exp(0.5 * log_variance) * noise

    def decode(self, z: Tensor) -> Tensor:
        """Decoder output for codes ``z`` of shape ``(n, latent)``: reconstructions, or logits for a Bernoulli decoder."""
        return self.decoder(z)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(decode(z), mean, log_variance)`` for one reparameterised sample ``z`` per row."""
        mean, log_variance = self.encode(x)
        return self.decode(self.reparameterize(mean, log_variance)), mean, log_variance

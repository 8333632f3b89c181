"""The conditional VAE network: encoder q(z | x, c) and decoder p(x | z, c)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class ConditionalVAENetwork(nn.Module):
    """Conditional variational autoencoder (Sohn, Lee & Yan, "Learning
    Structured Output Representation using Deep Conditional Generative
    Models", NeurIPS 2015).

    Both networks see the context vector ``c`` beside their usual input, so
    the latent code only has to carry what the context does not explain.

    Parameters
    ----------
    encoder : nn.Module
        Maps ``concat(x, c)`` to the posterior ``(mean, log_variance)``.
    decoder : nn.Module
        Maps ``concat(z, c)`` to the reconstruction of ``x``.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def encode(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior ``(mean, log_variance)`` of ``x`` given ``c``, each ``(n, latent)``."""
        return self.encoder(torch.cat([x, c], dim=1))

    def decode(self, z: Tensor, c: Tensor) -> Tensor:
        """Reconstruction of ``x`` from codes ``z`` given ``c``."""
        return self.decoder(torch.cat([z, c], dim=1))

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(decode(z, c), mean, log_variance)`` for one reparameterised sample ``z`` per row."""
        mean, log_variance = self.encode(x, c)
        z = mean + torch.exp(0.5 * log_variance) * torch.randn_like(mean)
        return self.decode(z, c), mean, log_variance

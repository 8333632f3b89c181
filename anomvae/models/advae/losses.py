"""adVAE loss terms as plain functions of tensors (Wang et al., KBS 2020).

Each returns one value per row; the scorer averages over the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...nn.vae_losses import gaussian_kl, sum_per_row


def squared_error(a: Tensor, b: Tensor) -> Tensor:
    """``||a - b||^2`` per row."""
    return sum_per_row((a - b).pow(2))


def hinge(margin: float, value: Tensor) -> Tensor:
    """``[margin - value]+``: zero once ``value`` reaches ``margin``."""
    return torch.relu(margin - value)


def transformer_kl(mean: Tensor, log_variance: Tensor, transformed_mean: Tensor,
                   transformed_log_variance: Tensor) -> Tensor:
    """``L_T = KL(N(mean, sigma^2) || N(mean_T, sigma_T^2))`` summed over latent dimensions."""
    variance_ratio = (log_variance - transformed_log_variance).exp()
    mean_term = (mean - transformed_mean).pow(2) / transformed_log_variance.exp()
    return 0.5 * (variance_ratio + mean_term - 1.0 - log_variance + transformed_log_variance).sum(dim=1)


def encoder_kl(encoder, x: Tensor) -> Tensor:
    """``KL(E(x))``: the KL of the encoder's posterior for ``x`` from the prior."""
    return gaussian_kl(*encoder(x))

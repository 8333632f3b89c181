"""What every VAE-based scorer reads off its posterior: decoded means, KL and active units.

Shared by the model folders, which import it from here and never from each
other.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..scorer import BatchSource
from .vae_losses import gaussian_kl
from .vae_network import VAENetwork

ACTIVE_UNIT_VARIANCE = 1e-2
"""A latent unit is active when its posterior mean varies across rows by more
than this variance (Burda et al., "Importance Weighted Autoencoders", ICLR 2016)."""


def active_units(means: Tensor) -> int:
    """Number of active latent units among posterior means of shape ``(n, latent)``.

    A unit is active when the variance of its posterior mean across the rows
    exceeds :data:`ACTIVE_UNIT_VARIANCE`; with fewer than two rows none is.
    """
    return int((means.var(dim=0) > ACTIVE_UNIT_VARIANCE).sum().item()) if len(means) > 1 else 0


def decode_in_input_units(network: VAENetwork, z: Tensor, likelihood: str) -> Tensor:
    """Decoder output for codes ``z`` in input units (probabilities for Bernoulli)."""
    output = network.decode(z)
    return torch.sigmoid(output) if likelihood == "bernoulli" else output


def codes_and_errors(network: VAENetwork, x: Tensor, likelihood: str) -> tuple[Tensor, Tensor]:
    """Posterior means of ``x`` and per-row squared errors of their decoding, from one encoder pass.

    Returns
    -------
    codes : Tensor of shape (n, latent)
    errors : Tensor of shape (n,), float64
    """
    mean, _ = network.encode(x)
    reconstruction = decode_in_input_units(network, mean, likelihood)
    return mean, (x - reconstruction).pow(2).reshape(len(x), -1).sum(dim=1, dtype=torch.float64)


def decoded_mean(network: VAENetwork, x: Tensor, likelihood: str) -> Tensor:
    """Reconstruction of ``x`` decoded from its posterior mean, in input units."""
    return decode_in_input_units(network, network.encode(x)[0], likelihood)


def posterior_diagnostics(network: VAENetwork, batches: BatchSource) -> tuple[dict[str, float], Tensor]:
    """Mean KL per row, active latent units, and the posterior means themselves.

    A latent unit is active when its posterior mean varies across rows by a
    variance above 0.01 (Burda et al., ICLR 2016); none active, or a mean KL
    near 0, is posterior collapse.
    """
    kl_total, means = 0.0, []
    with torch.no_grad():
        for batch in batches():
            mean, log_variance = network.encode(batch)
            kl_total += gaussian_kl(mean, log_variance).sum().item()
            means.append(mean)
    means = torch.cat(means)
    return {"mean_kl": kl_total / len(means), "active_latent_units": float(active_units(means))}, means

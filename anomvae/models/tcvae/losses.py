"""The KL term of the ELBO split into mutual information, total correlation and dimension-wise KL."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def gaussian_log_density(z: Tensor, mean: Tensor, log_variance: Tensor) -> Tensor:
    """Element-wise log N(z; mean, exp(log_variance))."""
    return -0.5 * (math.log(2 * math.pi) + log_variance + (z - mean).pow(2) * torch.exp(-log_variance))


def kl_decomposition(z: Tensor, mean: Tensor, log_variance: Tensor, n_train: int) -> tuple[Tensor, Tensor, Tensor]:
    """Per-row index-code mutual information, total correlation and dimension-wise KL.

    Chen, Li, Grosse & Duvenaud, "Isolating Sources of Disentanglement in
    Variational Autoencoders" (NeurIPS 2018), with their minibatch-weighted
    sampling estimate of the aggregate posterior q(z) from a batch of M rows
    out of ``n_train``: ``log q(z_i) ~ logsumexp_j log q(z_i | x_j) - log(N M)``.
    The three terms sum to the estimated KL(q(z|x) || p(z)) with a standard
    normal prior.

    Parameters
    ----------
    z : Tensor of shape (M, latent)
        One posterior sample per row.
    mean, log_variance : Tensor of shape (M, latent)
    n_train : int
        Training rows N.

    Returns
    -------
    mutual_information, total_correlation, dimension_wise_kl : Tensor of shape (M,)
    """
    log_q_z_given_x = gaussian_log_density(z, mean, log_variance).sum(dim=1)
    log_p_z = gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z)).sum(dim=1)
    pairwise = gaussian_log_density(z[:, None, :], mean[None, :, :], log_variance[None, :, :])
    log_norm = math.log(max(n_train, len(z)) * len(z))
    log_q_z = torch.logsumexp(pairwise.sum(dim=2), dim=1) - log_norm
    log_q_z_product = (torch.logsumexp(pairwise, dim=1) - log_norm).sum(dim=1)
    return log_q_z_given_x - log_q_z, log_q_z - log_q_z_product, log_q_z_product - log_p_z

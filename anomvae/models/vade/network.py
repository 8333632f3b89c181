"""The Gaussian-mixture prior of VaDE: weights, means and diagonal variances, nothing about training."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

MIN_COMPONENT_VARIANCE = 1e-3
"""Floor of every component variance, in latent units: a component that
shrinks onto a few codes would otherwise make ``log p(z)`` arbitrarily large."""

MIN_WEIGHT = 1e-6
"""Floor of every component weight, so that ``log pi_k`` stays finite when a
component loses all its rows."""


class GaussianMixturePrior(nn.Module):
    """p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2)), the prior of VaDE.

    Jiang, Zheng, Tan, Tang & Zhou, "Variational Deep Embedding: An
    Unsupervised and Generative Approach to Clustering" (IJCAI 2017). The
    parameters are buffers, not trained by gradient: :meth:`assign` sets
    them (from EM, see :mod:`~.mixture_fit`), flooring the variances at
    :data:`MIN_COMPONENT_VARIANCE` and the weights above zero, so every
    density below is finite. It starts as ``n_components`` copies of the
    standard normal.

    Parameters
    ----------
    n_components : int
        K, the number of components (cohorts).
    latent_dim : int
        D, the dimension of the codes z.
    """

    def __init__(self, n_components: int, latent_dim: int) -> None:
        super().__init__()
        self.register_buffer("log_weights", torch.full((n_components,), -math.log(n_components)))
        self.register_buffer("means", torch.zeros(n_components, latent_dim))
        self.register_buffer("log_variances", torch.zeros(n_components, latent_dim))

    def log_joint(self, z: Tensor) -> Tensor:
        """``log pi_k + log N(z; mu_k, sigma_k^2)`` per row and component, shape ``(n, K)``."""
        squared = (z[:, None, :] - self.means[None]).pow(2) * torch.exp(-self.log_variances)[None]
        log_normal = -0.5 * (math.log(2 * math.pi) + self.log_variances[None] + squared).sum(dim=2)
        return self.log_weights[None] + log_normal

    def log_density(self, z: Tensor) -> Tensor:
        """``log p(z)`` by log-sum-exp over the components, shape ``(n,)``."""
        return torch.logsumexp(self.log_joint(z), dim=1)

    def log_density_bound(self) -> Tensor:
        """An upper bound of ``log p(z)`` over all z: ``log sum_k pi_k N(mu_k; mu_k, sigma_k^2)``.

        Each component density is largest at its mean, so ``p(z)`` never
        exceeds the weighted sum of those peaks; ``bound - log p(z) >= 0``.
        """
        peaks = -0.5 * (math.log(2 * math.pi) + self.log_variances).sum(dim=1)
        return torch.logsumexp(self.log_weights + peaks, dim=0)

    def responsibilities(self, z: Tensor) -> Tensor:
        """``p(c = k | z)``, rows summing to 1, shape ``(n, K)``."""
        return torch.softmax(self.log_joint(z), dim=1)

    @torch.no_grad()
    def assign(self, weights: np.ndarray, means: np.ndarray, variances: np.ndarray) -> None:
        """Set the mixture in place.

        Parameters
        ----------
        weights : ndarray of shape (K,)
        means, variances : ndarray of shape (K, D)
        """
        def as_tensor(values: np.ndarray) -> Tensor:
            return torch.as_tensor(values, dtype=self.means.dtype, device=self.means.device)

        weights = as_tensor(weights).clamp_min(MIN_WEIGHT)
        self.log_weights.copy_(torch.log(weights / weights.sum()))
        self.means.copy_(as_tensor(means))
        self.log_variances.copy_(torch.log(as_tensor(variances).clamp_min(MIN_COMPONENT_VARIANCE)))

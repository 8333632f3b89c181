"""The KL term of the VaDE evidence lower bound."""

from __future__ import annotations

from torch import Tensor

from .network import GaussianMixturePrior


def mixture_kl(z: Tensor, mean: Tensor, log_variance: Tensor, prior: GaussianMixturePrior) -> Tensor:
    """Per-row KL(q(z, c | x) || p(z, c)) of VaDE, shape ``(n,)``.

    Jiang et al., "Variational Deep Embedding" (IJCAI 2017), eq. (12)-(16):
    with q(z, c | x) = q(z | x) q(c | x) and the responsibilities
    ``gamma_k = q(c = k | x)`` taken as ``p(c = k | z)`` at the sampled code,

    ``sum_k gamma_k KL(N(mean, var) || N(mu_k, sigma_k^2)) + KL(gamma || pi)``,

    both in closed form; the responsibilities come from a log-softmax, so no
    term overflows however far a code lies from every component. The
    mixture's parameters are buffers here: its gradient reaches the networks
    only (the mixture is set by :func:`~.mixture_fit.mixture_step`).

    Parameters
    ----------
    z : Tensor of shape (n, D)
        One posterior sample per row.
    mean, log_variance : Tensor of shape (n, D)
        The posterior q(z | x).
    prior : GaussianMixturePrior
    """
    log_joint = prior.log_joint(z)
    log_gamma = log_joint - log_joint.logsumexp(dim=1, keepdim=True)
    gamma = log_gamma.exp()
    component_log_variances = prior.log_variances[None]
    variance_ratio = (log_variance[:, None, :] - component_log_variances).exp()
    distance = (mean[:, None, :] - prior.means[None]).pow(2) * (-component_log_variances).exp()
    gaussian_kl = 0.5 * (variance_ratio + distance - 1.0 - (log_variance[:, None, :] - component_log_variances)).sum(dim=2)
    return (gamma * (gaussian_kl + log_gamma - prior.log_weights[None])).sum(dim=1)

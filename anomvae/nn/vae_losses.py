"""VAE loss terms as plain functions of tensors; each returns one value per row."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def gaussian_kl(mean: Tensor, log_variance: Tensor) -> Tensor:
    """KL(N(mean, sigma^2) || N(0, I)) summed over latent dimensions, shape ``(n,)``."""
    return 0.5 * (mean.pow(2) + log_variance.exp() - 1.0 - log_variance).sum(dim=1)


MIN_NOISE_VARIANCE = 1e-3
"""Floor of the calibrated decoder variance (in units of the scaled inputs), so
that a near-perfect fit cannot make the likelihood arbitrarily sharp."""


def reconstruction_nll(x: Tensor, output: Tensor, likelihood: str,
                       variance: Tensor | float | None = None) -> Tensor:
    """Negative log-likelihood of ``x`` under the decoder output, per element.

    ``"gaussian"``: unit-variance Gaussian, ``0.5 * (x - output)^2`` (the
    constant ``0.5 * log(2 pi)`` per element is dropped). ``"calibrated"``:
    Gaussian with the shared decoder ``variance``,
    ``0.5 * (x - output)^2 / variance + 0.5 * log(variance)``.
    ``"bernoulli"``: ``output`` are logits and ``x`` lies in [0, 1].
    """
    if likelihood == "bernoulli":
        return F.binary_cross_entropy_with_logits(output, x, reduction="none")
    if likelihood == "calibrated":
        variance = torch.as_tensor(variance, dtype=x.dtype, device=x.device)
        return 0.5 * (x - output).pow(2) / variance + 0.5 * variance.log()
    return 0.5 * (x - output).pow(2)


def calibrated_gaussian_nll(x: Tensor, output: Tensor) -> tuple[Tensor, Tensor]:
    """Per-row negative log-likelihood under the calibrated Gaussian decoder, and its variance.

    Rybkin, Daniilidis & Levine, "Simple and Effective VAE Training with
    Calibrated Decoders" (ICML 2021): the decoder's shared variance is set to
    its maximum-likelihood value, the batch's mean squared error (floored at
    :data:`MIN_NOISE_VARIANCE`). With the variance at its optimum, the
    gradient of the negative ELBO with respect to the networks is the same
    whether or not the variance is differentiated, so it is computed without
    gradient. The calibrated decoder keeps the KL term in proportion to what
    the decoder can still explain, which prevents the posterior collapse a
    unit-variance decoder suffers on standardised tabular data.

    Per row this is ``sum((x - output)^2) / (2 variance) + 0.5 * D * log(variance)``
    with ``D`` values per row, :func:`reconstruction_nll` summed over the row,
    in fewer operations: this runs in every training step.

    Returns
    -------
    nll : Tensor of shape (n,)
    variance : Tensor of shape ()
        Detached.
    """
    squared = (x - output).pow(2)
    with torch.no_grad():
        variance = squared.mean().clamp_min(MIN_NOISE_VARIANCE)
        offset = 0.5 * squared[0].numel() * variance.log()
    return sum_per_row(squared) * (0.5 / variance) + offset, variance


def row_reconstruction_nll(x: Tensor, output: Tensor, likelihood: str) -> tuple[Tensor, Tensor | None]:
    """Per-row reconstruction negative log-likelihood during training, shape ``(n,)``.

    ``"calibrated"`` is :func:`calibrated_gaussian_nll`, whose fitted
    variance is returned beside it; the other likelihoods are
    :func:`reconstruction_nll` summed over each row, with ``None``.
    """
    if likelihood == "calibrated":
        return calibrated_gaussian_nll(x, output)
    return sum_per_row(reconstruction_nll(x, output, likelihood)), None


def trimmed_mean(values: Tensor, fraction: float) -> Tensor:
    """Mean of per-row losses after leaving out the largest ``fraction`` of them.

    The trimmed loss of Shen & Sanghavi, "Learning with Bad Training Data via
    Iterative Trimmed Loss Minimization" (ICML 2019): rows the model explains
    worst in a batch, which in contaminated training data are mostly the
    anomalies, contribute no gradient, so the model does not learn to
    reconstruct them (as in the loss-based filtering of Qiu et al., "Latent
    Outlier Exposure for Anomaly Detection with Contaminated Data", ICML 2022).

    Parameters
    ----------
    values : Tensor of shape (n,)
    fraction : float in [0, 1)
        ``floor(fraction * n)`` rows are left out; 0 gives the plain mean.

    Returns
    -------
    Tensor of shape ()
    """
    keep = len(values) - trimmed_rows(fraction, len(values))
    if keep == len(values):
        return values.mean()
    return values.topk(keep, largest=False, sorted=False).values.mean()


def calibrated_variance(squared_errors: list[Tensor]) -> Tensor:
    """The calibrated decoder's variance over many rows: the mean of ``squared_errors``, floored.

    What :func:`calibrated_gaussian_nll` sets from one training batch, taken
    instead over the training rows once training ends, so that the ``"elbo"``
    and ``"iwae"`` scores do not hang on the last batch (which may be one row).

    Parameters
    ----------
    squared_errors : list of Tensor
        Squared reconstruction errors of chunks of rows, any shapes.

    Returns
    -------
    Tensor of shape (1,), float32
    """
    total = sum(float(part.double().sum()) for part in squared_errors)
    count = sum(part.numel() for part in squared_errors)
    return torch.tensor([max(total / max(count, 1), MIN_NOISE_VARIANCE)])


def trimmed_rows(fraction: float, n: int) -> int:
    """``floor(fraction * n)``, the rows a trimmed loss leaves out, robust to the float product's rounding
    (``0.29 * 100`` is ``28.999999999999996``: 29 rows, not 28)."""
    return int(math.floor(fraction * n + 1e-9))


def sum_per_row(values: Tensor) -> Tensor:
    """Sum every dimension but the first."""
    return values.reshape(len(values), -1).sum(dim=1)


def negative_elbo(x: Tensor, output: Tensor, mean: Tensor, log_variance: Tensor,
                  likelihood: str, beta: float = 1.0, variance: Tensor | None = None) -> Tensor:
    """beta-weighted negative evidence lower bound per row (Higgins et al. 2017)."""
    return sum_per_row(reconstruction_nll(x, output, likelihood, variance)) + beta * gaussian_kl(
        mean, log_variance
    )


def importance_weighted_nll(x: Tensor, decode, mean: Tensor, log_variance: Tensor,
                            noise: Tensor, likelihood: str,
                            variance: Tensor | None = None) -> Tensor:
    """Importance-weighted estimate of ``-log p(x)`` (Burda et al., ICLR 2016).

    Parameters
    ----------
    x : Tensor of shape (n, ...)
    decode : callable
        Decoder mapping latent codes to outputs.
    mean, log_variance : Tensor of shape (n, latent)
    noise : Tensor of shape (K, latent)
        Standard-normal draws shared by every row, which makes the estimate
        deterministic and independent of batching.
    likelihood : {"gaussian", "calibrated", "bernoulli"}
    variance : Tensor, optional
        Decoder variance of the ``"calibrated"`` likelihood.

    Returns
    -------
    Tensor of shape (n,)
        ``-log (1/K sum_k p(x|z_k) p(z_k) / q(z_k|x))``, up to the dropped
        Gaussian constant.
    """
    n, k = len(x), len(noise)
    std = torch.exp(0.5 * log_variance)
    z = mean[:, None, :] + std[:, None, :] * noise[None, :, :]
    output = decode(z.reshape(n * k, -1)).reshape(n, k, *x.shape[1:])
    log_likelihood = -sum_per_row(
        reconstruction_nll(x[:, None].expand_as(output), output, likelihood, variance).reshape(n * k, -1)
    ).reshape(n, k)
    log_prior = -0.5 * z.pow(2).sum(dim=2)
    log_posterior = -0.5 * (noise.pow(2)[None] + log_variance[:, None, :]).sum(dim=2)
    log_weights = log_likelihood + log_prior - log_posterior
    return -(torch.logsumexp(log_weights, dim=1) - math.log(k))

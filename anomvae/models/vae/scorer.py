"""Training step and scoring rules of the beta-VAE scorer."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ...scorer import BatchSource, Phase, Scorer
from .losses import (
    calibrated_variance,
    gaussian_kl,
    importance_weighted_nll,
    negative_elbo,
    reconstruction_nll,
    sum_per_row,
)
from .network import VAENetwork

SCORINGS = ("reconstruction", "elbo", "iwae")


def decoded_mean(network: VAENetwork, x: Tensor, likelihood: str) -> Tensor:
    """Reconstruction of ``x`` decoded from its posterior mean, in input units."""
    mean, _ = network.encode(x)
    output = network.decode(mean)
    return torch.sigmoid(output) if likelihood == "bernoulli" else output


class VAEScorer(Scorer):
    """beta-VAE trained on the negative ELBO (Higgins et al., ICLR 2017).

    Parameters
    ----------
    network : VAENetwork
    beta : float
        Weight of the KL term; 1 is the plain VAE.
    likelihood : {"gaussian", "calibrated", "bernoulli"}
        ``"calibrated"`` is a Gaussian whose shared variance is set to the
        batch's mean squared error at every step (Rybkin et al., ICML 2021);
        the last training value is kept for the ``"elbo"`` and ``"iwae"`` scores.
    scoring : {"reconstruction", "elbo", "iwae"}
        ``"reconstruction"``: squared error of the reconstruction decoded from
        the posterior mean. ``"elbo"``: negative ELBO averaged over the fixed
        noise draws. ``"iwae"``: importance-weighted bound over the same draws.
    n_samples : int
        Number K of fixed latent noise draws for ``"elbo"`` and ``"iwae"``.
    """

    def __init__(self, network: VAENetwork, *, latent_dim: int, beta: float, likelihood: str,
                 scoring: str, n_samples: int) -> None:
        super().__init__()
        self.network = network
        self.beta = beta
        self.likelihood = likelihood
        self.scoring = scoring
        self.register_buffer("score_noise", torch.randn(n_samples, latent_dim))
        self.register_buffer("noise_variance", torch.ones(1))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Models saved before the calibrated decoder carry no variance; 1 gives
        # back exactly the unit-variance Gaussian they were trained with.
        state_dict.setdefault(prefix + "noise_variance", torch.ones(1))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def elbo_terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per-row reconstruction NLL and KL on one reparameterised sample."""
        output, mean, log_variance = self.network(x)
        variance = None
        if self.likelihood == "calibrated":
            variance = calibrated_variance(x, output)
            if self.training:
                self.noise_variance.copy_(variance)
        return (
            sum_per_row(reconstruction_nll(x, output, self.likelihood, variance)),
            gaussian_kl(mean, log_variance),
        )

    def training_step(self, batch: Tensor) -> Iterator[Phase]:
        reconstruction, kl = self.elbo_terms(batch)
        loss = (reconstruction + self.beta * kl).mean()
        yield Phase(loss, logs={"reconstruction": reconstruction.mean(), "kl": kl.mean()})

    def validation_loss(self, batch: Tensor) -> Tensor:
        reconstruction, kl = self.elbo_terms(batch)
        return (reconstruction + self.beta * kl).mean()

    def anomaly_score(self, batch: Tensor) -> Tensor:
        if self.scoring == "reconstruction":
            return sum_per_row(self.feature_scores(batch).double())
        mean, log_variance = self.network.encode(batch)
        if self.scoring == "iwae":
            return importance_weighted_nll(
                batch, self.network.decode, mean, log_variance, self.score_noise, self.likelihood,
                self.noise_variance,
            )
        scores = torch.zeros(len(batch), device=batch.device)
        for noise in self.score_noise:
            z = self.network.reparameterize(mean, log_variance, noise.expand_as(mean))
            scores += negative_elbo(batch, self.network.decode(z), mean, log_variance, self.likelihood,
                                    variance=self.noise_variance)
        return scores / len(self.score_noise)

    def feature_scores(self, batch: Tensor) -> Tensor:
        """Squared error per feature (or pixel) of the posterior-mean reconstruction."""
        return (batch - decoded_mean(self.network, batch, self.likelihood)).pow(2)

    def diagnostics(self, batches: BatchSource) -> dict[str, float]:
        """Mean KL per row and the number of active latent units (Burda et al. 2016)."""
        diagnostics, _ = posterior_diagnostics(self.network, batches)
        return diagnostics


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
    active = (means.var(dim=0) > 1e-2).sum().item() if len(means) > 1 else 0
    return {"mean_kl": kl_total / len(means), "active_latent_units": float(active)}, means

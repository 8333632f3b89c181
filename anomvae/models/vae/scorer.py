"""Training step and scoring rules of the beta-VAE scorer."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ...scorer import BatchSource, FitContext, Phase, Scorer
from ...nn.vae_losses import (
    calibrated_variance,
    gaussian_kl,
    importance_weighted_nll,
    negative_elbo,
    row_reconstruction_nll,
    sum_per_row,
    trimmed_mean,
)
from ...nn.latent_density import (
    reconstruction_plus_knn,
    reference_and_scales,
    reference_codes_and_errors,
    reference_rows,
    take_saved_reference_shape,
)
from ...nn.posterior import codes_and_errors, decoded_mean, posterior_diagnostics
from ...nn import fused_vae_step
from ...nn.vae_network import VAENetwork

SCORINGS = ("reconstruction+knn", "reconstruction", "elbo", "iwae")

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
        the ``"elbo"`` and ``"iwae"`` scores use its value over a random sample
        of up to 1,024 training rows once training ends
        (:func:`~anomvae.nn.vae_losses.calibrated_variance`).
    scoring : {"reconstruction", "elbo", "iwae", "reconstruction+knn"}
        ``"reconstruction"``: squared error of the reconstruction decoded from
        the posterior mean. ``"elbo"``: negative ELBO averaged over the fixed
        noise draws. ``"iwae"``: importance-weighted bound over the same draws.
        ``"reconstruction+knn"``: the reconstruction error plus the distance
        of the row's posterior mean to its ``n_neighbors``-th nearest training
        code, each divided by its median over the training rows.
    n_samples : int
        Number K of fixed latent noise draws for ``"elbo"`` and ``"iwae"``.
    n_neighbors : int
        k of the ``"reconstruction+knn"`` rule.
    trim_fraction : float in [0, 0.5)
        Share of each batch's highest-loss rows left out of the training and
        validation losses (:func:`~.losses.trimmed_mean`).
    fused_step : bool
        Train with the hand-written forward and backward of
        :class:`~anomvae.nn.fused_vae_step.FusedVAEStep` where
        :func:`~anomvae.nn.fused_vae_step.supports` says it applies (the
        same loss and gradient as autograd's, in fewer operations); autograd
        elsewhere, with False and with bfloat16 matrix products.
    """

    def __init__(self, network: VAENetwork, *, latent_dim: int, beta: float, likelihood: str,
                 scoring: str, n_samples: int, n_neighbors: int = 5, trim_fraction: float = 0.0,
                 fused_step: bool = False) -> None:
        super().__init__()
        self.network = network
        self.trim_fraction = trim_fraction
        self.fused_step = fused_step
        self._fused: fused_vae_step.FusedVAEStep | None = None
        self.beta = beta
        self.likelihood = likelihood
        self.scoring = scoring
        self.n_neighbors = n_neighbors
        self.register_buffer("score_noise", torch.randn(n_samples, latent_dim))
        self.register_buffer("noise_variance", torch.ones(1))
        self.register_buffer("reference_codes", torch.zeros(0, latent_dim))
        self.register_buffer("score_scales", torch.ones(2))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Models saved before the calibrated decoder carry no variance; 1 gives
        # back exactly the unit-variance Gaussian they were trained with.
        state_dict.setdefault(prefix + "noise_variance", torch.ones(1))
        # Older models have no reference codes; saved ones have as many rows
        # as the training set lent them, so the buffer takes their shape.
        state_dict.setdefault(prefix + "reference_codes", self.reference_codes)
        state_dict.setdefault(prefix + "score_scales", self.score_scales)
        take_saved_reference_shape(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def elbo_terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per-row reconstruction NLL and KL on one reparameterised sample."""
        output, mean, log_variance = self.network(x)
        reconstruction, variance = row_reconstruction_nll(x, output, self.likelihood)
        if variance is not None and self.training:
            self.noise_variance.copy_(variance)
        return reconstruction, gaussian_kl(mean, log_variance)

    def on_fit_start(self, context: FitContext) -> None:
        """Build the fused training step once, where :func:`~anomvae.nn.fused_vae_step.supports` says it
        applies and the matrix products stay in float32 (:attr:`~anomvae.scorer.Scorer.matmul_dtype`)."""
        fused = (self.fused_step and self.matmul_dtype == torch.float32
                 and fused_vae_step.supports(self.network, self.likelihood, self.device))
        self._fused = (fused_vae_step.FusedVAEStep(self.network, self.likelihood, self.beta, self.trim_fraction)
                       if fused else None)

    def training_step(self, batch: Tensor) -> Iterator[Phase]:
        if self._fused is not None:
            loss, reconstruction, kl, variance = self._fused.forward(batch)
            if self.likelihood == "calibrated":
                self.noise_variance.copy_(variance)
            yield Phase(loss, logs={"reconstruction": reconstruction, "kl": kl}, backward=self._fused.backward)
            return
        reconstruction, kl = self.elbo_terms(batch)
        loss = trimmed_mean(reconstruction + self.beta * kl, self.trim_fraction)
        with torch.no_grad():
            logs = {"reconstruction": reconstruction.mean(), "kl": kl.mean()}
        yield Phase(loss, logs=logs)

    def validation_loss(self, batch: Tensor) -> Tensor:
        reconstruction, kl = self.elbo_terms(batch)
        return trimmed_mean(reconstruction + self.beta * kl, self.trim_fraction)

    def on_train_end(self, train: Tensor, validation: Tensor | None) -> None:
        """Keep the training codes and score scales of the ``"reconstruction+knn"`` rule.

        Up to :data:`~anomvae.nn.latent_density.MAX_REFERENCE_CODES` training
        rows give the reference posterior means; the medians of their
        reconstruction errors and of their leave-one-out neighbour distances
        put both terms of the score on one scale
        (:mod:`anomvae.nn.latent_density`).
        """
        self._fused = None  # it holds the last batch's activations, which no saved model needs
        if self.scoring == "reconstruction+knn":
            codes, reconstruction = reference_codes_and_errors(self.network, train, self.likelihood)
            self.reference_codes, self.score_scales = reference_and_scales(codes, reconstruction, self.n_neighbors)
        if self.likelihood == "calibrated":  # last: its draws do not move the kNN reference sample
            self.noise_variance.copy_(calibrated_variance(
                [(chunk - self.network(chunk)[0]).pow(2) for chunk in reference_rows(train).split(4096)]))

    def anomaly_score(self, batch: Tensor) -> Tensor:
        if self.scoring == "reconstruction":
            return sum_per_row(self.feature_scores(batch).double())
        if self.scoring == "reconstruction+knn":
            codes, reconstruction = codes_and_errors(self.network, batch, self.likelihood)
            return reconstruction_plus_knn(reconstruction, codes, self.reference_codes, self.score_scales,
                                           self.n_neighbors)
        # float32 from here: under bfloat16 products the KL, the draws and the prior stay element-wise float32
        mean, log_variance = (part.float() for part in self.network.encode(batch))
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

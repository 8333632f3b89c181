"""Training step and scoring rules of the beta-TCVAE scorer."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ...nn.latent_density import (
    reconstruction_plus_knn,
    reference_and_scales,
    reference_codes_and_errors,
    take_saved_reference_shape,
)
from ...nn.posterior import codes_and_errors, decoded_mean, posterior_diagnostics
from ...nn.vae_losses import row_reconstruction_nll, sum_per_row, trimmed_mean
from ...nn.vae_network import VAENetwork
from ...scorer import BatchSource, FitContext, Phase, Scorer
from .losses import kl_decomposition

SCORINGS = ("reconstruction+knn", "reconstruction")

class TCVAEScorer(Scorer):
    """VAE trained on the beta-TCVAE objective (Chen et al., NeurIPS 2018).

    The loss per row is the reconstruction NLL plus mutual information plus
    ``tc_weight`` times the total correlation plus the dimension-wise KL
    (:func:`~.losses.kl_decomposition`); ``tc_weight=1`` is the plain ELBO.

    Parameters
    ----------
    network : VAENetwork
    latent_dim : int
    tc_weight : float
    likelihood : {"calibrated", "bernoulli"}
    scoring : {"reconstruction+knn", "reconstruction"}
        As :class:`~anomvae.AnomalyVAE`'s rules of the same names.
    n_neighbors : int
    trim_fraction : float in [0, 0.5)
    """

    def __init__(self, network: VAENetwork, *, latent_dim: int, tc_weight: float, likelihood: str,
                 scoring: str, n_neighbors: int, trim_fraction: float) -> None:
        super().__init__()
        self.network, self.tc_weight, self.likelihood = network, tc_weight, likelihood
        self.scoring, self.n_neighbors, self.trim_fraction = scoring, n_neighbors, trim_fraction
        self.n_train = 1
        self.register_buffer("reference_codes", torch.zeros(0, latent_dim))
        self.register_buffer("score_scales", torch.ones(2))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        take_saved_reference_shape(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def on_fit_start(self, context: FitContext) -> None:
        """Keep the training size N of minibatch-weighted sampling."""
        self.n_train = context.n_train

    def _terms(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        mean, log_variance = self.network.encode(x)
        z = self.network.reparameterize(mean, log_variance)
        output = self.network.decode(z)
        reconstruction, _ = row_reconstruction_nll(x, output, self.likelihood)
        return (reconstruction, *kl_decomposition(z, mean, log_variance, self.n_train))

    def _loss(self, batch: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        terms = self._terms(batch)
        reconstruction, information, correlation, dimension_wise = terms
        per_row = reconstruction + information + self.tc_weight * correlation + dimension_wise
        return trimmed_mean(per_row, self.trim_fraction), terms

    def training_step(self, batch: Tensor) -> Iterator[Phase]:
        loss, terms = self._loss(batch)
        with torch.no_grad():
            logs = dict(zip(("reconstruction", "mutual_information", "total_correlation", "dimension_wise_kl"),
                            (term.mean() for term in terms)))
        yield Phase(loss, logs=logs)

    def validation_loss(self, batch: Tensor) -> Tensor:
        return self._loss(batch)[0]

    def on_train_end(self, train: Tensor, validation: Tensor | None) -> None:
        """Keep the reference codes and score scales of ``"reconstruction+knn"``."""
        if self.scoring != "reconstruction+knn":
            return
        codes, errors = reference_codes_and_errors(self.network, train, self.likelihood)
        self.reference_codes, self.score_scales = reference_and_scales(codes, errors, self.n_neighbors)

    def anomaly_score(self, batch: Tensor) -> Tensor:
        if self.scoring == "reconstruction":
            return sum_per_row(self.feature_scores(batch).double())
        codes, errors = codes_and_errors(self.network, batch, self.likelihood)
        return reconstruction_plus_knn(errors, codes, self.reference_codes, self.score_scales, self.n_neighbors)

    def feature_scores(self, batch: Tensor) -> Tensor:
        """Squared error per feature (or pixel) of the posterior-mean reconstruction."""
        return (batch - decoded_mean(self.network, batch, self.likelihood)).pow(2)

    def diagnostics(self, batches: BatchSource) -> dict[str, float]:
        """Mean KL per row and active latent units (Burda et al. 2016)."""
        return posterior_diagnostics(self.network, batches)[0]

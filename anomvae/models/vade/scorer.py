"""Training step, mixture initialisation and scoring rules of the VaDE scorer."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import torch
from torch import Tensor

from ...nn.latent_density import SCALE_FLOORS, reference_codes_and_errors
from ...nn.posterior import codes_and_errors, decoded_mean, posterior_diagnostics
from ...nn.vae_losses import gaussian_kl, row_reconstruction_nll, sum_per_row, trimmed_mean
from ...nn.vae_network import VAENetwork
from ...scorer import BatchSource, FitContext, Phase, Scorer
from .mixture_fit import MAX_MIXTURE_CODES, fit_mixture, mixture_step, split_coincident
from .losses import mixture_kl
from .network import GaussianMixturePrior

SCORINGS = ("reconstruction+prior", "prior", "reconstruction")

WARMUP_STEPS = 300
"""Optimiser steps of plain VAE training before the mixture is fitted, under
``warmup_epochs="auto"``. The mixture starts from the codes' clusters and
then reinforces them; after 70 steps (800 rows, 10 epochs) the codes of three
well-separated clusters still overlapped and the mixture split them wrongly
for good, after 190 to 230 steps (800 rows x 30 epochs, 2,900 rows x 10)
it found all three, for two seeds each."""


class VaDEScorer(Scorer):
    """VAE with a learned Gaussian-mixture prior, trained on the VaDE ELBO.

    Jiang, Zheng, Tan, Tang & Zhou, "Variational Deep Embedding" (IJCAI
    2017). The first ``warmup_epochs`` epochs train a plain VAE (standard
    normal prior). At the start of the next one a Gaussian mixture is fitted
    to the posteriors of the training rows (:func:`~.mixture_fit.fit_mixture`,
    the paper's start); from then on the networks are trained on the
    reconstruction NLL plus :func:`~.losses.mixture_kl`, and the mixture
    takes one exact EM step (:func:`~.mixture_fit.mixture_step`) at the start
    of every epoch, followed by a split step for components that coincide
    over two clusters (:func:`~.mixture_fit.split_coincident`), and one EM
    step more at the end. If training ends before the
    mixture was fitted, or early stopping restores weights from before it,
    it is fitted to the final codes in :meth:`on_train_end`; either way it
    matches the final weights.

    Parameters
    ----------
    network : VAENetwork
    latent_dim : int
    n_components : int
    likelihood : {"calibrated", "bernoulli"}
    scoring : {"reconstruction+prior", "prior", "reconstruction"}
        ``"prior"``: ``-log p(z)`` under the mixture at the posterior mean.
        ``"reconstruction"``: squared error of the reconstruction decoded
        from the posterior mean. ``"reconstruction+prior"``: the
        reconstruction error plus ``log p_max - log p(z)``
        (:meth:`~.network.GaussianMixturePrior.log_density_bound`, so the term
        is never negative), each divided by its median over the training rows.
    warmup_epochs : int or None
        None: enough epochs for :data:`WARMUP_STEPS` optimiser steps of
        ``batch_size`` rows, at least 10.
    batch_size : int
        Rows per training step, for ``warmup_epochs=None``.
    trim_fraction : float in [0, 0.5)
    """

    def __init__(self, network: VAENetwork, *, latent_dim: int, n_components: int, likelihood: str,
                 scoring: str, warmup_epochs: int | None, batch_size: int, trim_fraction: float) -> None:
        super().__init__()
        self.network = network
        self.prior = GaussianMixturePrior(n_components, latent_dim)
        self.likelihood, self.scoring = likelihood, scoring
        self.warmup_epochs, self.batch_size, self.trim_fraction = warmup_epochs, batch_size, trim_fraction
        self.mixture_active = False
        self.register_buffer("mixture_fitted", torch.zeros(1))
        self.register_buffer("score_scales", torch.ones(2))

    @property
    def n_components(self) -> int:
        """K, the number of mixture components."""
        return len(self.prior.log_weights)

    def on_fit_start(self, context: FitContext) -> None:
        """Turn ``warmup_epochs=None`` into epochs from the training size (of all processes together,
        so that every process of a data-parallel fit fits its mixture at the same epoch)."""
        if self.n_components > context.n_train:
            warnings.warn(f"n_components={self.n_components} exceeds the {context.n_train} training rows: "
                          "components will repeat rows and some cohorts will be arbitrary; use fewer",
                          UserWarning, stacklevel=2)
        if self.warmup_epochs is None:
            steps_per_epoch = math.ceil(context.n_train / (self.batch_size * context.world_size))
            self.warmup_epochs = max(10, math.ceil(WARMUP_STEPS / steps_per_epoch))
        self._stopping_start = 0 if self.mixture_fitted.item() else self.warmup_epochs

    @property
    def early_stopping_start(self) -> int:
        """Early stopping judges the weights once the mixture prior is fitted (set in ``on_fit_start``:
        0 for an update of a fitted mixture, whose objective does not switch)."""
        return getattr(self, "_stopping_start", 0)

    def on_epoch_start(self, epoch: int, batches: BatchSource) -> None:
        if self.mixture_fitted.item():
            posteriors = self._posteriors(batches())
            mixture_step(self.prior, *posteriors)
            split_coincident(self.prior, *posteriors, seed=epoch)
        elif epoch >= self.warmup_epochs:
            self._fit_mixture(batches())
        self.mixture_active = bool(self.mixture_fitted.item())

    def _posteriors(self, batches) -> tuple[Tensor, Tensor]:
        """Posterior means and variances of up to :data:`MAX_MIXTURE_CODES` rows of ``batches``."""
        means, variances, rows = [], [], 0
        with torch.no_grad():
            for batch in batches:
                mean, log_variance = self.network.encode(batch)
                means.append(mean)
                variances.append(log_variance.exp())
                rows += len(batch)
                if rows >= MAX_MIXTURE_CODES:
                    break
        return torch.cat(means)[:MAX_MIXTURE_CODES], torch.cat(variances)[:MAX_MIXTURE_CODES]

    def _fit_mixture(self, batches) -> None:
        codes, variances = (part.double().cpu().numpy() for part in self._posteriors(batches))
        seed = int(torch.randint(2**31 - 1, (1,)).item())
        self.prior.assign(*fit_mixture(codes, variances, self.n_components, seed))
        self.mixture_fitted.fill_(1.0)

    def elbo_terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Per-row reconstruction NLL and KL term on one reparameterised sample.

        The KL is to the standard normal until the mixture is fitted, to the
        mixture afterwards.
        """
        mean, log_variance = self.network.encode(x)
        z = self.network.reparameterize(mean, log_variance)
        output = self.network.decode(z)
        reconstruction, _ = row_reconstruction_nll(x, output, self.likelihood)
        if self.mixture_active:
            return reconstruction, mixture_kl(z, mean, log_variance, self.prior)
        return reconstruction, gaussian_kl(mean, log_variance)

    def training_step(self, batch: Tensor) -> Iterator[Phase]:
        reconstruction, kl = self.elbo_terms(batch)
        with torch.no_grad():
            logs = {"reconstruction": reconstruction.mean(), "kl": kl.mean()}
        yield Phase(trimmed_mean(reconstruction + kl, self.trim_fraction), logs=logs)

    def validation_loss(self, batch: Tensor) -> Tensor:
        reconstruction, kl = self.elbo_terms(batch)
        return trimmed_mean(reconstruction + kl, self.trim_fraction)

    def on_train_end(self, train: Tensor, validation: Tensor | None) -> None:
        """Bring the mixture to the final weights; keep the medians of both score terms."""
        if self.mixture_fitted.item():
            mixture_step(self.prior, *self._posteriors(train.split(4096)))
        else:
            self._fit_mixture(train.split(4096))
        codes, errors = reference_codes_and_errors(self.network, train, self.likelihood)
        medians = torch.stack([errors.median(), self.prior_excess(codes).median().double()])
        self.score_scales = torch.maximum(medians.float(), torch.tensor(SCALE_FLOORS, device=medians.device))

    def prior_excess(self, codes: Tensor) -> Tensor:
        """``log p_max - log p(z)`` of codes of shape ``(n, D)``: 0 at best, never negative."""
        return (self.prior.log_density_bound() - self.prior.log_density(codes)).clamp_min(0.0)

    def anomaly_score(self, batch: Tensor) -> Tensor:
        if self.scoring == "reconstruction":
            return sum_per_row(self.feature_scores(batch).double())
        if self.scoring == "prior":
            return -self.prior.log_density(self.network.encode(batch)[0]).double()
        codes, errors = codes_and_errors(self.network, batch, self.likelihood)
        return errors / self.score_scales[0] + self.prior_excess(codes).double() / self.score_scales[1]

    def cohort_probabilities(self, batch: Tensor) -> Tensor:
        """Responsibilities ``p(c = k | z)`` at the posterior mean, shape ``(n, K)``."""
        return self.prior.responsibilities(self.network.encode(batch)[0])

    def feature_scores(self, batch: Tensor) -> Tensor:
        """Squared error per feature (or pixel) of the posterior-mean reconstruction."""
        return (batch - decoded_mean(self.network, batch, self.likelihood)).pow(2)

    def diagnostics(self, batches: BatchSource) -> dict[str, float]:
        """Mean KL to the standard normal, active latent units, and the components in use.

        ``effective_components`` is ``exp(entropy(pi))``: K when the weights
        are equal, near 1 when one component holds all the rows.
        """
        diagnostics, _ = posterior_diagnostics(self.network, batches)
        log_weights = self.prior.log_weights
        entropy = -(log_weights.exp() * log_weights).sum()
        return {**diagnostics, "effective_components": float(entropy.exp())}

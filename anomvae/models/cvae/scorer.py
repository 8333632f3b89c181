"""Training step and scoring rules of the conditional VAE scorer."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ...nn.latent_density import (
    reconstruction_plus_knn,
    reference_and_scales,
    reference_rows,
    take_saved_reference_shape,
)
from ...nn.posterior import active_units
from ...nn.vae_losses import calibrated_gaussian_nll, calibrated_variance, gaussian_kl, sum_per_row, trimmed_mean
from ...scorer import BatchSource, Phase, Scorer
from .context import ContextLayout
from .context_scale import context_keys, credibility_factors, row_factors
from .network import ConditionalVAENetwork

CONTRAST_SCORING = "reconstruction+knn+contrast"
KNN_SCORINGS = (CONTRAST_SCORING, "reconstruction+knn")
SCORINGS = (*KNN_SCORINGS, "elbo", "reconstruction")

CONTRAST_SCALE_FLOOR = 1e-6
"""Smallest divisor of the contrast term, for training rows whose contrast is all rounding noise."""

CONTRAST_FLOOR_QUANTILE = 0.05
"""Quantile of the training rows' contrast below which a row's contrast is not
trusted. A likelihood ratio cancels what both models find unusual (Ren et al.
2019 use this to ignore background statistics), so a row far from all
training data can get a contrast far below any training row's and hide a
global anomaly: measured, 31_satimage-2's labelled anomalies fell to a global
ROC-AUC of 0.10 without the floor. The floor is at most 0, the contrast of
rows scored under the unknown context."""


class CVAEScorer(Scorer):
    """Conditional VAE trained on the negative ELBO of the features given the context.

    The likelihood is the calibrated Gaussian (Rybkin et al., ICML 2021)
    over the non-context positions only: the context is conditioned on,
    never reconstructed. During training a share ``context_dropout`` of the
    rows gets the "unknown context" vector (:meth:`ContextLayout.context`),
    so the same network also learns the marginal model p(x); rows whose
    context holds a category never seen in ``fit`` are scored under it.

    Parameters
    ----------
    network : ConditionalVAENetwork
    layout : ContextLayout
    latent_dim : int
    beta : float
        Weight of the KL term.
    scoring : {"reconstruction+knn+contrast", "reconstruction+knn", "elbo", "reconstruction"}
        ``"reconstruction"``: squared error of the non-context features
        decoded from the posterior mean given the context. ``"elbo"``: that
        error under the calibrated Gaussian plus the KL of the posterior, both
        at the posterior mean (deterministic). ``"reconstruction+knn"``: the
        squared error plus the distance of the posterior mean to its
        ``n_neighbors``-th nearest training code, each divided by its median
        on the training rows. The latent terms matter: a row carrying another
        context's values is reconstructed well by a code far out in the
        prior's tail, so the reconstruction alone misses it.
        ``"reconstruction+knn+contrast"``: ``"reconstruction+knn"`` (after
        any context scaling) plus ``contrast_weight`` times
        :meth:`context_contrast`, floored at its 5% quantile on the training
        rows (:data:`CONTRAST_FLOOR_QUANTILE`) and divided by its median
        absolute value on them. The contrast is a likelihood ratio against a
        background model, as in Ren et al., "Likelihood Ratios for
        Out-of-Distribution Detection" (NeurIPS 2019), with the marginal
        model of the same network as the background: it is high for rows
        whose features fit another context better than their own. Without
        context columns there is nothing to contrast and the rule is
        ``"reconstruction+knn"``.
    n_neighbors : int
    trim_fraction : float in [0, 0.5)
        Share of each batch's highest-loss rows left out of the loss.
    context_dropout : float in [0, 1)
        Share of training rows trained with the unknown context; none
        without context columns.
    context_scaling : {"credibility", "none"}
        ``"credibility"``: the ``"reconstruction+knn"`` rules' and
        ``"reconstruction"`` scores are divided by their context's typical
        training score, shrunk toward the global one
        (:mod:`~.context_scale`); ``"elbo"``, which may be negative, is
        never divided.
    contrast_weight : float
        Weight of the contrast term of ``"reconstruction+knn+contrast"``.
    """

    def __init__(self, network: ConditionalVAENetwork, layout: ContextLayout, *, latent_dim: int,
                 beta: float, scoring: str, n_neighbors: int, trim_fraction: float,
                 context_dropout: float, context_scaling: str = "none", contrast_weight: float = 2.0) -> None:
        super().__init__()
        self.network, self.layout = network, layout
        self.beta, self.scoring, self.n_neighbors = beta, scoring, n_neighbors
        self.trim_fraction, self.context_dropout = trim_fraction, context_dropout
        self.contrast_weight = contrast_weight
        self.context_scaling = context_scaling if scoring != "elbo" else "none"
        self.register_buffer("noise_variance", torch.ones(1))
        self.register_buffer("context_cells", torch.zeros(0, dtype=torch.long))
        self.register_buffer("context_factors", torch.zeros(0))
        self.register_buffer("reference_codes", torch.zeros(0, latent_dim))
        self.register_buffer("score_scales", torch.ones(2))
        self.register_buffer("contrast_scale", torch.ones(1))
        self.register_buffer("contrast_floor", torch.zeros(1))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        take_saved_reference_shape(self, state_dict, prefix)
        for name in ("contrast_scale", "contrast_floor"):  # none in older files
            state_dict.setdefault(prefix + name, getattr(self, name))
        for name in ("context_cells", "context_factors"):  # as many as the training contexts; none in older files
            saved = state_dict.setdefault(prefix + name, getattr(self, name))
            setattr(self, name, torch.empty_like(saved, dtype=getattr(self, name).dtype))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _inputs(self, batch: Tensor, drop: bool) -> tuple[Tensor, Tensor]:
        batch = batch.reshape(len(batch), -1)  # images are modelled as flat pixel rows
        missing = self.layout.unseen_rows(batch)
        if drop and self.context_dropout > 0 and self._has_context():
            missing = missing | (torch.rand(len(batch), device=batch.device) < self.context_dropout)
        return self.layout.features(batch), self.layout.context(batch, missing)

    def _errors(self, x: Tensor, output: Tensor) -> Tensor:
        return (x - output).masked_fill(self.layout.context_mask, 0.0)

    def _loss(self, batch: Tensor, drop: bool) -> tuple[Tensor, Tensor, Tensor]:
        x, c = self._inputs(batch, drop)
        output, mean, log_variance = self.network(x, c)
        keep = ~self.layout.context_mask
        reconstruction, variance = calibrated_gaussian_nll(x[:, keep], output[:, keep])
        if self.training:
            self.noise_variance.copy_(variance)
        kl = gaussian_kl(mean, log_variance)
        return trimmed_mean(reconstruction + self.beta * kl, self.trim_fraction), reconstruction, kl

    def training_step(self, batch: Tensor) -> Iterator[Phase]:
        loss, reconstruction, kl = self._loss(batch, drop=True)
        with torch.no_grad():
            logs = {"reconstruction": reconstruction.mean(), "kl": kl.mean()}
        yield Phase(loss, logs=logs)

    def validation_loss(self, batch: Tensor) -> Tensor:
        return self._loss(batch, drop=False)[0]

    def _posterior(self, batch: Tensor, unknown_context: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """Posterior mean, its KL from the prior, and the squared errors decoded from the mean.

        Given each row's context, or with ``unknown_context`` given the
        unknown context (the marginal model) for every row.
        """
        x, c = self._inputs(batch, drop=False)
        if unknown_context:
            c = self.layout.context(batch.reshape(len(batch), -1),
                                    torch.ones(len(batch), dtype=torch.bool, device=batch.device))
        mean, log_variance = self.network.encode(x, c)
        return mean, gaussian_kl(mean, log_variance), self._errors(x, self.network.decode(mean, c)).pow(2)

    def _negative_elbo(self, kl: Tensor, squared: Tensor) -> Tensor:
        """Negative ELBO at the posterior mean under the calibrated Gaussian, float64, shape ``(n,)``."""
        n_features = (~self.layout.context_mask).sum()
        variance = self.noise_variance.double()
        return (sum_per_row(squared.double()) / (2 * variance) + 0.5 * n_features * variance.log()
                + kl.double()).reshape(-1)

    def context_contrast(self, batch: Tensor, posterior: tuple[Tensor, Tensor, Tensor] | None = None) -> Tensor:
        """Negative ELBO given the context minus that given the unknown context, float64, shape ``(n,)``.

        Both bound the same network's likelihoods, -log p(x | c) and -log p(x),
        so by Bayes' rule the difference estimates -log p(c | x) / p(c): high
        when the features point away from the row's own context. 0 for rows
        scored under the unknown context.

        Parameters
        ----------
        batch : Tensor of shape (n, encoded width)
            Encoded rows, context positions included.
        posterior : tuple of Tensor, optional
            :meth:`_posterior` of ``batch`` given the context, when the
            caller has it already; computed otherwise.

        Returns
        -------
        Tensor of shape (n,), float64
            In nats.
        """
        _, kl, squared = self._posterior(batch) if posterior is None else posterior
        _, kl_unknown, squared_unknown = self._posterior(batch, unknown_context=True)
        return self._negative_elbo(kl, squared) - self._negative_elbo(kl_unknown, squared_unknown)

    def on_train_end(self, train: Tensor, validation: Tensor | None) -> None:
        """Keep the kNN rules' reference codes and scales, the context factors, the contrast's scale and floor.

        The reference codes, the score scales and the contrast's scale and
        floor all come from one :func:`reference_rows` sample and one
        posterior pass over it given the context. So does the decoder variance
        of the negative ELBOs (the ``"elbo"`` score and the contrast): the
        mean squared error of the reconstructions decoded from the posterior
        means, as those scores decode them
        (:func:`~anomvae.nn.vae_losses.calibrated_variance`); during training
        it was each batch's, and the last batch may be one row.
        """
        chunks = reference_rows(train).split(4096)
        posteriors = [self._posterior(chunk) for chunk in chunks]
        features = ~self.layout.context_mask
        self.noise_variance.copy_(calibrated_variance([squared[:, features] for _, _, squared in posteriors]))
        if self.scoring in KNN_SCORINGS:
            codes = torch.cat([mean for mean, _, _ in posteriors])
            errors = torch.cat([sum_per_row(squared.double()) for _, _, squared in posteriors])
            self.reference_codes, self.score_scales = reference_and_scales(codes, errors, self.n_neighbors)
            if self._contrasted():
                self._keep_contrast_scale_and_floor(torch.cat([
                    self.context_contrast(chunk, posterior) for chunk, posterior in zip(chunks, posteriors)
                ]))
        if self.context_scaling == "credibility":
            keys, scores = (torch.cat(parts) for parts in zip(*(
                (self._context_keys(chunk), self._conditional_score(self._posterior(chunk)))
                for chunk in train.split(4096)
            )))
            self.context_cells, self.context_factors = credibility_factors(keys, scores)

    def _keep_contrast_scale_and_floor(self, contrast: Tensor) -> None:
        """Keep the contrast's divisor (median |value|) and floor (5% quantile, at most 0) from the reference rows'."""
        self.contrast_scale.fill_(max(contrast.abs().median().item(), CONTRAST_SCALE_FLOOR))
        self.contrast_floor.fill_(min(torch.quantile(contrast, CONTRAST_FLOOR_QUANTILE).item(), 0.0))

    def _has_context(self) -> bool:
        return bool(self.layout.context_mask.any())

    def _contrasted(self) -> bool:
        """Whether the score has the contrast term: its rule, and context columns to contrast."""
        return self.scoring == CONTRAST_SCORING and self._has_context()

    def _context_keys(self, batch: Tensor) -> Tensor:
        return context_keys(self._inputs(batch, drop=False)[1])

    def anomaly_score(self, batch: Tensor) -> Tensor:
        posterior = self._posterior(batch)
        scores = self._conditional_score(posterior)
        if len(self.context_cells):
            scores = scores / row_factors(self._context_keys(batch), self.context_cells, self.context_factors)
        if self._contrasted():
            contrast = torch.maximum(self.context_contrast(batch, posterior), self.contrast_floor.double())
            scores = scores + self.contrast_weight * contrast / self.contrast_scale
        return scores

    def _conditional_score(self, posterior: tuple[Tensor, Tensor, Tensor]) -> Tensor:
        """The score of the features given the context, before any context scaling or contrast."""
        mean, kl, squared = posterior
        if self.scoring == "reconstruction":
            return sum_per_row(squared.double())
        if self.scoring == "elbo":
            return self._negative_elbo(kl, squared)
        return reconstruction_plus_knn(sum_per_row(squared.double()), mean, self.reference_codes,
                                       self.score_scales, self.n_neighbors)

    def feature_scores(self, batch: Tensor) -> Tensor:
        """Squared error of each non-context feature given the context; 0 at context positions."""
        return self._posterior(batch)[2].reshape(batch.shape)

    def diagnostics(self, batches: BatchSource) -> dict[str, float]:
        """Mean KL per row and active latent units (Burda et al. 2016), given the context."""
        kl_total, means = 0.0, []
        with torch.no_grad():
            for batch in batches():
                mean, kl, _ = self._posterior(batch)
                kl_total += kl.sum().item()
                means.append(mean)
        means = torch.cat(means)
        return {"mean_kl": kl_total / len(means), "active_latent_units": float(active_units(means))}

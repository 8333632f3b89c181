"""Training step, centre initialisation and scoring rules of VAE-SVDD."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ...scorer import BatchSource, FitContext, Phase, Scorer
from ...nn.vae_losses import gaussian_kl, reconstruction_nll, sum_per_row
from ...nn.posterior import decoded_mean, posterior_diagnostics
from .losses import centre_distance, clamp_centre
from .network import VAESVDDNetwork

SCORINGS = ("reconstruction", "objective", "distance")
LATENTS = ("mean", "sample")
CENTRE_EPS = 0.1
"""Smallest magnitude of a centre coordinate (Ruff et al.'s ``eps``)."""


class VAESVDDScorer(Scorer):
    """VAE trained jointly with a Deep SVDD compactness term on its latent code.

    The per-row training objective is the beta-VAE negative ELBO plus
    ``svdd_weight`` times the distance of the latent code to a centre ``c``
    (Zhou et al., "VAE-based Deep SVDD for anomaly detection",
    Neurocomputing 2021; Ruff et al., ICML 2018).

    The first ``warmup_epochs`` epochs train the VAE alone. At the start of
    each of them, and of the first epoch after them, ``c`` is set to the mean
    embedding of the training data, clamped away from zero by
    :data:`CENTRE_EPS`; from then on it is frozen. Because ``c`` always
    matches the weights of its epoch, early stopping may restore any epoch's
    weights together with a meaningful centre. ``c`` is a buffer, so it is
    saved with the weights.

    Parameters
    ----------
    network : VAESVDDNetwork
    latent_dim : int
    beta : float
        Weight of the KL term.
    likelihood : {"gaussian", "bernoulli"}
    svdd_weight : float
        Weight of the SVDD distance term.
    svdd_latent : {"mean", "sample"}
        Whether the SVDD term pulls the posterior mean or a reparameterised
        sample towards ``c``.
    distance : {"squared", "plain"}
        Distance used in training and by the ``"distance"`` and
        ``"objective"`` scores.
    scoring : {"reconstruction", "objective", "distance"}
        ``"reconstruction"``: squared error of the reconstruction decoded from
        the posterior mean. ``"objective"``: the per-row training objective
        evaluated at the posterior mean (reconstruction NLL + beta * KL +
        svdd_weight * distance). ``"distance"``: distance of the posterior
        mean to ``c`` (Deep SVDD's score).
    warmup_epochs : int
        Epochs of VAE-only training before ``c`` is frozen. An update of a
        fitted scorer (``partial_fit``) keeps its ``c`` and trains with the
        hypersphere term from its first epoch.
    """

    def __init__(self, network: VAESVDDNetwork, *, latent_dim: int, beta: float, likelihood: str,
                 svdd_weight: float, svdd_latent: str, distance: str, scoring: str,
                 warmup_epochs: int) -> None:
        super().__init__()
        self.network = network
        self.beta = beta
        self.likelihood = likelihood
        self.svdd_weight = svdd_weight
        self.svdd_latent = svdd_latent
        self.distance = distance
        self.scoring = scoring
        self.warmup_epochs = warmup_epochs
        self.compacting = warmup_epochs == 0
        self._updating = False  # set by on_fit_start: True when c was frozen by an earlier fit
        self.register_buffer("centre", torch.zeros(latent_dim))
        self.register_buffer("centre_frozen", torch.zeros(1))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.setdefault(prefix + "centre_frozen", torch.ones(1))  # saved before the flag: trained
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def on_fit_start(self, context: FitContext) -> None:
        """Note whether ``c`` is already frozen (an update by ``partial_fit``): no second warm-up."""
        self._updating = bool(self.centre_frozen.item())

    def on_epoch_start(self, epoch: int, batches: BatchSource) -> None:
        if self._updating:
            self.compacting = True
            return
        if epoch <= self.warmup_epochs:
            self.centre.copy_(clamp_centre(self.mean_embedding(batches), CENTRE_EPS))
        self.compacting = epoch >= self.warmup_epochs
        if self.compacting:
            self.centre_frozen.fill_(1.0)

    @property
    def early_stopping_start(self) -> int:
        """Early stopping judges the weights once the hypersphere term is on (at once in an update)."""
        return 0 if self._updating else self.warmup_epochs

    def mean_embedding(self, batches: BatchSource) -> Tensor:
        """Mean posterior mean over the training data."""
        total, rows = torch.zeros_like(self.centre, dtype=torch.float64), 0
        with torch.no_grad():
            for batch in batches():
                total += self.network.embed(batch).double().sum(dim=0)
                rows += len(batch)
        return (total / rows).to(self.centre.dtype)

    def loss_terms(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-row reconstruction NLL, KL and SVDD distance on one sample."""
        mean, log_variance = self.network.encode(x)
        z = self.network.reparameterize(mean, log_variance)
        reconstruction = sum_per_row(reconstruction_nll(x, self.network.decode(z), self.likelihood))
        embedding = z if self.svdd_latent == "sample" else mean
        return (
            reconstruction,
            gaussian_kl(mean, log_variance),
            centre_distance(embedding, self.centre, self.distance),
        )

    def training_step(self, batch: Tensor) -> Iterator[Phase]:
        reconstruction, kl, distance = self.loss_terms(batch)
        loss = reconstruction + self.beta * kl
        if self.compacting:
            loss = loss + self.svdd_weight * distance
        yield Phase(loss.mean(), logs={
            "reconstruction": reconstruction.mean(), "kl": kl.mean(), "distance": distance.mean(),
        })

    def validation_loss(self, batch: Tensor) -> Tensor:
        reconstruction, kl, distance = self.loss_terms(batch)
        return (reconstruction + self.beta * kl + self.svdd_weight * distance).mean()

    def anomaly_score(self, batch: Tensor) -> Tensor:
        if self.scoring == "reconstruction":
            return sum_per_row(self.feature_scores(batch))
        mean, log_variance = self.network.encode(batch)
        distance = centre_distance(mean, self.centre, self.distance)
        if self.scoring == "distance":
            return distance
        reconstruction = sum_per_row(
            reconstruction_nll(batch, self.network.decode(mean), self.likelihood)
        )
        return reconstruction + self.beta * gaussian_kl(mean, log_variance) + self.svdd_weight * distance

    def feature_scores(self, batch: Tensor) -> Tensor:
        """Squared error per feature (or pixel) of the posterior-mean reconstruction.

        This is the reconstruction part of every scoring rule; the distance
        to the centre is a property of the whole row and has no per-feature
        share, so with ``scoring="distance"`` these maps show where the row
        differs from what the model expects, not how its score splits.
        """
        return (batch - decoded_mean(self.network, batch, self.likelihood)).pow(2)

    def diagnostics(self, batches: BatchSource) -> dict[str, float]:
        """Mean KL, active latent units, and where the embeddings lie.

        ``mean_centre_distance`` is the mean squared distance of the posterior
        means to ``c`` and ``centre_norm`` is ``||c||``. ``embedding_spread``
        is the variance of the posterior means per latent dimension: near zero,
        every row is mapped to the same point, so the distance to ``c`` cannot
        tell rows apart (hypersphere collapse, see ``health.py``).
        """
        diagnostics, means = posterior_diagnostics(self.network, batches)
        return {
            **diagnostics,
            "mean_centre_distance": (means - self.centre).pow(2).sum(dim=1).mean().item(),
            "centre_norm": self.centre.norm().item(),
            "embedding_spread": means.var(dim=0).mean().item() if len(means) > 1 else 0.0,
        }

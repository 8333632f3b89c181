"""Ablation of AnomalyVAE's training and scoring rules on one part of the shared tabular suite.

Each training variant is fitted once per dataset, protocol and seed (the
``anomvae bench`` splits); every scoring rule is then evaluated on that fit.
PyOD's KNN and IForest run on the same splits as references. Results are
appended to a JSON-lines journal (so a run can be extended) and summarised
as mean ROC-AUC per (training variant, scoring rule) and protocol.

    nice -n 10 python benchmarks/score_ablation.py --part development --seeds 0 1 2 \
        --variants default,trimmed --out benchmarks/results/generalisation/ablation.jsonl

Ensemble variants (``--variants ens-seeds,ens-small,...``, see
:data:`ENSEMBLE_VARIANTS`) fit five AnomalyVAE members one after another and
score the mean and the median of the first three and of all five members'
scores; ``--rules tail`` combines the default fit's two terms by their
empirical tail probabilities instead of the median-scaled sum.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from pyod.models.iforest import IForest
from pyod.models.knn import KNN
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import QuantileTransformer

from anomvae import AnomalyVAE
from anomvae.benchmark.protocols import split
from anomvae.benchmark.suites import suite_part
from anomvae.datasets import load_npz, shared_data_dir
from anomvae.models.vae.scorer import VAEScorer
from anomvae.neighbours import kth_neighbour_distance
from anomvae.nn import default_architecture
from anomvae.nn.posterior import codes_and_errors as model_codes_and_errors
from anomvae.nn.vae_losses import gaussian_kl, row_reconstruction_nll, trimmed_mean
from anomvae.scorer import Phase

class _TrimmedVAEScorer(VAEScorer):
    """VAE whose step ignores the batch's highest-loss rows (trimmed likelihood)."""

    trim = 0.1

    def training_step(self, batch):
        reconstruction, kl = self.elbo_terms(batch)
        per_row = reconstruction + self.beta * kl
        with torch.no_grad():
            keep = per_row <= torch.quantile(per_row.detach().float(), 1 - self.trim)
        yield Phase(per_row[keep].mean(), logs={"reconstruction": reconstruction.mean(), "kl": kl.mean()})


class _TrimmedVAE(AnomalyVAE):
    def _make_scorer(self, input_shape, image):
        scorer = super()._make_scorer(input_shape, image)
        trimmed = _TrimmedVAEScorer.__new__(_TrimmedVAEScorer)
        trimmed.__dict__ = scorer.__dict__
        return trimmed


class _QuantileVAE(AnomalyVAE):
    """AnomalyVAE on inputs mapped to normal scores by their training quantiles."""

    def fit(self, X, y=None):
        self.input_transform_ = QuantileTransformer(output_distribution="normal", n_quantiles=min(1000, len(X)),
                                              random_state=0).fit(X)
        return super().fit(self.input_transform_.transform(X))


class _Winsorised:
    """Per-column centre and scale from the rows clipped to their 1st-99th percentiles."""

    def __init__(self, X):
        low, high = np.percentile(X, [1, 99], axis=0)
        clipped = np.clip(X, low, high)
        self.centre = clipped.mean(axis=0)
        scale = clipped.std(axis=0)
        fallback = X.std(axis=0)
        self.scale = np.where(scale > 0, scale, np.where(fallback > 0, fallback, 1.0))

    def transform(self, X):
        return (X - self.centre) / self.scale


class _WinsorisedVAE(AnomalyVAE):
    """AnomalyVAE on inputs standardised by winsorised means and standard deviations."""

    def fit(self, X, y=None):
        self.input_transform_ = _Winsorised(np.asarray(X, dtype=np.float64))
        return super().fit(self.input_transform_.transform(X))


class _MinimumStepsVAE(AnomalyVAE):
    """AnomalyVAE whose epochs (and patience) grow so that small training sets get ``min_steps`` optimiser steps.

    Benchmark-only: it sets its own parameters in ``fit``, which a scikit-learn
    estimator must not do; each variant instance is fitted once.
    """

    min_steps = 3000

    def fit(self, X, y=None):
        steps_per_epoch = max(1, -(-int(len(X) * (1 - self.validation_fraction)) // self.batch_size))
        self.epochs = max(100, -(-self.min_steps // steps_per_epoch))
        self.patience = max(10, self.epochs // 10)
        return super().fit(X, y)


class _SmallBatchVAE(AnomalyVAE):
    """AnomalyVAE whose batches shrink on small training sets (batch n/16 within 16 to 128).

    Benchmark-only, like :class:`_MinimumStepsVAE`: it sets ``batch_size`` in ``fit``.
    """

    def fit(self, X, y=None):
        self.batch_size = int(min(128, max(16, len(X) // 16)))
        return super().fit(X, y)


def negative_elbo_from(scorer: VAEScorer, batch: torch.Tensor, encoder_input: torch.Tensor):
    """The default's trimmed negative ELBO of ``batch`` with ``encoder_input`` fed to the encoder (autograd step).

    Returns the loss, the posterior means and the step's logs.
    """
    output, mean, log_variance = scorer.network(encoder_input)
    reconstruction, variance = row_reconstruction_nll(batch, output, scorer.likelihood)
    if variance is not None:
        scorer.noise_variance.copy_(variance)
    kl = gaussian_kl(mean, log_variance)
    loss = trimmed_mean(reconstruction + scorer.beta * kl, scorer.trim_fraction)
    return loss, mean, {"reconstruction": reconstruction.mean().detach(), "kl": kl.mean().detach()}


class _DenoisingVAEScorer(VAEScorer):
    """VAE step that encodes a noisy copy of each row and reconstructs the clean row.

    Gaussian input corruption of standard deviation :attr:`noise_scale` (inputs
    are standardised, so in units of each feature's spread), or masking noise
    (a random :attr:`mask_share` of the entries set to the training mean, 0): the denoising
    criterion of Vincent et al., "Extracting and composing robust features with
    denoising autoencoders", ICML 2008, in its VAE form (Im et al., "Denoising
    criterion for variational auto-encoding framework", AAAI 2017). Validation
    and scoring see clean rows.
    """

    noise_scale = 0.1
    mask_share = 0.0

    def training_step(self, batch):
        corrupted = batch + self.noise_scale * torch.randn_like(batch) if self.noise_scale else batch
        if self.mask_share:
            corrupted = corrupted * (torch.rand_like(batch) >= self.mask_share)
        loss, _, logs = negative_elbo_from(self, batch, corrupted)
        yield Phase(loss, logs=logs)


class _StudentVAEScorer(VAEScorer):
    """VAE step under a Student-t decoder: each feature's residual costs ``(nu + 1) / 2 log(1 + r^2 / (nu s^2))``.

    A heavy-tailed likelihood bounds the pull of a large residual, cell by
    cell, where the trimmed loss drops whole rows (Takahashi et al., "Student-t
    variational autoencoder for robust density estimation", IJCAI 2018). The
    scale ``s^2`` is the batch's mean squared residual, without gradient, as the
    calibrated Gaussian decoder's variance; scoring is unchanged.
    """

    degrees = 3.0

    def training_step(self, batch):
        output, mean, log_variance = self.network(batch)
        residual = batch - output
        scale = residual.detach().square().mean().clamp_min(1e-6)
        self.noise_variance.copy_(scale.reshape(1))
        nu = self.degrees
        reconstruction = (0.5 * (nu + 1) * torch.log1p(residual.square() / (nu * scale))).sum(1)
        kl = gaussian_kl(mean, log_variance)
        loss = trimmed_mean(reconstruction + self.beta * kl, self.trim_fraction)
        yield Phase(loss, logs={"reconstruction": reconstruction.mean().detach(), "kl": kl.mean().detach()})


class _DistancePreservingVAEScorer(VAEScorer):
    """VAE step plus a penalty that keeps the batch's pairwise posterior-mean distances proportional to its input distances.

    ``weight * mean((d_z / mean d_z - d_x / mean d_x)^2)`` over the pairs of the
    batch (scale-free, a Sammon-style stress; Sammon, "A nonlinear mapping for
    data structure analysis", IEEE Transactions on Computers 1969), so that
    the latent kNN term sees the inputs' neighbourhoods through the code.
    """

    weight = 1.0

    def training_step(self, batch):
        loss, mean, logs = negative_elbo_from(self, batch, batch)
        input_distance = torch.pdist(batch)
        code_distance = torch.pdist(mean)
        stress = ((code_distance / code_distance.mean().clamp_min(1e-8))
                  - (input_distance / input_distance.mean().clamp_min(1e-8))).square().mean()
        yield Phase(loss + self.weight * stress, logs=logs)


class _WeightDecayVAEScorer(VAEScorer):
    """VAE step plus an L2 penalty ``decay / 2 * sum(W^2)`` on the weight matrices (not the biases).

    Weight decay (Krogh & Hertz, "A simple weight decay can improve
    generalization", NIPS 1991) keeps the networks from fitting single rows,
    the training anomalies of a contaminated table among them.
    """

    decay = 1e-3

    def training_step(self, batch):
        loss, _, logs = negative_elbo_from(self, batch, batch)
        penalty = sum(weight.square().sum() for weight in self.network.parameters() if weight.ndim > 1)
        yield Phase(loss + 0.5 * self.decay * penalty, logs=logs)


def _dropout_after(rate: float):
    """A forward hook that applies dropout of ``rate`` to a module's output while it trains."""
    def hook(module, inputs, output):
        return torch.nn.functional.dropout(output, rate, training=module.training)
    return hook


class _DropoutVAEScorer(VAEScorer):
    """Dropout (Srivastava et al., JMLR 2014) of ``rate`` after every hidden activation, in training only."""

    rate = 0.1

    def on_fit_start(self, context) -> None:
        super().on_fit_start(context)
        for module in self.network.modules():
            if isinstance(module, torch.nn.LeakyReLU):
                module.register_forward_hook(_dropout_after(self.rate))


class _LateEarlyStoppingVAEScorer(VAEScorer):
    """Early stopping judges the weights only after ``min_steps`` optimiser steps (epochs of one pass).

    On a table under one batch an epoch is one step, and a held-out loss that
    rises over the first steps (the KL term growing as the codes start to
    carry information) made early stopping keep epoch 1's weights: an
    untrained network (14_glass, 92 training rows; active latent units 0).
    """

    def on_fit_start(self, context) -> None:
        super().on_fit_start(context)
        self._start = math.ceil(self.min_steps / math.ceil(context.n_train / self.batch_rows))

    @property
    def early_stopping_start(self) -> int:
        return getattr(self, "_start", 0)


def _with_scorer(scorer_class: type, **attributes) -> type:
    """An AnomalyVAE whose scorer is re-classed as ``scorer_class`` (a VAEScorer with its own
    training step) and given ``attributes``; benchmark-only."""
    class _Variant(AnomalyVAE):
        def _make_scorer(self, input_shape, image):
            scorer = super()._make_scorer(input_shape, image)
            variant = scorer_class.__new__(scorer_class)
            variant.__dict__ = scorer.__dict__
            for key, value in attributes.items():
                setattr(variant, key, value)
            return variant

    return _Variant


def _default_hidden(n_features: int, widen: int = 1, extra_layer: bool = False) -> tuple[int, ...]:
    """The default tabular hidden widths (:func:`anomvae.nn.default_architecture`), each ``widen`` times
    wider, with a third layer of a quarter of the first when ``extra_layer``."""
    first = widen * default_architecture(n_features)[0][0]
    return (first, first // 2, first // 4) if extra_layer else (first, first // 2)


ONE_PASS = {"min_batches_per_epoch": 1}
"""Every epoch one pass over the training rows (AnomalyVAE's default), pinned so
that the variants' journals replay whatever the default becomes."""

TRAINING_VARIANTS: dict[str, tuple[type, dict]] = {
    "default": (AnomalyVAE, {"trim_fraction": 0.0, **ONE_PASS}),
    "trim10": (_TrimmedVAE, ONE_PASS),
    "quantile": (_QuantileVAE, ONE_PASS),
    "small-epochs": (AnomalyVAE, {"epochs": 20, **ONE_PASS}),
    "t10": (AnomalyVAE, {"trim_fraction": 0.1, **ONE_PASS}),
    "t10-latent-half": (AnomalyVAE, {"trim_fraction": 0.1, "latent_dim": lambda d: min(64, max(2, d // 2)),
                                     **ONE_PASS}),
    "t10-latent-full": (AnomalyVAE, {"trim_fraction": 0.1, "latent_dim": lambda d: min(64, max(2, d)), **ONE_PASS}),
    "t05": (AnomalyVAE, {"trim_fraction": 0.05, **ONE_PASS}),
    "t20": (AnomalyVAE, {"trim_fraction": 0.2, **ONE_PASS}),
    "t30": (AnomalyVAE, {"trim_fraction": 0.3, **ONE_PASS}),
    "t10-beta0.5": (AnomalyVAE, {"trim_fraction": 0.1, "beta": 0.5, **ONE_PASS}),
    "t10-beta0.25": (AnomalyVAE, {"trim_fraction": 0.1, "beta": 0.25, **ONE_PASS}),
    "t10-robust": (AnomalyVAE, {"trim_fraction": 0.1, "scaling": "robust", **ONE_PASS}),
    "t10-winsorised": (_WinsorisedVAE, {"trim_fraction": 0.1, "scaling": "none", **ONE_PASS}),
    # small training sets: more optimiser steps (t10-mb15 passed development, failed confirmation)
    "t10-steps3k": (_MinimumStepsVAE, {"trim_fraction": 0.1, **ONE_PASS}),
    "t10-small-batch": (_SmallBatchVAE, {"trim_fraction": 0.1, **ONE_PASS}),
    "t10-mb15": (AnomalyVAE, {"trim_fraction": 0.1, "min_batches_per_epoch": 15}),
    "t10-mb30": (AnomalyVAE, {"trim_fraction": 0.1, "min_batches_per_epoch": 30}),
    # more steps with a larger trimmed share: does trimming stop the extra steps learning training anomalies?
    "t20-mb15": (AnomalyVAE, {"trim_fraction": 0.2, "min_batches_per_epoch": 15}),
    "t30-mb15": (AnomalyVAE, {"trim_fraction": 0.3, "min_batches_per_epoch": 15}),
    # denoising training (eager step: the fused one has no corruption); t10-eager is its control
    "t10-eager": (AnomalyVAE, {"trim_fraction": 0.1, "fused_step": False, **ONE_PASS}),
    "t10-dn0.1": (_with_scorer(_DenoisingVAEScorer, noise_scale=0.1), {"trim_fraction": 0.1, "fused_step": False, **ONE_PASS}),
    "t10-dn0.3": (_with_scorer(_DenoisingVAEScorer, noise_scale=0.3), {"trim_fraction": 0.1, "fused_step": False, **ONE_PASS}),
    "t10-dn0.5": (_with_scorer(_DenoisingVAEScorer, noise_scale=0.5), {"trim_fraction": 0.1, "fused_step": False, **ONE_PASS}),
    "t10-dn1.0": (_with_scorer(_DenoisingVAEScorer, noise_scale=1.0), {"trim_fraction": 0.1, "fused_step": False, **ONE_PASS}),
    "t10-mask0.15": (_with_scorer(_DenoisingVAEScorer, noise_scale=0.0, mask_share=0.15), {"trim_fraction": 0.1, "fused_step": False, **ONE_PASS}),
    "t10-mask0.3": (_with_scorer(_DenoisingVAEScorer, noise_scale=0.0, mask_share=0.3), {"trim_fraction": 0.1, "fused_step": False, **ONE_PASS}),
    # Student-t decoder in training (cell-wise robustness); t10-eager is its control
    "t10-student1": (_with_scorer(_StudentVAEScorer, degrees=1.0), {"trim_fraction": 0.1, "fused_step": False, **ONE_PASS}),
    "t10-student3": (_with_scorer(_StudentVAEScorer, degrees=3.0), {"trim_fraction": 0.1, "fused_step": False, **ONE_PASS}),
    "t0-student3": (_with_scorer(_StudentVAEScorer, degrees=3.0), {"trim_fraction": 0.0, "fused_step": False, **ONE_PASS}),
    # early stopping only after a minimum number of optimiser steps (tables under a few batches); t10 is its control
    "t10-es100": (_with_scorer(_LateEarlyStoppingVAEScorer, min_steps=100, batch_rows=128), {"trim_fraction": 0.1, **ONE_PASS}),
    "t10-es300": (_with_scorer(_LateEarlyStoppingVAEScorer, min_steps=300, batch_rows=128), {"trim_fraction": 0.1, **ONE_PASS}),
    # latent distances kept proportional to input distances (Sammon stress); t10-eager is its control
    "t10-wide": (AnomalyVAE, {"trim_fraction": 0.1, "hidden_dims": lambda d: _default_hidden(d, widen=2), **ONE_PASS}),
    "t10-deep": (AnomalyVAE, {"trim_fraction": 0.1, "hidden_dims": lambda d: _default_hidden(d, extra_layer=True),
                              **ONE_PASS}),
    "t10-wide-deep": (AnomalyVAE, {"trim_fraction": 0.1,
                                   "hidden_dims": lambda d: _default_hidden(d, widen=2, extra_layer=True), **ONE_PASS}),
    "t10-lr0.003": (AnomalyVAE, {"trim_fraction": 0.1, "learning_rate": 0.003, **ONE_PASS}),
    "t10-lr0.0003": (AnomalyVAE, {"trim_fraction": 0.1, "learning_rate": 0.0003, **ONE_PASS}),
    # generic regularisers, never screened: weight decay and dropout; t10-eager is their control
    "t10-wd1e-3": (_with_scorer(_WeightDecayVAEScorer, decay=1e-3), {"trim_fraction": 0.1, "fused_step": False, **ONE_PASS}),
    "t10-wd1e-2": (_with_scorer(_WeightDecayVAEScorer, decay=1e-2), {"trim_fraction": 0.1, "fused_step": False, **ONE_PASS}),
    "t10-wd1e-1": (_with_scorer(_WeightDecayVAEScorer, decay=1e-1), {"trim_fraction": 0.1, "fused_step": False, **ONE_PASS}),
    "t10-drop0.1": (_with_scorer(_DropoutVAEScorer, rate=0.1), {"trim_fraction": 0.1, "fused_step": False, **ONE_PASS}),
    "t10-drop0.2": (_with_scorer(_DropoutVAEScorer, rate=0.2), {"trim_fraction": 0.1, "fused_step": False, **ONE_PASS}),
    "t10-stress1": (_with_scorer(_DistancePreservingVAEScorer, weight=1.0), {"trim_fraction": 0.1, "fused_step": False, **ONE_PASS}),
    "t10-stress10": (_with_scorer(_DistancePreservingVAEScorer, weight=10.0), {"trim_fraction": 0.1, "fused_step": False, **ONE_PASS}),
    "t10-stress100": (_with_scorer(_DistancePreservingVAEScorer, weight=100.0), {"trim_fraction": 0.1, "fused_step": False, **ONE_PASS}),
    "t10-stress1000": (_with_scorer(_DistancePreservingVAEScorer, weight=1000.0), {"trim_fraction": 0.1, "fused_step": False, **ONE_PASS}),
}


def _scaled(detector: AnomalyVAE, X: np.ndarray) -> torch.Tensor:
    """``X`` as the detector's network sees it: its variant's input transform, then its encoder.

    float32 for a model scored with bfloat16 products (``precision_``): its weights are float32, and
    the script's own rules run the network outside the estimator's autocast.
    """
    if hasattr(detector, "input_transform_"):
        X = detector.input_transform_.transform(X)
    dtype = torch.float32 if detector.scorer_.dtype == torch.bfloat16 else detector.scorer_.dtype
    return torch.as_tensor(detector.encoder_.transform(X), dtype=dtype)


def codes_and_errors(detector: AnomalyVAE, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posterior means, squared reconstruction errors per feature, and scaled inputs."""
    scaled = _scaled(detector, X)
    network = detector.scorer_.network
    with torch.no_grad():
        mean, log_variance = network.encode(scaled)
        residual = (scaled - network.decode(mean)).pow(2)
    return mean.numpy(), residual.numpy(), scaled.numpy()


def decoded(detector: AnomalyVAE, X: np.ndarray) -> np.ndarray:
    """Reconstructions decoded from the posterior means, in scaled input units."""
    scaled = _scaled(detector, X)
    with torch.no_grad():
        network = detector.scorer_.network
        return network.decode(network.encode(scaled)[0]).numpy()


def scoring_rules(detector: AnomalyVAE, X_train: np.ndarray, X_test: np.ndarray) -> dict[str, np.ndarray]:
    """Anomaly scores (higher = more anomalous) of ``X_test`` under every scoring rule."""
    codes_train, residual_train, _ = codes_and_errors(detector, X_train)
    codes_test, residual_test, _ = codes_and_errors(detector, X_test)
    rec_train, rec_test = residual_train.sum(1), residual_test.sum(1)
    out = {"reconstruction": rec_test}
    reference = torch.as_tensor(codes_train)
    if len(reference) > 4096:
        reference = reference[torch.randperm(len(reference), generator=torch.Generator().manual_seed(0))[:4096]]
    for k in (5,):
        knn_train = kth_neighbour_distance(reference, reference, k, exclude_self=True).numpy()
        knn_test = kth_neighbour_distance(torch.as_tensor(codes_test), reference, k).numpy()
        out[f"latent-knn{k}"] = knn_test
        out[f"rec+latent-knn{k}"] = rec_test / np.median(rec_train) + knn_test / max(np.median(knn_train), 1e-12)
        out[f"rec*latent-knn{k}"] = np.log(rec_test + 1e-12) + np.log(knn_test + 1e-12)
    kept = torch.as_tensor(codes_train[rec_train <= np.quantile(rec_train, 0.9)])
    if len(kept) > 4096:
        kept = kept[torch.randperm(len(kept), generator=torch.Generator().manual_seed(0))[:4096]]
    knn_kept_train = kth_neighbour_distance(torch.as_tensor(codes_train), kept, 5).numpy()
    knn_kept_test = kth_neighbour_distance(torch.as_tensor(codes_test), kept, 5).numpy()
    out["rec+latent-knn5-filtered"] = (rec_test / np.median(rec_train)
                                       + knn_kept_test / max(np.median(knn_kept_train), 1e-12))
    small = reference[torch.randperm(len(reference), generator=torch.Generator().manual_seed(1))[:1024]]
    knn_small_train = kth_neighbour_distance(small, small, 5, exclude_self=True).numpy()
    knn_small_test = kth_neighbour_distance(torch.as_tensor(codes_test), small, 5).numpy()
    out["rec+latent-knn5-ref1024"] = (rec_test / np.median(rec_train)
                                      + knn_small_test / max(np.median(knn_small_train), 1e-12))
    variance = float(detector.scorer_.noise_variance)
    latent_dim = codes_train.shape[1]
    knn_train = kth_neighbour_distance(reference, reference, 5, exclude_self=True).numpy()
    knn_test = kth_neighbour_distance(torch.as_tensor(codes_test), reference, 5).numpy()
    floor = max(np.median(knn_train), 1e-12) * 1e-3
    out["nll+knn-density"] = rec_test / (2 * variance) + latent_dim * np.log(knn_test + floor)
    out["nll+prior"] = rec_test / (2 * variance) + 0.5 * (codes_test ** 2).sum(1)
    mixture = GaussianMixture(n_components=max(1, min(10, len(codes_train) // 100)), covariance_type="full",
                              reg_covar=1e-4, random_state=0).fit(codes_train)
    out["latent-gmm"] = -mixture.score_samples(codes_test)
    out["nll+gmm"] = rec_test / (2 * variance) - mixture.score_samples(codes_test)
    decoded_train = decoded(detector, X_train)
    decoded_test = decoded(detector, X_test)
    reference_decoded = torch.as_tensor(decoded_train)
    if len(reference_decoded) > 4096:
        reference_decoded = reference_decoded[torch.randperm(len(reference_decoded), generator=torch.Generator().manual_seed(0))[:4096]]
    dknn_test = kth_neighbour_distance(torch.as_tensor(decoded_test), reference_decoded, 5).numpy()
    dknn_train = kth_neighbour_distance(reference_decoded, reference_decoded, 5, exclude_self=True).numpy()
    out["decoded-knn5"] = dknn_test
    out["rec+decoded-knn5"] = rec_test + dknn_test ** 2
    out["rec+decoded-knn5-median"] = rec_test / np.median(rec_train) + dknn_test / max(np.median(dknn_train), 1e-12)
    scaled_train = torch.as_tensor(codes_and_errors(detector, X_train)[2])
    if len(scaled_train) > 4096:
        scaled_train = scaled_train[torch.randperm(len(scaled_train), generator=torch.Generator().manual_seed(0))[:4096]]
    out["input-knn5"] = kth_neighbour_distance(torch.as_tensor(codes_and_errors(detector, X_test)[2]),
                                               scaled_train, 5).numpy()
    return out


def reference_rules(detector: AnomalyVAE, X_train: np.ndarray, X_test: np.ndarray) -> dict[str, np.ndarray]:
    """Reconstruction + latent kNN with reference sets of several sizes and neighbour ranks ``k``."""
    codes_train, residual_train, _ = codes_and_errors(detector, X_train)
    codes_test, residual_test, _ = codes_and_errors(detector, X_test)
    rec_train, rec_test = residual_train.sum(1), residual_test.sum(1)
    order = torch.randperm(len(codes_train), generator=torch.Generator().manual_seed(0))
    out = {"reconstruction": rec_test}
    for size in (1024, 4096, len(codes_train)):
        reference = torch.as_tensor(codes_train)[order[:size]]
        for k in (1, 2, 5):
            knn_train = kth_neighbour_distance(reference, reference, k, exclude_self=True).numpy()
            knn_test = kth_neighbour_distance(torch.as_tensor(codes_test), reference, k).numpy()
            label = "all" if size == len(codes_train) else size
            out[f"rec+latent-knn{k}-ref{label}"] = (rec_test / np.median(rec_train)
                                                    + knn_test / max(np.median(knn_train), 1e-12))
    return out


def posterior_scales(detector: AnomalyVAE, X: np.ndarray) -> np.ndarray:
    """Root mean posterior variance per latent dimension over ``X``, shape ``(latent,)``."""
    scaled = torch.as_tensor(detector.encoder_.transform(X), dtype=detector.scorer_.dtype)
    with torch.no_grad():
        _, log_variance = detector.scorer_.network.encode(scaled)
    return log_variance.exp().mean(0).sqrt().numpy()


def metric_rules(detector: AnomalyVAE, X_train: np.ndarray, X_test: np.ndarray) -> dict[str, np.ndarray]:
    """Reconstruction + latent kNN under several latent metrics, weights and ranks."""
    codes_train, residual_train, _ = codes_and_errors(detector, X_train)
    codes_test, residual_test, _ = codes_and_errors(detector, X_test)
    rec_train, rec_test = residual_train.sum(1), residual_test.sum(1)
    order = torch.randperm(len(codes_train), generator=torch.Generator().manual_seed(0))[:1024].numpy()
    metrics = {
        "euclid": np.ones(codes_train.shape[1]),
        "posterior-units": 1.0 / np.maximum(posterior_scales(detector, X_train), 1e-6),
        "code-std": 1.0 / np.maximum(codes_train.std(0), 1e-6),
    }
    out = {"reconstruction": rec_test}
    rec_term = rec_test / np.median(rec_train)
    for name, weight in metrics.items():
        reference = torch.as_tensor(codes_train[order] * weight)
        for k in (2, 5):
            knn_train = kth_neighbour_distance(reference, reference, k, exclude_self=True).numpy()
            knn_test = kth_neighbour_distance(torch.as_tensor(codes_test * weight), reference, k).numpy()
            knn_term = knn_test / max(np.median(knn_train), 1e-12)
            out[f"rec+knn{k}-{name}"] = rec_term + knn_term
            if name == "euclid" and k == 5:
                out["latent-knn5"] = knn_term
                out["rec+2knn5"] = rec_term + 2 * knn_term
                out["2rec+knn5"] = 2 * rec_term + knn_term
                out["max(rec,knn5)"] = np.maximum(rec_term, knn_term)
    return out


def likelihood_rules(detector: AnomalyVAE, X_train: np.ndarray, X_test: np.ndarray) -> dict[str, np.ndarray]:
    """Reconstruction terms under per-feature and full-covariance Gaussian noise, with and without latent kNN."""
    codes_train, residual_train, _ = codes_and_errors(detector, X_train)
    codes_test, residual_test, _ = codes_and_errors(detector, X_test)
    order = torch.randperm(len(codes_train), generator=torch.Generator().manual_seed(0))[:1024].numpy()
    reference = torch.as_tensor(codes_train[order])
    knn_train = kth_neighbour_distance(reference, reference, 5, exclude_self=True).numpy()
    knn_test = kth_neighbour_distance(torch.as_tensor(codes_test), reference, 5).numpy()
    knn_term = knn_test / max(np.median(knn_train), 1e-12)
    variance = np.maximum(residual_train.mean(0), 1e-6 * max(residual_train.mean(), 1e-12))
    residuals = {
        "rec": (residual_train.sum(1), residual_test.sum(1)),
        "rec-per-feature": ((residual_train / variance).sum(1), (residual_test / variance).sum(1)),
    }
    out = {}
    for name, (train, test) in residuals.items():
        out[name] = test
        out[f"{name}+knn5"] = test / np.median(train) + knn_term
        out[f"log-{name}+knn5"] = np.log(test / np.median(train) + 1e-12) + np.log(knn_term + 1e-12)
    return out


def tail_probabilities(train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Upper-tail p-values ``(1 + #{train >= s}) / (n + 1)`` of each ``test`` score ``s`` under ``train``."""
    ordered = np.sort(train)
    at_least = len(ordered) - np.searchsorted(ordered, test, side="left")
    return (1 + at_least) / (len(ordered) + 1)


def model_terms(detector: AnomalyVAE, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The default rule's two raw terms on ``X``: reconstruction errors and posterior means.

    Returns
    -------
    errors : ndarray of shape (n,)
    codes : Tensor of shape (n, latent)
    nearest : ndarray of shape (n,)
        Distance of each code to its nearest reference code (0 for the reference rows themselves).
    """
    scorer = detector.scorer_
    scaled = torch.as_tensor(detector.encoder_.transform(X), dtype=scorer.dtype)
    with torch.no_grad():
        codes, errors = model_codes_and_errors(scorer.network, scaled, scorer.likelihood)
    return errors.numpy(), codes, kth_neighbour_distance(codes, scorer.reference_codes, 1).numpy()


def tail_rules(detector: AnomalyVAE, X_train: np.ndarray, X_test: np.ndarray) -> dict[str, np.ndarray]:
    """Reconstruction and latent kNN combined by their empirical tail probabilities.

    Each term's p-value is read off its empirical distribution on the
    training rows (``train``: every training row; ``ref``: the model's
    reference rows alone, at most 1,024, found as the training codes at
    distance < 1e-6 from a reference code). A training row that is a
    reference row leaves itself out of its neighbour distance, as the
    model's scales do. Fisher's method scores ``-log p_rec - log p_knn``
    (Fisher, "Statistical Methods for Research Workers", 1925); ``mean-rank``
    is ``-(p_rec + p_knn)``; ``min-p`` the smaller p-value. ``+tie`` breaks
    the ties among rows beyond both empirical tails (where the p-values
    bottom out at ``1 / (n + 1)``) by the default median-scaled sum.
    """
    k = detector.n_neighbors
    reference = detector.scorer_.reference_codes
    rec_train, codes_train, nearest = model_terms(detector, X_train)
    in_reference = nearest < 1e-6
    knn_train = np.where(in_reference, kth_neighbour_distance(codes_train, reference, k + 1).numpy(),
                         kth_neighbour_distance(codes_train, reference, k).numpy())
    rec_test, codes_test, _ = model_terms(detector, X_test)
    knn_test = kth_neighbour_distance(codes_test, reference, k).numpy()
    scales = detector.scorer_.score_scales.numpy().astype(float)
    default = rec_test / scales[0] + knn_test / scales[1]
    out = {"default": default, "reconstruction": rec_test, "latent-knn": knn_test}
    tie = 1e-9 * default / max(default.max(), 1e-12)
    for name, rows in (("train", slice(None)), ("ref", in_reference)):
        p_rec = tail_probabilities(rec_train[rows], rec_test)
        p_knn = tail_probabilities(knn_train[rows], knn_test)
        fisher = -np.log(p_rec) - np.log(p_knn)
        out[f"fisher-{name}"] = fisher
        out[f"fisher-{name}+tie"] = fisher + tie
        out[f"mean-rank-{name}"] = -(p_rec + p_knn)
        out[f"mean-rank-{name}+tie"] = -(p_rec + p_knn) + tie
        out[f"min-p-{name}+tie"] = -np.minimum(p_rec, p_knn) + tie
    return out


def _knn_term(train: np.ndarray, test: np.ndarray, order: np.ndarray, k: int = 5) -> np.ndarray:
    """kNN distance of ``test`` to the reference rows ``train[order]``, over the reference's leave-one-out median."""
    reference = torch.as_tensor(train[order])
    own = kth_neighbour_distance(reference, reference, k, exclude_self=True).numpy()
    return kth_neighbour_distance(torch.as_tensor(test), reference, k).numpy() / max(np.median(own), 1e-12)


def representations(detector: AnomalyVAE, X: np.ndarray) -> dict[str, np.ndarray]:
    """Scaled inputs, posterior means and log-variances, the encoder's last hidden layer, per-feature residuals."""
    scaled = _scaled(detector, X)
    network = detector.scorer_.network
    with torch.no_grad():
        hidden = network.encoder.body(scaled)
        mean, log_variance = network.encode(scaled)
        residual = scaled - network.decode(mean)
    return {"input": scaled.numpy(), "mean": mean.numpy(), "log_variance": log_variance.numpy(),
            "hidden": hidden.numpy(), "residual": residual.numpy()}


def representation_rules(detector: AnomalyVAE, X_train: np.ndarray, X_test: np.ndarray) -> dict[str, np.ndarray]:
    """Reconstruction plus neighbour distances in the VAE's other representations.

    ``hidden``: the encoder's last hidden layer (before the posterior heads);
    ``posterior``: the posterior mean and half log-variance side by side;
    ``residual``: the per-feature reconstruction residuals. Every kNN term is
    over the same 1,024 reference rows and divided by their leave-one-out
    median, as the default's latent term is. ``input`` (kNN on the scaled
    inputs) is a reference only, not a VAE term.
    """
    train, test = representations(detector, X_train), representations(detector, X_test)
    order = torch.randperm(len(X_train), generator=torch.Generator().manual_seed(0))[:1024].numpy()
    rec_train, rec_test = (train["residual"] ** 2).sum(1), (test["residual"] ** 2).sum(1)
    rec = rec_test / max(np.median(rec_train), 1e-12)
    terms = {
        "latent": _knn_term(train["mean"], test["mean"], order),
        "hidden": _knn_term(train["hidden"], test["hidden"], order),
        "posterior": _knn_term(np.hstack([train["mean"], 0.5 * train["log_variance"]]),
                               np.hstack([test["mean"], 0.5 * test["log_variance"]]), order),
        "residual": _knn_term(train["residual"], test["residual"], order),
        "input": _knn_term(train["input"], test["input"], order),
    }
    out = {"reconstruction": rec}
    for name, term in terms.items():
        out[f"{name}-knn5"] = term
        out[f"rec+{name}-knn5"] = rec + term
    out["rec+latent+hidden-knn5"] = rec + terms["latent"] + terms["hidden"]
    out["latent+residual-knn5"] = terms["latent"] + terms["residual"]
    out["rec+latent+residual-knn5"] = rec + terms["latent"] + terms["residual"]
    out["max(latent,residual)-knn5"] = np.maximum(terms["latent"], terms["residual"])
    out["residual-knn10"] = _knn_term(train["residual"], test["residual"], order, k=10)
    out["latent+residual-knn10"] = _knn_term(train["mean"], test["mean"], order, k=10) + out["residual-knn10"]
    out["rec+latent+input-knn5"] = rec + terms["latent"] + terms["input"]
    return out


def _subsampled_nearest(train: np.ndarray, test: np.ndarray, sizes: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean nearest-neighbour distance to random subsamples of ``train``, for ``test`` and for ``train``.

    One member per entry of ``sizes`` (its subsample size); a training row's
    distance is averaged over the members whose subsample does not hold it.
    Subsampled nearest-neighbour ensembles: Aggarwal & Sathe, "Theoretical
    foundations and algorithms for outlier ensembles", SIGKDD Explorations 2015.
    """
    rng = np.random.default_rng(seed)
    train_t, test_t = torch.as_tensor(train), torch.as_tensor(test)
    test_sum = np.zeros(len(test))
    train_sum, train_count = np.zeros(len(train)), np.zeros(len(train))
    for size in sizes:
        chosen = rng.choice(len(train), size=min(int(size), len(train) - 1), replace=False)
        reference = train_t[chosen]
        test_sum += kth_neighbour_distance(test_t, reference, 1).numpy()
        outside = np.ones(len(train), dtype=bool)
        outside[chosen] = False
        train_sum[outside] += kth_neighbour_distance(train_t[outside], reference, 1).numpy()
        train_count[outside] += 1
    train_mean = train_sum[train_count > 0] / train_count[train_count > 0]
    return test_sum / len(sizes), train_mean


def subsample_rules(detector: AnomalyVAE, X_train: np.ndarray, X_test: np.ndarray) -> dict[str, np.ndarray]:
    """Reconstruction plus subsampled nearest-neighbour ensembles on the latent codes (25 members).

    Fixed subsample sizes 64 and 256, and variable subsampling (sizes drawn
    log-uniformly in [50, 1000]); each term over its training median, as the
    default's latent kNN term is. ``input-sub256`` (on the scaled inputs) is a
    reference only, not a VAE term.
    """
    train, test = representations(detector, X_train), representations(detector, X_test)
    rec_train, rec_test = (train["residual"] ** 2).sum(1), (test["residual"] ** 2).sum(1)
    rec = rec_test / max(np.median(rec_train), 1e-12)
    order = torch.randperm(len(X_train), generator=torch.Generator().manual_seed(0))[:1024].numpy()
    out = {"default": -detector.score_samples(X_test), "rec+latent-knn5": rec + _knn_term(train["mean"], test["mean"], order)}
    members = 25
    variable = np.exp(np.random.default_rng(1).uniform(np.log(50), np.log(1000), size=members))
    for label, sizes in {"sub64": np.full(members, 64), "sub256": np.full(members, 256), "subvar": variable}.items():
        test_term, train_term = _subsampled_nearest(train["mean"], test["mean"], sizes)
        term = test_term / max(np.median(train_term), 1e-12)
        out[f"latent-{label}"] = term
        out[f"rec+latent-{label}"] = rec + term
    test_term, train_term = _subsampled_nearest(train["input"], test["input"], np.full(members, 256))
    out["input-sub256"] = test_term / max(np.median(train_term), 1e-12)
    return out


RULE_SETS = {"all": scoring_rules, "reference": reference_rules, "metric": metric_rules,
             "likelihood": likelihood_rules, "tail": tail_rules, "representation": representation_rules,
             "subsample": subsample_rules}


def halved_hidden(n_features: int) -> tuple[int, int]:
    """The default tabular hidden widths, each halved (a quarter of the default's weights)."""
    first, second = default_architecture(n_features)[0]
    return first // 2, second // 2


ENSEMBLE_SIZES = (3, 5)
"""Members combined: the first three of a variant's fits, then all of them."""

ENSEMBLE_VARIANTS: dict[str, dict] = {
    # members differ in seed only
    "ens-seeds": {"params": {}},
    # same, hidden widths halved so five members cost about one default fit
    "ens-small": {"params": {"hidden_dims": halved_hidden}},
    # each member on a random 80% of the training rows, drawn without replacement
    "ens-rows80": {"params": {}, "rows": 0.8},
    # each member on a random subset of between half and all-but-one of the features
    # (feature bagging, Lazarevic & Kumar, KDD 2005)
    "ens-features": {"params": {}, "features": True},
    # small members on 80% of the rows
    "ens-small-rows80": {"params": {"hidden_dims": halved_hidden}, "rows": 0.8},
}
"""Ensemble training variants: ``max(ENSEMBLE_SIZES)`` AnomalyVAE members fitted one
after another, member ``m`` seeded ``seed + 1000 m`` (member 0 is the default
fit of that seed). Members use ``contamination=0.1`` so that no member
cross-fits a threshold (ROC-AUC does not depend on it; a real ensemble would
calibrate once on its combined score)."""


def fit_members(variant: str, seed: int, X_train: np.ndarray) -> tuple[list, list[float]]:
    """The members of an ensemble variant as ``(detector, feature columns)``, and each one's fit seconds."""
    spec = ENSEMBLE_VARIANTS[variant]
    n_rows, n_features = X_train.shape
    members, seconds = [], []
    for member in range(max(ENSEMBLE_SIZES)):
        member_seed = seed + 1000 * member
        draw = np.random.default_rng(member_seed)
        rows = np.arange(n_rows)
        if spec.get("rows", 1.0) < 1.0:
            rows = np.sort(draw.choice(n_rows, size=max(2, int(spec["rows"] * n_rows)), replace=False))
        columns = np.arange(n_features)
        if spec.get("features") and n_features > 2:
            size = draw.integers(n_features // 2, n_features)
            columns = np.sort(draw.choice(n_features, size=size, replace=False))
        params = {key: value(len(columns)) if callable(value) else value for key, value in spec["params"].items()}
        started = time.perf_counter()
        detector = AnomalyVAE(random_state=member_seed, contamination=0.1, **ONE_PASS, **params)
        detector.fit(X_train[np.ix_(rows, columns)])
        seconds.append(time.perf_counter() - started)
        members.append((detector, columns))
    return members, seconds


def ensemble_rules(members: list, X_test: np.ndarray) -> dict[str, np.ndarray]:
    """Mean and median of the members' default scores (each a median-scaled sum), per ensemble size."""
    scores = np.stack([-detector.score_samples(X_test[:, columns]) for detector, columns in members])
    out = {"member0": scores[0]}
    for size in ENSEMBLE_SIZES:
        out[f"mean{size}"] = scores[:size].mean(0)
        out[f"median{size}"] = np.median(scores[:size], 0)
    return out


def peers(X_train: np.ndarray, X_test: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    return {
        "PyOD-KNN": KNN().fit(X_train).decision_function(X_test),
        "PyOD-IForest": IForest(random_state=seed).fit(X_train).decision_function(X_test),
    }


def run(part: str, seeds: list[int], variants: list[str], protocols: list[str], journal: Path,
        datasets: list[str] | None, max_rows: int, rules: str = "all") -> None:
    data = shared_data_dir() / "tabular"
    done = set()
    if journal.exists():
        for line in journal.read_text().splitlines():
            record = json.loads(line)
            done.add((record["dataset"], record["protocol"], record["seed"], record["variant"]))
    names = datasets or suite_part(part)
    with journal.open("a") as sink:
        for name in names:
            X, y = load_npz(data / f"{name}.npz")
            for protocol in protocols:
                for seed in seeds:
                    train, test = split(y, protocol, seed, max_rows)
                    for variant in ["peers", *variants]:
                        key = (name, protocol, seed, variant)
                        if key in done:
                            continue
                        started = time.perf_counter()
                        extra = {}
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            if variant == "peers":
                                scores = peers(X[train], X[test], seed)
                            elif variant in ENSEMBLE_VARIANTS:
                                members, extra["fit_seconds"] = fit_members(variant, seed, X[train])
                                scores = ensemble_rules(members, X[test])
                            else:
                                detector = make_variant(variant, seed, X.shape[1]).fit(X[train])
                                scores = RULE_SETS[rules](detector, X[train], X[test])
                        aucs = {rule: float(roc_auc_score(y[test], s)) for rule, s in scores.items()}
                        record = {"dataset": name, "protocol": protocol, "seed": seed, "variant": variant,
                                  "seconds": time.perf_counter() - started, "auc": aucs, **extra}
                        sink.write(json.dumps(record) + "\n")
                        sink.flush()
                        print(name, protocol, seed, variant, f"{record['seconds']:.1f}s",
                              " ".join(f"{k}={v:.3f}" for k, v in aucs.items()), flush=True)


def make_variant(variant: str, seed: int, n_features: int) -> AnomalyVAE:
    estimator, params = TRAINING_VARIANTS[variant]
    params = {key: value(n_features) if callable(value) else value for key, value in params.items()}
    return estimator(random_state=seed, **params)


def summarise(journal: Path) -> str:
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    table: dict[tuple[str, str], dict[str, list[float]]] = {}
    for record in records:
        for rule, auc in record["auc"].items():
            column = rule if record["variant"] == "peers" else f"{record['variant']}/{rule}"
            table.setdefault((record["protocol"], column), {}).setdefault(record["dataset"], []).append(auc)
    lines = ["| protocol | variant/rule | datasets | mean ROC-AUC |", "|---|---|---:|---:|"]
    for (protocol, column), per_dataset in sorted(table.items()):
        means = [np.mean(v) for v in per_dataset.values()]
        lines.append(f"| {protocol} | {column} | {len(means)} | {np.mean(means):.4f} |")
    return "\n".join(lines + ensemble_fit_seconds(records))


def ensemble_fit_seconds(records: list[dict]) -> list[str]:
    """Markdown rows: the ensemble variants' fit seconds summed over tables, per protocol and members fitted."""
    totals: dict[tuple[str, str], np.ndarray] = {}
    for record in records:
        if "fit_seconds" in record:
            seconds = np.cumsum(record["fit_seconds"])[[0, *(size - 1 for size in ENSEMBLE_SIZES)]]
            key = (record["protocol"], record["variant"])
            totals[key] = totals.get(key, 0) + seconds / len({r["seed"] for r in records})
    if not totals:
        return []
    sizes = " | ".join(f"{size} members" for size in ENSEMBLE_SIZES)
    lines = ["", f"| protocol | ensemble variant | fit seconds, all tables, per seed: member 0 | {sizes} |",
             "|---|---|---:|" + "---:|" * len(ENSEMBLE_SIZES)]
    for (protocol, variant), seconds in sorted(totals.items()):
        lines.append(f"| {protocol} | {variant} | " + " | ".join(f"{value:.0f}" for value in seconds) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="development", choices=("development", "confirmation"))
    parser.add_argument("--datasets", default=None, help="comma-separated dataset names (default: the part)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", default="default")
    parser.add_argument("--protocols", default="semi-supervised,unsupervised")
    parser.add_argument("--max-rows", type=int, default=20_000, help="stratified subsample size (bench: 20000)")
    parser.add_argument("--rules", default="all", choices=tuple(RULE_SETS),
                        help="scoring rules evaluated on each fit")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--summary", action="store_true", help="only print the summary of --out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.summary:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        run(args.part, args.seeds, args.variants.split(","), args.protocols.split(","), args.out,
            args.datasets.split(",") if args.datasets else None, args.max_rows, args.rules)
    print(summarise(args.out))


if __name__ == "__main__":
    main()

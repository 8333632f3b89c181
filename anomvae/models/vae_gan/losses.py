"""VAE-GAN loss terms as plain functions of tensors (Larsen et al., ICML 2016).

Each returns one value per row; the scorer averages over the batch.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from ...nn.vae_losses import calibrated_gaussian_nll, sum_per_row


def feature_reconstruction_error(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """``L_llike``: Gaussian negative log-likelihood in the discriminator's hidden layer.

    ``0.5 * ||D_l(x) - D_l(x_tilde)||^2`` summed over the layer's units (the
    constant of the unit-variance Gaussian is dropped).
    """
    return 0.5 * sum_per_row((real_features - fake_features).pow(2))


PROBABILITY_FLOOR = 1e-6
"""Decoded pixel probabilities are kept in ``[floor, 1 - floor]`` inside the
Bernoulli log-likelihood, so a saturated sigmoid gives a finite loss and gradient."""


def input_nll(x: Tensor, reconstruction: Tensor, likelihood: str) -> Tensor:
    """Negative log-likelihood of ``x`` in input space under the decoder output, per row.

    ``"gaussian"``: unit-variance Gaussian on scaled tabular columns,
    ``0.5 * ||x - x_hat||^2``. ``"calibrated"``: Gaussian whose shared
    variance is the batch's mean squared error (Rybkin et al., ICML 2021;
    see :func:`anomvae.nn.vae_losses.calibrated_gaussian_nll`), so the term
    keeps its weight against ``L_llike`` and the KL as the fit improves.
    ``"bernoulli"``: pixels in [0, 1] with
    ``x_hat`` the decoded pixel probabilities (the decoder ends in a sigmoid),
    as in :class:`anomvae.AnomalyVAE` on images. This is the VAE's own
    likelihood term; the anomaly score ``||x - x_hat||^2`` is measured in the
    same space, so the decoder must be trained to be faithful there (the
    feature-space error of Larsen et al. alone does not pin pixels down; Baur
    et al., "Deep Autoencoding Models for Unsupervised Anomaly Segmentation in
    Brain MR Images", MICCAI BrainLes 2018, likewise add a pixel term to the
    VAE-GAN used for anomaly detection).
    """
    if likelihood == "bernoulli":
        probabilities = reconstruction.clamp(PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)
        return sum_per_row(F.binary_cross_entropy(probabilities, x, reduction="none"))
    if likelihood == "calibrated":
        return calibrated_gaussian_nll(x, reconstruction)[0]
    return 0.5 * sum_per_row((x - reconstruction).pow(2))


def real_loss(logits: Tensor) -> Tensor:
    """``-log D(x)``: the discriminator's loss on rows it should call real."""
    return F.softplus(-logits)


def fake_loss(logits: Tensor) -> Tensor:
    """``-log(1 - D(x))``: the discriminator's loss on rows it should call generated."""
    return F.softplus(logits)


def discriminator_loss(real_logits: Tensor, reconstruction_logits: Tensor,
                       prior_logits: Tensor) -> Tensor:
    """``-L_GAN`` for the discriminator, per row.

    Real rows and generated rows (reconstructions ``G(z)`` and prior samples
    ``G(z_p)``) carry equal total weight, as in the authors' code.
    """
    generated = 0.5 * (fake_loss(reconstruction_logits) + fake_loss(prior_logits))
    return 0.5 * real_loss(real_logits) + 0.5 * generated


def generator_adversarial_loss(reconstruction_logits: Tensor, prior_logits: Tensor) -> Tensor:
    """The generator's GAN term, per row, in the non-saturating form.

    ``-log D(G(z)) - log D(G(z_p))`` has the same fixed point as the paper's
    ``-L_GAN`` but keeps a useful gradient while the discriminator is ahead
    (Goodfellow et al., NeurIPS 2014).
    """
    return real_loss(reconstruction_logits) + real_loss(prior_logits)

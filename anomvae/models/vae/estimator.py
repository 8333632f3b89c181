"""scikit-learn estimator for the beta-VAE scorer."""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import torch

from ..._sklearn import Interval, StrOptions
from ...base import BaseDeepDetector
from ...base.parameters import estimator_init
from ...device import native_bfloat16
from ...inference import inference_dtype
from ...nn import build_decoder, build_encoder, linear_flops
from ...nn.vae_network import VAENetwork
from .scorer import SCORINGS, VAEScorer

BFLOAT16_MIN_FLOPS = 500_000
"""Operations per row of a network's linear layers from which ``precision="auto"`` multiplies in bfloat16."""


class AnomalyVAE(BaseDeepDetector):
    """Anomaly detector scoring rows with a (beta-)variational autoencoder.

    The VAE (Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014)
    is trained on the beta-weighted negative ELBO (Higgins et al., ICLR 2017)
    of mostly normal data, with each batch's worst-explained rows trimmed
    from the loss so that anomalies in the training data are not learned.
    Rows it reconstructs poorly, or whose latent codes lie far from the
    training rows' codes, score as anomalous.

    Parameters
    ----------
    beta : float, default=1.0
        Weight of the KL term; 1 is the plain VAE, larger values regularise
        the latent code more strongly.
    scoring : {"reconstruction+knn", "reconstruction", "elbo", "iwae"}, default="reconstruction+knn"
        Anomaly score. ``"reconstruction+knn"`` adds a local density term
        in the VAE's latent space to the reconstruction error: the distance
        of the row's posterior mean to its ``n_neighbors``-th nearest
        training code (up to 1,024 training codes, a seeded sample of larger
        training sets, are kept in the model), each term divided by its
        median on the training rows. The reconstruction error is a global,
        off-manifold measure; the latent term catches rows that decode well
        but lie in a sparse part of the learned manifold, such as rows
        between two clusters. Chosen on the development part of the shared
        tabular suite, where it beat either term alone in both the
        semi-supervised and the unsupervised protocol
        (``benchmarks/results/generalisation``). ``"reconstruction"`` is the
        squared error of the reconstruction decoded from the posterior mean
        alone (one forward pass, no reference codes). ``"elbo"`` is the
        negative ELBO and ``"iwae"`` the importance-weighted bound of Burda
        et al. (ICLR 2016), both over ``n_samples`` latent draws fixed at fit
        time, so repeated calls return identical numbers. ``feature_scores``
        are the reconstruction errors under every rule.
    n_samples : int, default=16
        Latent draws K for ``"elbo"`` and ``"iwae"``.
    n_neighbors : int, default=5
        k of the ``"reconstruction+knn"`` rule (PyOD's KNN default).
    trim_fraction : float in [0, 0.5), default=0.1
        Share of each mini-batch's highest-loss rows left out of the training
        and early-stopping losses: the trimmed loss of Shen & Sanghavi
        (ICML 2019). Anomalies in contaminated training data are mostly
        among those rows, so the VAE does not learn to reconstruct them; on
        clean data it costs nothing measurable (development part of the
        shared suite, ``benchmarks/results/generalisation``). 0 trains on the
        plain mean loss.
    min_batches_per_epoch : int, default=1
        Fewest optimiser steps in an epoch. A training set of fewer rows than
        ``min_batches_per_epoch * batch_size`` is passed through in several
        fresh permutations within each epoch
        (:class:`~anomvae.engine.TrainingEngine`'s ``min_batches``), so that
        a table of a few hundred rows (one or two batches a pass) gets more
        training, and early stopping's ``patience`` counts a comparable
        amount of it; larger training sets are unaffected. 1 (the default)
        makes an epoch exactly one pass. 15 was measured as a default and
        not adopted (``benchmarks/results/generalisation/ablation.md``): on
        the ten development tables it changes (3 seeds) mean ROC-AUC rose
        from 0.805 to 0.834 semi-supervised but only from 0.744 to 0.754
        unsupervised (+0.006 over all 17 tables), and on the confirmation
        part it moved the 16-table mean by +0.003 semi-supervised and
        -0.017 unsupervised (wine, whose training half holds its anomalies,
        fell from 0.78 to 0.54); on the MVTec-AD embeddings it gained 0.006
        (0.788 against 0.781) at 4.3x the fit time. Try 15 on small, clean
        training sets when fit time allows.
    likelihood : {"auto", "calibrated", "gaussian", "bernoulli"}, default="auto"
        Decoder likelihood; ``"auto"`` is ``"calibrated"`` for tabular rows
        and Bernoulli for images. ``"calibrated"`` is a Gaussian whose shared
        variance is learned as the mean squared error (Rybkin et al., "Simple
        and Effective VAE Training with Calibrated Decoders", ICML 2021);
        ``"gaussian"`` has unit variance, which on standardised data weighs the
        KL term so heavily that the posterior often collapses: the calibrated
        decoder scored higher mean ROC-AUC on the shared tabular benchmark
        (``benchmarks/README.md``).
    fused_step : bool, default=True
        On the CPU, train tabular networks with a ``"calibrated"`` or
        ``"gaussian"`` decoder by a hand-written forward and backward pass
        (:mod:`anomvae.nn.fused_vae_step`): the same loss and gradient as
        autograd's up to float rounding, with a third or more less time per
        step at the small batches of tabular data (``benchmarks/fused_step.py``).
        Images, the Bernoulli decoder and GPUs always use autograd, as does
        ``False``.
    precision : {"auto", "float32", "bfloat16"}, default="auto"
        Precision of the matrix products on the CPU, in training and in
        scoring. ``"bfloat16"`` multiplies in bfloat16 with float32
        accumulation and float32 master weights (mixed precision, Micikevicius
        et al., ICLR 2018; bfloat16 as in Kalamkar et al., 2019), under
        :func:`torch.autocast`; the fused step is then not used. Scoring the
        same weights in bfloat16 moved scores by about 1e-3 relative on
        784-feature rows (one-class MNIST; up to a few percent on small,
        well-reconstructed tables) and left ROC-AUC equal to four decimals;
        a row's score stays independent of the rows scored with it.
        ``"auto"`` picks it on CPUs that multiply bfloat16 in hardware
        (:func:`anomvae.device.native_bfloat16`) for tabular networks of at
        least :data:`BFLOAT16_MIN_FLOPS` operations per row (inputs of more
        than 128 features with the default widths), where arithmetic, not
        dispatch, sets the cost: below that, bfloat16 training was slower
        than the fused float32 step. Chosen on the wide development set
        (``benchmarks/wide_development.py``: one-class MNIST as 784-feature
        rows, ROC-AUC 0.918 either way, fit 2.1x faster) and confirmed on
        the MVTec-AD embeddings (``benchmarks/README.md``); float32 elsewhere.
        The choice is made in ``fit`` (and again in ``partial_fit``) and kept
        in ``precision_`` and in saved models, so a model scores the same way
        on every CPU (emulated, and slower, where the CPU lacks bfloat16).
        It concerns the CPU only: fits on a GPU train with bfloat16 autocast
        where supported, score in float32 and record ``precision_="float32"``,
        and a bfloat16 model loaded onto a GPU scores there in float32
        (scores differ by about 1e-3 relative). Networks that score in
        float64 on the CPU (images, one feature, ``latent_dim=1``) stay in
        full precision; ``"bfloat16"`` then warns.
    See :data:`~anomvae.base.parameters.SHARED_PARAMETERS` for the shared parameters.

    Attributes
    ----------
    scorer_ : VAEScorer
        The trained torch module.
    diagnostics_ : dict
        Training-health figures (mean KL, active latent units).
    See :data:`~anomvae.base.parameters.SHARED_ATTRIBUTES` for the shared attributes.

    Examples
    --------
    >>> import numpy as np
    >>> from anomvae import AnomalyVAE
    >>> X = np.random.default_rng(0).normal(size=(200, 5))
    >>> detector = AnomalyVAE(epochs=5, random_state=0).fit(X)
    >>> detector.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints: dict = {
        **BaseDeepDetector._parameter_constraints,
        "beta": [Interval(Real, 0, None, closed="left")],
        "scoring": [StrOptions(set(SCORINGS))],
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "trim_fraction": [Interval(Real, 0, 0.5, closed="left")],
        "min_batches_per_epoch": [Interval(Integral, 1, None, closed="left")],
        "likelihood": [StrOptions({"auto", "calibrated", "gaussian", "bernoulli"})],
        "fused_step": ["boolean"],
        "precision": [StrOptions({"auto", "float32", "bfloat16"})],
    }

    __init__ = estimator_init(
        beta=1.0,
        scoring="reconstruction+knn",
        n_samples=16,
        n_neighbors=5,
        trim_fraction=0.1,
        min_batches_per_epoch=1,
        likelihood="auto",
        fused_step=True,
        precision="auto",
    )

    def _cross_fit_calibration(self):
        # Every rule, the kNN one included: cross_fitted_scores puts each clone's scores on the
        # final model's scale (benchmarks/results/threshold_defaults.md).
        return True

    def _min_batches_per_epoch(self):
        return self.min_batches_per_epoch

    def _matmul_dtype(self, scorer, device):
        dense = inference_dtype(torch.device("cpu"), scorer) == torch.float32
        if self.precision == "bfloat16" and not dense:
            warnings.warn(
                "precision='bfloat16' applies to dense networks that score in float32 on the CPU; this one "
                "has convolutions (image input) or a one-output layer (one feature, or latent_dim=1) and "
                "scores in float64, so it trains and scores in full precision (precision_='float32')",
                UserWarning, stacklevel=2,
            )
        if device.type != "cpu" or self.precision == "float32" or not dense:
            return torch.float32
        if self.precision == "bfloat16":
            return torch.bfloat16
        wide = linear_flops(scorer.network) >= BFLOAT16_MIN_FLOPS
        return torch.bfloat16 if wide and native_bfloat16(device) else torch.float32

    def _make_scorer(self, input_shape, image):
        hidden_dims, latent_dim = self._architecture(input_shape)
        likelihood = self.likelihood
        if likelihood == "auto":
            likelihood = "bernoulli" if image else "calibrated"
        network = VAENetwork(
            build_encoder(input_shape, hidden_dims, latent_dim),
            build_decoder(latent_dim, hidden_dims, input_shape),
        )
        return VAEScorer(
            network,
            latent_dim=latent_dim,
            beta=self.beta,
            likelihood=likelihood,
            scoring=self.scoring,
            n_samples=self.n_samples,
            n_neighbors=self.n_neighbors,
            trim_fraction=self.trim_fraction,
            fused_step=self.fused_step,
        )

"""scikit-learn estimator for the VAE-SVDD scorer."""

from __future__ import annotations

from numbers import Integral, Real

from ..._sklearn import Interval, StrOptions
from ...base import BaseDeepDetector
from ...base.parameters import estimator_init
from .losses import DISTANCES
from .network import VAESVDDNetwork
from .scorer import LATENTS, SCORINGS, VAESVDDScorer

IMAGE_BETA = 0.1
"""KL weight that ``beta="auto"`` gives images (measured on one-class MNIST)."""


class AnomalyVAESVDD(BaseDeepDetector):
    """Anomaly detector combining a VAE with a Deep SVDD hypersphere.

    A variational autoencoder is trained on its negative ELBO plus a Deep
    SVDD compactness term that pulls the latent codes of normal rows towards
    a centre ``c`` (Zhou et al., "VAE-based Deep SVDD for anomaly detection",
    Neurocomputing 2021; Ruff et al., "Deep One-Class Classification", ICML
    2018). ``c`` is the mean embedding after ``warmup_epochs`` of VAE-only
    training, with coordinates pushed away from zero; the SVDD path (feature
    extractor and mean head) has no bias terms, so the network cannot map
    every input onto ``c`` trivially.

    When to choose it: when a compact one-class description of the normal
    codes is wanted (``scoring="distance"`` makes the distance to ``c`` the
    score, interpretable but lower than the default reconstruction error on
    one-class MNIST, see ``scoring`` below). On the
    confirmation half of the shared tables (3 seeds) it scored 0.872 mean
    ROC-AUC with clean training data and 0.717 with contaminated data, against
    PyOD's AutoEncoder (0.907, 0.771) and VAE (0.896, 0.829); on ten ADBench
    tables never used for tuning (issue 11, 3 seeds, clean data) 0.755,
    below the AutoEncoder (0.787) and VAE (0.771); :class:`~anomvae.AnomalyVAE`'s default is the better
    choice for tables.

    Parameters
    ----------
    beta : float or "auto", default="auto"
        Weight of the KL term. ``"auto"`` is 1 (the plain VAE) for tabular
        rows and 0.1 for images: on one-class MNIST, beta = 0.1 raised the
        mean ROC-AUC from 0.950 to 0.954, mostly on the hard digits 3, 5 and 8
        (``benchmarks/results/mnist_one_class_beta01.md``); plausibly a
        weaker pull towards the prior keeps anomalous images out of the
        normal ones' region of the latent space.
    svdd_weight : float, default=1.0
        Weight of the SVDD distance term against the negative ELBO. Neither
        paper fixes it; 1 keeps both terms of the same order on MNIST.
    svdd_latent : {"mean", "sample"}, default="mean"
        Pull the posterior mean, or a reparameterised sample, towards ``c``.
    distance : {"squared", "plain"}, default="squared"
        ``||z - c||^2`` as in Deep SVDD, or ``||z - c||``.
    scoring : {"reconstruction", "objective", "distance"}, default="reconstruction"
        Anomaly score, all deterministic (computed at the posterior mean).
        ``"reconstruction"`` is the squared error of the reconstruction;
        ``"objective"`` the per-row training objective, reconstruction NLL +
        beta * KL + svdd_weight * distance; ``"distance"`` Deep SVDD's
        distance of the posterior mean to ``c``. ``"reconstruction"`` is the
        default because it ranked best on one-class MNIST
        (``benchmarks/results/vae_svdd_scoring.md``: digit 2 0.911 against
        0.824 and 0.566, digit 5 0.943 against 0.861 and 0.420). The distance
        alone is weak because the KL term pulls every posterior mean, normal
        or not, towards the origin, close to ``c``; the SVDD term still helps
        as a regulariser that makes the code of normal rows compact. The
        objective's Bernoulli NLL grows with the amount of ink in an image,
        which is not what makes a digit anomalous.
    warmup_epochs : int, default=10
        Epochs of VAE-only training before the centre is frozen and the SVDD
        term switched on; 0 sets ``c`` from the untrained network, as Deep
        SVDD without pretraining does. With ``epochs <= warmup_epochs`` the
        SVDD term is never trained. Early stopping counts ``patience`` and
        keeps the best weights only after the warm-up (the validation loss
        is not comparable across the switch), so a fit runs at least
        ``warmup_epochs + patience`` epochs when ``epochs`` allows.
    likelihood : {"auto", "gaussian", "bernoulli"}, default="auto"
        Decoder likelihood; ``"auto"`` is Gaussian for tabular rows and
        Bernoulli for images.
    See :data:`~anomvae.base.parameters.SHARED_PARAMETERS` for the shared parameters.

    Attributes
    ----------
    scorer_ : VAESVDDScorer
        The trained torch module; ``scorer_.centre`` is ``c``.
    diagnostics_ : dict
        Mean KL, active latent units, mean squared distance to ``c``, ``||c||``.
    See :data:`~anomvae.base.parameters.SHARED_ATTRIBUTES` for the shared attributes.

    Notes
    -----
    ``history_`` holds the reconstruction, KL and distance terms per epoch;
    ``health_warnings_`` also flags a hypersphere collapse.

    Examples
    --------
    >>> import numpy as np
    >>> from anomvae import AnomalyVAESVDD
    >>> X = np.random.default_rng(0).normal(size=(200, 5))
    >>> detector = AnomalyVAESVDD(epochs=5, warmup_epochs=2, random_state=0).fit(X)
    >>> detector.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints: dict = {
        **BaseDeepDetector._parameter_constraints,
        "beta": [StrOptions({"auto"}), Interval(Real, 0, None, closed="left")],
        "svdd_weight": [Interval(Real, 0, None, closed="left")],
        "svdd_latent": [StrOptions(set(LATENTS))],
        "distance": [StrOptions(set(DISTANCES))],
        "scoring": [StrOptions(set(SCORINGS))],
        "warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "likelihood": [StrOptions({"auto", "gaussian", "bernoulli"})],
    }

    __init__ = estimator_init(
        beta="auto",
        svdd_weight=1.0,
        svdd_latent="mean",
        distance="squared",
        scoring="reconstruction",
        warmup_epochs=10,
        likelihood="auto",
    )

    def _cross_fit_calibration(self):
        # Clones' out-of-fold distances to the centre matched the final model's scale.
        return True

    def _make_scorer(self, input_shape, image):
        hidden_dims, latent_dim = self._architecture(input_shape)
        likelihood = self.likelihood
        if likelihood == "auto":
            likelihood = "bernoulli" if image else "gaussian"
        beta = self.beta
        if beta == "auto":
            beta = IMAGE_BETA if image else 1.0
        return VAESVDDScorer(
            VAESVDDNetwork(input_shape, hidden_dims, latent_dim),
            latent_dim=latent_dim,
            beta=beta,
            likelihood=likelihood,
            svdd_weight=self.svdd_weight,
            svdd_latent=self.svdd_latent,
            distance=self.distance,
            scoring=self.scoring,
            warmup_epochs=self.warmup_epochs,
        )

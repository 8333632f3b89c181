"""scikit-learn estimator for the VAE-GAN scorer."""

from __future__ import annotations

from numbers import Real

from torch import nn

from ..._sklearn import Interval, StrOptions
from ...base import BaseDeepDetector
from ...nn import build_body, build_decoder, build_encoder
from .network import Discriminator, VAEGANNetwork
from .scorer import SCORINGS, VAEGANScorer


class AnomalyVAEGAN(BaseDeepDetector):
    """Anomaly detector built on a VAE-GAN (Larsen et al., "Autoencoding beyond
    pixels using a learned similarity metric", ICML 2016).

    A variational autoencoder whose decoder is also a GAN generator: a
    discriminator learns to tell real rows from reconstructions and prior
    samples, and the autoencoder measures similarity in the discriminator's
    hidden layer as well as in input space (the likelihood
    :class:`~anomvae.AnomalyVAE` uses by default: Bernoulli for images, a
    calibrated Gaussian for scaled tabular rows), since the
    anomaly score is an input-space error. Three optimisers (encoder,
    decoder, discriminator) are stepped in turn by the shared training engine.

    Parameters
    ----------
    latent_dim : int or None, default=None
        Size of the latent code; ``None`` picks about a quarter of the input
        width, within [2, 32].
    hidden_dims : sequence of int or None, default=None
        Hidden widths of the encoder and of the discriminator (the decoder
        mirrors them); ``None`` picks two layers, the first twice the input
        width within [64, 512]. For images these are the dense layers after
        the convolutional stages of :func:`anomvae.nn.build_body`; ``None``
        picks one layer of 256.
    gamma : float, default=1e-2
        Weight of the feature-space reconstruction error ``L_llike`` against
        the GAN loss in the decoder's update (the input-space likelihood has
        weight 1, as in the VAE); the authors' default (0.1 and 1
        did not differ beyond seed noise on the tuning sets).
    balance_margin : float or None, default=0.4
        The authors' balance rule: the discriminator is not updated while its
        loss on real or generated rows is below ``0.68 - balance_margin``
        nats (too strong), the decoder not while it is above ``0.68 +
        balance_margin`` (too weak). 0.4 is the authors' value; ``None``
        updates both every step.
    scoring : {"input", "feature", "discriminator", "combined"}, default="input"
        Anomaly score of a row ``x`` with reconstruction ``x_hat`` decoded from
        the posterior mean. ``"input"``: ``||x - x_hat||^2``. ``"feature"``:
        squared error in the discriminator's hidden layer. ``"discriminator"``:
        ``-log D(x)``. ``"combined"``: mean squared error per input dimension
        plus per discriminator feature (f-AnoGAN, Schlegl et al. 2019).
        ``"input"`` is the default because it was best or tied-best in every
        run on ten tuning data sets (``benchmarks/results/
        tabular_scorers_tuning.md``): ``"combined"`` was within 0.005 AUC,
        ``"feature"`` 0.005 to 0.06 lower, and ``"discriminator"`` ranked the
        wrong way on most sets (the discriminator learns to reject the
        decoder's smooth outputs, so a far-off outlier looks "real" to it);
        ``"input"`` is also the score ``feature_scores`` decomposes exactly.
    epochs : int, default=100
        Maximum passes over the training data.
    batch_size : int, default=128
    learning_rate : float, default=1e-3
        Adam learning rate of all three optimisers.
    validation_fraction : float, default=0.1
        Share of the rows held out for early stopping (on the input-space
        negative log-likelihood plus KL) and the ``"auto"`` threshold.
    patience : int or None, default=10
        Epochs without validation improvement before training stops.
    gradient_clip : float or None, default=10.0
        Maximum gradient norm per optimiser.
    scaling : {"standard", "robust", "minmax", "none"}, default="standard"
        Scaling of numeric columns, learned in ``fit``.
    contamination : "auto" or float in (0, 0.5], default="auto"
        Expected share of outliers in the training data, which sets
        ``offset_``; ``"auto"`` targets 1% false alarms on normal rows (``docs/thresholds.md``).
    threshold : ThresholdStrategy or None, default=None
        How ``offset_`` is calibrated (see :mod:`anomvae.thresholds`);
        ``None`` follows ``contamination``.
    device : str, default="auto"
        ``"auto"`` uses CUDA when available, else the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, latent noise and the validation split.
    verbose : bool or int, default=False
        Show a progress bar while training.

    Attributes
    ----------
    offset_ : float
        ``decision_function = score_samples - offset_``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when ``X`` was a DataFrame with string column names.
    scorer_ : VAEGANScorer
        The trained torch module.
    history_ : dict of list
        Per-epoch losses, the discriminator's losses and the share of steps
        in which the discriminator and decoder were updated.
    diagnostics_ : dict
        Mean KL, active latent units, discriminator accuracy and generator
        loss after training.
    health_warnings_ : list of str
        Problems found after training (posterior collapse, a discriminator
        that wins outright, constant scores).
    training_time_ : float
        Seconds spent in ``fit``.

    Notes
    -----
    ``feature_scores`` returns the input-space squared error per feature
    whatever ``scoring`` is, since the other scores do not decompose over
    input features.

    Examples
    --------
    >>> import numpy as np
    >>> from anomvae import AnomalyVAEGAN
    >>> X = np.random.default_rng(0).normal(size=(200, 5))
    >>> detector = AnomalyVAEGAN(epochs=5, random_state=0).fit(X)
    >>> detector.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints: dict = {
        **BaseDeepDetector._parameter_constraints,
        "gamma": [Interval(Real, 0, None, closed="left")],
        "balance_margin": [Interval(Real, 0, None, closed="left"), None],
        "scoring": [StrOptions(set(SCORINGS))],
    }

    def __init__(
        self,
        *,
        latent_dim=None,
        hidden_dims=None,
        gamma=1e-2,
        balance_margin=0.4,
        scoring="input",
        epochs=100,
        batch_size=128,
        learning_rate=1e-3,
        validation_fraction=0.1,
        patience=10,
        gradient_clip=10.0,
        scaling="standard",
        contamination="auto",
        threshold=None,
        device="auto",
        random_state=None,
        verbose=False,
    ):
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.gamma = gamma
        self.balance_margin = balance_margin
        self.scoring = scoring
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.gradient_clip = gradient_clip
        self.scaling = scaling
        self.contamination = contamination
        self.threshold = threshold
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _cross_fit_calibration(self):
        # The discriminator's features are optimistic on its training rows: clones' out-of-fold
        # scores run above the final model's (half of obvious blob outliers were missed).
        return False

    def _make_scorer(self, input_shape, image):
        hidden_dims, latent_dim = self._architecture(input_shape)
        decoder = build_decoder(latent_dim, hidden_dims, input_shape)
        if image:
            decoder = nn.Sequential(decoder, nn.Sigmoid())
        body, body_width = build_body(input_shape, hidden_dims)
        network = VAEGANNetwork(
            build_encoder(input_shape, hidden_dims, latent_dim),
            decoder,
            Discriminator(body, body_width),
        )
        return VAEGANScorer(
            network, gamma=self.gamma, balance_margin=self.balance_margin, scoring=self.scoring,
            likelihood="bernoulli" if image else "calibrated",
        )

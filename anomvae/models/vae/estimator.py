"""scikit-learn estimator for the beta-VAE scorer."""

from __future__ import annotations

from numbers import Integral, Real

from ..._sklearn import Interval, StrOptions
from ...base import BaseDeepDetector
from ...nn import build_decoder, build_encoder
from .network import VAENetwork
from .scorer import SCORINGS, VAEScorer


class AnomalyVAE(BaseDeepDetector):
    """Anomaly detector scoring rows with a (beta-)variational autoencoder.

    The VAE (Kingma & Welling, "Auto-Encoding Variational Bayes", ICLR 2014)
    is trained on the beta-weighted negative ELBO (Higgins et al., ICLR 2017)
    of mostly normal data; rows it reconstructs poorly score as anomalous.

    Parameters
    ----------
    latent_dim : int or None, default=None
        Size of the latent code; ``None`` picks about a quarter of the input
        width, within [2, 32].
    hidden_dims : sequence of int or None, default=None
        Encoder hidden widths (the decoder mirrors them); ``None`` picks two
        layers, the first twice the input width within [64, 512]. For images
        these are the dense layers after the convolutional stages, which are
        sized from the image shape (see :func:`anomvae.nn.build_body`);
        ``None`` picks one layer of 256.
    beta : float, default=1.0
        Weight of the KL term; 1 is the plain VAE, larger values regularise
        the latent code more strongly.
    scoring : {"reconstruction", "elbo", "iwae", "reconstruction+knn"}, default="reconstruction"
        Anomaly score. ``"reconstruction"`` is the squared error of the
        reconstruction decoded from the posterior mean: deterministic, one
        forward pass, and as accurate as the bounds on the shared tabular
        benchmark (see ``benchmarks/``). ``"elbo"`` is the negative ELBO and
        ``"iwae"`` the importance-weighted bound of Burda et al. (ICLR 2016),
        both over ``n_samples`` latent draws fixed at fit time, so repeated
        calls return identical numbers. ``"reconstruction+knn"`` adds a local
        density term to the reconstruction error: the distance of the row's
        posterior mean to its ``n_neighbors``-th nearest training code (up to
        4,096 training codes are kept in the model), each term divided by its
        median on the training rows. It catches anomalies that lie on the
        learned manifold but in a sparse part of it, which a global
        reconstruction error misses (+0.01 mean ROC-AUC on the shared tabular
        benchmark, ``benchmarks/results/knn_gap.md``), at a scoring cost of
        one distance per reference code. ``feature_scores`` stay the
        reconstruction errors.
    n_samples : int, default=16
        Latent draws K for ``"elbo"`` and ``"iwae"``.
    n_neighbors : int, default=5
        k of the ``"reconstruction+knn"`` rule (PyOD's KNN default).
    likelihood : {"auto", "calibrated", "gaussian", "bernoulli"}, default="auto"
        Decoder likelihood; ``"auto"`` is ``"calibrated"`` for tabular rows
        and Bernoulli for images. ``"calibrated"`` is a Gaussian whose shared
        variance is learned as the mean squared error (Rybkin et al., "Simple
        and Effective VAE Training with Calibrated Decoders", ICML 2021);
        ``"gaussian"`` has unit variance, which on standardised data weighs the
        KL term so heavily that the posterior often collapses: the calibrated
        decoder scored higher mean ROC-AUC on the shared tabular benchmark
        (``benchmarks/README.md``).
    epochs : int, default=100
        Maximum passes over the training data.
    batch_size : int, default=128
    learning_rate : float, default=1e-3
        Adam learning rate.
    validation_fraction : float, default=0.1
        Share of the rows held out for early stopping and the ``"auto"``
        threshold; 0 disables both.
    patience : int or None, default=10
        Epochs without validation improvement before training stops.
    gradient_clip : float or None, default=10.0
        Maximum gradient norm.
    scaling : {"standard", "robust", "minmax", "none"}, default="standard"
        Scaling of numeric columns, learned in ``fit``.
    contamination : "auto" or float in (0, 0.5], default="auto"
        Expected share of outliers in the training data, which sets
        ``offset_`` as in :class:`sklearn.ensemble.IsolationForest`. ``"auto"``
        targets 1% false alarms on normal rows, calibrated on held-out or
        cross-fitted scores with gross anomalies set aside
        (:class:`anomvae.calibration.RobustFalsePositiveRate`). Not
        used when ``threshold`` is given.
    threshold : ThresholdStrategy or None, default=None
        How ``offset_`` is calibrated: a strategy from
        :mod:`anomvae.thresholds` (``Contamination``, ``FalsePositiveRate``,
        ``PeaksOverThreshold``, ``PyThresh``); ``None`` follows
        ``contamination``. See ``docs/thresholds.md``.
    device : str, default="auto"
        ``"auto"`` uses CUDA when available, else the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, the validation split and the
        scoring noise; an int makes fits reproducible.
    verbose : bool or int, default=False
        Show a progress bar while training.

    Attributes
    ----------
    offset_ : float
        ``decision_function = score_samples - offset_``; equals
        ``-threshold_.value``.
    threshold_ : FittedThreshold
        The calibrated threshold: method, parameters, value, expected alarm
        rate, calibration-score summary and bootstrap confidence interval.
    reference_scores_ : ndarray
        Sorted anomaly scores of the held-out rows (the training rows when
        ``validation_fraction=0``), the reference of :meth:`p_values`.
    reference_source_ : str
        ``"held-out"``, ``"training"`` or ``"supplied"`` (by :meth:`set_threshold`).
    reference_feature_scores_ : ndarray
        Mean per-feature score of the reference rows: the baseline against
        which :func:`anomvae.monitor` ranks the features driving alarms.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Defined when ``X`` was a DataFrame with string column names.
    scorer_ : VAEScorer
        The trained torch module.
    history_ : dict of list
        Per-epoch training losses and validation loss.
    diagnostics_ : dict
        Training-health figures (mean KL, active latent units).
    health_warnings_ : list of str
        Problems found after training (posterior collapse, constant scores).
    training_time_ : float
        Seconds spent in ``fit``.

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
        "likelihood": [StrOptions({"auto", "calibrated", "gaussian", "bernoulli"})],
    }

    def __init__(
        self,
        *,
        latent_dim=None,
        hidden_dims=None,
        beta=1.0,
        scoring="reconstruction",
        n_samples=16,
        n_neighbors=5,
        likelihood="auto",
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
        self.beta = beta
        self.scoring = scoring
        self.n_samples = n_samples
        self.n_neighbors = n_neighbors
        self.likelihood = likelihood
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
        # A training row's nearest training code is itself: in-sample kNN distances are optimistic.
        return self.scoring != "reconstruction+knn"

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
        )

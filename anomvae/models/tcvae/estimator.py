"""scikit-learn estimator of the beta-TCVAE scorer."""

from __future__ import annotations

from numbers import Integral, Real

from ..._sklearn import Interval, StrOptions
from ...base import BaseDeepDetector
from ...base.parameters import estimator_init
from ...nn import VAENetwork, build_decoder, build_encoder
from .scorer import SCORINGS, TCVAEScorer


class AnomalyTCVAE(BaseDeepDetector):
    """Anomaly detector on a beta-TCVAE: a VAE whose latent factors are pushed apart.

    The KL term of the ELBO is split into index-code mutual information,
    total correlation (TC) and dimension-wise KL, estimated by
    minibatch-weighted sampling (Chen, Li, Grosse & Duvenaud, "Isolating
    Sources of Disentanglement in Variational Autoencoders", NeurIPS 2018),
    and the TC is weighted by ``tc_weight``. Scoring as
    :class:`~anomvae.AnomalyVAE`. Measured beside AnomalyVAE in
    ``benchmarks/results/tcvae.md``.

    Parameters
    ----------
    tc_weight : float, default=6.0
        Weight of the total-correlation term (the paper's beta; 1 is the
        plain ELBO, 6 the paper's usual choice).
    scoring : {"reconstruction+knn", "reconstruction"}, default="reconstruction+knn"
        As in :class:`~anomvae.AnomalyVAE`.
    n_neighbors : int, default=5
        k of the ``"reconstruction+knn"`` rule.
    trim_fraction : float in [0, 0.5), default=0.1
        Share of each mini-batch's highest-loss rows left out of the loss.
    See :data:`~anomvae.base.parameters.SHARED_PARAMETERS` for the shared parameters.

    Attributes
    ----------
    scorer_ : TCVAEScorer
        The trained torch module.
    diagnostics_ : dict
        Training-health figures (mean KL, active latent units).
    See :data:`~anomvae.base.parameters.SHARED_ATTRIBUTES` for the shared attributes.

    Examples
    --------
    >>> import numpy as np
    >>> from anomvae import AnomalyTCVAE
    >>> X = np.random.default_rng(0).normal(size=(200, 5))
    >>> AnomalyTCVAE(epochs=5, random_state=0).fit(X).predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints: dict = {
        **BaseDeepDetector._parameter_constraints,
        "tc_weight": [Interval(Real, 0, None, closed="left")],
        "scoring": [StrOptions(set(SCORINGS))],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "trim_fraction": [Interval(Real, 0, 0.5, closed="left")],
    }

    __init__ = estimator_init(tc_weight=6.0, scoring="reconstruction+knn", n_neighbors=5, trim_fraction=0.1)

    def _make_scorer(self, input_shape, image):
        hidden_dims, latent_dim = self._architecture(input_shape)
        network = VAENetwork(build_encoder(input_shape, hidden_dims, latent_dim),
                             build_decoder(latent_dim, hidden_dims, input_shape))
        return TCVAEScorer(network, latent_dim=latent_dim, tc_weight=self.tc_weight,
                           likelihood="bernoulli" if image else "calibrated", scoring=self.scoring,
                           n_neighbors=self.n_neighbors, trim_fraction=self.trim_fraction)

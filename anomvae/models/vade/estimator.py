"""scikit-learn estimator of the VaDE scorer, and its cohort API."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from ..._sklearn import Interval, StrOptions
from ...base import BaseDeepDetector
from ...base.parameters import estimator_init
from ...nn import VAENetwork, build_decoder, build_encoder
from .scorer import SCORINGS, VaDEScorer


class AnomalyVaDE(BaseDeepDetector):
    """Anomaly detector on a VAE with a Gaussian-mixture prior (VaDE), with each row's cohort.

    The latent prior is a mixture of ``n_components`` diagonal Gaussians
    whose weights, means and variances are learned with the VAE through the
    VaDE evidence lower bound (Jiang, Zheng, Tan, Tang & Zhou, "Variational
    Deep Embedding: An Unsupervised and Generative Approach to Clustering",
    IJCAI 2017): the responsibilities ``q(c | x)`` are the posterior
    probabilities of the components at the row's code, and the KL term runs
    to the mixture. As in the paper, the mixture starts as a Gaussian mixture
    fitted (EM, k-means start) to the codes of a VAE trained for
    ``warmup_epochs``. Normal data made of several segments (account types,
    machines, shifts) gets one component each, so a row between segments
    lies where the prior density is low even though each segment is dense;
    :meth:`predict_cohort` says which segment a row belongs to.

    When to choose it: when the normal rows form distinct groups and you
    want to see them, or score by density in the latent space. Measured
    beside AnomalyVAE in ``benchmarks/results/vade.md``.

    Parameters
    ----------
    n_components : int, default=5
        K, the number of mixture components (cohorts). The paper sets it to
        the number of classes; without labels, err on the side of more
        components than the segments you expect: surplus components share a
        segment or keep a small weight, while too few merge segments and put
        the low-density region between them inside a component. On eight
        development tables (``benchmarks/results/vade.md``) mean ROC-AUC was
        0.772 with 1 component, 0.788 with 3, 0.791 with 5 and 0.791 with 10,
        hence 5 (measured before early stopping waited for the warm-up; 5
        components now 0.799). The cost is ``O(K * latent_dim)`` per row.
    scoring : {"reconstruction+prior", "prior", "reconstruction"}, default="reconstruction+prior"
        Anomaly score, all deterministic (at the posterior mean).
        ``"prior"`` is ``-log p(z)`` under the mixture at the posterior mean:
        how unusual the row's code is for every cohort. ``"reconstruction"``
        is the squared error of the reconstruction decoded from the posterior
        mean. ``"reconstruction+prior"`` adds the two, each divided by its
        median over the training rows as in AnomalyVAE's
        ``"reconstruction+knn"``; the prior term is measured from the
        mixture's highest possible log density, so it is never negative.
        The reconstruction error catches rows off the learned manifold, the
        prior term rows on it but outside every cohort. ``feature_scores``
        are the reconstruction errors under every rule.
    warmup_epochs : int or "auto", default="auto"
        Epochs of plain VAE training (standard normal prior) before the
        mixture is fitted to the codes and trained with the networks.
        ``"auto"`` is enough epochs for 300 optimiser steps, at least 10:
        the mixture reinforces the clusters it starts from, and earlier
        codes did not yet separate well-separated clusters
        (:data:`~anomvae.models.vade.scorer.WARMUP_STEPS`). Early stopping
        counts ``patience`` and keeps the best weights only after the
        warm-up, so the mixture is always trained when ``epochs`` exceeds
        the warm-up; when it does not, the mixture is fitted to the final
        codes. On small tables (one optimiser step per epoch under
        ``batch_size`` rows) "auto" can exceed the default 100 epochs.
    trim_fraction : float in [0, 0.5), default=0.1
        Share of each mini-batch's highest-loss rows left out of the loss
        (Shen & Sanghavi, ICML 2019), as in AnomalyVAE.
    See :data:`~anomvae.base.parameters.SHARED_PARAMETERS` for the shared parameters.

    Attributes
    ----------
    scorer_ : VaDEScorer
        The trained torch module; ``scorer_.prior`` is the mixture.
    diagnostics_ : dict
        Mean KL to the standard normal, active latent units and
        ``effective_components`` (``exp`` of the entropy of the weights).
    See :data:`~anomvae.base.parameters.SHARED_ATTRIBUTES` for the shared attributes.

    Examples
    --------
    >>> import numpy as np
    >>> from anomvae import AnomalyVaDE
    >>> X = np.random.default_rng(0).normal(size=(200, 5))
    >>> detector = AnomalyVaDE(n_components=3, epochs=5, random_state=0).fit(X)
    >>> detector.predict_cohort_proba(X[:3]).shape
    (3, 3)
    """

    _parameter_constraints: dict = {
        **BaseDeepDetector._parameter_constraints,
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "scoring": [StrOptions(set(SCORINGS))],
        "warmup_epochs": [StrOptions({"auto"}), Interval(Integral, 0, None, closed="left")],
        "trim_fraction": [Interval(Real, 0, 0.5, closed="left")],
    }

    __init__ = estimator_init(n_components=5, scoring="reconstruction+prior", warmup_epochs="auto",
                              trim_fraction=0.1)

    def _make_scorer(self, input_shape, image):
        hidden_dims, latent_dim = self._architecture(input_shape)
        network = VAENetwork(build_encoder(input_shape, hidden_dims, latent_dim),
                             build_decoder(latent_dim, hidden_dims, input_shape))
        return VaDEScorer(network, latent_dim=latent_dim, n_components=self.n_components,
                          likelihood="bernoulli" if image else "calibrated", scoring=self.scoring,
                          warmup_epochs=None if self.warmup_epochs == "auto" else self.warmup_epochs,
                          batch_size=self.batch_size, trim_fraction=self.trim_fraction)

    def predict_cohort_proba(self, X) -> np.ndarray:
        """Probability of each mixture component (cohort) for each row.

        The responsibilities ``p(c = k | z)`` of the mixture at the row's
        posterior mean (Jiang et al. 2017, eq. 16).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), DataFrame, or image batch
            Rows of the form ``fit`` saw.

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            Each row sums to 1 (to float32 precision).
        """
        return self._map_rows("cohort_probabilities", X)

    def predict_cohort(self, X) -> np.ndarray:
        """The most probable cohort of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), DataFrame, or image batch

        Returns
        -------
        ndarray of int, shape (n_samples,)
            Component index in ``[0, n_components)``: the argmax of
            :meth:`predict_cohort_proba`.
        """
        return self.predict_cohort_proba(X).argmax(axis=1)

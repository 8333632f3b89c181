"""VaDE: a VAE with a Gaussian-mixture prior (Jiang et al. 2017)."""

from .estimator import AnomalyVaDE

__all__ = ["AnomalyVaDE"]

"""beta-VAE scorer (Kingma & Welling 2014; Higgins et al. 2017)."""

from .estimator import AnomalyVAE

__all__ = ["AnomalyVAE"]

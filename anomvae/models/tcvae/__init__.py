"""beta-TCVAE scorer (Chen et al. 2018)."""

from .estimator import AnomalyTCVAE

__all__ = ["AnomalyTCVAE"]

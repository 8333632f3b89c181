"""adVAE scorer (Wang et al. 2020)."""

from .estimator import AnomalyAdVAE

__all__ = ["AnomalyAdVAE"]

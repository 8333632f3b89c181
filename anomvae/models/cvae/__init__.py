"""Conditional VAE scorer: rows judged given their context (Sohn et al. 2015)."""

from .estimator import AnomalyCVAE

__all__ = ["AnomalyCVAE"]

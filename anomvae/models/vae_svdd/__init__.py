"""VAE-SVDD scorer: a VAE whose latent code is pulled into a Deep SVDD
hypersphere (Zhou et al., Neurocomputing 2021; Ruff et al., ICML 2018)."""

from .estimator import AnomalyVAESVDD

__all__ = ["AnomalyVAESVDD"]

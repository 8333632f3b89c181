"""VAE-GAN scorer (Larsen et al. 2016)."""

from .estimator import AnomalyVAEGAN

__all__ = ["AnomalyVAEGAN"]

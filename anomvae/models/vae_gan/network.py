"""The VAE-GAN networks: encoder, decoder (generator) and discriminator."""

from __future__ import annotations

from torch import Tensor, nn

from ...nn.vae_network import VAENetwork


class Discriminator(nn.Module):
    """Feature extractor with a logit head.

    Its last hidden layer ``features(x)`` is the learned similarity space of
    Larsen et al. (2016); ``forward`` returns the logit of "x is real".

    Parameters
    ----------
    body : nn.Module
        Maps inputs to ``body_width`` features.
    body_width : int
    """

    def __init__(self, body: nn.Module, body_width: int) -> None:
        super().__init__()
        self.body = body
        self.logit = nn.Linear(body_width, 1)

    def features(self, x: Tensor) -> Tensor:
        """Hidden-layer representation ``D_l(x)``, shape ``(n, body_width)``."""
        return self.body(x)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits of shape (n,), hidden features)``."""
        features = self.features(x)
        return self.logit(features).squeeze(1), features


class VAEGANNetwork(VAENetwork):
    """VAE whose decoder doubles as a GAN generator (Larsen et al., "Autoencoding
    beyond pixels using a learned similarity metric", ICML 2016).

    Parameters
    ----------
    encoder : nn.Module
        Returns ``(mean, log_variance)`` of the posterior.
    decoder : nn.Module
        Maps latent codes to outputs in input units (for images it ends in a
        sigmoid, so that the discriminator sees pixels in [0, 1] from both sides).
    discriminator : Discriminator
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module, discriminator: Discriminator) -> None:
        super().__init__(encoder, decoder)
        self.discriminator = discriminator

"""The shared building blocks every scorer is made of: the VAE kit.

- :mod:`~anomvae.nn.blocks`: MLP and convolutional encoders and decoders sized
  from the input, and the default architecture;
- :mod:`~anomvae.nn.vae_network`: :class:`VAENetwork`, a Gaussian encoder and a decoder;
- :mod:`~anomvae.nn.vae_losses`: KL, the Gaussian, calibrated Gaussian and
  Bernoulli likelihoods, the negative ELBO and the IWAE bound;
- :mod:`~anomvae.nn.posterior`: decoded means, posterior diagnostics and active units;
- :mod:`~anomvae.nn.latent_density`: the ``"reconstruction+knn"`` score (reference codes, scales);
- :mod:`~anomvae.nn.fused_vae_step`: the MLP VAE's loss with a hand-written backward, for fast CPU steps.

Model folders under :mod:`anomvae.models` import these and never each other.
"""

from .blocks import GaussianEncoder, build_body, build_decoder, build_encoder, default_architecture, linear_flops, mlp
from .vae_network import VAENetwork

__all__ = [
    "GaussianEncoder",
    "VAENetwork",
    "build_body",
    "build_decoder",
    "build_encoder",
    "default_architecture",
    "linear_flops",
    "mlp",
]

"""The VAE-SVDD network: a VAE whose mean path has no bias terms."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ...nn import build_decoder, build_encoder
from ...nn.vae_network import VAENetwork


class VAESVDDNetwork(VAENetwork):
    """Variational autoencoder whose posterior mean is the Deep SVDD embedding.

    The feature extractor and the mean head carry no bias terms: with a bias
    the network can map every input onto the centre and make the SVDD term
    zero without learning anything (Ruff et al., "Deep One-Class
    Classification", ICML 2018, Proposition 2). The log-variance head and the
    decoder keep their biases; they are not on the SVDD path.

    Parameters
    ----------
    input_shape : tuple of int
        ``(features,)`` or ``(channels, height, width)``.
    hidden_dims : sequence of int
    latent_dim : int
    """

    def __init__(self, input_shape: tuple[int, ...], hidden_dims: Sequence[int], latent_dim: int):
        super().__init__(
            build_encoder(input_shape, hidden_dims, latent_dim, bias=False),
            build_decoder(latent_dim, hidden_dims, input_shape),
        )

    def embed(self, x: Tensor) -> Tensor:
        """The SVDD embedding of ``x``: its posterior mean."""
        return self.encode(x)[0]

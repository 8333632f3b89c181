"""Encoders and decoders sized from the input shape.

Tabular inputs (shape ``(d,)``) get multilayer perceptrons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

LOGVAR_RANGE = (-12.0, 8.0)
"""Posterior log-variances are clamped here so exp() never overflows."""


def default_architecture(n_inputs: int) -> tuple[tuple[int, ...], int]:
    """Hidden widths and latent size used when the estimator leaves them ``None``.

    The first hidden layer is twice the input width within [64, 512], the second
    half of it; the latent code has about a quarter of the input's dimensions
    within [2, 32], narrow enough that the decoder cannot copy its input.
    """
    first = int(min(512, max(64, 2 ** math.ceil(math.log2(max(2 * n_inputs, 2))))))
    latent = int(min(32, max(2, math.ceil(n_inputs / 4))))
    return (first, first // 2), latent


def mlp(sizes: Sequence[int], *, bias: bool = True, final_activation: bool = False) -> nn.Sequential:
    """Linear layers of the given widths with LeakyReLU between them."""
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(width_in, width_out, bias=bias))
        if index < len(sizes) - 2 or final_activation:
            layers.append(nn.LeakyReLU(0.1))
    return nn.Sequential(*layers)


class GaussianEncoder(nn.Module):
    """Map inputs to the mean and log-variance of a diagonal Gaussian posterior.

    Parameters
    ----------
    body : nn.Module
        Feature extractor ending in ``body_width`` features.
    body_width : int
    latent_dim : int
    bias : bool
        Whether the mean head has a bias (VAE-SVDD turns it off).
    """

    def __init__(self, body: nn.Module, body_width: int, latent_dim: int, *, bias: bool = True):
        super().__init__()
        self.body = body
        self.mean = nn.Linear(body_width, latent_dim, bias=bias)
        self.log_variance = nn.Linear(body_width, latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.body(x)
        return self.mean(features), self.log_variance(features).clamp(*LOGVAR_RANGE)


def build_body(
    input_shape: tuple[int, ...], hidden_dims: Sequence[int], *, bias: bool = True
) -> tuple[nn.Module, int]:
    """Feature extractor for inputs of ``input_shape`` and its output width.

    Encoders put their Gaussian heads on it; discriminators a logit head.
    """
    if len(input_shape) != 1:
        raise ValueError(f"no feature extractor for inputs of shape {input_shape}")
    return mlp([input_shape[0], *hidden_dims], bias=bias, final_activation=True), hidden_dims[-1]


def build_encoder(
    input_shape: tuple[int, ...], hidden_dims: Sequence[int], latent_dim: int, *, bias: bool = True
) -> GaussianEncoder:
    """Gaussian encoder for inputs of ``input_shape``."""
    body, width = build_body(input_shape, hidden_dims, bias=bias)
    return GaussianEncoder(body, width, latent_dim, bias=bias)


def build_decoder(
    latent_dim: int, hidden_dims: Sequence[int], input_shape: tuple[int, ...]
) -> nn.Module:
    """Decoder from the latent code back to ``input_shape`` (mirrors the encoder)."""
    if len(input_shape) != 1:
        raise ValueError(f"no decoder for outputs of shape {input_shape}")
    return mlp([latent_dim, *reversed(tuple(hidden_dims)), input_shape[0]])

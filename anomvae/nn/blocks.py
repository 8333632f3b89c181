"""Encoders and decoders sized from the input shape.

Tabular inputs (shape ``(d,)``) get multilayer perceptrons. Images (shape
``(C, H, W)``) get a convolutional feature extractor: stride-2 convolutions
that halve the spatial size until it is small, followed by the dense
``hidden_dims`` layers; their decoder mirrors it with transposed
convolutions and returns exactly ``(C, H, W)``, odd sizes included.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

LOGVAR_RANGE = (-12.0, 8.0)
"""Posterior log-variances are clamped here so exp() never overflows."""

IMAGE_HIDDEN_DIMS = (256,)
"""Dense widths after the convolutional stages when ``hidden_dims`` is None."""

SMALLEST_FEATURE_MAP = 8
"""Convolutional stages halve the image while its smaller side is at least this."""

FIRST_CHANNELS, MAX_CHANNELS = 16, 128
"""Channels of the first convolutional stage; each later stage doubles them up to the cap."""


def is_image_shape(input_shape: tuple[int, ...]) -> bool:
    """True for ``(C, H, W)`` shapes."""
    return len(input_shape) == 3


def default_architecture(input_shape: int | tuple[int, ...]) -> tuple[tuple[int, ...], int]:
    """Hidden widths and latent size used when the estimator leaves them ``None``.

    ``input_shape`` is the input width, or the shape of one encoded row. For
    tabular rows the first hidden layer is twice the input width within
    [64, 512], the second half of it. For images the hidden widths are the
    dense layers after the convolutional stages, :data:`IMAGE_HIDDEN_DIMS`,
    since the convolutions already reduce the pixels to a compact map. The
    latent code has about a quarter of the input's dimensions within [2, 32],
    narrow enough that the decoder cannot copy its input.
    """
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(input_shape)
    n_inputs = math.prod(shape)
    latent = int(min(32, max(2, math.ceil(n_inputs / 4))))
    if is_image_shape(shape):
        return IMAGE_HIDDEN_DIMS, latent
    first = int(min(512, max(64, 2 ** math.ceil(math.log2(max(2 * n_inputs, 2))))))
    return (first, first // 2), latent


def linear_flops(module: nn.Module) -> int:
    """Operations per row of every ``nn.Linear`` in ``module``: ``2 * in * out`` each (the matrix products' arithmetic)."""
    return sum(2 * layer.in_features * layer.out_features for layer in module.modules()
               if isinstance(layer, nn.Linear))


def mlp(sizes: Sequence[int], *, bias: bool = True, final_activation: bool = False) -> nn.Sequential:
    """Linear layers of the given widths with LeakyReLU between them."""
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(width_in, width_out, bias=bias))
        if index < len(sizes) - 2 or final_activation:
            layers.append(nn.LeakyReLU(0.1))
    return nn.Sequential(*layers)


def feature_map_plan(input_shape: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """``(channels, height, width)`` of the input and after each convolutional stage.

    A stage is a 3x3 convolution with stride 2 and padding 1, which maps a
    side ``n`` to ``ceil(n / 2)``. There is at least one stage, and stages
    are added while the smaller side is at least :data:`SMALLEST_FEATURE_MAP`
    (28x28 MNIST: 28 -> 14 -> 7; 32x32: 32 -> 16 -> 8 -> 4; 7x7: 7 -> 4).
    """
    channels, height, width = input_shape
    plan = [(channels, height, width)]
    while len(plan) == 1 or min(height, width) >= SMALLEST_FEATURE_MAP:
        height, width = math.ceil(height / 2), math.ceil(width / 2)
        plan.append((min(MAX_CHANNELS, FIRST_CHANNELS * 2 ** (len(plan) - 1)), height, width))
    return plan


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


def conv_body(input_shape: tuple[int, ...], hidden_dims: Sequence[int], *, bias: bool) -> nn.Sequential:
    """Stride-2 convolutions of :func:`feature_map_plan`, then dense ``hidden_dims``."""
    plan = feature_map_plan(input_shape)
    layers: list[nn.Module] = []
    for (channels_in, _, _), (channels_out, _, _) in zip(plan[:-1], plan[1:]):
        layers += [
            nn.Conv2d(channels_in, channels_out, kernel_size=3, stride=2, padding=1, bias=bias),
            nn.LeakyReLU(0.1),
        ]
    layers.append(nn.Flatten())
    layers.append(mlp([math.prod(plan[-1]), *hidden_dims], bias=bias, final_activation=True))
    return nn.Sequential(*layers)


class ConvDecoder(nn.Module):
    """Mirror of :func:`conv_body`: dense layers, then transposed convolutions.

    Each transposed convolution doubles the side; an output padding of 1 or 0
    restores an even or odd side exactly, so the output has the shape of the
    encoder's input. The last layer has no activation (Gaussian means or
    Bernoulli logits).
    """

    def __init__(self, latent_dim: int, hidden_dims: Sequence[int], input_shape: tuple[int, ...]):
        super().__init__()
        plan = feature_map_plan(input_shape)
        self.smallest_map = plan[-1]
        self.dense = mlp([latent_dim, *reversed(tuple(hidden_dims)), math.prod(plan[-1])],
                         final_activation=True)
        layers: list[nn.Module] = []
        stages = list(zip(reversed(plan[1:]), reversed(plan[:-1])))
        for index, ((channels_in, _, _), (channels_out, height, width)) in enumerate(stages):
            layers.append(nn.ConvTranspose2d(
                channels_in, channels_out, kernel_size=3, stride=2, padding=1,
                output_padding=(1 - height % 2, 1 - width % 2),
            ))
            if index < len(stages) - 1:
                layers.append(nn.LeakyReLU(0.1))
        self.deconvolutions = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.deconvolutions(self.dense(z).reshape(len(z), *self.smallest_map))


def build_body(
    input_shape: tuple[int, ...], hidden_dims: Sequence[int], *, bias: bool = True
) -> tuple[nn.Module, int]:
    """Feature extractor for inputs of ``input_shape`` and its output width.

    Encoders put their Gaussian heads on it; discriminators a logit head.
    ``bias=False`` removes every bias term (Deep SVDD needs a bias-free path).
    """
    if is_image_shape(input_shape):
        return conv_body(input_shape, hidden_dims, bias=bias), hidden_dims[-1]
    if len(input_shape) != 1:
        raise ValueError(
            f"no feature extractor for inputs of shape {input_shape}; expected (features,) "
            "or (channels, height, width)"
        )
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
    if is_image_shape(input_shape):
        return ConvDecoder(latent_dim, hidden_dims, input_shape)
    if len(input_shape) != 1:
        raise ValueError(
            f"no decoder for outputs of shape {input_shape}; expected (features,) "
            "or (channels, height, width)"
        )
    return mlp([latent_dim, *reversed(tuple(hidden_dims)), input_shape[0]])

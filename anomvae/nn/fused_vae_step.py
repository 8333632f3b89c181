"""A hand-written forward and backward of the tabular VAE's training loss.

At the batch sizes of tabular anomaly detection (32 to 128 rows) a CPU
training step of a small MLP VAE costs far more in per-operation dispatch and
autograd bookkeeping than in arithmetic: eager PyTorch runs about 90 small
operations, each with its autograd node, and ``torch.compile`` adds more
wrapper overhead than it saves at this size (``benchmarks/fused_step.py``).
This module computes the negative ELBO of :class:`~anomvae.nn.VAENetwork` and
its exact gradient by hand: the forward pass is a chain of ``addmm`` and
in-place activations, the backward the transposed chain of ``mm``, each weight
gradient written straight into the parameter's ``.grad`` (a view of the
engine's flat gradient buffer, :mod:`anomvae.flat_parameters`), with no graph
recorded. It is the same arithmetic as autograd's, in the same order where
it matters, so a fit takes the same path up to float rounding.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .blocks import LOGVAR_RANGE, GaussianEncoder
from .vae_losses import MIN_NOISE_VARIANCE, trimmed_rows
from .vae_network import VAENetwork

LIKELIHOODS = ("gaussian", "calibrated")
"""Decoder likelihoods the fused step implements."""


def _linear_chain(module: nn.Module) -> list[tuple[nn.Linear, float | None]] | None:
    """``(layer, slope of the LeakyReLU after it or None)`` for an MLP, else None."""
    if not isinstance(module, nn.Sequential):
        return None
    chain: list[tuple[nn.Linear, float | None]] = []
    for child in module:
        if isinstance(child, nn.Linear) and child.bias is not None:
            chain.append((child, None))
        elif isinstance(child, nn.LeakyReLU) and chain and chain[-1][1] is None:
            chain[-1] = (chain[-1][0], child.negative_slope)
        else:
            return None
    return chain or None


def supports(network: nn.Module, likelihood: str, device: torch.device) -> bool:
    """Whether :class:`FusedVAEStep` can train ``network`` with this loss on ``device``.

    It needs the tabular VAE of :mod:`anomvae.nn.blocks` (MLP encoder with
    Gaussian heads, MLP decoder, every layer with a bias, LeakyReLU between
    layers), a ``"gaussian"`` or ``"calibrated"`` decoder, and the CPU
    (where dispatch overhead is what a small step costs; on a GPU the
    engine's mixed precision applies instead).
    """
    if (device.type != "cpu" or likelihood not in LIKELIHOODS
            or not isinstance(network, VAENetwork) or not isinstance(network.encoder, GaussianEncoder)):
        return False
    encoder = network.encoder
    body, decoder = _linear_chain(encoder.body), _linear_chain(network.decoder)
    heads = (encoder.mean, encoder.log_variance)
    return (body is not None and decoder is not None and all(slope is not None for _, slope in body)
            and all(slope is not None for _, slope in decoder[:-1]) and decoder[-1][1] is None
            and all(isinstance(head, nn.Linear) and head.bias is not None for head in heads))


class FusedVAEStep:
    """Negative ELBO of an MLP VAE and its gradient, without autograd.

    The loss is the (trimmed) batch mean of ``reconstruction NLL + beta * KL``
    on one reparameterised sample, as
    :meth:`anomvae.models.vae.scorer.VAEScorer.training_step` computes it with
    autograd (Kingma & Welling, ICLR 2014; the ``"calibrated"`` decoder of
    Rybkin et al., ICML 2021, whose variance takes no gradient; the trimmed
    mean of :func:`~anomvae.nn.vae_losses.trimmed_mean`). Call
    :meth:`forward`, then :meth:`backward`, which overwrites every
    parameter's ``.grad`` (they must exist, as the engine's flat buffers
    provide).

    Parameters
    ----------
    network : VAENetwork
        One that :func:`supports` accepts.
    likelihood : {"gaussian", "calibrated"}
    beta : float
        Weight of the KL term.
    trim_fraction : float in [0, 0.5)
        Share of each batch's highest-loss rows left out of the loss.
    """

    def __init__(self, network: VAENetwork, likelihood: str, beta: float, trim_fraction: float = 0.0) -> None:
        self.body = _linear_chain(network.encoder.body)
        self.heads = (network.encoder.mean, network.encoder.log_variance)
        self.decoder = _linear_chain(network.decoder)
        self.likelihood = likelihood
        self.beta = beta
        self.trim_fraction = trim_fraction

    @torch.no_grad()
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Loss on batch ``x`` of shape ``(n, features)``, keeping what :meth:`backward` needs.

        The latent noise is one ``torch.randn`` of shape ``(n, latent)`` from
        the global generator, the draw autograd's path makes.

        Returns
        -------
        loss, reconstruction, kl, variance : Tensor of shape ()
            The (trimmed) mean loss, the mean reconstruction NLL and KL over
            every row, and the decoder variance (1 for ``"gaussian"``).
        """
        self.x = x
        self.body_outputs = self._chain_forward(self.body, x)
        features = self.body_outputs[-1]
        mean_head, variance_head = self.heads
        self.mean = torch.addmm(mean_head.bias, features, mean_head.weight.t())
        self.log_variance = torch.addmm(variance_head.bias, features, variance_head.weight.t())
        self.log_variance.clamp_(*LOGVAR_RANGE)
        self.latent_variance = self.log_variance.exp()
        self.scaled_noise = torch.randn(self.mean.shape, dtype=x.dtype).mul_(self.latent_variance.sqrt())
        self.z = self.mean + self.scaled_noise
        self.decoder_outputs = self._chain_forward(self.decoder, self.z)
        self.residual = self.decoder_outputs[-1] - x

        n, width = x.shape
        row_squared_error = self.residual.square().sum(dim=1)
        # Twice the KL per row, plus the latent size: sum(mean^2 + sigma^2 - log sigma^2).
        row_kl = self.mean.square().add_(self.latent_variance).sub_(self.log_variance).sum(dim=1)
        squared_error, kl_sum = torch.stack([row_squared_error.sum(), row_kl.sum()]).tolist()
        kl_offset = 0.5 * self.beta * self.mean.shape[1]
        if self.likelihood == "calibrated":
            self.variance = max(squared_error / (n * width), MIN_NOISE_VARIANCE)
            reconstruction_offset = 0.5 * width * math.log(self.variance)
        else:
            self.variance, reconstruction_offset = 1.0, 0.0
        # Per-row loss, up to the constant offsets: the ranking the trimmed mean keeps rows by.
        row_loss = torch.add(row_squared_error, row_kl, alpha=self.beta * self.variance).mul_(0.5 / self.variance)
        keep = n - trimmed_rows(self.trim_fraction, n)
        if keep == n:
            self.row_weights = torch.full((n, 1), 1.0 / n, dtype=x.dtype)
        else:
            kept = row_loss.topk(keep, largest=False, sorted=False).indices
            self.row_weights = torch.zeros(n, 1, dtype=x.dtype).index_fill_(0, kept, 1.0 / keep)
        loss = float(torch.mv(self.row_weights.t(), row_loss)) + reconstruction_offset - kl_offset
        reconstruction = 0.5 * squared_error / (n * self.variance) + reconstruction_offset
        kl = 0.5 * (kl_sum / n - self.mean.shape[1])
        return (x.new_tensor(loss), x.new_tensor(reconstruction), x.new_tensor(kl),
                x.new_tensor(self.variance))

    @torch.no_grad()
    def backward(self) -> None:
        """Write the gradient of the last :meth:`forward`'s loss into every parameter's ``.grad``."""
        grad = self.residual.mul_(self.row_weights * (1.0 / self.variance))
        grad_z = self._chain_backward(self.decoder, self.z, self.decoder_outputs, grad, need_input=True)
        # z = mean + sigma * noise; the KL term adds beta * mean and beta * (sigma^2 - 1) / 2 per row.
        kl_weights = self.row_weights * self.beta
        grad_mean = torch.addcmul(grad_z, self.mean, kl_weights)
        grad_log_variance = self.latent_variance.sub_(1.0).mul_(kl_weights).mul_(0.5)
        grad_log_variance.addcmul_(grad_z, self.scaled_noise, value=0.5)
        grad_log_variance = torch.ops.aten.hardtanh_backward(grad_log_variance, self.log_variance, *LOGVAR_RANGE)
        features = self.body_outputs[-1]
        mean_head, variance_head = self.heads
        self._weight_grads(mean_head, grad_mean, features)
        self._weight_grads(variance_head, grad_log_variance, features)
        grad_features = torch.mm(grad_mean, mean_head.weight).addmm_(grad_log_variance, variance_head.weight)
        self._chain_backward(self.body, self.x, self.body_outputs, grad_features, need_input=False)

    @staticmethod
    def _chain_forward(chain: list[tuple[nn.Linear, float | None]], h: Tensor) -> list[Tensor]:
        outputs = []
        for layer, slope in chain:
            h = torch.addmm(layer.bias, h, layer.weight.t())
            if slope is not None:
                torch.nn.functional.leaky_relu_(h, slope)
            outputs.append(h)
        return outputs

    @staticmethod
    def _weight_grads(layer: nn.Linear, grad_output: Tensor, layer_input: Tensor) -> None:
        torch.mm(grad_output.t(), layer_input, out=layer.weight.grad)
        torch.sum(grad_output, dim=0, out=layer.bias.grad)

    def _chain_backward(self, chain: list[tuple[nn.Linear, float | None]], chain_input: Tensor,
                        outputs: list[Tensor], grad: Tensor, *, need_input: bool) -> Tensor | None:
        """Back-propagate ``grad`` (at the chain's output) through it; the gradient at its input if asked."""
        for index in range(len(chain) - 1, -1, -1):
            layer, slope = chain[index]
            if slope is not None:
                # LeakyReLU keeps the sign, so its output says where the slope applied.
                grad = torch.ops.aten.leaky_relu_backward(grad, outputs[index], slope, True)
            layer_input = outputs[index - 1] if index else chain_input
            self._weight_grads(layer, grad, layer_input)
            if index or need_input:
                grad = torch.mm(grad, layer.weight)
        return grad if need_input else None

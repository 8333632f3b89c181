"""The interface between a scorer's networks and the shared training engine.

A scorer is an :class:`torch.nn.Module` that owns its networks and buffers and
says three things: which parameter groups get an optimiser, what one training
step computes (as a sequence of :class:`Phase` objects), and how it scores a
batch. The engine owns everything else: the loop, the optimisers' ``step``,
clipping, mixed precision, early stopping, progress and logging.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

BatchSource = Callable[[], Iterable[Tensor]]
"""A callable that yields the training data again, batch by batch."""


@dataclass(frozen=True)
class FitContext:
    """What a scorer may need to know about its training data before training.

    Passed once to :meth:`Scorer.on_fit_start`, after the scorer is built and
    before the first epoch.

    Attributes
    ----------
    n_train : int
        Training rows (the validation rows excluded) of every process of a
        data-parallel fit together, e.g. for estimators weighted by the
        data-set size such as minibatch-weighted sampling (Chen et al.,
        "Isolating Sources of Disentanglement in VAEs", 2018).
    n_validation : int
        This process's held-out rows; 0 without a validation split.
    input_shape : tuple of int
        Shape of one encoded row: ``(n_encoded,)`` for tabular rows,
        ``(C, H, W)`` for images.
    is_image : bool
        True for image batches.
    column_slices : tuple of slice
        For tabular rows, the encoded positions of each input column (one
        position for a numeric column, one per category for a one-hot
        encoded one), in input-column order; empty for images.
    world_size : int
        Processes of a data-parallel fit (1 otherwise): each optimiser step
        sees a batch from every process, so an epoch takes about
        ``n_train / (batch_size * world_size)`` steps.
    """

    n_train: int
    n_validation: int
    input_shape: tuple[int, ...]
    is_image: bool
    column_slices: tuple[slice, ...] = ()
    world_size: int = 1


@dataclass
class Phase:
    """One optimiser update inside a training step.

    A scorer's :meth:`Scorer.training_step` yields phases; for each one the
    engine back-propagates ``loss`` and steps only the optimiser named by
    ``optimizer``, so the parameters of every other group stay unchanged. The
    generator resumes after the update, so a later phase sees the updated
    weights (alternating schemes such as VAE-GAN and adVAE need this).

    Attributes
    ----------
    loss : Tensor
        Scalar loss to minimise.
    optimizer : str
        Key of :meth:`Scorer.optimizer_groups` whose parameters this phase updates.
    logs : dict of str to Tensor
        Detached scalars averaged over the epoch and recorded in the history.
    backward : callable or None
        A hand-written backward pass (:mod:`anomvae.nn.fused_vae_step`) that
        writes the gradient of ``loss`` into the ``.grad`` of every parameter
        of the group, overwriting it; the engine then calls it in place of
        zeroing the gradients and ``loss.backward()``. ``None``: autograd.
    """

    loss: Tensor
    optimizer: str = "model"
    logs: dict[str, Tensor] = field(default_factory=dict)
    backward: Callable[[], None] | None = None


class Scorer(nn.Module):
    """Base class of the modules the training engine can fit.

    Subclasses implement :meth:`training_step`, :meth:`validation_loss`,
    :meth:`anomaly_score` and :meth:`feature_scores`; the hooks
    :meth:`optimizer_groups`, :meth:`on_fit_start`, :meth:`on_epoch_start`,
    :meth:`on_train_end` and :meth:`diagnostics` have working defaults.

    Attributes
    ----------
    matmul_dtype : torch.dtype
        ``torch.bfloat16`` runs the matrix products of training and scoring on
        the CPU in bfloat16 (:func:`anomvae.device.autocast`,
        :func:`anomvae.device.inference_autocast`); the estimator sets it in
        ``fit`` and restores it with a saved model. ``torch.float32`` (the
        default) leaves the CPU in full precision.
    """

    matmul_dtype: torch.dtype = torch.float32

    def on_fit_start(self, context: FitContext) -> None:
        """Called once before training with what the data looks like.

        The default does nothing. Override it to keep what the training step
        or the scoring rule needs, e.g. ``context.n_train`` for a loss
        weighted by the data-set size; state that must be saved with the
        model belongs in a registered buffer.
        """

    def optimizer_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters per optimiser; one Adam optimiser is created per key."""
        return {"model": list(self.parameters())}

    def training_step(self, batch: Tensor) -> Iterator[Phase]:
        """Yield the phases of one training step on ``batch``."""
        raise NotImplementedError

    def validation_loss(self, batch: Tensor) -> Tensor:
        """Scalar loss on held-out data, used for early stopping."""
        raise NotImplementedError

    def on_epoch_start(self, epoch: int, batches: BatchSource) -> None:
        """Called before each epoch; ``batches()`` iterates the training data."""

    @property
    def early_stopping_start(self) -> int:
        """Epochs of warm-up before early stopping may judge the weights (0: none).

        A scorer whose objective changes after a warm-up (a term switched on,
        a prior replaced) has validation losses that cannot be compared
        across the switch. The engine counts ``patience`` and keeps the best
        weights only from this (0-based) epoch on, so a fit never stops
        inside the warm-up nor restores warm-up weights; when training ends
        before it, the last weights are kept.
        """
        return 0

    def on_train_end(self, train: Tensor, validation: Tensor | None) -> None:
        """Called once after training, in eval mode without gradients, with the
        final weights; for state the scoring rule derives from the training
        data (e.g. reference codes)."""

    def anomaly_score(self, batch: Tensor) -> Tensor:
        """Per-row anomaly score, shape ``(n,)``, higher for more anomalous rows."""
        raise NotImplementedError

    def feature_scores(self, batch: Tensor) -> Tensor:
        """Per-feature (or per-pixel) anomaly evidence, same shape as ``batch``; on the scorer's own scale,
        which need not sum to :meth:`anomaly_score`."""
        raise NotImplementedError

    def diagnostics(self, batches: BatchSource) -> dict[str, float]:
        """Training-health figures computed after fitting (see ``health.py``)."""
        return {}

    @property
    def device(self) -> torch.device:
        """Device holding the scorer's parameters."""
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """What the scorer computes in: its parameters' floating-point type, which its inputs must have.

        ``torch.bfloat16`` when its matrix products run in bfloat16 on the CPU
        (:attr:`matmul_dtype`): its inputs and parameters stay float32 then,
        and :func:`anomvae.inference.map_batches` scores under
        :func:`anomvae.device.inference_autocast`.
        """
        dtype = next(self.parameters()).dtype
        if dtype == torch.float32 and self.device.type == "cpu" and self.matmul_dtype == torch.bfloat16:
            return torch.bfloat16
        return dtype

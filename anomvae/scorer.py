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
    """

    loss: Tensor
    optimizer: str = "model"
    logs: dict[str, Tensor] = field(default_factory=dict)


class Scorer(nn.Module):
    """Base class of the modules the training engine can fit.

    Subclasses implement :meth:`training_step`, :meth:`validation_loss`,
    :meth:`anomaly_score` and :meth:`feature_scores`; the hooks
    :meth:`optimizer_groups`, :meth:`on_epoch_start`, :meth:`on_train_end`
    and :meth:`diagnostics` have working defaults.
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

    def on_train_end(self, train: Tensor, validation: Tensor | None) -> None:
        """Called once after training, in eval mode without gradients, with the
        final weights; for state the scoring rule derives from the training
        data (e.g. reference codes)."""

    def anomaly_score(self, batch: Tensor) -> Tensor:
        """Per-row anomaly score, shape ``(n,)``, higher for more anomalous rows."""
        raise NotImplementedError

    def feature_scores(self, batch: Tensor) -> Tensor:
        """Per-feature (or per-pixel) contributions, same shape as ``batch``."""
        raise NotImplementedError

    def diagnostics(self, batches: BatchSource) -> dict[str, float]:
        """Training-health figures computed after fitting (see ``health.py``)."""
        return {}

    @property
    def device(self) -> torch.device:
        """Device holding the scorer's parameters."""
        return next(self.parameters()).device

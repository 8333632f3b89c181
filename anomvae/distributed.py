"""What the training engine shares between the processes of a data-parallel fit.

The engine calls one :class:`Synchroniser` at the few points where processes
must agree; the default, :data:`LOCAL`, makes every call a no-op, so a
single-process fit runs the same loop. :class:`DataParallel` implements them
with :mod:`torch.distributed` collectives, doing what
:class:`torch.nn.parallel.DistributedDataParallel` does for a module whose
``forward`` is the whole step: rank 0's weights and buffers are broadcast
before training (and its buffers after each scorer hook, DDP's
``broadcast_buffers``), each gradient is averaged over the ranks before the
optimiser steps (one ``all_reduce`` of the optimiser group's flat gradient,
:mod:`anomvae.flat_parameters`, DDP's single bucket), and every rank takes
the same number of steps per epoch. DDP's module wrapper itself is not used
because the engine steps one optimiser per :class:`~anomvae.scorer.Phase` of a
scorer-defined step (VAE-GAN and adVAE alternate two), which DDP's
forward-then-backward hook cannot follow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

T = TypeVar("T")


class Synchroniser:
    """A single-process fit: nothing to share. The base of :class:`DataParallel`.

    Attributes
    ----------
    rank : int
        This process's rank; 0 saves and logs.
    world_size : int
        Number of processes.
    """

    rank = 0
    world_size = 1

    def sum(self, tensor: Tensor) -> Tensor:
        """Element-wise sum of ``tensor`` over the processes."""
        return tensor

    def average_(self, gradient: Tensor) -> None:
        """Replace ``gradient`` in place by its mean over the processes."""

    def common_steps(self, batches: Iterable[Tensor], device: torch.device) -> Iterator[Tensor]:
        """Yield ``batches`` while every process still has one."""
        return iter(batches)

    def share_state(self, scorer: nn.Module) -> None:
        """Give every process rank 0's weights and buffers."""

    def gather(self, values: np.ndarray) -> np.ndarray:
        """Concatenate ``values`` of every process, in rank order."""
        return values

    def broadcast(self, value):
        """Rank 0's ``value`` (any picklable object), on every process."""
        return value

    def agree(self, action: Callable[[], T]) -> T:
        """``action()``, whose ``ValueError`` or ``TypeError`` on any process is raised on every process.

        A rank that raised alone would leave the others waiting in the next
        collective (a check of its own shard's rows, say).
        """
        return action()


LOCAL = Synchroniser()
"""The synchroniser of a single-process fit."""


class DataParallel(Synchroniser):
    """Data-parallel training over an initialised :mod:`torch.distributed` process group.

    Parameters
    ----------
    group : ProcessGroup, optional
        Defaults to the world group set up by
        :func:`torch.distributed.init_process_group` (``torchrun`` sets its
        environment).

    Raises
    ------
    RuntimeError
        When no process group is initialised.
    """

    def __init__(self, group=None) -> None:
        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "data-parallel training needs an initialised torch.distributed process group; "
                "launch with torchrun and call anomvae.parallel.fit_distributed"
            )
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)

    def sum(self, tensor: Tensor) -> Tensor:
        total = tensor.clone()
        dist.all_reduce(total, group=self.group)
        return total

    def average_(self, gradient: Tensor) -> None:
        dist.all_reduce(gradient, group=self.group)
        gradient.div_(self.world_size)

    def common_steps(self, batches: Iterable[Tensor], device: torch.device) -> Iterator[Tensor]:
        """Stop every rank's epoch as soon as one rank's shard runs out.

        Ranks holding unequal shards would otherwise wait forever for each
        other's gradients; one integer ``all_reduce`` per step decides.
        """
        flag = torch.ones(1, dtype=torch.int32, device=device)
        for batch in batches:
            flag.fill_(1)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN, group=self.group)
            if not flag.item():
                return
            yield batch
        flag.fill_(0)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN, group=self.group)

    def share_state(self, scorer: nn.Module) -> None:
        state = {name: value.detach().cpu() for name, value in scorer.state_dict().items()}
        scorer.load_state_dict(self.broadcast(state))

    def gather(self, values: np.ndarray) -> np.ndarray:
        parts: list = [None] * self.world_size
        dist.all_gather_object(parts, values, group=self.group)
        return np.concatenate(parts)

    def agree(self, action: Callable[[], T]) -> T:
        """``action()`` on every rank; a failure on any is raised on all, naming each failing rank's shard."""
        try:
            result, failure = action(), None
        except (TypeError, ValueError) as error:
            result, failure = None, (type(error).__name__, str(error))
        failures: list = [None] * self.world_size
        dist.all_gather_object(failures, failure, group=self.group)
        found = [(rank, failed) for rank, failed in enumerate(failures) if failed is not None]
        if found:
            error_type = TypeError if found[0][1][0] == "TypeError" else ValueError
            raise error_type("fit_distributed: " + "; ".join(
                f"rank {rank}'s shard: {message}" for rank, (_, message) in found)[:1000])
        return result

    def broadcast(self, value):
        box = [value if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

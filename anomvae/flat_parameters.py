"""One optimiser group's parameters and gradients as views of two flat buffers.

Small networks trained on small batches spend most of a step in per-tensor
overhead: zeroing, clipping and updating a dozen weight and bias tensors one by
one. Backing the group by one contiguous parameter buffer and one contiguous
gradient buffer turns each of those into a single operation on one tensor,
the way :class:`torch.nn.parallel.DistributedDataParallel` does with
``gradient_as_bucket_view``. Autograd accumulates each gradient in place into
its view, so nothing is copied between the buffers and the modules.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn


class FlatGroup:
    """Parameters of one optimiser group re-pointed at two flat buffers.

    Parameters
    ----------
    params : list of nn.Parameter
        The group's parameters, all of one dtype and device.

    Attributes
    ----------
    parameter : nn.Parameter
        The flat parameter buffer, with ``grad`` the flat gradient buffer;
        this is what the optimiser steps. Each original parameter's data and
        gradient are views of them until :meth:`release`.
    """

    def __init__(self, params: list[nn.Parameter]) -> None:
        if not params:
            raise ValueError("an optimiser group needs at least one parameter")
        kinds = {(p.dtype, p.device) for p in params}
        if len(kinds) > 1:
            raise TypeError(f"an optimiser group's parameters must share one dtype and device, got {sorted(map(str, kinds))}")
        self.params = list(params)
        self.parameter = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
        self.parameter.grad = torch.zeros_like(self.parameter)
        offset = 0
        for p in params:
            size = p.numel()
            p.data = self.parameter.data[offset:offset + size].view_as(p)
            p.grad = self.parameter.grad[offset:offset + size].view_as(p)
            offset += size

    @property
    def grad(self) -> Tensor:
        """Gradient of the flat parameter (a view of every member's gradient)."""
        return self.parameter.grad

    def zero_grad(self) -> None:
        """Zero every gradient of the group in one operation."""
        self.parameter.grad.zero_()

    def clip_grad_norm_(self, max_norm: float) -> None:
        """Scale the group's gradient to a global L2 norm of at most ``max_norm``.

        The same rule as :func:`torch.nn.utils.clip_grad_norm_`, on one tensor.
        """
        norm = torch.linalg.vector_norm(self.grad)
        self.grad.mul_((max_norm / (norm + 1e-6)).clamp(max=1.0))

    def release(self) -> None:
        """Give every parameter its own storage again and drop the gradients."""
        for p in self.params:
            p.data = p.data.clone()
            p.grad = None


@contextlib.contextmanager
def flat_groups(groups: dict[str, list[nn.Parameter]]) -> Iterator[dict[str, FlatGroup]]:
    """Back each optimiser group by flat buffers while the block runs.

    Parameters
    ----------
    groups : dict of str to list of nn.Parameter
        Disjoint parameter groups, as returned by ``Scorer.optimizer_groups``.

    Yields
    ------
    dict of str to FlatGroup
    """
    seen: set[int] = set()
    for name, params in groups.items():
        shared = seen & {id(p) for p in params}
        if shared:
            raise ValueError(f"optimiser group {name!r} shares parameters with another group")
        seen |= {id(p) for p in params}
    flat = {}
    try:
        for name, params in groups.items():
            flat[name] = FlatGroup(params)
        yield flat
    finally:
        for group in flat.values():
            group.release()

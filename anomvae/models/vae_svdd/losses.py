"""Deep SVDD terms as plain functions of tensors (Ruff et al., ICML 2018)."""

from __future__ import annotations

import torch
from torch import Tensor

DISTANCES = ("squared", "plain")


def centre_distance(embedding: Tensor, centre: Tensor, distance: str) -> Tensor:
    """Distance of each row of ``embedding`` to ``centre``, shape ``(n,)``.

    ``"squared"`` is Deep SVDD's ``||z - c||^2``; ``"plain"`` is ``||z - c||``,
    which grows linearly and so weighs far-away rows less during training.
    """
    squared = (embedding - centre).pow(2).sum(dim=1)
    return squared if distance == "squared" else torch.sqrt(squared + 1e-12)


def clamp_centre(mean_embedding: Tensor, eps: float) -> Tensor:
    """Push coordinates with ``|c_i| < eps`` to ``+eps`` or ``-eps`` (by sign).

    A coordinate at zero can be matched by a network that outputs zero there
    for every input, which bias-free layers do easily (Ruff et al.'s code,
    ``init_center_c``). Exact zeros go to ``+eps``.
    """
    sign = torch.where(mean_embedding < 0, -1.0, 1.0).to(mean_embedding.dtype)
    return torch.where(mean_embedding.abs() < eps, sign * eps, mean_embedding)

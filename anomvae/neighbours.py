"""Distance to the k-th nearest reference point, exact and batch-independent."""

from __future__ import annotations

import torch
from torch import Tensor

QUERY_CHUNK = 1024
"""Queries compared with the reference at once, which bounds the distance
matrix to ``QUERY_CHUNK x len(reference)`` values."""


def kth_neighbour_distance(queries: Tensor, reference: Tensor, k: int, *, exclude_self: bool = False) -> Tensor:
    """Euclidean distance of each query to its ``k``-th nearest reference point.

    Distances are computed pair by pair (not through the matrix-product
    expansion), so a query's result does not depend on the other queries it
    is computed with. The expansion ``|q|^2 + |r|^2 - 2 q.r`` would be faster,
    but it cancels catastrophically when codes lie close together (a
    collapsed latent dimension, near-duplicate rows): identical rows scored
    in one batch then got distances that differed by more than the distances
    themselves.

    Parameters
    ----------
    queries : Tensor of shape (n, d)
    reference : Tensor of shape (m, d)
    k : int
        Which neighbour; capped at the number of reference points available.
    exclude_self : bool
        The queries are the reference itself: skip each point's zero distance
        to itself (leave-one-out).

    Returns
    -------
    Tensor of shape (n,)
    """
    available = len(reference) - int(exclude_self)
    if available < 1:
        raise ValueError(f"need at least {1 + int(exclude_self)} reference points, got {len(reference)}")
    rank = min(k, available) + int(exclude_self)
    distances = [
        torch.cdist(chunk, reference, compute_mode="donot_use_mm_for_euclid_dist")
        .topk(rank, dim=1, largest=False).values[:, -1]
        for chunk in queries.split(QUERY_CHUNK)
    ]
    return torch.cat(distances) if distances else queries.new_zeros(0)

"""Distance to the k-th nearest reference point, exact and batch-independent."""

from __future__ import annotations

import torch
from torch import Tensor

QUERY_CHUNK = 1024
"""Queries compared with the reference at once, which bounds the distance
matrix to ``QUERY_CHUNK x len(reference)`` values."""

SCREEN_MARGIN = 8
"""Candidates kept by the matrix-product screen beyond the ``k`` needed."""


def kth_neighbour_distance(queries: Tensor, reference: Tensor, k: int, *, exclude_self: bool = False) -> Tensor:
    """Euclidean distance of each query to its ``k``-th nearest reference point.

    The result is always the ``k``-th smallest of the distances computed
    pair by pair in a fixed order (:func:`pairwise_squared_distances`), so a
    query's result does not depend on the other queries it is computed with.
    To find that neighbour fast, a screen ranks the reference points by the
    matrix-product expansion ``|q|^2 + |r|^2 - 2 q.r`` and keeps the
    ``k + SCREEN_MARGIN`` best; the expansion alone cancels catastrophically
    when codes lie close together (a collapsed latent dimension,
    near-duplicate rows: identical rows scored in one batch then got
    distances that differed by more than the distances themselves), so it
    only chooses candidates. A query is answered from its candidates when a
    rounding-error bound of the expansion (Higham, "Accuracy and Stability
    of Numerical Algorithms", 2002, section 3.1) proves that no other point
    can be nearer than the ``k``-th candidate; otherwise, as for collapsed
    codes, all its pairwise distances are computed.

    Parameters
    ----------
    queries : Tensor of shape (n, d)
    reference : Tensor of shape (m, d)
        Both are promoted to their common type, at least float32, and
        compared outside any autocast region: the rounding bound assumes
        full-precision products, whatever precision made the codes.
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
    dtype = torch.promote_types(torch.promote_types(queries.dtype, reference.dtype), torch.float32)
    queries, reference = queries.to(dtype), reference.to(dtype)
    with torch.autocast(queries.device.type, enabled=False):
        squared = [kth_squared_distance(chunk, reference, rank) for chunk in queries.split(QUERY_CHUNK)]
    return torch.cat(squared).sqrt() if squared else queries.new_zeros(0)


def pairwise_squared_distances(queries: Tensor, points: Tensor) -> Tensor:
    """``sum_j (queries[..., j] - points[..., j])^2``, summed in the order of ``j``.

    Elementwise operations only, so every pair's value is bit-identical
    whatever else the tensors hold. ``queries`` and ``points`` broadcast
    against each other: ``(n, 1, d)`` with ``(1, m, d)`` or ``(n, c, d)``.
    """
    total = (queries[..., 0] - points[..., 0]).square()
    for dimension in range(1, queries.shape[-1]):
        total += (queries[..., dimension] - points[..., dimension]).square()
    return total


def kth_squared_distance(queries: Tensor, reference: Tensor, rank: int) -> Tensor:
    """Squared distance of each query to its ``rank``-th nearest reference point (see above)."""
    count = rank + SCREEN_MARGIN
    if count >= len(reference):
        return _kth_smallest(pairwise_squared_distances(queries[:, None], reference[None]), rank)
    # One matrix product ranks the points: [q, 1] . [-2 r, |r|^2] = |r|^2 - 2 q.r = d^2 - |q|^2.
    reference_norms = reference.square().sum(dim=1, keepdim=True)
    ones = queries.new_ones(len(queries), 1)
    screen = torch.cat([queries, ones], dim=1) @ torch.cat([-2 * reference, reference_norms], dim=1).T
    screened, index = screen.topk(count, dim=1, largest=False)
    result = _kth_smallest(pairwise_squared_distances(queries[:, None], reference[index]), rank)
    query_norms = queries.square().sum(dim=1)
    unit = torch.finfo(queries.dtype).eps / 2
    terms = 2 * (queries.shape[1] + 3) * unit
    # |screen + |q|^2 - d^2| <= terms * (|q|^2 + 2 |r|^2) for every pair; twice that is the slack.
    slack = 2 * terms * (query_norms + 2 * reference_norms.max())
    nearest_excluded = screened[:, -1] + query_norms - slack
    proven = nearest_excluded * (1 - terms) > result
    if not proven.all():
        unproven = ~proven
        result[unproven] = _kth_smallest(
            pairwise_squared_distances(queries[unproven][:, None], reference[None]), rank)
    return result


def _kth_smallest(values: Tensor, rank: int) -> Tensor:
    return values.topk(rank, dim=1, largest=False).values[:, -1]

"""Each context's own score scale, shrunk toward the global one (empirical Bayes).

A conditional VAE fits frequent contexts better than rare ones, so the rows
of a rare context score higher on average and draw more false alarms at one
global threshold. Dividing each row's score by its context's typical
training score puts every context on one scale; for a context with few
training rows that typical score is noisy, so it is shrunk toward the
global mean by Buhlmann's credibility weight (Buhlmann & Straub 1970, the
empirical-Bayes estimator of a group mean): ``Z_c = n_c / (n_c + k)``, where
``k`` is the within-context variance of the scores over the variance of the
context means, both estimated from the training scores. When the contexts'
means differ no more than sampling noise explains, ``k`` is infinite and
every factor is 1.

A context is identified by its exact context vector; rows whose vector no
training context had (a numeric context value, the unknown context) keep
factor 1.
"""

from __future__ import annotations

import torch
from torch import Tensor

MAX_CONTEXT_CELLS = 4096
"""Contexts whose factors are kept, the most frequent first; the rest keep 1."""

KEY_RESOLUTION = 1e-6
"""Keys are the projection in multiples of this step, as integers (which a
model cast to float32 for CUDA keeps exact): the same vector projected on
another device or in another batch can differ in the last bits, distinct
contexts differ by far more."""


def context_keys(context: Tensor) -> Tensor:
    """One int64 key per row, equal for equal context vectors, shape ``(n,)``.

    A projection on a fixed random direction (seeded, so the same in every
    process), in steps of :data:`KEY_RESOLUTION`: distinct context vectors
    (one-hot patterns, scaled values) practically never collide.
    """
    direction = torch.randn(context.shape[1], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return torch.round(context.double() @ direction.to(context.device) / KEY_RESOLUTION).long()


def credibility_factors(keys: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
    """Per-context score factors ``scale_c / overall mean`` from training keys and scores.

    Parameters
    ----------
    keys : Tensor of shape (n,)
        :func:`context_keys` of the training rows.
    scores : Tensor of shape (n,)
        Their anomaly scores (positive).

    Returns
    -------
    cell_keys : Tensor of shape (m,), int64, sorted
    factors : Tensor of shape (m,), float32
        (the precision a saved model keeps, so that it scores as before saving)
        ``(Z_c mean_c + (1 - Z_c) mean) / mean`` over the contexts seen at
        least twice; empty when fewer than two are, or when their means
        differ no more than noise explains.
    """
    cell_keys, inverse, counts = torch.unique(keys, return_inverse=True, return_counts=True)
    repeated = counts[inverse] >= 2  # a context seen once has no within-context spread
    cell_keys, inverse, counts = torch.unique(keys[repeated], return_inverse=True, return_counts=True)
    scores, counts = scores[repeated].double(), counts.double()
    none = keys.new_zeros(0), scores.new_zeros(0, dtype=torch.float32)
    if len(cell_keys) < 2:
        return none
    means = torch.zeros_like(counts).index_add_(0, inverse, scores) / counts
    overall = scores.mean()
    squares = torch.zeros_like(counts).index_add_(0, inverse, (scores - means[inverse]).pow(2))
    within = squares.sum() / (counts - 1).sum()
    total = counts.sum()
    between = (((counts * (means - overall).pow(2)).sum() - (len(counts) - 1) * within)
               / (total - counts.pow(2).sum() / total))
    if not (overall > 0 and between > 0):
        return none
    weight = counts / (counts + within / between)
    factors = (weight * means + (1 - weight) * overall) / overall
    kept = counts.argsort(descending=True)[:MAX_CONTEXT_CELLS].sort().values
    return cell_keys[kept], factors[kept].float()


def row_factors(keys: Tensor, cell_keys: Tensor, factors: Tensor) -> Tensor:
    """The factor of each row's context, 1 for contexts not kept, shape ``(n,)``."""
    if not len(cell_keys):
        return torch.ones_like(keys, dtype=torch.float64)
    position = torch.searchsorted(cell_keys, keys).clamp(max=len(cell_keys) - 1)
    return torch.where(cell_keys[position] == keys, factors[position].double(),
                       torch.ones_like(keys, dtype=torch.float64))

"""The ``"reconstruction+knn"`` score shared by the VAE-family scorers.

A row's score is its reconstruction error plus the distance of its posterior
mean to the ``k``-th nearest of a sample of training codes, each term divided
by its median over those training rows. The scorers keep the sample and the
two medians as the buffers ``reference_codes`` and ``score_scales``.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from ..neighbours import kth_neighbour_distance
from .posterior import codes_and_errors
from .vae_network import VAENetwork

MAX_REFERENCE_CODES = 1024
"""Training rows whose posterior means are kept as the reference (a seeded
random sample of larger training sets); it bounds the model size and the
scoring cost per row."""

SCALE_FLOORS = (1e-6, 1e-3)
"""Smallest divisors of the reconstruction and neighbour-distance terms: when
training rows repeat, their medians are rounding noise, and dividing by them
would let that noise decide the score."""


def reference_rows(train: Tensor) -> Tensor:
    """At most :data:`MAX_REFERENCE_CODES` training rows, a random sample of larger sets."""
    if len(train) > MAX_REFERENCE_CODES:
        return train[torch.randperm(len(train), device=train.device)[:MAX_REFERENCE_CODES]]
    return train


def reference_codes_and_errors(network: VAENetwork, train: Tensor, likelihood: str) -> tuple[Tensor, Tensor]:
    """Posterior means and per-row reconstruction errors of :func:`reference_rows` of ``train``.

    Computed 4,096 rows at a time, as :func:`~anomvae.nn.posterior.codes_and_errors`.

    Returns
    -------
    codes : Tensor of shape (m, latent)
    errors : Tensor of shape (m,), float64
    """
    parts = [codes_and_errors(network, chunk, likelihood) for chunk in reference_rows(train).split(4096)]
    return torch.cat([codes for codes, _ in parts]), torch.cat([errors for _, errors in parts])


def reference_and_scales(codes: Tensor, errors: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The reference codes and the two score scales, from the reference rows' codes and errors.

    Parameters
    ----------
    codes : Tensor of shape (m, latent)
        Posterior means of the rows of :func:`reference_rows`.
    errors : Tensor of shape (m,)
        Their reconstruction errors.
    k : int
        Which neighbour; the reference rows' own distances leave each row out.

    Returns
    -------
    reference_codes : Tensor of shape (m, latent), float32
    score_scales : Tensor of shape (2,), float32
        Medians of the errors and of the leave-one-out distances (torch's
        lower median: of an even count, the smaller middle value), floored at
        :data:`SCALE_FLOORS`.

    Raises
    ------
    ValueError
        With fewer than two reference rows: a lone training row has no
        neighbour to scale the term by.
    """
    if len(codes) < 2:
        raise ValueError(
            f"the latent kNN term of the score needs at least 2 training rows, got {len(codes)} after the "
            "validation split; pass more rows, a smaller validation_fraction, or a scoring rule without "
            "'knn' (e.g. scoring='reconstruction')"
        )
    if k > len(codes):
        warnings.warn(f"n_neighbors={k} exceeds the {len(codes)} training codes of the latent kNN term; it "
                      f"uses the farthest of them (n_neighbors={len(codes)} scores the same)", UserWarning,
                      stacklevel=2)
    distance = kth_neighbour_distance(codes, codes, k, exclude_self=True)
    floors = torch.tensor(SCALE_FLOORS, device=codes.device)
    return codes.float(), torch.maximum(torch.stack([errors.median(), distance.median()]).float(), floors)


def reconstruction_plus_knn(errors: Tensor, codes: Tensor, reference_codes: Tensor, score_scales: Tensor,
                            k: int) -> Tensor:
    """Per-row score ``errors / scale_0 + distance_k(codes, reference) / scale_1``, shape ``(n,)``."""
    distance = kth_neighbour_distance(codes, reference_codes, k)
    return errors / score_scales[0] + distance.double() / score_scales[1]


def take_saved_reference_shape(scorer: nn.Module, state_dict: dict, prefix: str) -> None:
    """Resize ``scorer.reference_codes`` to the saved one before loading it.

    Saved models hold as many reference codes as their training set lent
    them; a scorer built for loading starts with none.
    """
    saved = state_dict.get(prefix + "reference_codes", scorer.reference_codes)
    scorer.reference_codes = torch.empty_like(saved, dtype=scorer.reference_codes.dtype,
                                              device=scorer.reference_codes.device)

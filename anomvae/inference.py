"""Batched, memory-bounded evaluation of a fitted scorer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .device import inference_autocast

SCORING_BATCH_SIZE = 8192

ROW_BLOCK = 16
"""On the CPU, float32 batches are padded to a multiple of this many rows (see :func:`inference_dtype`)."""

CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def inference_dtype(device: torch.device, module: nn.Module | None = None) -> torch.dtype:
    """float32 on CUDA and for dense networks on the CPU; float64 for convolutional ones on the CPU.

    A row's score must not depend on the rows scored with it: in ``predict``
    a row tied with the threshold must not flip, and the pyfunc model and the
    REST server must agree with ``score_samples``. On the CPU, torch's float32
    matrix products (MKL) give a row bit-identical results for every batch of
    at least 16 rows, but other results for some batches of 1 to 11 rows
    (measured with torch 2.13 on AVX-512 cores, layer widths 2 to 768);
    :func:`map_batches` therefore pads CPU batches to a multiple of
    :data:`ROW_BLOCK` rows, and dense networks score in float32, at twice
    the float64 arithmetic rate. A layer with a single output (a
    discriminator's logit) runs as a matrix-vector product whose rounding
    was seen to change with the batch even so, and convolutions have no
    measurement behind them: such networks stay in float64, whose
    differences across batch sizes (around 1e-16) vanish when
    :func:`map_batches` rounds the results to float32 precision. A scorer
    whose matrix products run in bfloat16 (:attr:`~anomvae.scorer.Scorer.matmul_dtype`)
    says so through its ``dtype``; oneDNN's bfloat16 products gave a row the
    same results in batches of 1 to 8,192 rows (512x512 and 512x256 layers,
    same machine), and its batches are padded all the same.
    """
    if device.type != "cpu":
        return torch.float32
    if module is None:
        return torch.float64
    layers = list(module.modules())
    measured = all(layer.out_features >= 2 for layer in layers if isinstance(layer, nn.Linear))
    convolutional = any(isinstance(layer, CONVOLUTIONS) for layer in layers)
    return torch.float32 if measured and not convolutional else torch.float64


def prepare_for_inference(module: nn.Module, device: torch.device) -> nn.Module:
    """Move ``module`` to ``device`` in its inference dtype and switch to eval mode."""
    return module.to(device=device, dtype=inference_dtype(device, module)).eval()


def map_batches(
    function: Callable[[Tensor], Tensor],
    data: np.ndarray | pd.DataFrame,
    device: torch.device,
    batch_size: int = SCORING_BATCH_SIZE,
    encode: Callable[[Any, int], np.ndarray] | None = None,
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Apply ``function`` to ``data`` in batches and stack the results.

    Only one batch is encoded and lives on the device at a time, so memory
    stays bounded for inputs of any length. On CUDA the host batch is pinned
    for an asynchronous copy, and an out-of-memory error halves the batch size
    and retries.

    Parameters
    ----------
    function : callable
        Maps a tensor of rows to a tensor with the same first dimension.
    data : ndarray or DataFrame
        Rows, already encoded unless ``encode`` is given.
    device : torch.device
        Where ``function`` runs.
    batch_size : int
        Rows per batch to start with.
    encode : callable, optional
        ``encode(rows, first_row)`` turns a slice of ``data`` into float32
        model inputs; ``first_row`` is the slice's position, for error messages.
    dtype : torch.dtype, optional
        What ``function`` computes in (the scorer's :attr:`~anomvae.scorer.Scorer.dtype`);
        :func:`inference_dtype` of ``device`` by default. ``torch.bfloat16``
        passes float32 rows and runs ``function`` under
        :func:`~anomvae.device.inference_autocast` (bfloat16 matrix
        products). float32 and bfloat16 batches on the CPU are padded with
        zero rows to a multiple of :data:`ROW_BLOCK`, whose results are
        dropped.

    Returns
    -------
    ndarray of float64
        Holding float32-precision values (see :func:`inference_dtype`).
    """
    dtype = dtype or inference_dtype(device)
    pads = device.type == "cpu" and dtype in (torch.float32, torch.bfloat16)
    matmul_dtype, dtype = dtype, torch.float32 if dtype == torch.bfloat16 else dtype
    outputs = []
    start = 0
    rows = data.iloc if isinstance(data, pd.DataFrame) else data
    with torch.inference_mode(), inference_autocast(device, matmul_dtype):
        while start < len(data):
            chunk = rows[start : start + batch_size]
            if encode is not None:
                chunk = encode(chunk, start)
            tensor = torch.from_numpy(np.ascontiguousarray(chunk))
            try:
                if device.type == "cuda":
                    tensor = tensor.pin_memory().to(device, non_blocking=True)
                else:
                    tensor = tensor.to(dtype)
                result = function(padded(tensor) if pads else tensor)[: len(tensor)]
            except torch.OutOfMemoryError:
                if batch_size == 1:
                    raise
                batch_size //= 2
                torch.cuda.empty_cache()
                continue
            outputs.append(result.float().cpu().numpy())
            start += len(tensor)
    return np.concatenate(outputs).astype(np.float64, copy=False)


def padded(rows: Tensor) -> Tensor:
    """``rows`` followed by zero rows up to the next multiple of :data:`ROW_BLOCK`."""
    missing = -len(rows) % ROW_BLOCK
    if missing == 0:
        return rows
    return torch.cat([rows, rows.new_zeros(missing, *rows.shape[1:])])

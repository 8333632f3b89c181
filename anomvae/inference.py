"""Batched, memory-bounded evaluation of a fitted scorer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

SCORING_BATCH_SIZE = 8192


def inference_dtype(device: torch.device) -> torch.dtype:
    """float64 on the CPU, float32 on CUDA.

    On the CPU, float32 matrix products round differently for different batch
    sizes, so a row's score would depend on the rows scored with it. In float64
    those differences stay far below any tolerance that matters, which makes
    scores reproducible across batchings, the pyfunc model and the REST server.
    """
    return torch.float64 if device.type == "cpu" else torch.float32


def prepare_for_inference(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move ``module`` to ``device`` in its inference dtype and switch to eval mode."""
    return module.to(device=device, dtype=inference_dtype(device)).eval()


def map_batches(
    function: Callable[[Tensor], Tensor],
    data: np.ndarray | pd.DataFrame,
    device: torch.device,
    batch_size: int = SCORING_BATCH_SIZE,
    encode: Callable[[Any, int], np.ndarray] | None = None,
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

    Returns
    -------
    ndarray of float64
    """
    outputs = []
    start = 0
    rows = data.iloc if isinstance(data, pd.DataFrame) else data
    with torch.inference_mode():
        while start < len(data):
            chunk = rows[start : start + batch_size]
            if encode is not None:
                chunk = encode(chunk, start)
            tensor = torch.from_numpy(np.ascontiguousarray(chunk))
            try:
                if device.type == "cuda":
                    tensor = tensor.pin_memory().to(device, non_blocking=True)
                else:
                    tensor = tensor.to(inference_dtype(device))
                result = function(tensor)
            except torch.OutOfMemoryError:
                if batch_size == 1:
                    raise
                batch_size //= 2
                torch.cuda.empty_cache()
                continue
            outputs.append(result.float().cpu().numpy())
            start += len(tensor)
    return np.concatenate(outputs).astype(np.float64, copy=False)

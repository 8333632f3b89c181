"""Device resolution and local seeding for training and scoring."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .rng import RNG_LOCK


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn the estimator's ``device`` parameter into a :class:`torch.device`.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` picks CUDA when it is available and the CPU otherwise; any
        other value is passed to :class:`torch.device`.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If the string names no device, or names CUDA on a machine without it.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device={device!r} is not a device; expected 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} asks for CUDA but torch sees no CUDA device; "
            "use device='auto' to fall back to the CPU"
        )
    return resolved


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch inside the block and restore the caller's RNG state after it.

    Weight initialisation and training noise become reproducible for a given
    seed without touching the global random state the user relies on. The
    block holds :data:`anomvae.rng.RNG_LOCK`, so fits in concurrent threads
    do not interleave their draws.
    """
    devices = [device] if device.type == "cuda" else []
    with RNG_LOCK, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA, a no-op elsewhere.

    bfloat16 keeps float32's exponent range, so no gradient scaler is needed;
    GPUs without bfloat16 train in float32 rather than risk float16 underflow.
    """
    if device.type != "cuda" or not torch.cuda.is_bf16_supported():
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16)

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
        If the string names no device, a device other than the CPU or CUDA
        (``"mps"``, ``"meta"``, ...), CUDA on a machine without it, or a CUDA
        device number the machine does not have.
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device={device!r} is not a device; expected 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from error
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(
            f"device={device!r}: anomvae trains on 'cpu' or 'cuda' devices only; "
            "expected 'auto', 'cpu', 'cuda' or 'cuda:N'"
        )
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} asks for CUDA but torch sees no CUDA device; "
            "use device='auto' to fall back to the CPU"
        )
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r}: torch sees {torch.cuda.device_count()} CUDA device(s), "
            f"numbered from 0"
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


def autocast(device: torch.device, matmul_dtype: torch.dtype = torch.float32) -> contextlib.AbstractContextManager:
    """Mixed precision for a training step: always on CUDA, on the CPU when ``matmul_dtype`` asks.

    bfloat16 keeps float32's exponent range, so no gradient scaler is needed;
    GPUs without bfloat16 train in float32 rather than risk float16 underflow.
    On the CPU, ``matmul_dtype=torch.bfloat16`` runs the matrix products in
    bfloat16 (:func:`native_bfloat16` says where that is fast), as
    :func:`inference_autocast` does in scoring.
    """
    if device.type == "cuda":
        if not torch.cuda.is_bf16_supported():
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return inference_autocast(device, matmul_dtype)


def inference_autocast(device: torch.device, matmul_dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """bfloat16 matrix products on the CPU when ``matmul_dtype`` is bfloat16; a no-op otherwise.

    Under it the linear layers take float32 inputs and float32 master
    weights, multiply them in bfloat16 with float32 accumulation and return
    bfloat16 activations; element-wise work on float32 tensors (the inputs a
    reconstruction is compared with) stays float32. Scoring on CUDA stays in
    float32, whatever the training used.
    """
    if device.type == "cpu" and matmul_dtype == torch.bfloat16:
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` is a CPU that multiplies bfloat16 matrices in hardware.

    That needs the AVX512-BF16 or AMX instructions (recent Xeon and EPYC
    cores), where oneDNN's bfloat16 matrix products ran 3.5 to 4.5 times
    faster than float32 ones (512x512 weights, 128 to 8,192 rows, 2 threads,
    ``benchmarks/results/throughput``); elsewhere torch emulates them, at
    about float32's speed or slower. torch reports the instructions through
    private probes (``torch.cpu._is_avx512_bf16_supported``,
    ``torch.cpu._is_amx_tile_supported``); a torch without them reads as
    False, so ``precision="auto"`` then stays in float32. False for every
    device but the CPU.
    """
    if device.type != "cpu":
        return False
    probes = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    return any(probe is not None and probe() for probe in probes)

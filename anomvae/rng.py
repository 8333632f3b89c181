"""One lock around every use of torch's process-global random state.

PyTorch draws weight initialisation and training noise from one generator per
process. :func:`anomvae.device.seeded` seeds it for a fit and restores the
caller's state afterwards; two fits doing that at once in two threads would
interleave their draws (different models for the same seeds) and could restore
each other's state. Fits and loads therefore hold :data:`RNG_LOCK` while they
use the global generator: fits in threads run their training one at a time and
each gives exactly the model it gives alone, and the caller's generator is left
as it was. Scoring uses no random state and takes no lock.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

RNG_LOCK = threading.RLock()
"""Held while torch's global generator is seeded, drawn from or restored."""


@contextlib.contextmanager
def untouched_global_rng() -> Iterator[None]:
    """Run the block without leaving a trace on torch's global CPU generator.

    Used where code draws random numbers it does not need (building a
    network whose weights are then overwritten by a saved state).
    """
    with RNG_LOCK, torch.random.fork_rng(devices=[]):
        yield

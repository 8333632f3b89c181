"""NumPy scalars as Python numbers, for parameters that are written out as JSON."""

from __future__ import annotations

from typing import Any

import numpy as np


def python_scalars(value: Any) -> Any:
    """``value`` with every NumPy scalar replaced by the Python number it stands for, at any depth.

    A float32 becomes the decimal it prints as (``np.float32(0.05)`` gives
    ``0.05``, not ``0.05000000074505806``); lists, tuples and dicts keep
    their type, with their items (and keys) converted. Anything else is
    returned unchanged.
    """
    if isinstance(value, np.floating) and value.dtype.itemsize < 8:
        return float(str(value))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(python_scalars(item) for item in value)
    if isinstance(value, dict):
        return {python_scalars(key): python_scalars(item) for key, item in value.items()}
    return value

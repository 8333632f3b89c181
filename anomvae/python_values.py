"""Parameter values made comparable and writable: NumPy scalars as Python numbers, settings compared."""

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


def comparable_setting(value: Any) -> Any:
    """``value`` with lists as tuples and NumPy scalars as Python numbers, so equal settings compare equal."""
    if isinstance(value, (list, tuple)):
        return tuple(comparable_setting(item) for item in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def same_setting(left: Any, right: Any) -> bool:
    """Equal parameter values; objects that cannot be compared (no ``__eq__``) count as equal.

    ``None`` (an "automatic" default) equals only ``None``: ``NoneType`` has no ``__eq__`` of its
    own, so without this check ``None`` against any setting would count as equal.
    """
    if left is None or right is None:
        return left is right
    try:
        return bool(left == right) or type(left).__eq__ is object.__eq__
    except (TypeError, ValueError):
        return True

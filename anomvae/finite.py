"""Refusing NaN and infinity with a message naming the rows and cells that hold them."""

from __future__ import annotations

import numpy as np


def describe_rows(mask: np.ndarray, first_row: int = 0) -> str:
    """``"row 3"`` or ``"rows 1, 4, ..."`` for the ``True`` entries of ``mask``, offset by ``first_row``."""
    rows = np.flatnonzero(mask) + first_row
    shown = ", ".join(str(row) for row in rows[:5])
    more = f", ... ({len(rows)} rows in all)" if len(rows) > 5 else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def _cell_name(position: int, cell_shape: tuple[int, ...], columns: list[str] | None) -> str:
    """A flattened cell position as the user indexes it: a column name, or (channel, y, x)."""
    if len(cell_shape) > 1:
        return str(tuple(int(i) for i in np.unravel_index(position, cell_shape)))
    return columns[position] if columns else str(position)


def check_finite(values: np.ndarray, columns: list[str] | None = None, first_row: int = 0) -> None:
    """Raise ``ValueError`` naming the rows and columns holding NaN or infinity.

    Parameters
    ----------
    values : ndarray of shape (n, d) or (n, ...)
    columns : list of str, optional
        Column names used in the message; positions are used otherwise.
    first_row : int
        Position of ``values``' first row in the caller's input.
    """
    if values.size == 0:
        return
    flat = values.reshape(len(values), -1)
    for kind, test in (("NaN", np.isnan), ("infinity", np.isinf)):
        bad = test(flat)
        if bad.any():
            bad_columns = np.flatnonzero(bad.any(axis=0))
            names = [_cell_name(i, values.shape[1:], columns) for i in bad_columns[:5]]
            what = "pixel" if values.ndim > 2 else "column"
            raise ValueError(
                f"Input X contains {kind} in {describe_rows(bad.any(axis=1), first_row)}, "
                f"{what}{'s' if len(bad_columns) > 1 else ''} {', '.join(names)}"
                f"{' ...' if len(bad_columns) > 5 else ''}; anomvae needs finite values: "
                "impute or drop them before fitting or scoring"
            )

"""CSV rows whose field count differs from the header's, which pandas would otherwise misread.

``pandas.read_csv`` takes a file whose rows hold one field more than the
header as having a row index in its first field: every value moves one
column to the left, the first field vanishes, and the rows are scored as if
nothing were wrong (a trailing comma on every row does the same). The command
line refuses a file pandas read that way; REST requests, which MLflow parses
itself, are checked field by field before.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd


def ragged_row(text: str) -> tuple[int, int, int] | None:
    """The first data row that holds more fields than the header.

    Parameters
    ----------
    text : str
        The CSV document, header first.

    Returns
    -------
    (row, fields, header_fields) or None
        ``row`` counts data rows from 0, as pandas numbers them; blank and
        whitespace-only lines are skipped, as pandas skips them, and lines may
        end in ``\n``, ``\r\n`` or ``\r``. A shorter row is left to the
        checks of its values (its missing fields are missing values).
    """
    rows = (row for row in csv.reader(io.StringIO(text, newline="")) if row and (len(row) > 1 or row[0].strip()))
    header = next(rows, None)
    if header is None:
        return None
    for index, row in enumerate(rows):
        if len(row) > len(header):
            return index, len(row), len(header)
    return None


def ragged_message(found: tuple[int, int, int], source: str) -> str:
    """Why a CSV with a ragged row is refused, naming the row."""
    row, fields, header_fields = found
    return (f"{source}: row {row} holds {fields} fields, the header {header_fields}; every row must hold "
            "one value per header column (a trailing comma or an unquoted comma inside a value adds one)")


def read_csv_rows(path: Path, **options) -> pd.DataFrame:
    """``pandas.read_csv(path, **options)``, refusing a file whose rows hold more fields than the header.

    pandas reads such a file as having a row index in its first field; the
    frame's index is then not the plain row count, which is how it is found
    without reading the file twice.

    Raises
    ------
    ValueError
        When the rows hold more fields than the header, naming the first such row.
    """
    frame = pd.read_csv(path, **options)
    if not isinstance(frame.index, pd.RangeIndex):
        found = ragged_row(Path(path).read_text(encoding="utf-8", errors="replace"))
        raise ValueError(ragged_message(found or (0, len(frame.columns) + 1, len(frame.columns)), str(path)))
    return frame

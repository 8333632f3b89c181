"""Reading one labelled table (``.npz``, ``.csv`` or ``.parquet``) and checking what it holds.

An ``.npz`` file holds the arrays ``X`` (one row per sample) and ``y``
(ADBench's layout). In a CSV or Parquet file the label column is the one named
by ``--label-column``; without it, the first column whose name (in any case)
is one of :data:`LABEL_COLUMNS`, in that order; failing that, the last column.
Labels must be 0 (normal) and 1 (anomaly); ``True``/``False`` count as 1/0.
A column named ``Unnamed: 0`` (the unnamed index ``DataFrame.to_csv`` writes
by default) is dropped with a note rather than used as a feature. Every
feature must be numeric and finite.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..datasets import load_npz
from ..metrics import check_labels

TABLE_SUFFIXES = (".npz", ".csv", ".parquet")
"""File types a tabular dataset may have."""

LABEL_COLUMNS = ("y", "label", "is_anomaly", "anomaly", "outlier", "target")
"""CSV/Parquet columns recognised as the label (1 = anomaly), first match wins; otherwise the last column is."""

INDEX_COLUMN = "Unnamed: 0"
"""How pandas reads back the unnamed index column ``DataFrame.to_csv`` writes; dropped, never a feature."""


@dataclass(frozen=True)
class Table:
    """Features, 0/1 labels and what was done to read them."""

    X: np.ndarray
    y: np.ndarray
    notes: tuple[str, ...] = ()


def read_table(path: str | Path, label_column: str | None = None) -> Table:
    """Features (float64) and labels (int) of a labelled table, checked.

    Parameters
    ----------
    path : path
        An ``.npz``, ``.csv`` or ``.parquet`` file.
    label_column : str, optional
        Name of the label column of a CSV or Parquet file (see the module docstring for the default).

    Raises
    ------
    ValueError
        With a one-line message naming the file: unreadable or empty, no label
        or feature column, labels other than 0/1, non-numeric features, or a
        NaN or infinite value (with its row and column).
    """
    path = Path(path)
    if path.suffix == ".npz":
        X, y = load_npz(path)
        notes: tuple[str, ...] = ()
        where = _array_position
    else:
        frame = _read_frame(path)
        notes = (f"{path}: dropped the column {INDEX_COLUMN!r} (an unnamed index), not a feature",) \
            if INDEX_COLUMN in frame.columns else ()
        frame = frame.drop(columns=[INDEX_COLUMN], errors="ignore")
        if frame.empty:
            raise ValueError(f"{path}: no rows" if len(frame.columns) else f"{path}: no columns")
        X, y, columns = _split_label(frame, path, label_column)
        where = _file_position(path, columns)
    if len(X) == 0:
        raise ValueError(f"{path}: no rows")
    _check_finite(X, path, where)
    return Table(X, y, notes)


def _read_frame(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the file is empty") from None
    except (OSError, ValueError, ImportError) as error:
        raise ValueError(f"{path}: could not be read ({type(error).__name__}: {error})") from None
    return frame


def _split_label(frame: pd.DataFrame, path: Path,
                 label_column: str | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if label_column is not None and label_column not in frame.columns:
        raise ValueError(f"{path}: no column {label_column!r} (--label-column); its columns: "
                         + ", ".join(map(str, frame.columns[:10])))
    if label_column is None:
        lowered = {str(column).lower(): column for column in frame.columns}
        label_column = next((lowered[name] for name in LABEL_COLUMNS if name in lowered), frame.columns[-1])
    features = frame.drop(columns=[label_column])
    if features.columns.empty:
        raise ValueError(f"{path}: no feature column besides the label column {label_column!r}"
                         + ("; is it separated by something other than commas?" if path.suffix == ".csv" else ""))
    text = [str(column) for column in features.columns if not pd.api.types.is_numeric_dtype(features[column])]
    if text:
        raise ValueError(f"{path}: non-numeric feature column(s) {', '.join(text[:5])}; encode them first")
    hint = ("; name another column with --label-column NAME (default: the first of "
            f"{', '.join(LABEL_COLUMNS)} present, else the last column)")
    y = _labels(frame[label_column], path, f"label column {label_column!r}", hint)
    return features.to_numpy(dtype=np.float64), y, [str(column) for column in features.columns]


def _labels(values: pd.Series, path: Path, what: str, hint: str) -> np.ndarray:
    """The label column checked, its rows named as the feature checks name them (a CSV file's lines)."""
    try:
        return check_labels(values, f"{path}: {what}", lambda row: _file_row(path, row))
    except ValueError as error:
        raise ValueError(f"{error}{hint}") from None


def _check_finite(X: np.ndarray, path: Path, where) -> None:
    bad = ~np.isfinite(X.reshape(len(X), -1))
    if bad.any():
        row, column = np.argwhere(bad)[0]
        value = X.reshape(len(X), -1)[row, column]
        raise ValueError(f"{path}: {value} at {where(int(row), int(column))} ({int(bad.sum())} non-finite "
                         "value(s) in all); fill or drop them first")


def _array_position(row: int, column: int) -> str:
    return f"X[{row}, {column}]"


def _file_row(path: Path, row: int) -> str:
    """A data row as the user finds it: a CSV file's line (after the header), a Parquet file's row from 1."""
    return f"line {row + 2}" if path.suffix == ".csv" else f"row {row + 1}"


def _file_position(path: Path, columns: list[str]):
    def where(row: int, column: int) -> str:
        return f"{_file_row(path, row)}, column {columns[column]!r}"
    return where

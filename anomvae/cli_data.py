"""What ``anomvae`` commands read: tables (CSV, Parquet, ``.npz``), labels, and a config's training data."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas._libs.parsers import STR_NA_VALUES  # pandas' default missing-value markers

from .csv_fields import read_csv_rows
from .datasets import embedded_default, load_npz, shared_data_dir
from .finite import check_finite
from .metrics import check_labels
from .preprocessing import check_no_missing


def _npz_frame(path: Path) -> pd.DataFrame:
    """Columns ``x0 ...`` from the ``X`` array of an ``.npz`` file, plus ``label`` from ``y`` when it has one."""
    X, y = load_npz(path, labels=False)
    if X.ndim != 2:
        raise ValueError(f"{path}: 'X' must be a 2-d array (rows x features), got shape {X.shape}")
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    if y is not None:
        frame["label"] = y
    return frame


def unscored_label(detector, frame: pd.DataFrame) -> str | None:
    """``"label"`` when ``frame`` has a ``label`` column that is not one of the model's features (the
    ``y`` of an ``.npz`` file): the commands leave it out of scoring. None otherwise."""
    features = {str(name) for name in getattr(detector, "feature_names_in_", [])}
    return "label" if "label" in frame.columns and "label" not in features else None


def read_table(path: str | Path, detector=None) -> pd.DataFrame:
    """Read a CSV or Parquet file, or the ``X`` array of an ``.npz`` file.

    With a fitted tabular ``detector``, a CSV file is read by the model's
    schema: the columns it fitted as text stay text (``"01"`` is not turned
    into ``1``) and only an empty cell is missing there, as it is when pandas
    writes a missing value. Columns are matched by name (by position for a
    model fitted on an array, which has no column names), so ids and other
    columns may stand anywhere. Parquet files carry their own types.
    """
    if getattr(detector, "is_image_", False):
        raise ValueError("this is an image model: the command line reads tables; score images from Python "
                         "(detector.score_samples(images), anomvae.report.write_report(detector, images, y, path))")
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.exists():  # pandas' message for a missing Parquet file is the bare path
        raise ValueError(f"{path}: no such file or folder")
    if suffix == ".csv":
        return read_csv_rows(path, **_csv_options(path, detector))
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix == ".npz":
        return _npz_frame(path)
    raise ValueError(f"{path}: unsupported file type {suffix!r}; expected .csv, .parquet or .npz")


def _csv_options(path: Path, detector) -> dict[str, Any]:
    """``pandas.read_csv`` options that keep a model's text columns, and columns it does not use, as text.

    Columns that are not model inputs (ids, timestamps, labels) are read as
    written, so ``--keep`` copies ``"007"`` as ``"007"``, not ``7``.
    """
    kinds = getattr(getattr(detector, "encoder_", None), "kinds", None)
    if not kinds:
        return {}
    header = list(pd.read_csv(path, nrows=0).columns)
    if hasattr(detector, "feature_names_in_"):
        names = [str(name) for name in detector.feature_names_in_]
        text = {name for name, kind in zip(names, kinds) if kind == "category"} | (set(header) - set(names))
        text &= set(header)
    elif "category" in kinds:
        text = {header[i] for i, kind in enumerate(kinds) if kind == "category" and i < len(header)}
    else:
        return {}
    return {
        "dtype": {column: str for column in text},
        "keep_default_na": False,
        "na_values": {column: [""] if column in text else sorted(STR_NA_VALUES) for column in header},
    }


SHARED_PREFIX = "../shared/data/"
"""Config sources under this prefix are looked up in :func:`~anomvae.datasets.shared_data_dir` when absent."""


def _shared_path(source: str) -> str:
    """``source``, or for a missing ``../shared/data/...`` path the same file under ``$ANOMVAE_DATA``."""
    if not source.startswith(SHARED_PREFIX) or Path(source).exists():
        return source
    folder = shared_data_dir()
    if folder is None:
        raise FileNotFoundError(f"{source} not found: the shared data is not beside this checkout; "
                                "set ANOMVAE_DATA to the folder that holds tabular/ and images/")
    return str(folder / source[len(SHARED_PREFIX):])


def training_data(data: dict[str, Any]) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Features and optional labels (1 = anomaly) described by the ``data`` section.

    The ``drop_columns`` (ids, timestamps) and the ``label_column`` are left
    out of the features. A CSV is read with pandas' type inference, as a
    user reading it in Python would (``"007"`` is the number 7; the scoring
    commands then read the columns fit took as text as text).

    Raises
    ------
    ValueError
        When a named column is not in the table.
    """
    if data["source"] == "embedded":
        given = [key for key in ("label_column", "drop_columns") if data.get(key)]
        if given:
            raise ValueError(f"data: {' and '.join(given)} apply to a file source; the embedded default brings "
                             "its own labels and columns")
        return embedded_default()
    source = _shared_path(data["source"])
    frame = read_table(source)
    label_column = data.get("label_column") or ("label" if Path(source).suffix == ".npz" else None)
    dropped = data.get("drop_columns") or []
    if not isinstance(dropped, list) or not all(isinstance(name, str) for name in dropped):
        raise ValueError(f"drop_columns must be a list of column names, e.g. [id, timestamp]; got {dropped!r}")
    for key, names in (("label_column", [label_column] if label_column else []), ("drop_columns", dropped)):
        missing = [name for name in names if name not in frame.columns]
        if missing:
            raise ValueError(f"{key}: {missing} not among the columns of {data['source']} ({list(frame.columns)})")
    features = frame.drop(columns=[*dropped, *([label_column] if label_column else [])])
    _check_complete(features, data["source"])
    _warn_of_row_numbers(features)
    if label_column is None:
        return features, None
    return features, check_labels(frame[label_column], f"{data['source']}: {label_column!r}")


def _check_complete(features: pd.DataFrame, source: str) -> None:
    """Refuse a missing or non-finite feature value, naming the row of the file (from 0, as pandas counts)
    rather than its position in the split the main job trains on (the checks ``fit`` makes, on the whole table)."""
    numeric = [column for column in features.columns if pd.api.types.is_numeric_dtype(features[column])]
    try:
        check_finite(features[numeric].to_numpy(dtype=np.float64, na_value=np.nan), [str(c) for c in numeric])
        for column in features.columns.difference(numeric, sort=False):
            check_no_missing(features[column], str(column))
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def check_output_file(path: str, *, create_folders: bool = False) -> Path:
    """``path`` as a file a command can write, checked before any work is done.

    ``train`` creates missing folders (``create_folders``); the other commands
    write into an existing one.

    Raises
    ------
    ValueError
        When ``path`` is a folder, lies in a missing folder (without
        ``create_folders``) or under a file, or in a folder that cannot be
        written to.
    """
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"output path {path!r} is a folder; name a file in it")
    folder = target.parent
    if not create_folders and not folder.exists():
        raise ValueError(f"output folder {str(folder)!r} does not exist; create it or choose another path")
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise ValueError(f"output path {path!r} lies under {str(folder)!r}, which is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise ValueError(f"output path {path!r}: cannot write in {str(folder)!r} ({error.strerror})") from None
    return target


def _warn_of_row_numbers(features: pd.DataFrame) -> None:
    """Warn of integer columns that count the rows (0, 1, 2, ... or 1, 2, 3, ...): an index, not a feature.

    A model trained on one would flag every later row, whose numbers lie
    beyond the training range (``DataFrame.to_csv`` writes the index as an
    ``Unnamed: 0`` column unless ``index=False``).
    """
    for column in features.columns:
        values = features[column]
        if len(values) > 2 and pd.api.types.is_integer_dtype(values) and not pd.api.types.is_bool_dtype(values):
            steps = np.diff(values.to_numpy())
            if (steps == 1).all() and values.iloc[0] in (0, 1):
                warnings.warn(
                    f"column {column!r} counts the rows ({values.iloc[0]}, {values.iloc[1]}, ...): a row number "
                    "or id rather than a feature? A model trained on it flags every later row; if so, list it "
                    "under data: drop_columns in the config",
                    UserWarning, stacklevel=2,
                )

"""Datasets: the embedded default, the shared ADBench/MNIST files, and splits.

Nothing here downloads: the default comes with scikit-learn and the benchmark
files are read from a folder the user passes (by default ``../shared/data``
or ``$ANOMVAE_DATA``).
"""

from __future__ import annotations

import gzip
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

from .metrics import check_labels


def shared_data_dir() -> Path | None:
    """The benchmark data folder, or None when it is not on this machine.

    Looks at ``$ANOMVAE_DATA``, then ``../shared/data`` from the working
    directory and from the repository root.
    """
    candidates = []
    if os.environ.get("ANOMVAE_DATA"):
        candidates.append(Path(os.environ["ANOMVAE_DATA"]))
    candidates.append(Path.cwd().parent / "shared" / "data")
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    for candidate in candidates:
        if (candidate / "tabular").is_dir():
            return candidate
    return None


EMBEDDED_NAME = "breast_cancer"
"""Name of the dataset :func:`embedded_default` returns, for run names and MLflow inputs."""


def embedded_default() -> tuple[pd.DataFrame, np.ndarray]:
    """The Wisconsin breast-cancer data shipped with scikit-learn.

    Returns
    -------
    X : DataFrame of shape (569, 30)
    y : ndarray of int, 1 for malignant (the anomaly class), 0 for benign
    """
    bunch = load_breast_cancer(as_frame=True)
    return bunch.data, (bunch.target.to_numpy() == 0).astype(int)


def load_npz(path: str | os.PathLike, labels: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Load an ADBench-style ``.npz`` file with arrays ``X`` and ``y`` (1 = anomaly), checked.

    Parameters
    ----------
    path : path
        The file.
    labels : bool, default True
        Whether ``y`` is required; without it a file holding ``X`` alone gives ``y = None``.

    Returns
    -------
    X : ndarray of float64 of shape (n, ...)
        One row per sample (tables are 2-D, images keep their pixel axes).
    y : ndarray of int of shape (n,), or None
        1 for anomalies, 0 for normal rows (:func:`anomvae.metrics.check_labels`).

    Raises
    ------
    ValueError
        Naming the file: not a readable ``.npz`` file (or one of pickled
        objects), no ``X`` (or no ``y`` when ``labels``), ``X`` not numeric or
        not at least 2-D, ``y`` of another length or not 0/1.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            needed = "the arrays X and y (1 = anomaly)" if labels else "an array named X"
            if not ({"X", "y"} if labels else {"X"}) <= set(data.files):
                raise ValueError(f"{path}: an .npz dataset needs {needed}, one row per sample; "
                                 f"found {sorted(data.files)}")
            X, y = data["X"], (np.ravel(data["y"]) if "y" in data.files else None)
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as error:  # ValueError: pickled object arrays
        if str(error).startswith(f"{path}:"):
            raise
        raise ValueError(f"{path}: not a readable .npz file ({error})") from None
    if X.ndim < 2:
        raise ValueError(f"{path}: X must hold one row per sample (2-D), got shape {X.shape}")
    if not (np.issubdtype(X.dtype, np.number) and X.dtype.kind != "c" or X.dtype == np.bool_):
        raise ValueError(f"{path}: X must be numeric, got dtype {X.dtype}")
    if y is not None and len(y) != len(X):
        raise ValueError(f"{path}: y has {len(y)} labels for {len(X)} rows of X")
    return X.astype(np.float64), (None if y is None else check_labels(y, f"{path}: the array y"))


def stratified_subsample(y: np.ndarray, max_rows: int | None, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most ``max_rows`` rows keeping the anomaly share; all rows if fewer."""
    rows = np.arange(len(y))
    if max_rows is None or len(y) <= max_rows:
        return rows
    keep = []
    for label in (0, 1):
        members = rows[y == label]
        share = max(1, round(max_rows * len(members) / len(y)))
        keep.append(rng.choice(members, size=min(share, len(members)), replace=False))
    return np.sort(np.concatenate(keep))


def semi_supervised_split(
    y: np.ndarray, random_state: int | None = 0, max_rows: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices for the semi-supervised protocol.

    Train on a random half of the normal rows; test on the other half plus
    every anomaly. With ``max_rows``, a stratified subsample of at most that
    many rows is drawn first.

    Returns
    -------
    train_index, test_index : ndarray of int
    """
    rng = np.random.default_rng(random_state)
    rows = stratified_subsample(y, max_rows, rng)
    normal = rng.permutation(rows[y[rows] == 0])
    half = len(normal) // 2
    train = np.sort(normal[:half])
    test = np.sort(np.concatenate([normal[half:], rows[y[rows] == 1]]))
    return train, test


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        raw = handle.read()
    dimensions = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dimensions))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dimensions).reshape(shape)


def load_mnist(folder: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """MNIST from its original idx ``.gz`` files.

    Parameters
    ----------
    folder : path
        Folder holding ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``.
    split : {"train", "test"}

    Returns
    -------
    images : ndarray of uint8, shape (N, 28, 28)
    labels : ndarray of uint8, shape (N,)
    """
    prefix = {"train": "train", "test": "t10k"}[split]
    folder = Path(folder)
    return (
        _read_idx(folder / f"{prefix}-images-idx3-ubyte.gz"),
        _read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz"),
    )

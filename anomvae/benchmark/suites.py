"""Benchmark tasks: which data a suite runs on and how one run's rows are split.

A task is a small picklable description (a file path and options), so worker
processes load the data themselves. Tabular tasks are ADBench-style ``.npz``
files (arrays ``X`` and ``y``, 1 = anomaly) or CSV and Parquet files with a
label column (:mod:`anomvae.benchmark.tables`);
the images suite adds one-class MNIST (Ruff et al., "Deep One-Class
Classification", ICML 2018: train on one digit, test on the whole test split)
and any ``.npz`` embeddings found under the folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets import load_mnist
from .protocols import split, stratified_subsample
from .tables import TABLE_SUFFIXES, Table, read_table

SUITES = ("tabular", "images", "speed", "throughput")

DEVELOPMENT = (
    "15_Hepatitis", "21_Lymphography", "14_glass", "39_vertebral", "4_breastw", "20_letter", "12_fault",
    "7_Cardiotocography", "35_SpamBase", "27_PageBlocks", "19_landsat", "24_mnist", "5_campaign", "1_ALOI",
    "8_celeba", "10_cover", "11_donors",
)
"""The development part of the 33 shared ADBench tables: every default, rule and
architecture choice is made on these. The rule, fixed once: sort the tables by
their number of rows (ascending); the 1st, 3rd, 5th, ... go to development and
the 2nd, 4th, 6th, ... to :data:`CONFIRMATION`, so both parts hold small and
large tables alike."""

CONFIRMATION = (
    "45_wine", "46_WPBC", "42_WBC", "43_WDBC", "40_vowels", "6_cardio", "17_InternetAds", "25_musk",
    "26_optdigits", "31_satimage-2", "28_pendigits", "22_magic.gamma", "32_shuttle", "34_smtp", "33_skin",
    "16_http",
)
"""The confirmation part: run only to report choices made on :data:`DEVELOPMENT`."""

PARTS = {"development": DEVELOPMENT, "confirmation": CONFIRMATION}
"""``--datasets development`` or ``--datasets confirmation`` selects a whole part."""


def suite_part(name: str) -> tuple[str, ...]:
    """Dataset names of the shared tabular suite's ``"development"`` or ``"confirmation"`` part.

    Raises
    ------
    ValueError
        For any other name.
    """
    if name not in PARTS:
        raise ValueError(f"part must be one of {sorted(PARTS)}, got {name!r}")
    return PARTS[name]


@dataclass(frozen=True)
class RunData:
    """The rows of one run: training rows, test rows and test labels."""

    X_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    y_train: np.ndarray | None = None
    """Training labels where the protocol lets anomalies into training (None: all normal)."""

    @property
    def n_features(self) -> int:
        """Input width: features of a row, or values of an image."""
        return int(np.prod(self.X_train.shape[1:]))


@dataclass(frozen=True)
class TableTask:
    """One labelled table (``.npz``, ``.csv`` or ``.parquet``; see :mod:`~anomvae.benchmark.tables`) split by a protocol.

    ``fingerprint`` identifies the file's content (and the label column)
    when it was checked (:func:`anomvae.benchmark.preflight.check_tasks`).
    """

    name: str
    path: str
    label_column: str | None = None
    fingerprint: str | None = None

    def cost(self) -> float:
        """Rough relative cost of a run (the file size), to run small datasets first."""
        return float(Path(self.path).stat().st_size)

    def read(self) -> Table:
        """The whole table, checked (:func:`~anomvae.benchmark.tables.read_table`)."""
        return read_table(self.path, self.label_column)

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """Features (float64) and labels (int) of the whole table."""
        table = self.read()
        return table.X, table.y

    def run_data(self, protocol: str, seed: int, max_rows: int | None) -> RunData:
        """Training rows and labelled test rows of one seed under ``protocol``."""
        X, y = self.load()
        train, test = split(y, protocol, seed, max_rows)
        return RunData(X[train], X[test], y[test], y[train])


@dataclass(frozen=True)
class OneClassMNISTTask:
    """Digit ``digit`` of the MNIST training split is normal; the test split is scored."""

    name: str
    folder: str
    digit: int

    def cost(self) -> float:
        """Rough relative cost of a run: larger than any shared tabular file."""
        return 1e8

    def run_data(self, protocol: str, seed: int, max_rows: int | None) -> RunData:
        """Training images of the normal digit and labelled test images (semi-supervised only)."""
        if protocol != "semi-supervised":
            raise ValueError("one-class MNIST is defined for the semi-supervised protocol only")
        train_images, train_labels = load_mnist(self.folder, "train")
        test_images, test_labels = load_mnist(self.folder, "test")
        rng = np.random.default_rng(seed)
        normal = np.flatnonzero(train_labels == self.digit)
        if max_rows is not None and len(normal) > max_rows:
            normal = np.sort(rng.choice(normal, size=max_rows, replace=False))
        y_test = (test_labels != self.digit).astype(int)
        test = stratified_subsample(y_test, max_rows, rng)
        return RunData(train_images[normal], test_images[test], y_test[test])


def _table_tasks(folder: Path, label_column: str | None = None) -> list[TableTask]:
    files = sorted(
        (path for path in folder.iterdir() if path.suffix in TABLE_SUFFIXES and path.is_file()),
        key=lambda path: _natural_key(path.stem),
    )
    return [TableTask(path.stem, str(path), label_column) for path in files]


def _natural_key(stem: str) -> tuple:
    head = stem.split("_", 1)[0]
    return (int(head), stem) if head.isdigit() else (10**9, stem)


def discover_tasks(suite: str, data: str | Path, datasets: str | list[str] | None = None,
                   label_column: str | None = None) -> list:
    """Tasks of ``suite`` found under the folder (or in the single file) ``data``.

    Parameters
    ----------
    suite : {"tabular", "images"}
        ``"tabular"``: every ``.npz``/``.csv``/``.parquet`` file in ``data``,
        or ``data`` itself when it is such a file. ``"images"``:
        one-class MNIST per digit when ``data/mnist`` (or ``data`` itself)
        holds the idx files, plus every such table in the sub-folders (such as
        ADBench's ResNet-18 embeddings of MVTec-AD).
    data : path
    datasets : comma-separated str or list of str, optional
        Keep only tasks whose name contains one of these strings;
        ``"development"`` or ``"confirmation"`` keeps exactly that part of
        the shared suite (:data:`PARTS`).
    label_column : str, optional
        Label column of CSV and Parquet tables (:mod:`anomvae.benchmark.tables`).

    Raises
    ------
    ValueError
        When ``data`` does not exist or holds no task of the suite.
    """
    folder = Path(data)
    if suite == "tabular" and folder.is_file():
        if folder.suffix not in TABLE_SUFFIXES:
            raise ValueError(f"--data {folder} is not a {_formats()} file")
        return [TableTask(folder.stem, str(folder), label_column)]
    if not folder.is_dir():
        raise ValueError(f"data folder {folder} does not exist"
                         if not folder.exists() else f"--suite {suite} needs a folder, and {folder} is a file")
    if suite == "tabular":
        tasks: list = _table_tasks(folder, label_column)
    elif suite == "images":
        tasks = []
        for mnist in (folder / "mnist", folder):
            if (mnist / "train-images-idx3-ubyte.gz").is_file():
                tasks += [OneClassMNISTTask(f"mnist_{digit}", str(mnist), digit) for digit in range(10)]
                break
        for sub in sorted(path for path in folder.iterdir() if path.is_dir()):
            tasks += _table_tasks(sub, label_column)
    else:
        raise ValueError(f"suite must be 'tabular' or 'images' here, got {suite!r}")
    if not tasks:
        raise ValueError(f"no {suite} datasets ({_formats()} files) found in {folder}")
    found = len(tasks)
    if isinstance(datasets, str) and datasets in PARTS:
        tasks = [task for task in tasks if task.name in PARTS[datasets]]
    elif datasets:
        wanted = datasets.split(",") if isinstance(datasets, str) else list(datasets)
        tasks = [task for task in tasks if any(w.strip() and w.strip() in task.name for w in wanted)]
    if not tasks:
        raise ValueError(f"--datasets {datasets!r} matches none of the {found} {suite} datasets in {folder}")
    return tasks


def _formats() -> str:
    return ", ".join(TABLE_SUFFIXES[:-1]) + " or " + TABLE_SUFFIXES[-1]

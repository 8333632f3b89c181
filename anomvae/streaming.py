"""Out-of-core training: rows streamed from Parquet or from DataFrame chunks.

``fit`` accepts, besides in-memory rows, a Parquet file or directory (read
with :mod:`pyarrow.dataset`, one row group at a time), a ``pyarrow`` dataset,
a list of DataFrames, or a callable returning a fresh iterator of DataFrames
at each call. Memory stays bounded by a few row groups and the samples below,
whatever the number of rows:

1. A first streamed pass counts the rows, draws each row's held-out flag
   (``validation_fraction``, seeded per chunk so every epoch agrees), keeps a
   uniform sample of up to :data:`SAMPLE_ROWS` training rows and of as many
   held-out rows (smallest random keys, the bottom-k sample), and collects
   every category of every text column.
2. The encoder's scaling statistics are fitted on the training sample; its
   categories are the full pass's (so no category seen in training is
   "unseen").
3. Each epoch reads the chunks in a shuffled order, encodes them, drops the
   held-out rows, and shuffles rows inside a buffer of
   :data:`SHUFFLE_BUFFER_ROWS` before cutting batches.
4. Early stopping uses the held-out sample; the threshold is calibrated on
   the held-out sample (strategies that need clean rows) or on the training
   sample (the others), and the scorer's ``on_train_end`` sees the training
   sample.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from .finite import check_finite
from .preprocessing import MAX_CATEGORIES, check_no_missing
from .schema import BOOLEAN, CATEGORY, NUMERIC, fit_kind
from .training_data import TrainingData

SAMPLE_ROWS = 50_000
"""Rows kept in memory from each of the training and held-out sets."""

SHUFFLE_BUFFER_ROWS = 65_536
"""Encoded rows shuffled together before being cut into batches."""

Chunks = Iterator[tuple[int, pd.DataFrame]]


def is_streamed(X) -> bool:
    """True for the inputs this module trains on: a path, a dataset, DataFrame chunks.

    Raises
    ------
    TypeError
        For a one-shot iterator, which cannot be read once per epoch.
    """
    if isinstance(X, (str, os.PathLike)) or type(X).__module__.startswith("pyarrow._dataset"):
        return True
    if isinstance(X, Iterator) and not isinstance(X, (np.ndarray, pd.DataFrame)):
        raise TypeError(
            "fit reads streamed data once per epoch, so a one-shot iterator or generator cannot be "
            "used; pass a list of DataFrames, a callable returning a fresh iterator of DataFrames, "
            "or a Parquet path"
        )
    if callable(X) and not hasattr(X, "__array__"):
        return True
    if not isinstance(X, (list, tuple)) or not any(isinstance(c, pd.DataFrame) for c in X):
        return False
    for position, chunk in enumerate(X):
        _checked_frame(chunk, position, " (a list is streamed when every item is a DataFrame)")
    return True


class ChunkReader:
    """The chunks of a streamed input, each with its position in the unshuffled order.

    Parameters
    ----------
    source : str, PathLike, pyarrow Dataset, list of DataFrame or callable
        See the module docstring.
    """

    def __init__(self, source) -> None:
        self.source = source
        self.units = None
        self.columns: list | None = None
        if isinstance(source, (str, os.PathLike)) or type(source).__module__.startswith("pyarrow"):
            import pyarrow as pa
            import pyarrow.dataset as ds

            path = isinstance(source, (str, os.PathLike))
            try:
                dataset = ds.dataset(os.fspath(source), format="parquet") if path else source
                self.units = [part for fragment in dataset.get_fragments()
                              for part in fragment.split_by_row_group()]
            except pa.ArrowInvalid as error:
                raise ValueError(
                    f"{os.fspath(source) if path else 'the dataset'} must be a Parquet file or a folder "
                    f"holding only Parquet files: {error}"
                ) from error
            if not self.units:
                raise ValueError(f"the Parquet dataset {source!r} holds no row group")

    def __call__(self, order: np.ndarray | None = None) -> Chunks:
        """Yield ``(position, frame)``; ``order`` permutes positions (lists and Parquet only).

        Every chunk of every read must have the columns of the first chunk
        ever read: a callable may return other chunks at each call.
        """
        for position, frame in self._frames(order):
            if self.columns is None:
                self.columns = list(frame.columns)
            elif list(frame.columns) != self.columns:
                raise ValueError(
                    f"{self.label(position)} has columns {list(frame.columns)}, the first chunk read "
                    f"had {self.columns}; every chunk of every read must have the same columns"
                )
            yield position, frame

    def _frames(self, order: np.ndarray | None) -> Chunks:
        if self.units is not None:
            import pyarrow as pa

            for position in order if order is not None else range(len(self.units)):
                try:
                    table = self.units[position].to_table()
                except (pa.ArrowException, OSError) as error:
                    raise ValueError(f"{self.label(position)} cannot be read: {error}") from error
                yield int(position), table.to_pandas()
        elif callable(self.source):
            for position, frame in enumerate(self.source()):
                yield position, _checked_frame(frame, position)
        else:
            for position in order if order is not None else range(len(self.source)):
                yield int(position), self.source[position]

    def label(self, position: int) -> str:
        """``"streamed chunk 3"``, with its file and row group for Parquet."""
        if self.units is None:
            return f"streamed chunk {position}"
        unit = self.units[position]
        group = unit.row_groups[0].id if getattr(unit, "row_groups", None) else 0
        return f"streamed chunk {position} ({unit.path}, row group {group})"

    def size(self) -> int | None:
        """Number of chunks when they can be read in any order, else None."""
        if self.units is not None:
            return len(self.units)
        return None if callable(self.source) else len(self.source)


def _checked_frame(frame, position: int, why: str = "") -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"streamed chunk {position} is a {type(frame).__name__}, not a DataFrame{why}")
    return frame


def held_out_mask(seed: int, position: int, n_rows: int, fraction: float) -> np.ndarray:
    """The held-out flag of each row of chunk ``position``, the same at every read."""
    return np.random.default_rng([seed, position]).random(n_rows) < fraction


@dataclass
class _BottomK:
    """A uniform sample without replacement: the rows with the ``k`` smallest random keys."""

    k: int
    keys: np.ndarray = field(default_factory=lambda: np.zeros(0))
    frames: list = field(default_factory=list)

    def add(self, frame: pd.DataFrame, keys: np.ndarray) -> None:
        self.frames.append(frame.reset_index(drop=True))
        self.keys = np.concatenate([self.keys, keys])
        if len(self.keys) > 2 * self.k:
            self._shrink()

    def _shrink(self) -> None:
        rows = pd.concat(self.frames, ignore_index=True)
        keep = np.sort(np.argpartition(self.keys, self.k)[: self.k]) if len(self.keys) > self.k \
            else np.arange(len(self.keys))
        self.frames, self.keys = [rows.iloc[keep].reset_index(drop=True)], self.keys[keep]

    def frame(self) -> pd.DataFrame:
        self._shrink()
        return self.frames[0]


@dataclass
class Survey:
    """What the first streamed pass learns: counts, samples and categories."""

    n_train: int
    n_validation: int
    train_sample: pd.DataFrame
    validation_sample: pd.DataFrame
    categories: dict[str, set]


def survey(reader: ChunkReader, seed: int, validation_fraction: float) -> Survey:
    """One pass over every chunk (see the module docstring, step 1)."""
    rng = np.random.default_rng(seed)
    train, held_out = _BottomK(SAMPLE_ROWS), _BottomK(SAMPLE_ROWS)
    counts, categories, kinds = [0, 0], {}, None
    for position, frame in reader():
        kinds = survey_columns(frame, reader.label(position), categories, kinds)
        mask = held_out_mask(seed, position, len(frame), validation_fraction)
        counts[0] += int((~mask).sum())
        counts[1] += int(mask.sum())
        train.add(frame[~mask], rng.random(int((~mask).sum())))
        held_out.add(frame[mask], rng.random(int(mask.sum())))
    if kinds is None:
        raise ValueError("the streamed input holds no chunk")
    return Survey(counts[0], counts[1], train.frame(), held_out.frame(), categories)


def survey_columns(frame: pd.DataFrame, label: str | None, categories: dict[str, set],
                    first: list[str | None] | None) -> list[str | None]:
    """Check one chunk against the first; add text columns' values to ``categories``.

    Refuses, naming the chunk (``label``; None: no prefix) and its own rows, missing or non-finite numbers,
    missing or empty text, and a column whose kind (:func:`_chunk_kind`)
    differs from its kind in ``first``, the kinds seen so far. Returns them,
    updated with this chunk's where they were unknown.
    """
    names = [str(column) for column in frame.columns]
    numeric = [pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)
               for dtype in frame.dtypes]
    try:
        positions = [i for i, is_number in enumerate(numeric) if is_number]
        check_finite(frame.iloc[:, positions].to_numpy(dtype=np.float64, na_value=np.nan),
                     [names[i] for i in positions])
        kinds = [_chunk_kind(frame.iloc[:, i], names[i]) for i in range(frame.shape[1])]
        for i, kind in enumerate(kinds):
            if not numeric[i] and kind != BOOLEAN:
                check_no_missing(frame.iloc[:, i], names[i])
            elif not numeric[i] and frame.iloc[:, i].isna().any():
                check_finite(np.where(frame.iloc[:, i].isna().to_numpy(), np.nan, 0.0)[:, None], [names[i]])
    except (TypeError, ValueError) as error:
        if label is None:
            raise
        raise type(error)(f"{label}: {error}") from error
    seen = list(first or [None] * len(kinds))
    for i, kind in enumerate(kinds):
        if kind is not None and seen[i] is not None and kind != seen[i]:
            raise TypeError(
                f"{label}: column {names[i]!r} holds {kind} values, earlier chunks held {seen[i]} ones; "
                "every chunk must give a column the same kind (convert it before streaming)"
            )
        seen[i] = seen[i] or kind
    for i, column in enumerate(frame.columns):
        if not numeric[i]:
            categories.setdefault(str(column), set()).update(frame.iloc[:, i].dropna().astype(str).unique())
    return seen


def _chunk_kind(series: pd.Series, column: str) -> str | None:
    """A chunk's column as numeric, boolean or category; None when it holds no value to tell.

    The same kinds as :func:`~anomvae.schema.fit_kind`, read cheaply from
    the dtype (``infer_dtype`` for object columns), without its rules that
    need every row (dates written as text): those are applied to the
    in-memory sample.
    """
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return BOOLEAN
    if isinstance(dtype, pd.CategoricalDtype) or (pd.api.types.is_string_dtype(dtype) and dtype != object):
        return CATEGORY
    if pd.api.types.is_numeric_dtype(dtype):
        return NUMERIC
    if dtype != object:
        return None  # time-like and other dtypes: fit_kind's message on the sample
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred == "empty":
        return None
    if inferred in ("string", "categorical"):
        return CATEGORY
    return fit_kind(series, column)


class RowSource:
    """Encoded training rows streamed in shuffled batches; what the engine iterates.

    Parameters
    ----------
    reader : ChunkReader
    encode : callable
        ``encode(frame, label)`` -> float32 array of encoded rows, ``label``
        naming the chunk in errors (:meth:`ChunkReader.label`).
    seed : int
        Seed of the held-out flags.
    validation_fraction : float
    n_rows : int
        Training rows in the stream.
    sample : Tensor
        In-memory sample of the encoded training rows, on the training device.
    """

    def __init__(self, reader: ChunkReader, encode: Callable, seed: int, validation_fraction: float,
                 n_rows: int, sample: Tensor) -> None:
        self.reader, self.encode, self.seed = reader, encode, seed
        self.validation_fraction, self.n_rows, self._sample = validation_fraction, n_rows, sample
        self.device = sample.device

    def __len__(self) -> int:
        return self.n_rows

    def sample(self) -> Tensor:
        """The in-memory training sample (for ``on_train_end`` and diagnostics)."""
        return self._sample

    def batches(self, batch_size: int, *, shuffle: bool, generator: torch.Generator) -> Iterator[Tensor]:
        """Batches of encoded training rows, chunks and rows shuffled when ``shuffle``."""
        size = self.reader.size()
        order = None
        if shuffle and size is not None:
            order = torch.randperm(size, generator=generator).numpy()
        buffer: list[np.ndarray] = []
        buffered = 0
        for position, frame in self.reader(order):
            mask = held_out_mask(self.seed, position, len(frame), self.validation_fraction)
            rows = self.encode(frame[~mask], self.reader.label(position))
            buffer.append(rows)
            buffered += len(rows)
            if buffered >= SHUFFLE_BUFFER_ROWS:
                rows = self._mixed(buffer, shuffle, generator)
                cut = len(rows) - len(rows) % batch_size
                yield from self._split(rows[:cut], batch_size)
                buffer, buffered = [rows[cut:]], len(rows) - cut
        if buffered:
            yield from self._split(self._mixed(buffer, shuffle, generator), batch_size)

    @staticmethod
    def _mixed(buffer: list[np.ndarray], shuffle: bool, generator: torch.Generator) -> np.ndarray:
        rows = np.concatenate(buffer)
        return rows[torch.randperm(len(rows), generator=generator).numpy()] if shuffle else rows

    def _split(self, rows: np.ndarray, batch_size: int) -> Iterator[Tensor]:
        yield from torch.from_numpy(rows).to(self.device).split(batch_size)


def streamed_training_data(source, fit_encoding: Callable, encode: Callable, seed: int,
                           validation_fraction: float, device: torch.device) -> TrainingData:
    """Survey ``source``, fit the encoder, and wrap the stream for the engine.

    Parameters
    ----------
    source : see the module docstring
    fit_encoding : callable
        ``fit_encoding(frame)`` -> ``(encoded, encoder, image)``: the
        estimator's validation and encoder fit, applied to the training sample.
    encode : callable
        ``encode(encoder, frame, label)`` -> float32 encoded rows.
    seed : int
    validation_fraction : float
    device : torch.device
    """
    reader = ChunkReader(source)
    found = survey(reader, seed, validation_fraction)
    train_rows, encoder, _ = fit_encoding(found.train_sample)
    for column, seen in found.categories.items():
        if column in encoder.categories:
            if len(seen) > MAX_CATEGORIES:
                raise ValueError(
                    f"column {column!r} has {len(seen)} distinct values in the stream (more than "
                    f"{MAX_CATEGORIES}); drop it or encode it as numbers yourself"
                )
            encoder.categories[column] = sorted(seen)
    train_rows = encode(encoder, found.train_sample, "the streamed training sample")
    held_rows = (encode(encoder, found.validation_sample, "the streamed held-out sample")
                 if len(found.validation_sample) else None)
    sample = torch.from_numpy(train_rows).to(device)
    stream = RowSource(reader, lambda frame, label: encode(encoder, frame, label), seed,
                       validation_fraction, found.n_train, sample)
    reference = train_rows if held_rows is None else np.concatenate([train_rows, held_rows])
    return TrainingData(
        train=stream,
        validation=None if held_rows is None else torch.from_numpy(held_rows).to(device),
        reference=reference,
        held_out=None if held_rows is None else np.arange(len(train_rows), len(reference)),
        encoder=encoder, image=False, n_train=found.n_train, n_validation=found.n_validation,
    )

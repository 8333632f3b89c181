"""Data-parallel training on several processes or machines: ``torchrun`` and Spark.

Each process (rank) calls :func:`fit_distributed` with its own shard of the
rows; the shared engine trains one model, averaging gradients over the ranks
(:class:`anomvae.distributed.DataParallel`). See ``docs/scaling.md`` for the
launch commands (CPU/gloo, multi-GPU/NCCL, multi-node, Spark's
``TorchDistributor``).
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from .base.inputs import arrow_as_frame
from .distributed import DataParallel
from .finite import check_finite
from .preprocessing import MAX_CATEGORIES
from .python_values import comparable_setting, same_setting
from .schema import CATEGORY
from .streaming import SAMPLE_ROWS, is_streamed, survey_columns


RANK_LOCAL_PARAMETERS = ("random_state", "device", "verbose")
"""Parameters a rank may set for itself: the seed (rank 0's is used), its device, its progress bar."""


def init_process_group() -> None:
    """Join the process group ``torchrun`` (or ``TorchDistributor``) describes in the environment.

    NCCL when CUDA is available (each process then uses GPU ``LOCAL_RANK``),
    gloo otherwise. Does nothing when a group is already initialised.

    Raises
    ------
    RuntimeError
        Outside a launcher: ``RANK``, ``WORLD_SIZE`` and ``MASTER_ADDR`` are not set.
    """
    if dist.is_initialized():
        return
    missing = [name for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR") if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"no torch.distributed environment ({', '.join(missing)} unset): launch with "
            "torchrun --nproc-per-node=N script.py, or initialise a process group yourself"
        )
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")


def fit_distributed(estimator, X, *, group=None):
    """Fit ``estimator`` data-parallel: this rank's shard is ``X``.

    Every rank of the process group must call it, with the same estimator
    parameters and a shard of similar size. What the ranks share:

    - **checks**: each rank checks its whole shard as ``fit`` checks rows
      (missing or non-finite values, text, each column's kind) before any
      training, and every rank raises if one shard fails, naming the rank and
      the row within its shard: an error on one rank never leaves the others
      waiting in a collective;
    - **encoder**: fitted on a sample gathered from every rank (up to
      :data:`~anomvae.streaming.SAMPLE_ROWS` rows in all, plus one row of
      each text value the sample would miss, so no category seen in training
      is "unseen"), so all ranks encode alike;
    - **seed**: rank 0's ``random_state`` (a fresh seed when it is None), so
      weights start equal; each rank shuffles its own shard;
    - **training**: one step per batch on every rank, gradients averaged
      (``all_reduce``), buffers and early stopping decided together; an epoch
      ends when the smallest shard runs out;
    - **threshold**: calibrated on the union of the ranks' held-out scores
      (``all_gather``); the scorer's reference state (e.g. latent codes) is rank 0's.

    Every rank ends with the same fitted model; save and log it from rank 0
    only (``torch.distributed.get_rank() == 0``).

    Parameters
    ----------
    estimator : BaseDeepDetector
        Unfitted or fitted; it is refitted.
    X : array-like, DataFrame or image batch
        This rank's rows (in-memory; streamed sources are fitted per process).
    group : ProcessGroup, optional
        Default: the world group, initialised from the environment by
        :func:`init_process_group` if needed.

    Returns
    -------
    estimator

    Raises
    ------
    ValueError
        On every rank, naming the difference, when the ranks' shards do not
        have the same columns (names and order) or width, or their estimators
        not the same parameters (other than :data:`RANK_LOCAL_PARAMETERS`);
        when a shard is empty or holds a missing or non-finite value (naming
        the rank and the row in its shard).
    TypeError
        On every rank, when a column holds values of another kind on one rank
        than on another (numbers on one, booleans or text on another).
    """
    X = arrow_as_frame(X)
    if is_streamed(X):
        raise TypeError("fit_distributed takes this rank's rows in memory; read your shard of the "
                        "Parquet dataset (e.g. every WORLD_SIZE-th file) into a DataFrame")
    init_process_group()
    sync = DataParallel(group)
    seed = estimator.random_state
    if not isinstance(seed, (int, np.integer)):
        seed = int(np.random.default_rng().integers(np.iinfo(np.int32).max))
    estimator.set_params(random_state=int(sync.broadcast(seed)))
    _check_same_setup(estimator, X, sync)
    kinds = _check_shards(X, sync)
    sample = _gathered_sample(X, sync, kinds)
    return estimator._keeping_state_on_error(estimator._fit, X, sync, sample)


def _setup(estimator, X) -> dict:
    """What every rank's fit must agree on: the estimator's parameters and the shard's columns.

    Parameters are compared as values (a list equals a tuple, a NumPy number
    the Python one), columns by name and order (their kinds are checked by
    ``fit`` itself on the gathered sample).
    """
    params = {name: comparable_setting(value) for name, value in estimator.get_params(deep=False).items()
              if name not in RANK_LOCAL_PARAMETERS}
    if isinstance(X, pd.DataFrame):
        columns = [repr(name) for name in X.columns]
    else:
        columns = [f"array of shape (n, {', '.join(map(str, np.shape(X)[1:]))})"]
    return {"parameters": params, "columns": columns}


def _check_same_setup(estimator, X, sync: DataParallel) -> None:
    """Refuse, on every rank at once, a fit whose ranks differ in parameters or columns."""
    setups: list = [None] * sync.world_size
    dist.all_gather_object(setups, _setup(estimator, X), group=sync.group)
    first = setups[0]
    for rank, setup in enumerate(setups[1:], start=1):
        differences = [
            f"{name}: {first['parameters'].get(name)!r} on rank 0, {setup['parameters'].get(name)!r} on rank {rank}"
            for name in sorted(set(first["parameters"]) | set(setup["parameters"]))
            if not same_setting(first["parameters"].get(name), setup["parameters"].get(name))
        ]
        if first["columns"] != setup["columns"]:
            differences.append(f"columns: {first['columns']} on rank 0, {setup['columns']} on rank {rank}")
        if differences:
            raise ValueError(
                "fit_distributed: every rank must fit the same estimator on shards with the same columns; "
                + "; ".join(differences)[:1000]
            )


def _shard_kinds(X) -> list | None:
    """This rank's whole shard checked as ``fit`` checks rows; its column kinds (None for arrays and images).

    Images are checked for finite pixels here, and against the pixel scale
    fitted on the gathered sample when ``fit`` encodes each shard.
    """
    if len(X) == 0:
        raise ValueError("no rows; give every rank at least one row")
    if isinstance(X, pd.DataFrame):
        return survey_columns(X, None, {}, None)
    try:
        values = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"an array of numbers is needed ({error}); pass a DataFrame to use text columns as "
                         "categories") from None
    check_finite(values)
    return None


def _check_shards(X, sync: DataParallel) -> list | None:
    """Check every rank's shard before training and agree on the outcome; the column kinds (None for arrays)."""
    found = sync.agree(lambda: _shard_kinds(X))
    kinds: list = [None] * sync.world_size
    dist.all_gather_object(kinds, found, group=sync.group)
    if kinds[0] is None:
        return None
    for i, column in enumerate(X.columns):
        seen = {rank: rank_kinds[i] for rank, rank_kinds in enumerate(kinds) if rank_kinds[i] is not None}
        if len(set(seen.values())) > 1:
            held = ", ".join(f"{kind} values on rank {rank}" for rank, kind in seen.items())
            raise TypeError(f"fit_distributed: column {str(column)!r} holds {held}; every rank must give a "
                            "column the same kind (convert it before the fit)")
    return [next((rank_kinds[i] for rank_kinds in kinds if rank_kinds[i] is not None), None)
            for i in range(len(X.columns))]


def _gathered_sample(X, sync: DataParallel, kinds: list | None):
    """Up to ``SAMPLE_ROWS / world_size`` rows of each rank, concatenated in rank order.

    Each rank adds one row for each value of a text column that its sampled
    rows miss (at most ``MAX_CATEGORIES + 1`` per column, enough for the
    encoder to refuse a column of too many values), so that the encoder knows
    every category of the training rows.
    """
    rows = X.iloc if isinstance(X, pd.DataFrame) else X
    share = max(2, SAMPLE_ROWS // sync.world_size)
    positions = np.sort(np.random.default_rng(sync.rank).permutation(len(X))[:share])
    if isinstance(X, pd.DataFrame) and kinds is not None:
        positions = np.union1d(positions, _rows_of_unsampled_values(X, positions, kinds))
    local = rows[positions] if isinstance(X, pd.DataFrame) else np.asarray(X)[positions]
    parts: list = [None] * sync.world_size
    dist.all_gather_object(parts, local, group=sync.group)
    if isinstance(X, pd.DataFrame):
        return pd.concat(parts, ignore_index=True)
    return np.concatenate(parts)


def _rows_of_unsampled_values(X: pd.DataFrame, positions: np.ndarray, kinds: list) -> np.ndarray:
    """Positions of the first row of each text value that the rows at ``positions`` lack."""
    extra = []
    for i, kind in enumerate(kinds):
        if kind != CATEGORY:
            continue
        text = X.iloc[:, i].astype(str)
        unsampled = ~text.isin(set(text.iloc[positions])).to_numpy() & ~text.duplicated().to_numpy()
        extra.append(np.flatnonzero(unsampled)[:MAX_CATEGORIES + 1])
    return np.concatenate(extra) if extra else np.array([], dtype=int)

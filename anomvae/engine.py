"""The one training engine every anomvae scorer is fitted with."""

from __future__ import annotations

import contextlib
import copy
import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .device import autocast, inference_autocast
from .distributed import LOCAL, Synchroniser
from .flat_parameters import FlatGroup, flat_groups
from .scorer import Phase, Scorer
from .streaming import RowSource

EpochCallback = Callable[[int, dict[str, float]], None]

COMPILE_VARIABLE = "ANOMVAE_COMPILE"
"""Set this environment variable to 1 to ``torch.compile`` the scorer's
networks before training (worth it for long trainings, on GPUs above all).
On the CPU it did not pay at tabular sizes (``benchmarks/fused_step.py``), and
AnomalyVAE's fused step (:mod:`anomvae.nn.fused_vae_step`) does not call the
modules, so there it applies only with ``fused_step=False``."""


def compile_requested() -> bool:
    """Whether :data:`COMPILE_VARIABLE` asks for ``torch.compile``."""
    return os.environ.get(COMPILE_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def adam(params: list[nn.Parameter], learning_rate: float) -> torch.optim.Optimizer:
    """Adam, in its fused single-kernel form where the parameters allow it.

    The fused update is several times cheaper than the per-tensor loop for the
    small networks and batches of tabular anomaly detection, where the
    optimiser step is a large share of each training step.
    """
    try:
        return torch.optim.Adam(params, lr=learning_rate, fused=True)
    except (RuntimeError, ValueError):
        return torch.optim.Adam(params, lr=learning_rate)


SINGLE_THREAD_FLOPS = 5e7
"""Training steps estimated below this many floating-point operations run on
one CPU thread: for small networks and batches, splitting each tiny matrix
product across threads costs more in synchronisation than it saves."""


@contextlib.contextmanager
def training_threads(scorer: Scorer, batch_size: int, device: torch.device) -> Iterator[None]:
    """Use one intra-op thread on the CPU while the training steps are small.

    A step costs about ``6 * batch_size * n_parameters`` operations (forward
    and backward); below :data:`SINGLE_THREAD_FLOPS` the block runs with
    ``torch.set_num_threads(1)`` and restores the previous setting after.
    Scoring, with its large batches, keeps every thread.
    """
    threads = torch.get_num_threads()
    n_parameters = sum(p.numel() for p in scorer.parameters())
    small = device.type == "cpu" and 6 * batch_size * n_parameters < SINGLE_THREAD_FLOPS
    if small and threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def epoch_means(
    logged: dict[str, list[tuple[Tensor, int]]], n_rows: int, sync: Synchroniser = LOCAL
) -> dict[str, float]:
    """Row-weighted epoch means of per-batch scalars, with one device sync per epoch.

    Parameters
    ----------
    logged : dict of str to list of (Tensor, int)
        Per key, each batch's detached scalar and its number of rows.
    n_rows : int
        Rows in one epoch.
    sync : Synchroniser
        Sums the figures over the processes of a distributed fit (one
        collective per epoch), so that every rank logs the same means.
    """
    if not logged:
        return {}
    keys = list(logged)
    device = logged[keys[0]][0][0].device
    sums = torch.stack([
        torch.stack([value.float() for value, _ in logged[key]])
        @ torch.tensor([float(size) for _, size in logged[key]], device=device)
        for key in keys
    ] + [torch.tensor(float(n_rows), device=device)])
    *totals, rows = sync.sum(sums).tolist()
    return {key: total / rows for key, total in zip(keys, totals)}


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


class TrainingEngine:
    """Mini-batch training of a :class:`~anomvae.scorer.Scorer`.

    In-memory data is one tensor on the training device, sliced by a seeded
    permutation each epoch: no ``DataLoader``, no per-row Python work. Data
    larger than memory is a :class:`~anomvae.streaming.RowSource` that
    streams shuffled batches (:mod:`anomvae.streaming`).
    One Adam optimiser is created per parameter group of the scorer, over the
    group's parameters backed by one flat buffer
    (:mod:`anomvae.flat_parameters`), so zeroing, clipping and the update are
    one operation each; each :class:`~anomvae.scorer.Phase` the scorer yields
    is back-propagated, its gradients clipped and only its own optimiser
    stepped. When a validation tensor is given, training stops after
    ``patience`` epochs without improvement and the best weights are restored;
    both count only from the end of the scorer's warm-up
    (:attr:`~anomvae.scorer.Scorer.early_stopping_start`). After ``fit``,
    ``kept_epoch`` and ``kept_steps`` say which epoch's weights were kept and
    after how many mini-batch steps.

    Parameters
    ----------
    epochs : int
        Maximum number of passes over the training data.
    batch_size : int
        Rows per mini-batch.
    min_batches : int
        Fewest mini-batches per epoch. A training set of fewer rows than
        ``min_batches * batch_size`` is passed through in several fresh
        permutations, one after another, within each epoch, so that a small
        training set still gets enough optimiser steps and ``patience`` keeps
        counting comparable amounts of training. In memory the passes run on
        into each other (batches are full but the last) and are drawn one at
        a time, so memory stays that of two passes; a streamed source repeats
        whole passes until the epoch has ``min_batches`` batches. 1 (the
        default) makes an epoch exactly one pass, however few the rows.
    learning_rate : float
        Adam learning rate for every optimiser.
    patience : int or None
        Epochs without a better validation loss before stopping; ``None``
        trains for all ``epochs``.
    gradient_clip : float or None
        Maximum global gradient norm per optimiser; ``None`` disables clipping.
    generator : torch.Generator
        CPU generator for the per-epoch shuffles.
    verbose : bool
        Show a tqdm progress bar over epochs.
    callbacks : list of callable, optional
        Each called as ``callback(epoch, logs)`` after every epoch.
    sync : Synchroniser, optional
        Data-parallel training over several processes
        (:class:`~anomvae.distributed.DataParallel`): same initial weights,
        gradients averaged before each step, buffers and stopping decisions
        shared. By default the fit is local.
    """

    def __init__(
        self,
        *,
        epochs: int,
        batch_size: int,
        learning_rate: float,
        patience: int | None,
        gradient_clip: float | None,
        generator: torch.Generator,
        min_batches: int = 1,
        verbose: bool = False,
        callbacks: list[EpochCallback] | None = None,
        sync: Synchroniser = LOCAL,
    ) -> None:
        # int(): a numpy integer is a valid parameter value, but torch.split refuses it
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.min_batches = int(min_batches)
        self.learning_rate = learning_rate
        self.patience = patience
        self.gradient_clip = gradient_clip
        self.generator = generator
        self.verbose = verbose
        self.callbacks = list(callbacks or [])
        self.kept_epoch = 0
        self.kept_steps = 0
        self.sync = sync

    def fit(
        self, scorer: Scorer, train: Tensor | RowSource, validation: Tensor | None = None
    ) -> dict[str, list[float]]:
        """Train ``scorer`` in place and return its per-epoch history.

        ``train`` is a tensor of encoded rows or a
        :class:`~anomvae.streaming.RowSource` streaming them; the scorer's
        ``on_train_end`` then gets the source's in-memory sample.

        Returns
        -------
        dict of str to list of float
            ``"epoch"``, the mean of every logged quantity per epoch and, with
            a validation tensor, ``"val_loss"``.

        Raises
        ------
        NonFiniteLossError
            When a loss becomes NaN or infinite, naming the epoch and the phase.
        """
        with training_threads(scorer, self.batch_size, train.device):
            return self._train(scorer, train, validation)

    def _train(
        self, scorer: Scorer, train: Tensor | RowSource, validation: Tensor | None
    ) -> dict[str, list[float]]:
        self.sync.share_state(scorer)
        if compile_requested():
            for module in scorer.children():
                module.compile()
        with flat_groups(scorer.optimizer_groups()) as groups:
            history = self._epochs_loop(scorer, groups, train, validation)
        scorer.eval()
        with torch.no_grad(), inference_autocast(scorer.device, scorer.matmul_dtype):
            scorer.on_train_end(train if isinstance(train, Tensor) else train.sample(), validation)
        self.sync.share_state(scorer)
        return history

    def _epochs_loop(
        self, scorer: Scorer, groups: dict[str, FlatGroup], train: Tensor | RowSource,
        validation: Tensor | None,
    ) -> dict[str, list[float]]:
        optimizers = {name: adam([group.parameter], self.learning_rate) for name, group in groups.items()}
        history: dict[str, list[float]] = defaultdict(list)
        best_loss, best_state, stale_epochs = math.inf, None, 0
        # Decided across ranks: a rank whose shard left it no held-out rows still joins each
        # validation pass (with nothing to add), or the others would wait for it forever.
        validating = self._any_rows(validation, train.device)
        # Rank 0's warm-up for every rank: a scorer may size it from its own shard, and ranks that
        # stopped at different epochs would leave the others waiting in a collective.
        stopping_start = self.sync.broadcast(scorer.early_stopping_start)
        steps, self.kept_epoch, self.kept_steps = 0, 0, 0

        for epoch in self._epochs():
            scorer.train()
            scorer.on_epoch_start(epoch, lambda: self._batches(train, shuffle=False))
            self.sync.share_state(scorer)
            logged: dict[str, list[tuple[Tensor, int]]] = defaultdict(list)
            n_rows = 0
            for batch in self.sync.common_steps(self._batches(train, shuffle=True), train.device):
                n_rows += len(batch)
                steps += 1
                for phase in self._phases(scorer, batch):
                    group = groups[phase.optimizer]
                    if phase.backward is None:
                        group.zero_grad()
                        phase.loss.backward()
                    else:
                        phase.backward()
                    self.sync.average_(group.grad)
                    if self.gradient_clip is not None:
                        group.clip_grad_norm_(self.gradient_clip)
                    optimizers[phase.optimizer].step()
                    logged[f"loss_{phase.optimizer}"].append((phase.loss.detach(), len(batch)))
                    for key, value in phase.logs.items():
                        logged[key].append((value.detach(), len(batch)))
            logs = epoch_means(logged, n_rows, self.sync)
            self._check_finite(logs, epoch)

            if validating:
                logs["val_loss"] = self._validation_loss(scorer, validation, train.device)
                self._check_finite({"val_loss": logs["val_loss"]}, epoch)
            self._record(history, epoch, logs)

            if validating and self.patience is not None and epoch >= stopping_start:
                if best_state is None or logs["val_loss"] < best_loss - 1e-4 * abs(best_loss):
                    best_loss, stale_epochs = logs["val_loss"], 0
                    best_state = copy.deepcopy(scorer.state_dict())
                    self.kept_epoch, self.kept_steps = epoch + 1, steps
                else:
                    stale_epochs += 1
                    if stale_epochs >= self.patience:
                        break
        if best_state is not None:
            scorer.load_state_dict(best_state)
        else:
            self.kept_epoch, self.kept_steps = len(history["epoch"]), steps
        return dict(history)

    def _epochs(self) -> Iterator[int]:
        if not self.verbose:
            return iter(range(self.epochs))
        return iter(tqdm(range(self.epochs), desc="anomvae fit", unit="epoch"))

    def _batches(self, data: Tensor | RowSource, *, shuffle: bool) -> Iterator[Tensor]:
        if not isinstance(data, Tensor):
            yield from self._streamed_batches(data, shuffle=shuffle)
            return
        if not shuffle:
            yield from torch.split(data, self.batch_size)
            return
        pending = data[:0]
        for _ in range(self._passes(len(data))):
            shuffled = data[torch.randperm(len(data), generator=self.generator).to(data.device)]
            pending = torch.cat([pending, shuffled]) if len(pending) else shuffled
            while len(pending) >= self.batch_size:
                yield pending[:self.batch_size]
                pending = pending[self.batch_size:]
        if len(pending):
            yield pending

    def _passes(self, n_rows: int) -> int:
        """Permutations of ``n_rows`` rows in an epoch: one, or enough to fill ``min_batches`` batches."""
        if self.min_batches <= 1 or n_rows == 0 or n_rows >= self.min_batches * self.batch_size:
            return 1
        return -(-self.min_batches * self.batch_size // n_rows)

    def _streamed_batches(self, data: RowSource, *, shuffle: bool) -> Iterator[Tensor]:
        """A source's shuffled passes, repeated until the epoch has ``min_batches`` batches."""
        count = 0
        while True:
            for batch in data.batches(self.batch_size, shuffle=shuffle, generator=self.generator):
                count += 1
                yield batch
            if not shuffle or count == 0 or count >= self.min_batches:
                return

    @staticmethod
    def _phases(scorer: Scorer, batch: Tensor) -> Iterator[Phase]:
        steps = scorer.training_step(batch)
        while True:
            with autocast(batch.device, scorer.matmul_dtype):
                phase = next(steps, None)
            if phase is None:
                return
            yield phase

    def _any_rows(self, validation: Tensor | None, device: torch.device) -> bool:
        """Whether any rank holds validation rows."""
        rows = 0 if validation is None else len(validation)
        return self.sync.sum(torch.tensor([float(rows)], device=device)).item() > 0

    def _validation_loss(self, scorer: Scorer, validation: Tensor | None, device: torch.device) -> float:
        """Mean validation loss over every rank's held-out rows (a rank may hold none)."""
        scorer.eval()
        total = torch.zeros(2, device=device)
        if validation is not None and len(validation):
            with torch.no_grad(), autocast(device, scorer.matmul_dtype):
                for batch in self._batches(validation, shuffle=False):
                    total[0] += scorer.validation_loss(batch).float() * len(batch)
            total[1] = len(validation)
        loss, rows = self.sync.sum(total).tolist()
        return loss / rows

    @staticmethod
    def _check_finite(logs: dict[str, float], epoch: int) -> None:
        bad = sorted(key for key, value in logs.items() if not math.isfinite(value))
        if bad:
            raise NonFiniteLossError(
                f"training diverged: {', '.join(bad)} became non-finite in epoch {epoch + 1}; "
                "lower learning_rate, keep gradient_clip on, or check the input scale"
            )

    def _record(self, history: dict[str, list[float]], epoch: int, logs: dict[str, float]) -> None:
        history["epoch"].append(epoch + 1)
        for key, value in logs.items():
            history[key].append(value)
        for callback in self.callbacks:
            callback(epoch + 1, logs)

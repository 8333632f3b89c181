"""The one training engine every anomvae scorer is fitted with."""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn

from .device import autocast
from .scorer import Phase, Scorer

EpochCallback = Callable[[int, dict[str, float]], None]


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


class TrainingEngine:
    """Mini-batch training of a :class:`~anomvae.scorer.Scorer`.

    The data is preloaded as one tensor on the training device and sliced by a
    seeded permutation each epoch: no ``DataLoader``, no per-row Python work.
    One Adam optimiser is created per parameter group of the scorer; each
    :class:`~anomvae.scorer.Phase` the scorer yields is back-propagated, its
    gradients clipped and only its own optimiser stepped. When a validation
    tensor is given, training stops after ``patience`` epochs without
    improvement and the best weights are restored.

    Parameters
    ----------
    epochs : int
        Maximum number of passes over the training data.
    batch_size : int
        Rows per mini-batch.
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
        verbose: bool = False,
        callbacks: list[EpochCallback] | None = None,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.gradient_clip = gradient_clip
        self.generator = generator
        self.verbose = verbose
        self.callbacks = list(callbacks or [])

    def fit(
        self, scorer: Scorer, train: Tensor, validation: Tensor | None = None
    ) -> dict[str, list[float]]:
        """Train ``scorer`` in place and return its per-epoch history.

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
        device = train.device
        groups = scorer.optimizer_groups()
        optimizers = {
            name: torch.optim.Adam(params, lr=self.learning_rate) for name, params in groups.items()
        }
        history: dict[str, list[float]] = defaultdict(list)
        best_loss, best_state, stale_epochs = math.inf, None, 0

        for epoch in self._epochs():
            scorer.train()
            scorer.on_epoch_start(epoch, lambda: self._batches(train, shuffle=False))
            totals: dict[str, Tensor] = defaultdict(lambda: torch.zeros((), device=device))
            for batch in self._batches(train, shuffle=True):
                for phase in self._phases(scorer, batch):
                    optimizer = optimizers[phase.optimizer]
                    optimizer.zero_grad(set_to_none=True)
                    phase.loss.backward()
                    if self.gradient_clip is not None:
                        nn.utils.clip_grad_norm_(groups[phase.optimizer], self.gradient_clip)
                    optimizer.step()
                    totals[f"loss_{phase.optimizer}"] += phase.loss.detach() * len(batch)
                    for key, value in phase.logs.items():
                        totals[key] += value.detach().float() * len(batch)
            logs = {key: value.item() / len(train) for key, value in totals.items()}
            self._check_finite(logs, epoch)

            if validation is not None and len(validation):
                logs["val_loss"] = self._validation_loss(scorer, validation)
                self._check_finite({"val_loss": logs["val_loss"]}, epoch)
            self._record(history, epoch, logs)

            if validation is not None and len(validation) and self.patience is not None:
                if best_state is None or logs["val_loss"] < best_loss - 1e-4 * abs(best_loss):
                    best_loss, stale_epochs = logs["val_loss"], 0
                    best_state = copy.deepcopy(scorer.state_dict())
                else:
                    stale_epochs += 1
                    if stale_epochs >= self.patience:
                        break
        if best_state is not None:
            scorer.load_state_dict(best_state)
        scorer.eval()
        return dict(history)

    def _epochs(self) -> Iterator[int]:
        if not self.verbose:
            return iter(range(self.epochs))
        from tqdm.auto import tqdm

        return iter(tqdm(range(self.epochs), desc="anomvae fit", unit="epoch"))

    def _batches(self, data: Tensor, *, shuffle: bool) -> Iterator[Tensor]:
        if shuffle:
            order = torch.randperm(len(data), generator=self.generator).to(data.device)
            for start in range(0, len(data), self.batch_size):
                yield data[order[start : start + self.batch_size]]
        else:
            yield from torch.split(data, self.batch_size)

    @staticmethod
    def _phases(scorer: Scorer, batch: Tensor) -> Iterator[Phase]:
        steps = scorer.training_step(batch)
        while True:
            with autocast(batch.device):
                phase = next(steps, None)
            if phase is None:
                return
            yield phase

    def _validation_loss(self, scorer: Scorer, validation: Tensor) -> float:
        scorer.eval()
        total = torch.zeros((), device=validation.device)
        with torch.no_grad(), autocast(validation.device):
            for batch in self._batches(validation, shuffle=False):
                total += scorer.validation_loss(batch).float() * len(batch)
        return total.item() / len(validation)

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

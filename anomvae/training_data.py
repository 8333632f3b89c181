"""Encoded training data, ready for the engine and the threshold calibration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor


@dataclass
class TrainingData:
    """What ``fit`` trains on and calibrates with, however the rows arrived.

    Attributes
    ----------
    train : Tensor or RowSource
        Training rows (the held-out rows excluded): a tensor on the training
        device, or a :class:`~anomvae.streaming.RowSource` that streams them.
    validation : Tensor or None
        Held-out rows for early stopping, on the training device.
    reference : ndarray of float32, shape (n, ...)
        Encoded rows scored after training to calibrate the threshold: every
        row of an in-memory fit, a sample of a streamed one.
    held_out : ndarray of int or None
        Positions in ``reference`` of rows the model did not train on.
    encoder : TabularEncoder or ImageScaler
    image : bool
    n_train, n_validation : int
        Rows in the training and held-out sets (of the whole stream when streamed).
    """

    train: Any
    validation: Tensor | None
    reference: np.ndarray
    held_out: np.ndarray | None
    encoder: Any
    image: bool
    n_train: int
    n_validation: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one encoded row."""
        return tuple(int(s) for s in self.reference.shape[1:])

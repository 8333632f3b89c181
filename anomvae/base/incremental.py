"""Incremental updates of :class:`~anomvae.base.BaseDeepDetector`: ``partial_fit``.

A monitoring model follows data that moves. ``partial_fit(X)`` continues
training the fitted networks on new rows through the same engine, keeps the
encoder fitted by ``fit``, and recalibrates the threshold on the new rows.

The encoder is frozen because the weights were learnt on its scale: refitting
it would move every input the network has learnt. So:

- **shifted scales**: new rows are encoded with ``fit``'s centre and scale;
  the network adapts to where the shifted rows now land (the update's loss
  pulls it there). Refit from scratch (``fit``) when whole columns moved by
  many standard deviations, or when the units changed.
- **new categories**: a category ``fit`` never saw is encoded in its
  column's "unseen" indicator (:class:`~anomvae.preprocessing.TabularEncoder`);
  training on rows holding it teaches the model that the indicator may be
  set, so those rows stop scoring as anomalous. All new categories of a
  column share that indicator; refit to tell them apart.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from sklearn.utils import check_random_state

from .. import calibration, health, thresholds
from .._sklearn import fit_context
from ..device import resolve_device


class IncrementalMixin:
    """``partial_fit``: continue training a fitted detector on new rows."""

    def partial_fit(self, X, y=None):
        """Continue training on new rows, then recalibrate the threshold on them.

        On an unfitted detector this is :meth:`fit`. On a fitted one, the
        networks are trained further (for up to ``epochs`` passes over ``X``,
        early-stopped on its held-out ``validation_fraction``, with a fresh
        optimiser), the encoder is kept (see the module docstring for new
        categories and shifted scales), and the threshold, the reference
        scores of :meth:`p_values` and monitoring, and the scorer's reference
        state (e.g. the latent codes of ``scoring="reconstruction+knn"``) are
        recomputed from ``X``: the update's rows become the reference.

        Rows from before the drift are not replayed: include some in ``X``
        to keep the model accepting them.

        Parameters
        ----------
        X : array-like, DataFrame or image batch
            At least 5 new normal rows (:data:`~anomvae.calibration.MIN_CROSS_FIT_ROWS`; about 1,000
            for a threshold that holds its rate), in the format ``fit`` saw.
        y : ignored
            Present for API consistency.

        Returns
        -------
        self
            If the update fails, the estimator keeps the state it had before.

        Raises
        ------
        ValueError, TypeError
            When ``X`` holds fewer than 5 rows, or does not match what ``fit`` saw (features, columns,
            image shape) or holds non-finite values, or when a parameter
            built into the fitted model (e.g. ``scoring``, ``beta``) was
            changed by ``set_params`` since ``fit``: the update would keep
            the old value. Training settings (``epochs``, ``learning_rate``,
            ``threshold``, ...) may change.
        """
        if not hasattr(self, "scorer_"):
            return self.fit(X)
        self._refuse_changed_build("partial_fit")
        return self._keeping_state_on_error(self._update, X)

    @fit_context(prefer_skip_nested_validation=True)
    def _update(self, X):
        started = time.perf_counter()
        random_state = check_random_state(self.random_state)
        device = resolve_device(self.device)
        rows = self._validated(X)
        calibration.check_calibration_rows(len(rows), "partial_fit")
        encoded = self.encoder_.transform(rows)
        seed = int(random_state.randint(np.iinfo(np.int32).max))
        data = self._in_memory_data(encoded, self.encoder_, self.is_image_, random_state, device)
        strategy = thresholds.resolve(getattr(self, "threshold", None), self.contamination)
        strategy.check_reference_size(
            data.n_validation if strategy.needs_clean_reference and data.n_validation else len(encoded)
        )
        self._update_encoded(encoded, data, strategy, seed, device, started)
        self._note_calibration_parameters()
        return self

    def _update_encoded(self, encoded: np.ndarray, data, strategy, seed: int, device, started: float) -> None:
        """Train the fitted scorer further on ``data`` (rows ``encoded``) and recalibrate on them.

        Cross-fitted calibration scores of a small update come from copies of
        the model as it was *before* the update, each updated on the other
        folds, as the final model was updated on all rows (fresh models would
        describe a weaker model and set the threshold too high).
        """
        fitted, previous_history = self.scorer_, self.history_
        cross_fits = (calibration.should_cross_fit(strategy, len(encoded), data.n_validation, data.image,
                                                  self.validation_fraction)
                      and self._cross_fit_calibration())
        before = copy.deepcopy(self) if cross_fits else None
        self._train_and_calibrate(
            lambda: copy.deepcopy(fitted).to(device=device, dtype=torch.float32).train(),
            data, strategy, seed, device, started,
            # A model saved before kept_steps was recorded counts as trained.
            steps_before=int(getattr(self, "diagnostics_", {}).get("kept_steps", health.MIN_TRAINED_STEPS)),
            cross_fit_start=before,
        )
        self.history_ = _appended(previous_history, self.history_)

    def _fold_update(self, encoded: np.ndarray, seed: int) -> None:
        """Update on encoded rows with a quick threshold: a fold model of :meth:`_update_encoded`."""
        device = resolve_device(self.device)
        random_state = np.random.RandomState(seed)
        data = self._in_memory_data(encoded, self.encoder_, self.is_image_, random_state, device)
        strategy = thresholds.resolve(self.threshold, self.contamination)
        self._update_encoded(encoded, data, strategy, seed, device, time.perf_counter())


def _appended(before: dict[str, list[float]], after: dict[str, list[float]]) -> dict[str, list[float]]:
    """The update's history after the previous one, epochs numbered on."""
    last = before.get("epoch", [0])[-1] if before.get("epoch") else 0
    merged = {key: list(values) for key, values in before.items()}
    for key, values in after.items():
        shifted = [last + epoch for epoch in values] if key == "epoch" else values
        merged.setdefault(key, []).extend(shifted)
    return merged

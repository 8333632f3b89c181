"""What a data-parallel fit (:func:`anomvae.parallel.fit_distributed`) adds to the estimator.

Every rank encodes with one encoder fitted on a sample gathered from all
ranks, and the threshold is calibrated on the union of the ranks' scores.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import validate_data

from ..distributed import Synchroniser
from ..thresholds import ThresholdStrategy
from .inputs import is_image_batch


class DataParallelMixin:
    """Encoding with a shared encoder, and calibration on every rank's scores."""

    def _encode_with(self, encoder, X) -> np.ndarray:
        """Check ``X`` against the columns the encoder was fitted on, then encode it."""
        if is_image_batch(X):
            return encoder.transform(self._image_array(X))
        if "category" in encoder.kinds or "boolean" in encoder.kinds:
            validate_data(self, X, skip_check_array=True, reset=False)
            return encoder.transform(X)
        return encoder.transform(self._numeric_array(X, reset=False))

    def _calibrate_on_union(self, strategy: ThresholdStrategy, training_scores: np.ndarray,
                            held_out: np.ndarray | None, seed: int, sync: Synchroniser) -> None:
        """Recalibrate the threshold on the scores of every rank (``all_gather``).

        Strategies that need clean rows use every rank's held-out scores, the
        others every rank's training scores, as the local
        ``_calibrate_threshold`` does; the per-feature baseline is rank 0's.
        """
        everything = sync.gather(training_scores)
        # Every rank gathers, with or without held-out rows of its own (a small shard may have
        # none): a rank skipping a collective would leave the others waiting in it forever.
        held_out_scores = sync.gather(training_scores[held_out] if held_out is not None else training_scores[:0])
        if held_out_scores.size:
            reference, source = held_out_scores, "held-out"
        else:
            reference, source = everything, "training"
        if strategy.needs_clean_reference:
            fitted = strategy.calibrate(reference, source=source, random_state=seed)
        else:
            fitted = strategy.calibrate(everything, source="training", random_state=seed)
        self._set_threshold_state(fitted, reference, source, sync.broadcast(self.reference_feature_scores_))

"""Threshold state of :class:`~anomvae.base.BaseDeepDetector`: calibration,
recalibration and conformal p-values.

The fitted attributes it owns are ``threshold_``, ``offset_``,
``reference_scores_``, ``reference_source_``, ``reference_feature_scores_``,
``drift_reference_scores_`` and ``drift_reference_source_``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .. import calibration, thresholds
from ..inference import map_batches
from ..thresholds import FittedThreshold, ThresholdStrategy

FEATURE_BASELINE_ROWS = 10_000
"""Reference rows averaged into ``reference_feature_scores_``."""


class ThresholdStateMixin:
    """Calibrate ``offset_`` from a strategy, recalibrate it, and give p-values."""

    def _calibrate_threshold(
        self, strategy: ThresholdStrategy, encoded: np.ndarray, training_scores: np.ndarray,
        held_out: np.ndarray | None, seed: int, out_of_fold: np.ndarray | None = None,
    ) -> None:
        """Set ``threshold_``, ``offset_`` and the reference of :meth:`p_values` and monitoring.

        ``strategy`` is the ``threshold`` parameter, else one derived from
        ``contamination`` (:func:`anomvae.thresholds.resolve`). Strategies that
        need clean data (false-positive rate, peaks over threshold) are
        calibrated on the held-out validation rows, the others on all training
        rows, as :class:`sklearn.ensemble.IsolationForest` does. The held-out
        scores are the reference of :meth:`p_values`; without a validation
        split both fall back on the training scores, on which the model is
        optimistic, so alarms on new normal rows come more often than targeted.
        ``out_of_fold`` scores of every row, when given
        (:func:`anomvae.calibration.cross_fitted_scores`), take the place of
        the held-out ones, except as the drift reference of
        :func:`anomvae.monitor`: the fold models' scores are not exchangeable
        with the final model's scores of new normal rows, so a two-sample test
        against them alarms on normal batches; the held-out rows' scores, when
        there are any, are.
        """
        drift = None
        if out_of_fold is not None:
            reference_rows, reference, source = encoded, out_of_fold, "out-of-fold"
            if held_out is not None:
                drift = (training_scores[held_out], "held-out")
        elif held_out is None:
            reference_rows, reference, source = encoded, training_scores, "training"
        else:
            reference_rows, reference, source = encoded[held_out], training_scores[held_out], "held-out"
        if strategy.needs_clean_reference:
            fitted = strategy.calibrate(reference, source=source, random_state=seed)
        else:
            fitted = strategy.calibrate(training_scores, source="training", random_state=seed)
        contributions = map_batches(
            self.scorer_.feature_scores, reference_rows[:FEATURE_BASELINE_ROWS], self.scorer_.device,
            dtype=self.scorer_.dtype,
        )
        self._set_threshold_state(fitted, reference, source, self._feature_baseline(contributions), drift)

    def _set_threshold_state(
        self, fitted: FittedThreshold, reference_scores: np.ndarray, reference_source: str,
        feature_baseline: np.ndarray, drift: tuple[np.ndarray, str] | None = None,
    ) -> None:
        """Store a calibration; ``drift`` is the ``(scores, source)`` of the drift reference,
        by default the calibration reference itself."""
        for message in fitted.warnings:
            warnings.warn(f"{type(self).__name__}: {message}", calibration.ThresholdWarning, stacklevel=4)
        self.threshold_ = fitted
        self.offset_ = fitted.offset
        self.reference_scores_ = np.sort(np.asarray(reference_scores, dtype=np.float64))
        self.reference_source_ = reference_source
        self.reference_feature_scores_ = feature_baseline
        if drift is None:
            self.drift_reference_scores_, self.drift_reference_source_ = self.reference_scores_, reference_source
        else:
            self.drift_reference_scores_ = np.sort(np.asarray(drift[0], dtype=np.float64))
            self.drift_reference_source_ = drift[1]

    def _feature_baseline(self, contributions: np.ndarray) -> np.ndarray:
        """Mean per-feature score of reference rows, from the scorer's ``feature_scores``.

        :func:`anomvae.monitor` compares the flagged rows' feature scores with it.
        Callers pass at most :data:`FEATURE_BASELINE_ROWS` rows.
        """
        return self._per_column(contributions).reshape(len(contributions), -1).mean(axis=0)

    def set_threshold(self, threshold: ThresholdStrategy, X_reference=None):
        """Recalibrate the threshold of a fitted detector, without retraining.

        Parameters
        ----------
        threshold : ThresholdStrategy
            E.g. ``Contamination(0.02)`` or ``FalsePositiveRate(0.001)``.
        X_reference : array-like, DataFrame or image batch, optional
            Rows to calibrate on; they also become the reference of
            :meth:`p_values`. Strategies assuming clean data
            (:class:`~anomvae.thresholds.FalsePositiveRate`,
            :class:`~anomvae.thresholds.PeaksOverThreshold`) need normal rows
            the model did not train on. Without it, the stored reference
            scores (the held-out rows of ``fit``) are used.

        Returns
        -------
        self
            ``threshold_``, ``offset_`` and the ``threshold`` parameter are
            updated together; on error nothing changes.
        """
        check_is_fitted(self)
        if not isinstance(threshold, ThresholdStrategy):
            raise TypeError(
                "threshold must be a strategy from anomvae.thresholds (e.g. FalsePositiveRate(0.01)), "
                f"got {type(threshold).__name__}"
            )
        if X_reference is None:
            reference, source = self._reference(), self.reference_source_
            baseline = self.reference_feature_scores_
            drift = self._drift_reference()
        else:
            reference, source = self.anomaly_score(X_reference), "supplied"
            head = X_reference.iloc if isinstance(X_reference, pd.DataFrame) else X_reference
            baseline = self._feature_baseline(self._map_rows("feature_scores", head[:FEATURE_BASELINE_ROWS]))
            drift = None
        threshold.check_reference_size(len(reference))
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        fitted = threshold.calibrate(reference, source=source, random_state=int(seed))
        self._set_threshold_state(fitted, reference, source, baseline, drift)
        self.threshold = threshold
        self._note_calibration_parameters()
        return self

    def p_values(self, X) -> np.ndarray:
        """Conformal p-values of the rows against the reference scores.

        ``p = (1 + #{reference >= s}) / (n_reference + 1)`` for a row with
        anomaly score ``s``: small for rows more anomalous than nearly all
        reference rows. When the reference rows are normal rows the model did
        not train on (the held-out rows of ``fit``, or ``X_reference`` of
        :meth:`set_threshold`), a new normal row gets ``p <= alpha`` with
        probability at most ``alpha`` (Bates et al., "Testing for outliers
        with conformal p-values", Annals of Statistics 2023).

        Returns
        -------
        ndarray of shape (n_samples,), values in ``(0, 1]``
        """
        check_is_fitted(self)
        return thresholds.conformal_p_values(self._reference(), self.anomaly_score(X))

    def _reference(self) -> np.ndarray:
        """``reference_scores_``, or a clear error for models saved before they existed."""
        if not hasattr(self, "reference_scores_"):
            raise NotFittedError(
                "this model was saved without reference scores (model format version 1); "
                "call set_threshold(strategy, X_reference) with normal rows to add them"
            )
        return self.reference_scores_

    def _drift_reference(self) -> tuple[np.ndarray, str]:
        """``(drift_reference_scores_, drift_reference_source_)``; the calibration reference for
        models saved or pickled before the two were told apart."""
        if hasattr(self, "drift_reference_scores_"):
            return self.drift_reference_scores_, self.drift_reference_source_
        return self._reference(), self.reference_source_

"""Persistence glue of :class:`~anomvae.base.BaseDeepDetector`.

:mod:`anomvae.persistence` writes the file; this mixin says which fitted
attributes go into it and restores them.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from ..inference import prepare_for_inference
from .. import persistence
from ..image_scaler import ImageScaler
from ..preprocessing import TabularEncoder
from ..python_values import comparable_setting, same_setting
from ..scorer import Scorer
from .. import thresholds
from ..thresholds import FittedThreshold


PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}
"""The values of a saved ``precision_`` and the :attr:`~anomvae.scorer.Scorer.matmul_dtype` each restores."""


UPDATABLE_PARAMETERS = frozenset({
    "epochs", "batch_size", "learning_rate", "patience", "gradient_clip", "min_batches_per_epoch",
    "validation_fraction", "threshold", "contamination", "precision", "fused_step", "device", "random_state",
    "verbose", "unseen_context",
})
"""Parameters read anew by every ``fit``, ``partial_fit`` or scoring call. The others are built into
the fitted networks and scorer: changed after ``fit`` they take effect only by refitting."""

CALIBRATION_PARAMETERS = frozenset({"threshold", "contamination"})
"""Updatable parameters the fitted threshold was calibrated with: ``partial_fit`` recalibrates with new
values, but a model saved after changing them would state a threshold rule it was not calibrated by."""


def _same_rule(built: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether the threshold and contamination parameters resolve to the same threshold rule."""
    if not CALIBRATION_PARAMETERS <= set(built):
        return True
    try:
        before = thresholds.resolve(built.get("threshold"), built["contamination"])
        now = thresholds.resolve(current.get("threshold"), current["contamination"])
    except (TypeError, ValueError):  # an invalid new value: report it as changed
        return False
    return same_setting(before, now)


class SavingMixin:
    """The fitted state of an estimator as JSON, and its restoration."""

    def _note_built_parameters(self) -> None:
        """Remember the parameters the fitted model was built with (after ``fit`` and ``load``)."""
        self._built_parameters = {name: copy.deepcopy(value) for name, value in self.get_params(deep=False).items()
                                  if name not in UPDATABLE_PARAMETERS or name in CALIBRATION_PARAMETERS}

    def _note_calibration_parameters(self) -> None:
        """Remember the threshold parameters after a recalibration (``partial_fit``, ``set_threshold``)."""
        if hasattr(self, "_built_parameters"):
            params = self.get_params(deep=False)
            self._built_parameters.update({name: copy.deepcopy(params[name]) for name in CALIBRATION_PARAMETERS
                                           if name in params})

    def _refuse_changed_build(self, action: str) -> None:
        """Refuse ``action`` when a parameter built into the fitted model was changed by ``set_params`` since.

        Saving would describe a model the weights (or, for ``threshold`` and
        ``contamination``, the threshold) do not belong to, and ``partial_fit``
        would silently keep the old network; it recalibrates the threshold, so
        it accepts new calibration parameters.
        """
        built = getattr(self, "_built_parameters", None)
        if built is None:
            return
        current = self.get_params(deep=False)
        # The threshold parameters count as changed only if the rule they resolve to changed (contamination
        # is ignored beside a threshold); partial_fit recalibrates with whatever they now say.
        same_rule = action == "partial_fit" or _same_rule(built, current)
        changed = [name for name, value in built.items()
                   if not (name in CALIBRATION_PARAMETERS and same_rule)
                   and not same_setting(comparable_setting(value), comparable_setting(current.get(name)))]
        if changed:
            shown = ", ".join(f"{name}: {built[name]!r} then, {current.get(name)!r} now" for name in changed)
            hint = ("refit, partial_fit or set_threshold to recalibrate with the new ones"
                    if set(changed) <= CALIBRATION_PARAMETERS else "refit to use the new ones")
            raise ValueError(
                f"cannot {action}: parameter(s) changed by set_params since the model was fitted or last "
                f"recalibrated ({shown}); the fitted model still uses the earlier values: {hint}, or set them back"
            )

    def save(self, path) -> None:
        """Write the fitted model to ``path`` (safetensors weights + JSON config).

        Load it with :func:`anomvae.load`; no pickle is involved.

        Raises
        ------
        ValueError
            When a parameter built into the fitted model (e.g. ``scoring``,
            ``latent_dim``) or its threshold (``threshold``,
            ``contamination``) was changed by ``set_params`` since ``fit``
            (or, for the threshold, since the last ``partial_fit``).
        IsADirectoryError
            When ``path`` is an existing folder.
        """
        self._refuse_changed_build("save")
        persistence.save(self, path)

    def _fitted_state(self) -> dict[str, Any]:
        """JSON-serialisable fitted attributes, the weights excepted.

        Subclasses with fitted state of their own extend this and
        :meth:`_restore_fitted_state`.
        """
        state = {
            "offset_": self.offset_,
            "n_features_in_": self.n_features_in_,
            "input_shape_": list(self.input_shape_),
            "is_image_": self.is_image_,
            "history_": self.history_,
            "device_": self.device_,
            "diagnostics_": self.diagnostics_,
            "health_warnings_": self.health_warnings_,
            "training_time_": self.training_time_,
            "precision_": getattr(self, "precision_", "float32"),  # unpickled from before bfloat16: float32
            "encoder_": self.encoder_.to_config(),
        }
        if hasattr(self, "threshold_"):
            state["threshold_"] = self.threshold_.to_dict()
            state["reference_scores_"] = self.reference_scores_.tolist()
            state["reference_source_"] = self.reference_source_
            state["reference_feature_scores_"] = self.reference_feature_scores_.tolist()
            drift, drift_source = self._drift_reference()
            if drift_source != self.reference_source_:
                state["drift_reference_scores_"] = drift.tolist()
                state["drift_reference_source_"] = drift_source
        if hasattr(self, "feature_names_in_"):
            state["feature_names_in_"] = [str(name) for name in self.feature_names_in_]
        return state

    def _restore_fitted_state(self, state: dict[str, Any], scorer: Scorer) -> None:
        """Set the attributes written by :meth:`_fitted_state`, and the weights."""
        encoder_type = ImageScaler if state["is_image_"] else TabularEncoder
        self.encoder_ = encoder_type.from_config(state["encoder_"])
        self.input_shape_ = tuple(state["input_shape_"])
        if "feature_names_in_" in state:
            self.feature_names_in_ = np.asarray(state["feature_names_in_"], dtype=object)
        for name in ("offset_", "n_features_in_", "is_image_", "history_", "device_",
                     "diagnostics_", "health_warnings_", "training_time_"):
            setattr(self, name, state[name])
        if "threshold_" in state:  # files of format version 1 predate fitted thresholds
            self.threshold_ = FittedThreshold.from_dict(state["threshold_"])
            self.reference_scores_ = np.asarray(state["reference_scores_"], dtype=np.float64)
            self.reference_source_ = state["reference_source_"]
            self.reference_feature_scores_ = np.asarray(state["reference_feature_scores_"], dtype=np.float64)
            if "drift_reference_scores_" in state:  # written only where it differs from the calibration reference
                self.drift_reference_scores_ = np.asarray(state["drift_reference_scores_"], dtype=np.float64)
                self.drift_reference_source_ = state["drift_reference_source_"]
            else:
                self.drift_reference_scores_ = self.reference_scores_
                self.drift_reference_source_ = self.reference_source_
        self.precision_ = state.get("precision_", "float32")  # files before bfloat16 scoring: float32
        if self.precision_ not in PRECISIONS:
            raise persistence.ModelFormatError(
                f"the model file's precision_ is {self.precision_!r}; expected one of {sorted(PRECISIONS)}"
            )
        scorer.matmul_dtype = PRECISIONS[self.precision_]
        self.scorer_ = scorer

    def __getstate__(self):
        state = super().__getstate__()
        scorer = state.get("scorer_")
        if scorer is not None and scorer.device.type != "cpu":
            state["scorer_"] = prepare_for_inference(copy.deepcopy(scorer), torch.device("cpu"))
        return state

"""The scikit-learn estimator shared by every anomvae scorer.

It owns the outlier contract (``score_samples`` higher for more normal rows,
``decision_function = score_samples - offset_``, ``predict`` in {+1, -1}),
input validation and encoding, seeding and device choice, training through
the shared engine, thresholding and persistence. A scorer's estimator adds its
parameters and one method, :meth:`BaseDeepDetector._make_scorer`.
"""

from __future__ import annotations

import copy
import time
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from . import calibration, health, thresholds
from ._sklearn import Interval, StrOptions, fit_context
from .device import resolve_device, seeded
from .engine import TrainingEngine
from .inference import map_batches, prepare_for_inference
from .nn import default_architecture
from .preprocessing import SCALINGS, ImageScaler, TabularEncoder, check_finite
from .scorer import Scorer
from .thresholds import FittedThreshold, ThresholdStrategy

FEATURE_BASELINE_ROWS = 10_000
"""Reference rows averaged into ``reference_feature_scores_``."""

AUTO_FALSE_ALARM_RATE = 0.01
"""With ``contamination="auto"`` the threshold targets this fraction of normal
rows as false alarms (:class:`anomvae.calibration.RobustFalsePositiveRate`)."""


def is_image_batch(X: Any) -> bool:
    """True for arrays of shape ``(N, H, W)`` or ``(N, C, H, W)``."""
    return not isinstance(X, pd.DataFrame) and getattr(X, "ndim", 0) in (3, 4)


class BaseDeepDetector(OutlierMixin, BaseEstimator):
    """Shared base of the anomvae estimators; not used directly.

    Subclasses declare an ``__init__`` with every parameter (scikit-learn
    reads the signature), extend ``_parameter_constraints`` and implement
    :meth:`_make_scorer`.
    """

    _parameter_constraints: dict = {
        "latent_dim": [Interval(Integral, 1, None, closed="left"), None],
        "hidden_dims": [list, tuple, None],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left"), None],
        "gradient_clip": [Interval(Real, 0, None, closed="neither"), None],
        "scaling": [StrOptions(set(SCALINGS))],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "threshold": [ThresholdStrategy, None],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def _cross_fit_calibration(self) -> bool:
        """Whether out-of-fold scores of clones are on this estimator's score scale, so the
        default threshold may calibrate on them (:func:`anomvae.calibration.should_cross_fit`).

        Not so for scores with a part that is optimistic on training rows (a distance to
        the nearest training codes, a discriminator trained on them): their clones'
        out-of-fold scores run above the final model's and the threshold flags too little.
        """
        return True

    registry: dict[str, type[BaseDeepDetector]] = {}
    """Every public estimator class by name, so :func:`anomvae.load` can rebuild it."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            BaseDeepDetector.registry[cls.__name__] = cls

    def _make_scorer(self, input_shape: tuple[int, ...], image: bool) -> Scorer:
        """Build the untrained scorer for encoded inputs of ``input_shape``."""
        raise NotImplementedError

    def _architecture(self, input_shape: int | tuple[int, ...]) -> tuple[tuple[int, ...], int]:
        """``(hidden_dims, latent_dim)``, filling ``None`` parameters with defaults.

        Pass the encoded row shape so images get their own defaults (see
        :func:`anomvae.nn.default_architecture`); an int is a tabular width.
        """
        default_hidden, default_latent = default_architecture(input_shape)
        hidden = default_hidden if self.hidden_dims is None else tuple(self.hidden_dims)
        if not hidden or not all(isinstance(w, Integral) and w > 0 for w in hidden):
            raise ValueError(
                f"hidden_dims must be a non-empty sequence of positive integers, got {self.hidden_dims!r}"
            )
        return hidden, default_latent if self.latent_dim is None else self.latent_dim

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None):
        """Fit the detector on (mostly) normal data.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), DataFrame, or image batch
            Tabular rows (numeric array or DataFrame with numeric, boolean and
            categorical columns), or images of shape ``(N, H, W)`` or
            ``(N, C, H, W)``.
        y : ignored
            Present for API consistency.

        Returns
        -------
        self
            If fitting fails, the estimator keeps the state it had before.
        """
        previous_state = dict(self.__dict__)
        try:
            return self._fit(X)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(previous_state)
            raise

    @fit_context(prefer_skip_nested_validation=True)
    def _fit(self, X):
        started = time.perf_counter()
        random_state = check_random_state(self.random_state)
        device = resolve_device(self.device)
        encoded, encoder, image = self._fit_encoding(X)
        seed = int(random_state.randint(np.iinfo(np.int32).max))
        order = random_state.permutation(len(encoded))
        n_validation = int(len(encoded) * self.validation_fraction)
        strategy = thresholds.resolve(getattr(self, "threshold", None), self.contamination)
        strategy.check_reference_size(
            n_validation if strategy.needs_clean_reference and n_validation else len(encoded)
        )
        train = torch.from_numpy(encoded[order[n_validation:]]).to(device)
        validation = torch.from_numpy(encoded[order[:n_validation]]).to(device) if n_validation else None

        with seeded(seed, device):
            scorer = self._make_scorer(tuple(encoded.shape[1:]), image).to(device)
            engine = TrainingEngine(
                epochs=self.epochs,
                batch_size=self.batch_size,
                learning_rate=self.learning_rate,
                patience=self.patience,
                gradient_clip=self.gradient_clip,
                generator=torch.Generator().manual_seed(seed),
                verbose=bool(self.verbose),
            )
            history = engine.fit(scorer, train, validation)
            diagnostics = scorer.diagnostics(lambda: torch.split(train, 4096))
        self.scorer_ = prepare_for_inference(scorer, device)
        self.encoder_ = encoder
        self.input_shape_ = tuple(int(s) for s in encoded.shape[1:])
        self.is_image_ = image
        self.history_ = history
        self.device_ = str(device)

        training_scores = self._checked_scores(
            map_batches(self.scorer_.anomaly_score, encoded, self.scorer_.device)
        )
        held_out = order[:n_validation] if n_validation else None
        out_of_fold = None
        cross_fit = calibration.should_cross_fit(strategy, len(encoded), n_validation, image)
        if cross_fit and self._cross_fit_calibration():
            out_of_fold = calibration.cross_fitted_scores(self, encoded, strategy.folds, seed)
        self._calibrate_threshold(strategy, encoded, training_scores, held_out, seed, out_of_fold)
        self.diagnostics_ = diagnostics
        self.health_warnings_ = health.assess(self.diagnostics_, training_scores)
        health.report(self.health_warnings_, type(self).__name__)
        self.training_time_ = time.perf_counter() - started
        return self

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
        the held-out ones.
        """
        if out_of_fold is not None:
            reference_rows, reference, source = encoded, out_of_fold, "out-of-fold"
        elif held_out is None:
            reference_rows, reference, source = encoded, training_scores, "training"
        else:
            reference_rows, reference, source = encoded[held_out], training_scores[held_out], "held-out"
        if strategy.needs_clean_reference:
            fitted = strategy.calibrate(reference, source=source, random_state=seed)
        else:
            fitted = strategy.calibrate(training_scores, source="training", random_state=seed)
        contributions = map_batches(
            self.scorer_.feature_scores, reference_rows[:FEATURE_BASELINE_ROWS], self.scorer_.device
        )
        self._set_threshold_state(fitted, reference, source, self._feature_baseline(contributions))

    def _set_threshold_state(
        self, fitted: FittedThreshold, reference_scores: np.ndarray, reference_source: str,
        feature_baseline: np.ndarray,
    ) -> None:
        for message in fitted.warnings:
            warnings.warn(f"{type(self).__name__}: {message}", calibration.ThresholdWarning, stacklevel=4)
        self.threshold_ = fitted
        self.offset_ = fitted.offset
        self.reference_scores_ = np.sort(np.asarray(reference_scores, dtype=np.float64))
        self.reference_source_ = reference_source
        self.reference_feature_scores_ = feature_baseline

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
        threshold.check_reference_size(len(self._reference()) if X_reference is None else len(X_reference))
        if X_reference is None:
            reference, source = self._reference(), self.reference_source_
            baseline = self.reference_feature_scores_
        else:
            reference, source = -self.score_samples(X_reference), "supplied"
            head = X_reference.iloc if isinstance(X_reference, pd.DataFrame) else X_reference
            baseline = self._feature_baseline(self._map_rows("feature_scores", head[:FEATURE_BASELINE_ROWS]))
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        fitted = threshold.calibrate(reference, source=source, random_state=int(seed))
        self._set_threshold_state(fitted, reference, source, baseline)
        self.threshold = threshold
        return self

    # ------------------------------------------------------------ encoding
    def _fit_encoding(self, X) -> tuple[np.ndarray, TabularEncoder | ImageScaler, bool]:
        if is_image_batch(X):
            images = self._image_array(X)
            scaler = ImageScaler().fit(images)
            self.n_features_in_ = int(np.prod(scaler.shape))
            return scaler.transform(images), scaler, True
        if isinstance(X, pd.DataFrame) and not _all_numeric(X):
            validate_data(self, X, skip_check_array=True, reset=True)
            _check_rows(len(X))
            encoder = TabularEncoder(self.scaling).fit(X)
            return encoder.transform(X), encoder, False
        values = self._numeric_array(X, reset=True)
        encoder = TabularEncoder(self.scaling).fit(values)
        return encoder.transform(values), encoder, False

    def _validated(self, X):
        """Check ``X`` against what ``fit`` saw; return it ready for chunked encoding."""
        check_is_fitted(self)
        if self.is_image_:
            if not is_image_batch(X):
                raise ValueError(
                    f"this model was fitted on images of shape {self.encoder_.shape} (channels, "
                    f"height, width); got an input with {getattr(X, 'ndim', '?')} dimensions"
                )
            return self._image_array(X, minimum_rows=1)
        if is_image_batch(X):
            raise ValueError(
                f"this model was fitted on tabular rows of {self.n_features_in_} features; "
                f"got an image batch of shape {X.shape}"
            )
        if "category" in self.encoder_.kinds:
            if not isinstance(X, pd.DataFrame):
                raise TypeError(
                    f"this model was fitted on a DataFrame with categorical columns "
                    f"{[c for c, k in zip(self.encoder_.columns, self.encoder_.kinds) if k == 'category']}; "
                    f"pass a DataFrame with the same columns, not {type(X).__name__}"
                )
            validate_data(self, X, skip_check_array=True, reset=False)
            _check_rows(len(X), minimum=1)
            return X
        return self._numeric_array(X, reset=False)

    def _map_rows(self, method: str, X) -> np.ndarray:
        """Validate ``X``, then encode it and evaluate the scorer's ``method`` batch by batch.

        Encoding batch by batch keeps memory bounded by the batch size, not by
        the input's length.
        """
        data = self._validated(X)
        function = getattr(self.scorer_, method)
        if self.is_image_:
            return map_batches(function, data, self.scorer_.device,
                               encode=lambda chunk, first_row: self.encoder_.transform(chunk))
        return map_batches(function, data, self.scorer_.device, encode=self.encoder_.transform)

    def _numeric_array(self, X, *, reset: bool) -> np.ndarray:
        values = validate_data(
            self, X, dtype=np.float64, ensure_all_finite=False, ensure_min_samples=2 if reset else 1,
            reset=reset,
        )
        check_finite(values, list(getattr(self, "feature_names_in_", [])) or None)
        return values

    @staticmethod
    def _image_array(X, minimum_rows: int = 2) -> np.ndarray:
        images = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
        if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating)):
            raise TypeError(f"images must hold integers or floats, got dtype {images.dtype}")
        if images.ndim == 4 and images.shape[1] not in (1, 3) and images.shape[-1] in (1, 3):
            raise ValueError(
                f"images of shape {images.shape} look channels-last; anomvae expects (N, C, H, W): "
                "use images.transpose(0, 3, 1, 2)"
            )
        _check_rows(len(images), minimum=minimum_rows)
        if np.issubdtype(images.dtype, np.floating):
            check_finite(images)
        return images

    # ------------------------------------------------------------- scoring
    @staticmethod
    def _checked_scores(scores: np.ndarray) -> np.ndarray:
        if not np.all(np.isfinite(scores)):
            raise FloatingPointError(
                "the model produced non-finite scores; the input is far outside the range it "
                "can represent, or the weights are damaged"
            )
        return scores

    def score_samples(self, X) -> np.ndarray:
        """Normality score of each row: higher means more normal.

        Returns
        -------
        ndarray of shape (n_samples,)
            The negated anomaly score of the scorer's ``scoring`` rule.
        """
        return -self._checked_scores(self._map_rows("anomaly_score", X))

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for outliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """+1 for inliers, -1 for outliers."""
        return np.where(self.decision_function(X) < 0, -1, 1)

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
        return thresholds.conformal_p_values(self._reference(), -self.score_samples(X))

    def _reference(self) -> np.ndarray:
        """``reference_scores_``, or a clear error for models saved before they existed."""
        if not hasattr(self, "reference_scores_"):
            raise NotFittedError(
                "this model was saved without reference scores (model format version 1); "
                "call set_threshold(strategy, X_reference) with normal rows to add them"
            )
        return self.reference_scores_

    def feature_scores(self, X):
        """Per-feature (tabular) or per-pixel (images) anomaly contributions.

        Higher means more anomalous. For DataFrame input the result is a
        DataFrame with the input's columns and index; the scores of a one-hot
        encoded categorical column are summed back into that column.

        Returns
        -------
        ndarray of shape (n_samples, n_features) or (N, C, H, W), or DataFrame
        """
        per_column = self._per_column(self._map_rows("feature_scores", X))
        if isinstance(X, pd.DataFrame):
            return pd.DataFrame(per_column, columns=X.columns, index=X.index)
        return per_column

    def _per_column(self, contributions: np.ndarray) -> np.ndarray:
        """Scorer feature scores with one-hot parts summed back into their column (tabular)."""
        if self.is_image_:
            return contributions
        return np.column_stack(
            [contributions[:, part].sum(axis=1) for part in self.encoder_.column_slices()]
        )

    # --------------------------------------------------------- persistence
    def save(self, path) -> None:
        """Write the fitted model to ``path`` (safetensors weights + JSON config).

        Load it with :func:`anomvae.load`; no pickle is involved.
        """
        from .persistence import save

        save(self, path)

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
            "encoder_": self.encoder_.to_config(),
        }
        if hasattr(self, "threshold_"):
            state["threshold_"] = self.threshold_.to_dict()
            state["reference_scores_"] = self.reference_scores_.tolist()
            state["reference_source_"] = self.reference_source_
            state["reference_feature_scores_"] = self.reference_feature_scores_.tolist()
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
        self.scorer_ = scorer

    def __getstate__(self):
        state = super().__getstate__()
        scorer = state.get("scorer_")
        if scorer is not None and scorer.device.type != "cpu":
            state["scorer_"] = prepare_for_inference(copy.deepcopy(scorer), torch.device("cpu"))
        return state


def _all_numeric(frame: pd.DataFrame) -> bool:
    return all(
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        and not isinstance(dtype, pd.CategoricalDtype)
        for dtype in frame.dtypes
    )


def _check_rows(n_rows: int, minimum: int = 2) -> None:
    if n_rows < minimum:
        raise ValueError(
            f"Found array with {n_rows} sample(s) while a minimum of {minimum} is required"
        )

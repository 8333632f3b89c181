"""The scikit-learn estimator shared by every anomvae scorer.

It owns the outlier contract (``score_samples`` higher for more normal rows,
``decision_function = score_samples - offset_``, ``predict`` in {+1, -1}),
seeding and device choice, and training through the shared engine. Input
validation and encoding (:mod:`~anomvae.base.inputs`), threshold state
(:mod:`~anomvae.base.threshold_state`) and the fitted state saved with a model
(:mod:`~anomvae.base.saving`) are mixins of their own. A scorer's estimator
adds its parameters (:func:`~anomvae.base.parameters.estimator_init`) and one
method, :meth:`BaseDeepDetector._make_scorer`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from numbers import Integral

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils import check_random_state

from .. import calibration, health, streaming, thresholds
from .._sklearn import fit_context
from ..device import resolve_device, seeded
from ..distributed import LOCAL, Synchroniser
from ..engine import TrainingEngine
from ..inference import map_batches, prepare_for_inference
from ..nn import default_architecture
from ..scorer import FitContext, Scorer
from ..training_data import TrainingData
from .data_parallel import DataParallelMixin
from .incremental import IncrementalMixin
from .inputs import InputEncodingMixin, arrow_as_frame, encode_frame
from .parameters import compose_docstring, shared_constraints
from .saving import SavingMixin
from .threshold_state import ThresholdStateMixin


class BaseDeepDetector(InputEncodingMixin, IncrementalMixin, DataParallelMixin, ThresholdStateMixin,
                       SavingMixin, OutlierMixin, BaseEstimator):
    """Shared base of the anomvae estimators; not used directly.

    Subclasses set ``__init__ = estimator_init(<own parameters and
    defaults>)`` (:mod:`anomvae.base.parameters`: scikit-learn reads the
    signature it builds), extend ``_parameter_constraints`` and implement
    :meth:`_make_scorer`. Register a new class with
    :func:`anomvae.registry.register` so that :func:`anomvae.load` finds it.

    Parameters
    ----------
    See :data:`~anomvae.base.parameters.SHARED_PARAMETERS` for the shared parameters.

    Attributes
    ----------
    See :data:`~anomvae.base.parameters.SHARED_ATTRIBUTES` for the shared attributes.
    """

    _parameter_constraints: dict = shared_constraints()

    def __init_subclass__(cls, **kwargs):
        """Put the shared parameters and attributes into the subclass's docstring."""
        super().__init_subclass__(**kwargs)
        cls.__doc__ = compose_docstring(cls.__doc__)

    def _make_scorer(self, input_shape: tuple[int, ...], image: bool) -> Scorer:
        """Build the untrained scorer for encoded inputs of ``input_shape``."""
        raise NotImplementedError

    def _cross_fit_calibration(self) -> bool:
        """Whether out-of-fold scores of clones are on this estimator's score scale, so the
        default threshold may calibrate on them (:func:`anomvae.calibration.should_cross_fit`).

        Opt-in, where measured to help (``benchmarks/threshold_defaults.py``):
        AnomalyVAE (every rule) and AnomalyVAESVDD. Measured and left off
        (``benchmarks/cross_fit_estimators.py``): AnomalyVAEGAN and AnomalyAdVAE,
        whose cross-fitted thresholds keep the stated rate but lose recall (their
        clones score above the final model), and AnomalyTCVAE and AnomalyVaDE,
        whose in-sample predictions on scikit-learn's 300-row fit_predict check
        then flag no row, which ``check_estimator`` forbids. Estimators that
        select columns of the raw input (a context) cannot be cloned onto
        encoded rows.
        """
        return False

    def _min_batches_per_epoch(self) -> int:
        """Fewest optimiser steps per epoch (:class:`~anomvae.engine.TrainingEngine`'s ``min_batches``).

        1, an epoch being one pass, unless an estimator decides otherwise.
        """
        return 1

    def _matmul_dtype(self, scorer: Scorer, device: torch.device) -> torch.dtype:
        """Precision of the freshly built ``scorer``'s matrix products on the CPU (:attr:`Scorer.matmul_dtype`).

        float32 unless an estimator decides otherwise (AnomalyVAE's ``precision``).
        """
        return torch.float32

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
        X : array-like of shape (n_samples, n_features), DataFrame, image batch, or streamed rows
            Tabular rows (numeric array or DataFrame with numeric, boolean and
            categorical columns), or images of shape ``(N, H, W)`` or
            ``(N, C, H, W)``. Rows larger than memory: a Parquet file or
            directory path, a ``pyarrow`` dataset, a list of DataFrames or a
            callable returning a fresh iterator of DataFrames, trained on by
            streaming (:mod:`anomvae.streaming`). At least 5 rows
            (:func:`anomvae.calibration.check_calibration_rows`): the threshold
            is calibrated on scores of rows the model did not train on.
        y : ignored
            Present for API consistency.

        Returns
        -------
        self
            If fitting fails, the estimator keeps the state it had before.
        """
        return self._keeping_state_on_error(self._fit, X)

    def _keeping_state_on_error(self, method, *args):
        """``method(*args)``; if it raises, the estimator gets back the state it had before."""
        previous_state = dict(self.__dict__)
        try:
            return method(*args)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(previous_state)
            raise

    def _fit_fold(self, X) -> BaseDeepDetector:
        """Fit a cross-fitted calibration model (:mod:`anomvae.calibration`), on as few rows as a fold holds.

        A fit of 5 rows leaves its fold models 4: the refusal of fits under
        :data:`~anomvae.calibration.MIN_CROSS_FIT_ROWS` rows concerns the final
        model's threshold, which the fold models' is not.
        """
        return self._keeping_state_on_error(self._fit, X, LOCAL, None, 2)

    @fit_context(prefer_skip_nested_validation=True)
    def _fit(self, X, sync: Synchroniser = LOCAL, encoder_sample=None,
             minimum_rows: int = calibration.MIN_CROSS_FIT_ROWS):
        started = time.perf_counter()
        X = arrow_as_frame(X)
        if isinstance(X, (list, tuple)) and not len(X):
            raise ValueError("fit got an empty list: no rows, images or DataFrame chunks to train on")
        random_state = check_random_state(self.random_state)
        device = resolve_device(self.device)
        strategy = thresholds.resolve(getattr(self, "threshold", None), self.contamination)
        if getattr(self, "threshold", None) is not None and self.contamination != "auto":
            warnings.warn(f"contamination={self.contamination!r} is ignored: threshold={self.threshold!r} sets "
                          "the threshold", UserWarning, stacklevel=3)
        if streaming.is_streamed(X):
            seed = int(random_state.randint(np.iinfo(np.int32).max))
            data = streaming.streamed_training_data(
                X, self._fit_encoding, encode_frame, seed, self.validation_fraction, device
            )
        else:
            encoded, encoder, image = self._fit_encoding(X if encoder_sample is None else encoder_sample)
            if encoder_sample is not None:  # a distributed fit: each rank encodes its own shard
                encoded = sync.agree(lambda: self._encode_with(encoder, X))
            seed = int(random_state.randint(np.iinfo(np.int32).max))
            data = self._in_memory_data(encoded, encoder, image, random_state, device)
        if sync is LOCAL:
            calibration.check_calibration_rows(data.n_train + data.n_validation, "fit", minimum_rows)
        strategy.check_reference_size(
            data.n_validation if strategy.needs_clean_reference and data.n_validation
            else data.n_train + data.n_validation
        )
        fitted = self._train_and_calibrate(
            lambda: self._make_scorer(data.input_shape, data.image).to(device),
            data, strategy, seed, device, started, sync,
        )
        self._note_built_parameters()
        return fitted

    def _calibrate(self, strategy, data: TrainingData, training_scores: np.ndarray, seed: int,
                   sync: Synchroniser, cross_fit_start=None) -> None:
        """Set the threshold from the held-out rows, cross-fitted scores or, across ranks, their union.

        Cross-fitting (:mod:`anomvae.calibration`) refits clones on the
        in-memory reference rows (a streamed fit's in-memory sample), so it
        is skipped for distributed fits, whose held-out sets are large enough
        anyway. ``cross_fit_start``: for an
        update by ``partial_fit``, the estimator as it was before it, which the
        fold models start from.
        """
        out_of_fold = None
        if (sync.world_size == 1 and isinstance(data.reference, np.ndarray)
                and calibration.should_cross_fit(strategy, len(data.reference), data.n_validation, data.image,
                                                 self.validation_fraction)
                and self._cross_fit_calibration()):
            out_of_fold = calibration.cross_fitted_scores(
                self, data.reference, strategy.folds, seed, training_scores, start=cross_fit_start
            )
        if sync.world_size == 1:
            self._calibrate_threshold(strategy, data.reference, training_scores, data.held_out, seed, out_of_fold)
            return
        with warnings.catch_warnings():  # this rank's own calibration is replaced by the union's just below
            warnings.simplefilter("ignore", calibration.ThresholdWarning)
            self._calibrate_threshold(strategy, data.reference, training_scores, data.held_out, seed, out_of_fold)
        self._calibrate_on_union(strategy, training_scores, data.held_out, seed, sync)

    def _in_memory_data(self, encoded, encoder, image, random_state, device) -> TrainingData:
        """Split encoded rows into training and held-out tensors (``validation_fraction``)."""
        order = random_state.permutation(len(encoded))
        n_validation = int(len(encoded) * self.validation_fraction)
        train = torch.from_numpy(encoded[order[n_validation:]]).to(device)
        validation = torch.from_numpy(encoded[order[:n_validation]]).to(device) if n_validation else None
        return TrainingData(
            train=train, validation=validation, reference=encoded,
            held_out=order[:n_validation] if n_validation else None, encoder=encoder, image=image,
            n_train=len(train), n_validation=n_validation,
        )

    def _train_and_calibrate(self, build_scorer: Callable[[], Scorer], data: TrainingData, strategy,
                             seed: int, device: torch.device, started: float,
                             sync: Synchroniser = LOCAL, steps_before: int = 0, cross_fit_start=None):
        """Train ``build_scorer()`` with the shared engine, then score, calibrate and check health.

        ``steps_before``: optimiser steps the scorer had already taken (an update by
        ``partial_fit``), counted in the ``kept_steps`` diagnostic; ``cross_fit_start``:
        the estimator before that update (:meth:`_calibrate`).
        """
        with seeded(seed, device):
            scorer = build_scorer()
            scorer.matmul_dtype = self._matmul_dtype(scorer, device)
            engine = TrainingEngine(
                epochs=self.epochs,
                batch_size=self.batch_size,
                learning_rate=self.learning_rate,
                patience=self.patience,
                gradient_clip=self.gradient_clip,
                generator=torch.Generator().manual_seed(seed),
                min_batches=self._min_batches_per_epoch(),
                verbose=bool(self.verbose) and sync.rank == 0,
                sync=sync,
            )
            n_train = int(sync.sum(torch.tensor([data.n_train], device=device)).item())
            scorer.on_fit_start(FitContext(
                n_train=n_train, n_validation=data.n_validation, input_shape=data.input_shape,
                is_image=data.image, column_slices=() if data.image else tuple(data.encoder.column_slices()),
                world_size=sync.world_size,
            ))
            history = engine.fit(scorer, data.train, data.validation)
            sample = data.train if isinstance(data.train, torch.Tensor) else data.train.sample()
            diagnostics = {**scorer.diagnostics(lambda: torch.split(sample, 4096)),
                           "kept_epoch": engine.kept_epoch, "kept_steps": steps_before + engine.kept_steps,
                           "epochs_run": len(history["epoch"])}
        self.scorer_ = prepare_for_inference(scorer, device)
        self.encoder_ = data.encoder
        self.input_shape_ = data.input_shape
        self.is_image_ = data.image
        self.history_ = history
        self.device_ = str(device)
        self.precision_ = str(scorer.matmul_dtype).removeprefix("torch.")

        training_scores = self._checked_scores(
            map_batches(self.scorer_.anomaly_score, data.reference, self.scorer_.device, dtype=self.scorer_.dtype)
        )
        self._calibrate(strategy, data, training_scores, seed, sync, cross_fit_start)
        self.diagnostics_ = diagnostics
        self.health_warnings_ = health.assess(self.diagnostics_, training_scores)
        if sync.rank == 0:
            health.report(self.health_warnings_, type(self).__name__)
        self.training_time_ = time.perf_counter() - started
        return self

    # ------------------------------------------------------------- scoring
    @staticmethod
    def _checked_scores(scores: np.ndarray) -> np.ndarray:
        if not np.all(np.isfinite(scores)):
            raise FloatingPointError(
                "the model produced non-finite scores; the input is far outside the range it "
                "can represent, or the weights are damaged"
            )
        return scores

    def anomaly_score(self, X) -> np.ndarray:
        """Anomaly score of each row: higher means more anomalous.

        The score of the scorer's ``scoring`` rule, on the scale of
        ``threshold_.value``: a row is flagged when its anomaly score is
        above it. Use this rather than negating :meth:`score_samples`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), DataFrame, or image batch
            Rows of the form ``fit`` saw.

        Returns
        -------
        ndarray of shape (n_samples,)

        Raises
        ------
        FloatingPointError
            If the model produces a non-finite score.
        """
        return self._checked_scores(self._map_rows("anomaly_score", X))

    def score_samples(self, X) -> np.ndarray:
        """Normality score of each row: higher means more normal.

        Returns
        -------
        ndarray of shape (n_samples,)
            ``-anomaly_score(X)``, scikit-learn's outlier convention.
        """
        return -self.anomaly_score(X)

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for outliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """+1 for inliers, -1 for outliers."""
        return np.where(self.decision_function(X) < 0, -1, 1)

    def feature_scores(self, X):
        """Per-feature (tabular) or per-pixel (images) anomaly evidence, to see *where* a row is unusual.

        Higher means more anomalous. For the VAE family these are the squared
        errors of the row's reconstruction, per standardised feature (each
        scorer's docstring says what it returns). They rank the features of a
        row, and compare with the training rows' (``reference_feature_scores_``),
        but they are not a split of :meth:`anomaly_score`: the default score
        divides the summed error by its training median and adds a latent
        density term, so one feature's value can exceed the row's score. For
        DataFrame input the result is a DataFrame with the input's columns and
        index; the scores of a one-hot encoded categorical column are summed
        back into that column.

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

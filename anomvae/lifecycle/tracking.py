"""Training runs, registered models and thresholds in MLflow.

>>> import anomvae
>>> from anomvae import tracking
>>> detector = anomvae.AnomalyVAE(random_state=0)                           # doctest: +SKIP
>>> result = tracking.fit_and_log(detector, X, y, registered_model_name="card-fraud")  # doctest: +SKIP
>>> tracking.promote("card-fraud", threshold=7.5)                          # doctest: +SKIP

Every function works against whatever tracking URI the user has set
(``mlflow.set_tracking_uri`` or ``MLFLOW_TRACKING_URI``); when none is set,
a SQLite store ``mlflow.db`` in the working directory is used.
"""

from __future__ import annotations

import contextlib
import math
import shlex
import time
import warnings
from dataclasses import dataclass
from typing import Any

import mlflow
import numpy as np
from mlflow.entities import Metric, Param
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.utils.validation import _num_samples, check_is_fitted

from .. import report
from ..base.inputs import arrow_as_frame, is_image_batch
from ..metrics import alarm_rates, check_labels
from . import autologging, plots, pyfunc, run_metadata
from ._mlflow import check_alias, check_registered_model_name, use_default_tracking_uri
from .promotion import promote
from .pyfunc import DEFAULT_ALIAS
from .serving_inputs import input_columns

SCORE_QUANTILES = (0.5, 0.9, 0.99)
REPORT_ARTIFACT = "report.html"
"""The run's HTML report (:mod:`anomvae.report`), on the validation rows when given."""
LOG_BATCH_SIZE = 1000
"""MLflow accepts at most this many metrics in one batch."""


@dataclass(frozen=True)
class TrainingRun:
    """What :func:`fit_and_log` produced."""

    run_id: str
    model_uri: str | None
    registered_model_name: str | None
    version: int | None
    alias: str | None

    @property
    def serving_uri(self) -> str | None:
        """``models:/name@alias`` (or ``models:/name/version``) to load or serve."""
        if self.registered_model_name is None:
            return self.model_uri
        if self.alias is not None:
            return f"models:/{self.registered_model_name}@{self.alias}"
        return f"models:/{self.registered_model_name}/{self.version}"


def next_steps(model_uri: str) -> list[str]:
    """Shell commands that open the MLflow UI on the current store and serve ``model_uri``.

    Serving goes through ``anomvae serve`` (MLflow's scoring server behind
    anomvae's request guard), which refuses what plain ``mlflow models serve``
    would silently cast.
    """
    uri = mlflow.get_tracking_uri()
    ui = uri if uri.startswith(("http://", "https://")) else f"mlflow ui --backend-store-uri {shlex.quote(uri)}"
    return [f"MLflow UI:  {ui}",
            f"serve:      MLFLOW_TRACKING_URI={shlex.quote(uri)} anomvae serve {shlex.quote(model_uri)} --port 5001"]


def _warn_experiment_ignored(experiment_name: str, experiment_id: str, launched: bool) -> None:
    """Say so when the run an experiment name was given for belongs to another experiment."""
    actual = mlflow.get_experiment(experiment_id).name
    if actual != experiment_name:
        chooser = ("mlflow run started this run: choose its experiment with mlflow run --experiment-name"
                   if launched else "it is logged to the active run")
        warnings.warn(f"experiment {experiment_name!r} is ignored: the run belongs to the experiment {actual!r} "
                      f"({chooser})", UserWarning, stacklevel=3)


@contextlib.contextmanager
def _run(run_name: str | None = None, experiment_id: str | None = None):
    """The active run, or a new one that ends with the block."""
    active = mlflow.active_run()
    if active is not None:
        yield active
        return
    with mlflow.start_run(run_name=run_name, experiment_id=experiment_id) as run:
        yield run


def flat_params(detector) -> dict[str, str]:
    """The estimator's parameters as MLflow params (strings), plus its class.

    The layer sizes are the ones built, also when the parameters left them
    to be sized from the input (``None``).
    """
    params = {name: str(value) for name, value in detector.get_params(deep=False).items()}
    params.update(run_metadata.layer_sizes(detector))
    params["estimator"] = type(detector).__name__
    return params


def training_metrics(detector, X, y=None, prefix: str = "") -> dict[str, float]:
    """Threshold, flag rate, score quantiles and, with labels, ROC-AUC, average precision, and the
    threshold's recall (share of anomalies flagged), false-alarm rate (share of normal rows
    flagged) and the anomaly share the flag rate is read against.

    Parameters
    ----------
    detector : BaseDeepDetector
        A fitted detector.
    X : array-like
        Rows to score.
    y : array-like, optional
        1 for anomalies, 0 for normal rows.
    prefix : str
        Prepended to every metric name (e.g. ``"eval_"``).
    """
    labels = None if y is None else check_labels(y)
    return _score_metrics(detector.anomaly_score(X), -detector.offset_, labels, prefix)


def _score_metrics(scores: np.ndarray, threshold: float, labels: np.ndarray | None, prefix: str) -> dict[str, float]:
    """The metrics of :func:`training_metrics`, from scores and labels already checked (:func:`check_labels`)."""
    metrics = {"flag_rate": float(np.mean(scores > threshold))}
    metrics.update({f"score_q{round(100 * q):02d}": float(np.quantile(scores, q)) for q in SCORE_QUANTILES})
    if labels is not None:
        if len(np.unique(labels)) == 2:
            metrics["roc_auc"] = float(roc_auc_score(labels, scores))
            metrics["average_precision"] = float(average_precision_score(labels, scores))
            metrics.update(alarm_rates(scores, threshold, labels))
    return {f"{prefix}{name}": value for name, value in metrics.items()}


def _arrow_as_frames(X, validation):
    """``X`` and the validation rows with a pyarrow Table read as its DataFrame, as ``fit`` reads it."""
    if isinstance(validation, (tuple, list)) and len(validation) == 2:
        validation = (arrow_as_frame(validation[0]), validation[1])
    return arrow_as_frame(X), validation


def _checked_labels(X, y, validation) -> tuple:
    """``y`` and ``validation`` with their labels as 0/1 ints (:func:`check_labels`), before anything is
    trained or logged; refuses labels, or validation rows, that do not fit the training rows."""
    if validation is not None:
        if not isinstance(validation, (tuple, list)) or len(validation) != 2:
            raise TypeError("validation must be a pair (X_eval, y_eval)")
        _check_same_columns(X, validation[0])
        validation = (validation[0], _labels_of(validation[0], validation[1], "validation's y_eval"))
    return _labels_of(X, y, "y"), validation


def _labels_of(rows, labels, where: str) -> np.ndarray | None:
    if labels is None:
        return None
    shape = np.shape(labels)
    if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise ValueError(f"{where} must be one column of labels, got shape {shape}")
    checked, n_rows = check_labels(labels), _num_samples(rows)
    if len(checked) != n_rows:
        raise ValueError(f"{where} must hold one label per row: {len(checked)} labels for {n_rows} rows")
    return checked


def _check_same_columns(X, X_eval) -> None:
    """Validation rows must have the training rows' columns (names for tables, widths for arrays)."""
    if hasattr(X, "columns") and hasattr(X_eval, "columns"):
        training, validation = set(X.columns), set(X_eval.columns)
        missing = [str(name) for name in X.columns if name not in validation]
        extra = [str(name) for name in X_eval.columns if name not in training]
        if missing or extra:
            raise ValueError(f"validation rows must have the training columns: missing {missing}, extra {extra}")
    elif np.ndim(X) == 2 and np.ndim(X_eval) == 2 and np.shape(X)[1] != np.shape(X_eval)[1]:
        raise ValueError(f"validation rows have {np.shape(X_eval)[1]} columns, the training rows {np.shape(X)[1]}")
    elif is_image_batch(X) or is_image_batch(X_eval):
        training, validation = _image_shape(X), _image_shape(X_eval)
        if training != validation:
            raise ValueError(f"validation images must have the training images' shape (channels, height, width): "
                             f"{validation or 'tabular rows'} against {training or 'tabular rows'}")


def _image_shape(batch) -> tuple[int, ...] | None:
    """Each image's ``(C, H, W)`` (one channel for an ``(N, H, W)`` batch), or None for tabular rows."""
    if not is_image_batch(batch):
        return None
    shape = tuple(np.shape(batch)[1:])
    return (1, *shape) if len(shape) == 2 else shape


def log_training(detector, X, y=None, *, validation: tuple[Any, Any] | None = None) -> str:
    """Log a fitted detector's training to the active run (or a new one).

    Logged: the flat parameters; every per-epoch quantity of ``history_``
    with ``step=epoch``; the threshold (on the ``score`` scale, higher = more
    anomalous), its expected alarm rate and the spread of that rate over
    calibration sets of its size, flag rate on ``X``, score
    quantiles, ROC-AUC and average precision when ``y`` is given (all with a
    ``train_`` prefix, and the same with an ``eval_`` prefix for
    ``validation``), training time and the
    scalar training diagnostics; the device, the threshold calibration, any
    threshold warnings (a target rate it cannot honour) and any health
    warnings as tags; three figures; and the HTML report
    (:mod:`anomvae.report`) of the validation rows, or of ``X`` without
    them, as ``report.html``.

    Parameters
    ----------
    detector : BaseDeepDetector
        A fitted detector.
    X : array-like
        The training data.
    y : array-like, optional
        Labels of ``X`` (1 = anomaly), for ROC-AUC and average precision.
    validation : tuple (X_eval, y_eval), optional
        Held-out labelled rows evaluated the same way.

    Returns
    -------
    str
        The run id.
    """
    check_is_fitted(detector)
    X, validation = _arrow_as_frames(X, validation)
    y, validation = _checked_labels(X, y, validation)
    use_default_tracking_uri()
    with _run() as run:
        client = mlflow.MlflowClient()
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        params = [Param(key, value) for key, value in flat_params(detector).items()]
        metrics = [
            Metric(key, float(value), now, int(epoch))
            for key, values in detector.history_.items() if key != "epoch"
            for epoch, value in zip(detector.history_["epoch"], values)
        ]
        train_scores = detector.anomaly_score(X)
        final = {
            "threshold": float(-detector.offset_),
            "training_time_s": float(detector.training_time_),
            **_score_metrics(train_scores, -detector.offset_, y, "train_"),
            **{f"diagnostics_{key}": float(value) for key, value in detector.diagnostics_.items()
               if isinstance(value, (int, float)) and math.isfinite(value)},
        }
        tags = {"device": detector.device_, "health_warnings": "; ".join(detector.health_warnings_) or "none"}
        if hasattr(detector, "threshold_"):
            fitted = detector.threshold_
            final["threshold_expected_rate"] = float(fitted.expected_rate)
            if fitted.rate_interval:
                final["threshold_rate_low"], final["threshold_rate_high"] = map(float, fitted.rate_interval)
            if fitted.estimated_contamination is not None:
                final["threshold_estimated_contamination"] = float(fitted.estimated_contamination)
            tags["threshold_calibration"] = str(fitted)
            tags["threshold_warnings"] = "; ".join(fitted.warnings) or "none"
            final.update(run_metadata.threshold_figures(fitted))
            tags["threshold_method"] = fitted.to_dict()["method"]
        if validation is not None:
            eval_rows, eval_labels = validation
            eval_scores = detector.anomaly_score(eval_rows)
            final.update(_score_metrics(eval_scores, -detector.offset_, eval_labels, "eval_"))
        metrics += [Metric(key, value, now, 0) for key, value in final.items()]
        client.log_batch(run_id, params=params)
        for start in range(0, len(metrics), LOG_BATCH_SIZE):
            client.log_batch(run_id, metrics=metrics[start : start + LOG_BATCH_SIZE])
        mlflow.set_tags(tags)
        train_contributions = np.asarray(detector.feature_scores(X), dtype=np.float64)
        _log_figures(detector, train_scores, train_contributions, y)
        # The report is of the evaluation rows when there are some, else of the training rows.
        reported = ((X, train_scores, train_contributions, y) if validation is None
                    else (eval_rows, eval_scores, detector.feature_scores(eval_rows), eval_labels))
        mlflow.log_text(report.report_from_scores(detector, *reported, title=run.info.run_name), REPORT_ARTIFACT)
    return run_id


def _log_figures(detector, scores: np.ndarray, contributions: np.ndarray, y) -> None:
    mlflow.log_figure(plots.loss_curves(detector.history_), "plots/loss_curves.png")
    mlflow.log_figure(
        plots.score_histogram(scores, -detector.offset_, None if y is None else np.asarray(y)),
        "plots/score_histogram.png",
    )
    names = [] if detector.is_image_ else input_columns(detector)
    mlflow.log_figure(plots.feature_contributions(contributions, names), "plots/feature_contributions.png")


def fit_and_log(
    detector,
    X,
    y=None,
    *,
    validation: tuple[Any, Any] | None = None,
    experiment_name: str | None = None,
    run_name: str | None = None,
    dataset_name: str | None = None,
    registered_model_name: str | None = None,
    alias: str | None = DEFAULT_ALIAS,
    input_example=None,
    log_model: bool = True,
) -> TrainingRun:
    """Fit ``detector`` on ``X`` in an MLflow run, log it, and optionally register it.

    ``y`` is never used for training: it only adds ROC-AUC and average
    precision to the logged metrics.

    Parameters
    ----------
    detector : BaseDeepDetector
        An unfitted (or to be refitted) estimator.
    X, y : training rows and their optional labels (1 = anomaly).
    validation : tuple (X_eval, y_eval), optional
        Held-out labelled rows, logged with an ``eval_`` prefix.
    experiment_name : str, optional
        Created when missing. Ignored inside an active run, or one started by
        ``mlflow run`` (``MLFLOW_RUN_ID``), which keeps its own experiment.
    run_name : str, optional
        ``<Estimator>-<dataset_name>-<time>`` by default.
    dataset_name : str, optional
        Name of the training data, for the run name and the logged inputs
        (``X`` as ``training``, the validation rows as ``evaluation``).
    registered_model_name : str, optional
        Register the logged model under this name.
    alias : str or None, default="champion"
        Alias set on the new version when the model is registered.
    input_example : optional
        Rows for the model's input example; the first rows of ``X`` otherwise.
    log_model : bool
        Log the model (weights, signature, threshold) as well as the run.

    Returns
    -------
    TrainingRun
    """
    from mlflow.environment_variables import MLFLOW_RUN_ID

    X, validation = _arrow_as_frames(X, validation)
    # Checked before the fit, not after it and the registration (the labels are logged as given).
    _checked_labels(X, y, validation)
    if registered_model_name is not None:
        check_registered_model_name(registered_model_name)
        if alias is not None:
            check_alias(alias)
    use_default_tracking_uri()
    experiment_id, launched = None, bool(MLFLOW_RUN_ID.get())  # read before start_run, which clears it
    if experiment_name is not None and mlflow.active_run() is None and not launched:
        # Passed to this run only: mlflow.set_experiment would change the caller's global state.
        experiment = mlflow.get_experiment_by_name(experiment_name)
        experiment_id = experiment.experiment_id if experiment else mlflow.create_experiment(experiment_name)
    with _run(run_name or run_metadata.run_name(detector, dataset_name), experiment_id) as run:
        if experiment_name is not None and experiment_id is None:
            _warn_experiment_ignored(experiment_name, run.info.experiment_id, launched)
        run_metadata.tag_experiment_for_training(run.info.experiment_id)
        run_metadata.log_dataset(X, y, name=dataset_name, context=run_metadata.TRAINING_CONTEXT)
        if validation is not None:
            run_metadata.log_dataset(*validation, name=f"{dataset_name or 'dataset'}-evaluation",
                                     context=run_metadata.EVALUATION_CONTEXT)
        with autologging.suspended():  # logged here, not a second time by anomvae.autolog()
            detector.fit(X)
        log_training(detector, X, y, validation=validation)
        if not log_model:
            return TrainingRun(run.info.run_id, None, None, None, None)
        example = X[: pyfunc.EXAMPLE_ROWS] if input_example is None else input_example
        info = pyfunc.log_model(
            detector,
            "model",
            registered_model_name=registered_model_name,
            input_example=example,
            alias=alias if registered_model_name else None,
            tags={"run_id": run.info.run_id, "threshold_origin": "training"},
        )
    return TrainingRun(
        run.info.run_id,
        info.model_uri,
        registered_model_name,
        info.registered_model_version,
        alias if registered_model_name else None,
    )


__all__ = ["TrainingRun", "fit_and_log", "flat_params", "log_training", "next_steps", "promote", "training_metrics"]

"""One MLflow run per monitored model, so that successive batches build a time series.

``anomvae monitor --log-to-mlflow`` resumes the run tagged for the model
(``models:/card-fraud@champion`` and ``models:/card-fraud/3`` share the
run of ``card-fraud``; see :func:`monitored_name` for run URIs and files), or the
run the user names, and :func:`anomvae.monitor` appends its metrics at the
next step. The runs live in the ``anomvae-monitoring`` experiment unless
``MLFLOW_EXPERIMENT_NAME``/``MLFLOW_EXPERIMENT_ID`` say otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from pathlib import Path

import mlflow

from ._mlflow import filter_literal, use_default_tracking_uri

EXPERIMENT = "anomvae-monitoring"
MONITORED_TAG = "anomvae.monitored_model"


def monitored_name(model: str) -> str:
    """The name monitoring runs are keyed on, one per model.

    A registered model's name (its versions and aliases share the run); for a
    ``runs:/<id>/<path>`` URI, the run id and the artifact's name; for a file,
    its stem and a digest of its absolute path (two ``model.safetensors`` in
    different folders are different models). Characters other than letters,
    digits, ``.``, ``_`` and ``-`` become ``_``.
    """
    registered = re.match(r"models:/([^/@]+)", model)
    if registered:
        return registered.group(1)
    logged = re.match(r"runs:/([^/]+)/(.+)", model)
    if logged:
        key = f"{logged.group(1)}-{Path(logged.group(2).rstrip('/')).name}"
    else:
        path = Path(model.removeprefix("file://").rstrip("/")).resolve()
        key = f"{path.stem}-{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", key)


def _quoted(value: str) -> str:
    """``value`` as a string literal of an MLflow filter."""
    literal = filter_literal(value)
    if literal is None:
        raise ValueError(f"a monitoring run name may hold ' or \" but not both, got {value!r}")
    return literal


def _experiment_id() -> str:
    from mlflow.environment_variables import MLFLOW_EXPERIMENT_ID, MLFLOW_EXPERIMENT_NAME

    if MLFLOW_EXPERIMENT_ID.get():
        return MLFLOW_EXPERIMENT_ID.get()
    name = MLFLOW_EXPERIMENT_NAME.get() or EXPERIMENT
    experiment = mlflow.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else mlflow.create_experiment(name)


@contextlib.contextmanager
def monitoring_run(model: str, run_name: str | None = None):
    """Resume (or start) the monitoring run of ``model``; the active run inside the block.

    Parameters
    ----------
    model : str
        The model path or URI being monitored.
    run_name : str, optional
        Use the run of this name instead (created when missing).
    """
    use_default_tracking_uri()
    experiment_id = _experiment_id()
    key = monitored_name(model)
    name = run_name or f"monitor-{key}"
    found = _first_run(experiment_id, f"attributes.run_name = {_quoted(name)}")
    if not found and run_name is None and not model.startswith(("models:/", "runs:/")):
        # A run of the same file under the name it had before runs were keyed per model file, whose
        # source tag holds the path as typed then: as typed now, or resolved.
        legacy = f"monitor-{Path(model.rstrip('/')).stem}"
        for source in dict.fromkeys([model, str(Path(model.removeprefix("file://")).resolve())]):
            found = found or _first_run(experiment_id, f"attributes.run_name = {_quoted(legacy)} "
                                                       f"and tags.`anomvae.model_source` = {_quoted(source)}")
    if found:
        with mlflow.start_run(run_id=found[0].info.run_id) as run:
            yield run
        return
    with mlflow.start_run(experiment_id=experiment_id, run_name=name,
                          tags={MONITORED_TAG: key, "anomvae.model_source": model}) as run:
        yield run


def log_model_version(version: int) -> None:
    """Log ``monitor.model_version`` at the active run's latest monitoring step.

    The monitoring run of a registered model is shared by its versions, so
    each step says which version produced its figures.
    """
    run_id = mlflow.active_run().info.run_id
    history = mlflow.MlflowClient().get_metric_history(run_id, "monitor.flag_rate")
    mlflow.log_metric("monitor.model_version", float(version), step=max((entry.step for entry in history), default=0))


def _first_run(experiment_id: str, filter_string: str) -> list:
    return mlflow.search_runs([experiment_id], filter_string=filter_string, order_by=["attributes.start_time ASC"],
                              max_results=1, output_format="list")

"""One MLflow run per monitored model, so that successive batches build a time series.

``anomvae monitor --log-to-mlflow`` resumes the run tagged for the model
(``models:/card-fraud@champion`` and ``models:/card-fraud/3`` share the
run of ``card-fraud``; a model file has the run of its file name), or the
run the user names, and :func:`anomvae.monitor` appends its metrics at the
next step. The runs live in the ``anomvae-monitoring`` experiment unless
``MLFLOW_EXPERIMENT_NAME``/``MLFLOW_EXPERIMENT_ID`` say otherwise.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import mlflow

EXPERIMENT = "anomvae-monitoring"
MONITORED_TAG = "anomvae.monitored_model"


def monitored_name(model: str) -> str:
    """The name monitoring runs are keyed on: the registered model's name, else the file's stem."""
    match = re.match(r"models:/([^/@]+)", model)
    if match:
        return match.group(1)
    return Path(model.rstrip("/")).stem or model


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
    from ._mlflow import use_default_tracking_uri

    use_default_tracking_uri()
    experiment_id = _experiment_id()
    key = monitored_name(model)
    name = run_name or f"monitor-{key}"
    found = mlflow.search_runs(
        [experiment_id],
        filter_string=f"attributes.run_name = '{name}'",
        order_by=["attributes.start_time ASC"],
        max_results=1,
        output_format="list",
    )
    if found:
        with mlflow.start_run(run_id=found[0].info.run_id) as run:
            yield run
        return
    with mlflow.start_run(experiment_id=experiment_id, run_name=name,
                          tags={MONITORED_TAG: key, "anomvae.model_source": model}) as run:
        yield run

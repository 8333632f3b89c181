"""``anomvae serve``: MLflow's scoring app behind the request guard, run by uvicorn.

:func:`serve` runs :func:`app_from_environment` in each uvicorn worker; the
app is MLflow's scoring app for the model behind
:class:`~anomvae.lifecycle.serving_front.RequestGuard`, which scores plain
requests itself (:mod:`anomvae.lifecycle.serving_direct`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import uvicorn

from .serving_direct import DirectScoring
from .serving_checks import ColumnTypes
from .serving_front import MAX_BODY_BYTES, RequestGuard

MODEL_URI_VARIABLE = "ANOMVAE_SERVE_MODEL_URI"
MAX_BODY_VARIABLE = "ANOMVAE_SERVE_MAX_BODY_BYTES"
THREADS_VARIABLE = "ANOMVAE_SERVE_TORCH_THREADS"
WORKER_HEALTHCHECK_S = 120
"""How long uvicorn waits for a worker's health answer before killing it. Its default, 5 s, is
shorter than a worker takes to import torch and MLflow on a busy machine: with ``--workers 2``
at a load average of 8 on 2 cores, uvicorn killed and restarted both workers for minutes."""


def guarded_app(model_uri: str, max_body_bytes: int = MAX_BODY_BYTES):
    """MLflow's scoring app for ``model_uri`` behind a :class:`RequestGuard` that scores plain requests itself."""
    import mlflow
    from mlflow.pyfunc import scoring_server

    model = mlflow.pyfunc.load_model(model_uri)
    types = ColumnTypes.from_model(model)
    direct = DirectScoring.from_model(model, types.columns)
    return RequestGuard(scoring_server.init(model), types, max_body_bytes, direct)


def app_from_environment():
    """App factory for uvicorn workers: model URI, body limit and torch threads come from the environment."""
    torch.set_num_threads(int(os.environ.get(THREADS_VARIABLE, 1)))
    return guarded_app(os.environ[MODEL_URI_VARIABLE], int(os.environ.get(MAX_BODY_VARIABLE, MAX_BODY_BYTES)))


def serve(model_uri: str, host: str = "127.0.0.1", port: int = 5001, workers: int = 1,
          max_body_bytes: int = MAX_BODY_BYTES, threads: int = 1) -> None:
    """Serve ``model_uri`` on ``host:port`` with uvicorn until interrupted.

    Parameters
    ----------
    workers : int
        Worker processes, each with its own copy of the model.
    threads : int
        Torch intra-op threads per worker. Requests of a few rows gain nothing
        from more, and workers x threads above the core count slows every
        request (see the serving recipe in ``docs/mlflow.md``).

    Raises
    ------
    ValueError
        If ``workers`` or ``threads`` is below 1, ``model_uri`` is a
        ``.safetensors`` model file rather than a logged model, or it names a
        registry or run (``models:/``, ``runs:/``) while no tracking store is
        there (:func:`~anomvae.lifecycle._mlflow.existing_tracking_uri`: no
        empty ``mlflow.db`` is created to look in).
    """
    if workers < 1 or threads < 1:
        raise ValueError(f"workers and threads must be at least 1, got workers={workers}, threads={threads}")
    if model_uri.endswith(".safetensors") and Path(model_uri.removeprefix("file://")).is_file():
        raise ValueError(
            f"{model_uri} is a model file; serve takes a logged MLflow model (models:/name@alias, runs:/<id>/model "
            "or a folder holding an MLmodel file): log it with anomvae.log_model(anomvae.load(path), ...) first"
        )
    if model_uri.startswith(("models:/", "runs:/")):
        from mlflow.environment_variables import MLFLOW_TRACKING_URI

        from ._mlflow import existing_tracking_uri

        os.environ[MLFLOW_TRACKING_URI.name] = existing_tracking_uri()  # the workers' store too
    os.environ[MODEL_URI_VARIABLE] = model_uri
    os.environ[MAX_BODY_VARIABLE] = str(max_body_bytes)
    os.environ[THREADS_VARIABLE] = str(threads)
    uvicorn.run("anomvae.lifecycle.serving_app:app_from_environment", factory=True, host=host, port=port,
                workers=workers, log_level="warning", timeout_worker_healthcheck=WORKER_HEALTHCHECK_S)

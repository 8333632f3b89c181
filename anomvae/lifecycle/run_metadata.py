"""What makes an anomvae run read like a native model-training run in the MLflow UI.

Run names, the experiment kind, the input datasets and the layer sizes that
were actually built; :mod:`anomvae.lifecycle.tracking` calls these while it logs.
"""

from __future__ import annotations

import time
import warnings

import mlflow
import numpy as np
import pandas as pd

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
"""The experiment kind the MLflow UI opens on its runs table (not the GenAI overview)."""
TRAINING_CONTEXT = "training"
EVALUATION_CONTEXT = "evaluation"


def run_name(detector, dataset_name: str | None = None) -> str:
    """``<Estimator>-<dataset>-<YYYYmmdd-HHMMSS>`` (the dataset part only when known)."""
    parts = [type(detector).__name__, dataset_name, time.strftime("%Y%m%d-%H%M%S")]
    return "-".join(part for part in parts if part)


def tag_experiment_for_training(experiment_id: str) -> None:
    """Mark the experiment as model training, unless someone already chose its kind."""
    client = mlflow.MlflowClient()
    if EXPERIMENT_KIND_TAG not in client.get_experiment(experiment_id).tags:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING)


def log_dataset(X, y=None, *, name: str | None, context: str) -> None:
    """Log ``X`` (with its labels as ``label`` when given) as an input of the active run.

    Image batches are logged as their flattened pixels' schema and digest
    (:func:`mlflow.data.from_numpy`); tables as a pandas dataset.
    """
    name = name or "dataset"
    if isinstance(X, pd.DataFrame):
        frame = X if y is None else X.assign(label=np.asarray(y))
        dataset = mlflow.data.from_pandas(frame, name=name, targets=None if y is None else "label")
    else:
        dataset = mlflow.data.from_numpy(np.asarray(X), targets=None if y is None else np.asarray(y), name=name)
    with warnings.catch_warnings():
        # The hint is about model signatures (integer columns cannot hold missing values); a logged
        # dataset's schema is lineage only, and integer labels are what labels are.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        mlflow.log_input(dataset, context=context)


def layer_sizes(detector) -> dict[str, str]:
    """The hidden and latent sizes the fitted detector was built with, as MLflow params.

    ``hidden_dims=None`` and ``latent_dim=None`` mean "sized from the input";
    the UI should show the sizes that choice gave.
    """
    hidden, latent = detector._architecture(detector.input_shape_)
    return {"hidden_dims": str(list(hidden)), "latent_dim": str(latent)}


def threshold_figures(threshold) -> dict[str, float]:
    """The threshold's confidence interval as metrics (the full calibration tag is too long for the run view)."""
    interval = threshold.to_dict().get("confidence_interval")
    if interval is None:
        return {}
    return {"threshold_ci_low": float(interval[0]), "threshold_ci_high": float(interval[1])}

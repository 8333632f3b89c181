"""Moving a registered model's alias, with a new threshold and no retraining: :func:`promote`.

A threshold is part of a model version here: a new threshold is a new
version, logged into the source version's training run with the same
weights, input example and options, and tagged with where it came from.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from pathlib import Path

import mlflow

from ..persistence import load
from ..thresholds import FixedScore, ThresholdStrategy
from . import pyfunc
from ._mlflow import check_alias, default_experiment_id, latest_version, resumed_run, use_default_tracking_uri
from .pyfunc import DEFAULT_ALIAS


def promote(
    model_name: str,
    *,
    threshold=None,
    version: int | str | None = None,
    alias: str = DEFAULT_ALIAS,
):
    """Move ``alias`` to a version of ``model_name``, with a new threshold if given.

    With a ``threshold``, the source version's detector gets that threshold
    (:meth:`~anomvae.base.BaseDeepDetector.set_threshold`, calibrated on the
    reference scores stored with the model; the weights are untouched, no
    retraining) and is logged with the same input example and options as a
    new version, which then gets the alias. The new version is tagged
    ``threshold_origin`` and ``source_version``; it is logged into the
    source version's training run as ``model-from-v<source>-<time>``, so
    ``runs:/<run id>/model`` still loads the model that run trained (into a
    new run ``promote-<name>-v<source>`` when that run was deleted; never
    into a run the caller has open).

    Parameters
    ----------
    model_name : str
        A registered model.
    threshold : float or ThresholdStrategy, optional
        A number is the new threshold on the ``score`` scale (higher = more
        anomalous, :class:`~anomvae.thresholds.FixedScore`); a strategy such
        as ``FalsePositiveRate(0.001)`` is recalibrated.
    version : int or str, optional
        Source version; by default the one ``alias`` points at, or the
        latest version when the alias is not set yet.
    alias : str, default="champion"

    Returns
    -------
    mlflow.entities.model_registry.ModelVersion
        The version the alias now points at.
    """
    from mlflow.artifacts import download_artifacts
    from mlflow.models import Model

    strategy = None
    if threshold is not None:
        strategy = threshold if isinstance(threshold, ThresholdStrategy) else FixedScore(threshold)
    check_alias(alias)
    use_default_tracking_uri()
    client = mlflow.MlflowClient()
    source = _source_version(client, model_name, version, alias)
    if strategy is None:
        client.set_registered_model_alias(model_name, alias, source.version)
        return client.get_model_version(model_name, source.version)

    local = Path(download_artifacts(f"models:/{model_name}/{source.version}"))
    model = Model.load(local)
    flavor = model.flavors["python_function"]
    detector = load(local / flavor["artifacts"][pyfunc.DETECTOR_ARTIFACT]["path"], device="cpu")
    config = flavor.get("config", {})
    previous = -detector.offset_
    if hasattr(detector, "threshold_"):
        detector.set_threshold(strategy)
    elif isinstance(strategy, FixedScore):
        detector.offset_ = -float(strategy.value)
    else:
        raise ValueError(
            f"version {source.version} of {model_name!r} was saved without reference scores; "
            "give the new threshold as a number"
        )
    if hasattr(detector, "threshold_") and detector.threshold_.expected_rate >= 0.5:
        warnings.warn(
            f"threshold {-detector.offset_:.6g} flags {detector.threshold_.expected_rate:.0%} of the reference "
            f"rows stored with version {source.version}; most normal rows will raise alarms",
            UserWarning, stacklevel=2,
        )
    # Logged into the source version's training run, so the new version links to that run in the UI,
    # under a name of its own: runs:/<id>/model keeps meaning the model that run trained. (Not named
    # after the new version number, which is only known once registered.)
    logged_name = f"model-from-v{source.version}-{time.strftime('%Y%m%d-%H%M%S')}"
    with _promotion_run(client, model_name, source), _quiet_config_params():
        info = pyfunc.log_model(
            detector,
            logged_name,
            registered_model_name=model_name,
            input_example=model.load_input_example(local),
            top_features=config.get("top_features", pyfunc.DEFAULT_TOP_FEATURES),
            image_format=config.get("image_format", "tensor"),
            alias=alias,
            tags={
                "threshold_origin": f"promoted from version {source.version} "
                                    f"(threshold {previous:.6g} -> {-detector.offset_:.6g}); not retrained",
                "source_version": str(source.version),
                "run_id": mlflow.active_run().info.run_id,
            },
        )
    return client.get_model_version(model_name, str(info.registered_model_version))


@contextlib.contextmanager
def _quiet_config_params():
    """Silence MLflow's warning that the promoted model's config params differ from the run's.

    ``log_model`` logs the model config (file digests) as run params, which
    cannot change; the run keeps those of the model it trained, as it should.
    """
    logger = logging.getLogger("mlflow.models.model")

    def keep(record: logging.LogRecord) -> bool:
        return "Failed to log model config as params" not in record.getMessage()

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


@contextlib.contextmanager
def _promotion_run(client, model_name: str, source):
    """The run a promoted version is logged into: the source version's training run, resumed.

    Resumed whatever experiment is active, and as a nested run when the caller
    has a run of its own open, so that nothing is logged into the caller's
    run. When the training run was deleted (or the version has none), a new
    run ``promote-<name>-v<source>``, tagged with the source, takes its place,
    in the training run's experiment when that is still known.
    """
    from mlflow.exceptions import MlflowException

    experiment_id = None
    if source.run_id:
        try:
            training_run = client.get_run(source.run_id)
            experiment_id = training_run.info.experiment_id
            alive = training_run.info.lifecycle_stage == "active"
        except MlflowException:  # purged
            alive = False
        if alive:
            with resumed_run(source.run_id) as run:
                yield run
            return
    created = client.create_run(
        experiment_id or default_experiment_id(), run_name=f"promote-{model_name}-v{source.version}",
        tags={"source_version": str(source.version), "source_run_id": source.run_id or "none"},
    )
    with resumed_run(created.info.run_id) as run:
        yield run


def _source_version(client, model_name: str, version, alias: str):
    from mlflow.exceptions import MlflowException

    if version is not None:
        return client.get_model_version(model_name, str(version))
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        latest = latest_version(client, model_name)
        if latest is None:
            raise ValueError(f"no registered model {model_name!r} with any version") from None
        return latest

"""Scoring a table from the command line: where the model comes from, what the output holds.

The model is a saved ``.safetensors`` file, an MLflow model folder, or an
MLflow URI (``models:/name@alias``, ``models:/name/3``, ``runs:/<id>/model``).
Columns are matched by name, as the served model matches them
(:func:`model_rows`): a table holding the model's columns in another order
is put back in the training order; anything else is validated as
``score_samples`` validates it. The top-feature columns are named as the
served model names them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from .persistence import load
from .request_scoring import model_specific_columns, scores_and_contributions, top_feature_columns

MLFLOW_SCHEMES = ("models:/", "runs:/", "file:", "mlflow-artifacts:", "s3://", "gs://", "http://", "https://")
SCORE = "score"
IS_ANOMALY = "is_anomaly"
P_VALUE = "p_value"
PARQUET_SUFFIXES = (".parquet", ".pq")


def model_rows(detector, frame: pd.DataFrame, leave_out=()) -> pd.DataFrame:
    """``frame`` without the ``leave_out`` columns that are not model inputs, in the model's column order.

    A ``leave_out`` column the frame lacks is a ``ValueError``. A model
    fitted on a DataFrame knows its columns by name, one fitted on an array
    as ``x0, x1, ...``; when the remaining columns are exactly those, in
    another order, they are put back in the training order, as MLflow's
    schema does for the served model. Any other difference is left for
    ``score_samples`` to refuse.
    """
    from .lifecycle.serving_inputs import input_columns

    missing = [column for column in leave_out if column not in frame.columns]
    if missing:
        raise ValueError(f"--keep names column(s) {missing} that the input does not have")
    model_columns = input_columns(detector)
    rows = frame.drop(columns=[column for column in leave_out if str(column) not in set(model_columns)])
    by_name = {str(column): column for column in rows.columns}
    # Named columns (or the x0, x1, ... of a model fitted on an array), reordered: put back in order.
    if (len(by_name) == rows.shape[1]
            and list(by_name) != model_columns and sorted(by_name) == sorted(model_columns)):
        rows = rows[[by_name[column] for column in model_columns]]
    return rows


@contextlib.contextmanager
def keep_hint() -> Iterator[None]:
    """Add the ``--keep`` hint to scikit-learn's "Feature names unseen at fit time" error.

    ``score``, ``monitor`` and ``report`` all read tables that may hold ids
    or timestamps beside the model's columns.
    """
    try:
        yield
    except ValueError as error:
        if "unseen at fit time" not in str(error):
            raise
        raise ValueError(f"{error}\nColumns that are not model inputs (ids, timestamps) are named with --keep: "
                         "they are left out of scoring (score copies them to its output)") from error


def is_mlflow_model(source: str) -> bool:
    """Whether ``source`` names an MLflow model (a URI, or a folder holding an ``MLmodel`` file)."""
    return source.startswith(MLFLOW_SCHEMES) or (Path(source) / "MLmodel").is_file()


def load_detector(source: str):
    """The fitted detector of a saved file, an MLflow model folder or an MLflow model URI.

    Registry and run URIs are resolved against the tracking store in force
    (``MLFLOW_TRACKING_URI``, else ``mlflow.db`` in the working directory,
    which must exist).

    Raises
    ------
    ValueError
        When the URI names no model, or the model is not an anomvae model.
    FileNotFoundError
        When a file path does not exist.
    """
    if not is_mlflow_model(source):
        return load(source)
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    from .lifecycle._mlflow import existing_tracking_uri
    from .lifecycle.pyfunc import DETECTOR_ARTIFACT

    store = existing_tracking_uri() if source.startswith(("models:/", "runs:/")) else None
    try:
        local = Path(download_artifacts(source))
    except MlflowException as error:
        where = f" in the tracking store {store}" if store else ""
        raise ValueError(f"cannot load {source}{where}: {error.message}") from error
    artifacts = Model.load(local).flavors.get("python_function", {}).get("artifacts", {})
    if DETECTOR_ARTIFACT not in artifacts:
        raise ValueError(f"{source} is not an anomvae model (no {DETECTOR_ARTIFACT!r} artifact)")
    return load(local / artifacts[DETECTOR_ARTIFACT]["path"])


def score_table(
    detector,
    frame: pd.DataFrame,
    *,
    keep: list[str] | None = None,
    unscored: list[str] | tuple[str, ...] = (),
    top_features: int = 0,
    p_values: bool = False,
) -> pd.DataFrame:
    """Scores of a table's rows, in input order.

    Parameters
    ----------
    detector : BaseDeepDetector
        A fitted tabular detector.
    frame : DataFrame
        The rows; with ``keep``, the feature columns plus the kept ones.
    keep : list of str, optional
        Columns copied to the output unchanged (ids, timestamps); those
        that are not model columns are left out of scoring, model columns
        are scored as well. Without it the output holds every input column.
    unscored : list of str
        Columns left out of scoring without being named in ``keep`` (a
        ``label`` column): copied to the output when ``keep`` is not given.
    top_features : int
        Add ``top_feature_k`` and ``top_feature_k_score`` for the ``k`` most
        contributing columns, named as the served model names them.
    p_values : bool
        Add ``p_value``, the conformal p-value of each row
        (:meth:`~anomvae.base.BaseDeepDetector.p_values`).

    Returns
    -------
    DataFrame
        The kept (or all input) columns, then ``score`` (higher = more
        anomalous), ``is_anomaly``, the columns only some models have
        (``unseen_context``, ``cohort``: as the served model returns them)
        and the optional columns.

    Raises
    ------
    ValueError
        When a kept column is missing, or the rows cannot be scored.
    """
    from .lifecycle.serving_inputs import input_columns

    if isinstance(top_features, bool) or not isinstance(top_features, int) or top_features < 0:
        raise ValueError(f"--top-features must be a non-negative integer, got {top_features!r}")
    features = model_rows(detector, frame, [*(keep or ()), *unscored])
    passthrough = frame[keep] if keep else frame
    with keep_hint():
        scores, contributions = scores_and_contributions(detector, features, contributions=top_features > 0)
    columns = {SCORE: scores, IS_ANOMALY: scores > -detector.offset_, **model_specific_columns(detector, features)}
    if contributions is not None:
        columns.update(top_feature_columns(detector, input_columns(detector), contributions, top_features))
    if p_values:
        columns[P_VALUE] = detector.p_values(features)
    overlap = [column for column in columns if column in passthrough.columns]
    if overlap:
        raise ValueError(f"input column(s) {overlap} would be overwritten by the output; rename or drop them")
    return pd.concat([passthrough.reset_index(drop=True), pd.DataFrame(columns)], axis=1)


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write ``frame`` as Parquet (``.parquet``, ``.pq``) or CSV (anything else)."""
    if Path(path).suffix.lower() in PARQUET_SUFFIXES:
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


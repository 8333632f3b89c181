"""MLflow ``pyfunc`` model for every anomvae estimator.

The model is logged "from code" (MLflow's models-from-code): the MLmodel
points at a small script that builds :class:`AnomalyDetectorModel`, and the
fitted detector travels as its anomvae safetensors file. Nothing is pickled.

Predictions are a DataFrame with one row per input row:

``score``
    The anomaly score, **higher = more anomalous**. It is
    ``detector.anomaly_score(X)``: the opposite sign of scikit-learn's
    ``score_samples``, so that it reads like a risk score.
``is_anomaly``
    ``score > threshold``. The threshold is ``-detector.offset_``, so
    ``is_anomaly`` agrees with ``detector.predict(X) == -1``; a request may
    override it with the ``threshold`` param.
``unseen_context``
    Context models only (:class:`~anomvae.AnomalyCVAE`): the row's context
    holds a value never seen in ``fit``, so it was scored without its context.
``cohort``
    Mixture-prior models only (:class:`~anomvae.AnomalyVaDE`): the row's most
    likely mixture component, as :meth:`~anomvae.AnomalyVaDE.predict_cohort`.
``top_feature_1``, ``top_feature_1_score``, ...
    Tabular models only: the ``top_features`` columns contributing most to
    the score (from ``detector.feature_scores``) and their contributions.

See :mod:`anomvae.lifecycle.serving_inputs` for the accepted input forms.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.pyfunc import PythonModel
from sklearn.utils.validation import check_is_fitted

from ..persistence import load
from ..request_scoring import model_specific_columns, scores_and_contributions, top_feature_columns
from ..version import __version__
from . import packaging, serving_inputs
from ._mlflow import check_alias, check_registered_model_name, use_default_tracking_uri

SCORE = "score"
IS_ANOMALY = "is_anomaly"
DETECTOR_ARTIFACT = "detector"
"""Key of the safetensors file in the model's artifacts."""
WHEEL_ARTIFACT = "anomvae_wheel"
"""Key of the anomvae wheel its ``requirements.txt`` installs (see :mod:`anomvae.lifecycle.packaging`)."""
DEFAULT_TOP_FEATURES = 3
DEFAULT_ALIAS = "champion"
"""Alias a newly registered version gets unless told otherwise."""
EXAMPLE_ROWS = 5
PARITY_RTOL = 1e-6
"""Largest relative score difference the registration parity check accepts."""
MODEL_CODE = Path(__file__).with_name("_pyfunc_model_code.py")
FILE_DIGESTS = "file_sha256"
"""Key of the model config holding the SHA-256 of the model's code and weights files."""


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_model_files(model_directory: Path, digests: dict[str, str]) -> None:
    """Check the files of a logged model against the digests recorded when it was logged.

    ``log_model`` records the SHA-256 of the model code (``_pyfunc_model_code.py``)
    and of the weights (``artifacts/detector.safetensors``) in the model's
    config; :meth:`AnomalyDetectorModel.load_context` calls this before it
    loads the weights. MLflow has already executed the model code by then, so
    a changed code file is reported, not prevented: see the section on the
    MLflow model directory in ``docs/reliability.md``.

    Raises
    ------
    MlflowException
        When a recorded file is missing or its bytes changed.
    """
    for name, expected in sorted(digests.items()):
        path = model_directory / name
        if not path.is_file() or file_digest(path) != expected:
            raise MlflowException(
                f"the model file {name} in {model_directory} is missing or differs from the one logged "
                "(SHA-256 mismatch); the model directory was modified after logging: do not use it"
            )


class AnomalyDetectorModel(PythonModel):
    """Serve a fitted anomvae detector through MLflow.

    ``load_context`` loads the safetensors file once per process, onto CUDA
    when the machine has it and the CPU otherwise. ``predict`` accepts the
    params ``threshold`` (float, on the ``score`` scale) and ``top_features``
    (int). Bad requests raise :class:`~mlflow.exceptions.MlflowException`
    with ``INVALID_PARAMETER_VALUE``, which the scoring server answers with
    HTTP 400 and the message.
    """

    def load_context(self, context) -> None:
        """Check the model's files against their logged digests, then load the detector once per process."""
        config = context.model_config or {}
        verify_model_files(Path(context.artifacts[DETECTOR_ARTIFACT]).parents[1], config.get(FILE_DIGESTS, {}))
        self.detector = load(context.artifacts[DETECTOR_ARTIFACT], device="auto")
        self.image_format = config.get("image_format", "tensor")
        self.top_features = int(config.get("top_features", DEFAULT_TOP_FEATURES))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        # The DataFrame hint makes MLflow use the signature given at logging
        # time instead of inferring one; tensor image models get an ndarray.
        params = {name: value for name, value in (params or {}).items() if value is not None}  # null: default
        try:
            return score_frame(
                self.detector,
                model_input,
                threshold=params.get("threshold", -self.detector.offset_),
                top_features=params.get("top_features", self.top_features),
                image_format=self.image_format,
            )
        except (ValueError, TypeError) as error:
            raise MlflowException.invalid_parameter_value(str(error)) from error


def score_frame(
    detector,
    model_input,
    *,
    threshold: float | None = None,
    top_features: int = DEFAULT_TOP_FEATURES,
    image_format: str = "tensor",
) -> pd.DataFrame:
    """The model's prediction for ``model_input``, computed with ``detector`` directly.

    Parameters
    ----------
    detector : BaseDeepDetector
        A fitted detector.
    model_input : DataFrame or ndarray
        See :mod:`anomvae.lifecycle.serving_inputs`.
    threshold : float, optional
        ``is_anomaly`` is ``score > threshold``; defaults to ``-detector.offset_``.
    top_features : int
        How many most-contributing columns to name (tabular models).
    image_format : {"tensor", "png"}

    Raises
    ------
    ValueError, TypeError
        For input the model cannot score, or invalid options.
    """
    threshold = -detector.offset_ if threshold is None else threshold
    number = isinstance(threshold, (int, float, np.number)) and not isinstance(threshold, bool)
    if not number or not math.isfinite(threshold):
        raise ValueError(f"the threshold param must be a finite number, got {threshold!r}")
    if isinstance(top_features, bool) or not isinstance(top_features, (int, np.integer)) or top_features < 0:
        raise ValueError(f"the top_features param must be a non-negative integer, got {top_features!r}")
    if detector.is_image_:
        rows = serving_inputs.image_input(detector, model_input, image_format)
        scores, contributions = detector.anomaly_score(rows), None
    else:
        rows = serving_inputs.tabular_input(detector, model_input)
        scores, contributions = scores_and_contributions(detector, rows, contributions=top_features > 0)
    index = model_input.index if isinstance(model_input, pd.DataFrame) else None
    columns = {SCORE: scores, IS_ANOMALY: scores > float(threshold)}
    columns.update(model_specific_columns(detector, rows))
    if contributions is not None:
        columns.update(top_feature_columns(detector, serving_inputs.input_columns(detector), contributions,
                                           top_features))
    return pd.DataFrame(columns, index=index)


def example_input(detector, input_example=None, image_format: str = "tensor"):
    """A few rows in the model's input form, from ``input_example`` or made up.

    Without an example, tabular models get one row at the centre the encoder
    learned (the first category for categorical columns) and image models one
    mid-grey image. Tensor examples are ``(N, C, H, W)`` float32, which fixes
    the shape and type the model's signature asks of requests.
    """
    if detector.is_image_:
        shape = detector.encoder_.shape
        if isinstance(input_example, pd.DataFrame) and image_format == "png":
            return input_example.iloc[:EXAMPLE_ROWS]
        if input_example is None:
            images = np.full((1, *shape), 128, dtype=np.uint8)
        else:
            images = detector.encoder_.as_batch(np.asarray(input_example)[:EXAMPLE_ROWS])
        if image_format == "png":
            return pd.DataFrame({serving_inputs.IMAGE_COLUMN: serving_inputs.encode_png(images)})
        return images.astype(np.float32)
    if input_example is None:
        encoder = detector.encoder_
        numeric = iter(encoder.centre)
        integers = encoder.integers or [False] * len(encoder.kinds)
        row = [
            encoder.categories[column][0] if kind == "category" else
            bool(next(numeric) >= 0.5) if kind == "boolean" else
            round(next(numeric)) if integer else float(next(numeric))
            for column, kind, integer in zip(encoder.columns, encoder.kinds, integers)
        ]
        return serving_inputs.as_frame(detector, pd.DataFrame([row], columns=serving_inputs.input_columns(detector)))
    if isinstance(input_example, pd.DataFrame):
        return serving_inputs.as_frame(detector, input_example.iloc[:EXAMPLE_ROWS])
    return serving_inputs.as_frame(detector, np.asarray(input_example)[:EXAMPLE_ROWS])


def model_signature(detector, example, output: pd.DataFrame, top_features: int):
    """Input schema (see :func:`serving_inputs.column_types`), output schema, and the two params."""
    from mlflow.models import ModelSignature
    from mlflow.models.signature import infer_signature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec

    if detector.is_image_ and isinstance(example, np.ndarray):
        inputs = Schema([TensorSpec(np.dtype(np.float32), (-1, *example.shape[1:]))])
    elif detector.is_image_:
        inputs = Schema([ColSpec("string", serving_inputs.IMAGE_COLUMN)])
    else:
        inputs = Schema([ColSpec(kind, column) for column, kind in serving_inputs.column_types(detector, example)])
    with warnings.catch_warnings():
        # Only the output schema is inferred here (the input one is built above); MLflow's hint
        # that integer columns cannot hold missing values concerns inputs, and no output is missing.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        outputs = infer_signature(example, output).outputs
    params = ParamSchema([
        ParamSpec("threshold", "double", float(-detector.offset_)),
        ParamSpec("top_features", "long", int(top_features)),
    ])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def requirements(image_format: str, wheel: Path) -> list[str]:
    """pip requirements of the logged model: anomvae's wheel, stored with it, and pinned dependencies.

    See :mod:`anomvae.lifecycle.packaging`; ``wheel`` is the wheel's path inside the model directory.
    """
    extra = ("mlflow",) + (("pillow",) if image_format == "png" else ())
    return [wheel.as_posix(), *packaging.pinned_requirements(extra)]


def log_model(
    detector,
    name: str = "model",
    *,
    registered_model_name: str | None = None,
    input_example=None,
    top_features: int = DEFAULT_TOP_FEATURES,
    image_format: str = "tensor",
    alias: str | None = DEFAULT_ALIAS,
    tags: dict[str, str] | None = None,
):
    """Log a fitted detector as an MLflow pyfunc model, optionally registering it.

    Works inside an active run (the model is attached to it) or outside one,
    against the tracking URI in force (``sqlite:///mlflow.db`` in the working
    directory when none is set).
    Before registering, the scores of the example rows are compared three
    ways: the detector itself, the reloaded pyfunc model, and MLflow's
    REST-input path (:func:`mlflow.models.validate_serving_input`); the
    result is recorded in the version's ``parity_check`` tag, next to its
    ``threshold``.

    Parameters
    ----------
    detector : BaseDeepDetector
        A fitted anomvae estimator.
    name : str
        Name of the logged model.
    registered_model_name : str, optional
        Register the model as a new version of this registered model.
    input_example : DataFrame or array, optional
        A few training-like rows (or images); they become the input example
        and the parity check rows. Without one, a typical row is made up.
    top_features : int
        Default number of top contributing columns in the predictions.
    image_format : {"tensor", "png"}
        Input form of image models (see :mod:`anomvae.lifecycle.serving_inputs`).
    alias : str or None, default="champion"
        With ``registered_model_name``, point this alias of the registered
        model at the new version; None leaves every alias where it is.
    tags : dict, optional
        Extra model version tags.

    Returns
    -------
    mlflow.models.model.ModelInfo
        With ``registered_model_version`` set when the model was registered.

    Raises
    ------
    RuntimeError
        When the parity check fails; nothing is registered then.
    ValueError
        For a registered model name or an alias the registry refuses
        (``a/b``, ``latest``, ``v3``, ...): checked before anything is logged.
    """
    check_is_fitted(detector)
    if registered_model_name is not None:
        check_registered_model_name(registered_model_name)
        if alias is not None:
            check_alias(alias)
    use_default_tracking_uri()
    serving_inputs.check_image_format(detector, image_format)
    example = example_input(detector, input_example, image_format)
    native = score_frame(detector, example, top_features=top_features, image_format=image_format)
    threshold = float(-detector.offset_)
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "detector.safetensors"
        detector.save(weights)
        digests = {MODEL_CODE.name: file_digest(MODEL_CODE), f"artifacts/{weights.name}": file_digest(weights)}
        wheel = packaging.build_wheel(folder)
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts={DETECTOR_ARTIFACT: str(weights), WHEEL_ARTIFACT: str(wheel)},
            model_config={"top_features": int(top_features), "image_format": image_format, FILE_DIGESTS: digests},
            signature=model_signature(detector, example, native, top_features),
            input_example=example,
            pip_requirements=requirements(image_format, Path("artifacts") / wheel.name),
            metadata={
                "anomvae_version": __version__,
                "estimator": type(detector).__name__,
                "threshold": threshold,
                "score": "higher = more anomalous (-score_samples)",
            },
        )
    parity = check_parity(info.model_uri, example, native[SCORE].to_numpy())
    if registered_model_name is not None:
        version_tags = {
            "threshold": repr(threshold),
            "estimator": type(detector).__name__,
            "anomvae_version": __version__,
            "parity_check": parity,
            **({"threshold_calibration": str(detector.threshold_)} if hasattr(detector, "threshold_") else {}),
            **(tags or {}),
        }
        version = mlflow.register_model(info.model_uri, registered_model_name, tags=version_tags)
        info.registered_model_version = int(version.version)
        if alias is not None:
            mlflow.MlflowClient().set_registered_model_alias(registered_model_name, alias, version.version)
    return info


def check_parity(model_uri: str, example, native_scores: np.ndarray) -> str:
    """Compare native scores with the pyfunc model's and the scoring server's.

    The server path is :func:`mlflow.pyfunc.scoring_server.invocations`, the
    function behind ``/invocations``, fed the example as request JSON.

    Returns
    -------
    str
        A one-line summary for the ``parity_check`` tag.

    Raises
    ------
    RuntimeError
        When either path differs from the native scores beyond
        :data:`PARITY_RTOL`.
    """
    from mlflow.models import convert_input_example_to_serving_input
    from mlflow.pyfunc.scoring_server import invocations

    model = mlflow.pyfunc.load_model(model_uri)
    pyfunc_scores = model.predict(example)[SCORE].to_numpy()
    answer = invocations(
        convert_input_example_to_serving_input(example),
        "application/json",
        model,
        model.metadata.get_input_schema(),
    )
    if answer.status != 200:
        raise RuntimeError(f"the scoring server rejected the input example: {answer.response}")
    served = pd.DataFrame(json.loads(answer.response)["predictions"])
    differences = {
        "pyfunc": float(np.max(np.abs(pyfunc_scores - native_scores))),
        "REST": float(np.max(np.abs(served[SCORE].to_numpy(dtype=np.float64) - native_scores))),
    }
    scale = max(1.0, float(np.max(np.abs(native_scores))))
    summary = ", ".join(f"{path} {difference:.3g}" for path, difference in differences.items())
    if max(differences.values()) > PARITY_RTOL * scale:
        raise RuntimeError(
            f"the logged model does not reproduce the detector's scores (max |difference|: {summary}); "
            "it was not registered"
        )
    return f"passed: max |score - native score| over {len(native_scores)} rows: {summary}"

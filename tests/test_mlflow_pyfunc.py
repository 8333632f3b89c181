"""The MLflow pyfunc model: registry, signature, threshold, parity, errors."""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import FAST
from mlflow.exceptions import MlflowException

import anomvae
from anomvae.lifecycle import serving_inputs
from anomvae.lifecycle import pyfunc
from anomvae.persistence import read_document

MODEL_NAME = "pyfunc-test"


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(1)
    latent = rng.normal(size=(240, 2))
    return latent @ rng.normal(size=(2, 5)) + 0.1 * rng.normal(size=(240, 5))


@pytest.fixture(scope="module")
def detector(rows):
    return anomvae.AnomalyVAE(**FAST).fit(rows)


@pytest.fixture(scope="module")
def registered(mlflow_store, detector, rows):
    """Logged outside any run, registered, and given the alias ``champion``."""
    info = anomvae.log_model(
        detector, name="model", registered_model_name=MODEL_NAME, input_example=rows[:5], alias="champion"
    )
    return info


@pytest.fixture(scope="module")
def loaded(registered):
    return mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")


def frame(rows):
    return pd.DataFrame(rows, columns=[f"x{i}" for i in range(rows.shape[1])])


def test_alias_loads_a_model_scoring_like_the_detector(loaded, detector, rows):
    shifted = rows[:40] + np.linspace(0, 4, 40)[:, None]
    predictions = loaded.predict(frame(shifted))
    assert list(predictions.columns[:2]) == ["score", "is_anomaly"]
    np.testing.assert_allclose(predictions["score"], detector.anomaly_score(shifted), rtol=1e-12)
    assert predictions["is_anomaly"].dtype == bool
    np.testing.assert_array_equal(predictions["is_anomaly"], detector.predict(shifted) == -1)
    assert predictions["is_anomaly"].any() and not predictions["is_anomaly"].all()


def test_version_tags_record_the_threshold_and_the_parity_check(registered, detector):
    version = mlflow.MlflowClient().get_model_version(MODEL_NAME, str(registered.registered_model_version))
    assert float(version.tags["threshold"]) == pytest.approx(-detector.offset_, rel=1e-15)
    assert version.tags["parity_check"].startswith("passed")
    assert version.tags["estimator"] == "AnomalyVAE"
    assert int(mlflow.MlflowClient().get_model_version_by_alias(MODEL_NAME, "champion").version) == int(version.version)


def test_threshold_and_top_features_params_override_the_defaults(loaded, rows):
    scores = loaded.predict(frame(rows))["score"]
    median = float(np.median(scores))
    predictions = loaded.predict(frame(rows), params={"threshold": median, "top_features": 1})
    np.testing.assert_array_equal(predictions["is_anomaly"], scores > median)
    assert list(predictions.columns) == ["score", "is_anomaly", "top_feature_1", "top_feature_1_score"]


def test_top_features_are_the_largest_contributions(loaded, detector, rows):
    predictions = loaded.predict(frame(rows[:20]))
    contributions = detector.feature_scores(rows[:20])
    order = np.argsort(-contributions, axis=1)
    for rank in range(3):
        assert list(predictions[f"top_feature_{rank + 1}"]) == [f"x{i}" for i in order[:, rank]]
        expected = np.take_along_axis(contributions, order[:, rank : rank + 1], 1)[:, 0]
        np.testing.assert_allclose(predictions[f"top_feature_{rank + 1}_score"], expected)


def test_model_is_code_plus_safetensors_without_pickle(registered, detector, tmp_path):
    local = Path(mlflow.artifacts.download_artifacts(registered.model_uri, dst_path=str(tmp_path)))
    files = {path.name for path in local.rglob("*") if path.is_file()}
    assert not any(name.endswith((".pkl", ".pickle", ".cloudpickle")) for name in files)
    flavor = mlflow.models.Model.load(local).flavors["python_function"]
    assert flavor["model_code_path"].endswith("_pyfunc_model_code.py")
    weights = local / flavor["artifacts"]["detector"]["path"]
    document, _ = read_document(weights)
    assert document["estimator"] == "AnomalyVAE"
    np.testing.assert_array_equal(anomvae.load(weights).score_samples(np.eye(5)), detector.score_samples(np.eye(5)))


def test_log_model_inside_a_run_attaches_the_model_to_it(mlflow_store, detector):
    with mlflow.start_run() as run:
        info = anomvae.log_model(detector, name="model")
    assert info.run_id == run.info.run_id
    assert info.registered_model_version is None
    assert info.signature.params.to_dict()[0]["name"] == "threshold"


def test_mixed_dataframe_model_keeps_names_types_and_scores(mlflow_store):
    rng = np.random.default_rng(2)
    data = pd.DataFrame({
        "amount": rng.gamma(2.0, 30.0, size=200),
        "hour": rng.integers(0, 24, size=200),
        "merchant": rng.choice(["grocery", "fuel", "travel"], size=200),
        "online": rng.random(200) > 0.5,
    })
    detector = anomvae.AnomalyVAE(**FAST).fit(data)
    info = anomvae.log_model(detector, name="model", input_example=data.head())
    inputs = {spec["name"]: spec["type"] for spec in info.signature.inputs.to_dict()}
    assert inputs == {"amount": "double", "hour": "long", "merchant": "string", "online": "boolean"}
    model = mlflow.pyfunc.load_model(info.model_uri)
    new = data.tail(10).reset_index(drop=True)
    new.loc[0, "merchant"] = "casino"  # unseen category: scored, not rejected
    predictions = model.predict(new)
    np.testing.assert_allclose(predictions["score"], detector.anomaly_score(new), rtol=1e-12)
    assert set(predictions["top_feature_1"]) <= set(data.columns)


def test_whole_numbers_in_an_example_keep_a_column_fitted_on_fractions_double(mlflow_store):
    # A user's finding: a whole-number input example typed float columns `long`, and plain MLflow
    # serving then truncated 0.1 to 0 and answered 200 with the wrong score.
    data = pd.DataFrame(np.random.default_rng(3).normal(size=(100, 2)), columns=["a", "b"])
    detector = anomvae.AnomalyVAE(**FAST).fit(data)
    example = pd.DataFrame({"a": [0, 1, -1], "b": [1, 0, 2]})
    info = anomvae.log_model(detector, name="model", input_example=example)
    assert {spec["type"] for spec in info.signature.inputs.to_dict()} == {"double"}
    new = pd.DataFrame({"a": [0.1, 0.4], "b": [0.2, -0.3]})
    scores = mlflow.pyfunc.load_model(info.model_uri).predict(new)["score"]
    np.testing.assert_allclose(scores, detector.anomaly_score(new), rtol=1e-12)
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['b'\]"):
        anomvae.log_model(detector, name="other", input_example=example.drop(columns="b"))
    # A review's finding: a model saved before integer columns were recorded read back as "no
    # integer columns", and its whole-number example lost the `long` types it had been logged with.
    config = detector.encoder_.to_config()
    del config["integers"]
    detector.encoder_ = type(detector.encoder_).from_config(config)
    assert detector.encoder_.integers == []
    assert list(serving_inputs.as_frame(detector, example).dtypes) == [np.int64, np.int64]


def test_bad_requests_raise_invalid_parameter_value(loaded, rows):
    with_nan = frame(rows[:3])
    with_nan.iloc[1, 2] = np.nan
    with pytest.raises(MlflowException, match="NaN in row 1, column x2") as error:
        loaded.predict(with_nan)
    assert error.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match=r"missing inputs \['x4'\]"):
        loaded.predict(frame(rows[:3]).drop(columns="x4"))
    with pytest.raises(MlflowException, match="threshold param must be a finite number") as error:
        loaded.predict(frame(rows[:3]), params={"threshold": float("inf")})
    assert error.value.error_code == "INVALID_PARAMETER_VALUE"


def test_parity_check_refuses_a_model_that_scores_differently(registered, rows):
    example = frame(rows[:5])
    native = mlflow.pyfunc.load_model(registered.model_uri).predict(example)["score"].to_numpy()
    assert pyfunc.check_parity(registered.model_uri, example, native).startswith("passed")
    with pytest.raises(RuntimeError, match="does not reproduce the detector's scores"):
        pyfunc.check_parity(registered.model_uri, example, native + 1e-3)


@pytest.mark.parametrize(
    "estimator_class",
    sorted(anomvae.registry.estimators().values(), key=lambda cls: cls.__name__),
    ids=lambda cls: cls.__name__,
)
def test_every_estimator_scores_the_same_after_logging(mlflow_store, estimator_class, rows):
    detector = estimator_class(**FAST).fit(rows)
    info = anomvae.log_model(detector, input_example=rows[:5])
    model = mlflow.pyfunc.load_model(info.model_uri)
    predictions = model.predict(frame(rows[:30]))
    np.testing.assert_allclose(predictions["score"], detector.anomaly_score(rows[:30]), rtol=1e-12)
    np.testing.assert_array_equal(predictions["is_anomaly"], detector.predict(rows[:30]) == -1)


def test_bfloat16_model_scores_the_same_after_logging(mlflow_store, rows):
    detector = anomvae.AnomalyVAE(precision="bfloat16", **FAST).fit(rows)
    model = mlflow.pyfunc.load_model(anomvae.log_model(detector, input_example=rows[:5]).model_uri)
    predictions = model.predict(frame(rows[:30]))
    np.testing.assert_allclose(predictions["score"], detector.anomaly_score(rows[:30]), rtol=1e-12)

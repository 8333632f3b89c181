"""A real ``mlflow models serve`` process answering for a registered detector.

One server is started for the module; it is always killed, and every wait is
bounded.
"""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import FAST
from model_server import post, serving

import anomvae

MODEL_NAME = "serving-test"
COLUMNS = [f"x{i}" for i in range(4)]


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(3)
    return rng.normal(size=(200, 4)) @ rng.normal(size=(4, 4))


@pytest.fixture(scope="module")
def detector(rows):
    return anomvae.AnomalyVAE(**FAST).fit(rows)


@pytest.fixture(scope="module")
def server(mlflow_store, detector, rows, tmp_path_factory):
    """Base URL of ``mlflow models serve -m models:/serving-test@champion``."""
    anomvae.log_model(detector, registered_model_name=MODEL_NAME, input_example=rows[:5], alias="champion")
    with serving(f"models:/{MODEL_NAME}@champion", tmp_path_factory.mktemp("serve") / "server.log") as url:
        yield url


def test_dataframe_split_scores_equal_native_and_pyfunc_scores(server, detector, rows):
    batch = rows[:25] * np.linspace(0.5, 3, 25)[:, None]
    status, answer = post(
        f"{server}/invocations", json.dumps({"dataframe_split": {"columns": COLUMNS, "data": batch.tolist()}})
    )
    assert status == 200
    served = np.array([row["score"] for row in answer["predictions"]])
    native = detector.anomaly_score(batch)
    np.testing.assert_allclose(served, native, rtol=1e-12)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    pyfunc_scores = model.predict(pd.DataFrame(batch, columns=COLUMNS))["score"]
    np.testing.assert_allclose(served, pyfunc_scores, rtol=1e-12)
    assert [row["is_anomaly"] for row in answer["predictions"]] == list(detector.predict(batch) == -1)


def test_dataframe_records_with_a_threshold_param(server, detector, rows):
    records = [dict(zip(COLUMNS, row)) for row in rows[:10].tolist()]
    native = detector.anomaly_score(rows[:10])
    threshold = float(np.median(native))
    status, answer = post(
        f"{server}/invocations",
        json.dumps({"dataframe_records": records, "params": {"threshold": threshold, "top_features": 2}}),
    )
    assert status == 200
    predictions = answer["predictions"]
    np.testing.assert_allclose([row["score"] for row in predictions], native, rtol=1e-12)
    assert [row["is_anomaly"] for row in predictions] == list(native > threshold)
    assert set(predictions[0]) == {"score", "is_anomaly", "top_feature_1", "top_feature_1_score",
                                   "top_feature_2", "top_feature_2_score"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (json.dumps({"dataframe_split": {"columns": ["a", "x1", "x2", "x3"], "data": [[0.1, 0.2, 0.3, 0.4]]}}),
         "missing inputs ['x0']"),
        ('{"dataframe_split": {"columns": ["x0", "x1", "x2", "x3"], "data": [[0.1, NaN, 0.3, 0.4]]}}',
         "contains NaN in row 0, column x1"),
        (json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [[0.1, None, 0.3, 0.4]]}}),
         "contains NaN in row 0, column x1"),
        ("this is not JSON", "valid JSON"),
        (json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [[1, 2, 3, 4]]}, "params": {"threshold": "high"}}),
         "threshold"),
    ],
    ids=["wrong-columns", "nan", "null", "not-json", "bad-param"],
)
def test_malformed_requests_get_a_4xx_with_a_readable_message(server, body, message):
    status, answer = post(f"{server}/invocations", body)
    assert 400 <= status < 500
    assert message in answer["message"]

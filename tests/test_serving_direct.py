"""``anomvae serve`` scoring plain requests itself: the same answer bytes as MLflow's
scoring app, and every other request left to MLflow (anomvae/lifecycle/serving_direct.py)."""

import asyncio
import http.client
import json
import math
import warnings

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.pyfunc.scoring_server import invocations

import anomvae
from anomvae.lifecycle.serving import local_server
from anomvae.lifecycle.serving_direct import DIRECT_MAX_ROWS, DirectScoring
from anomvae.lifecycle.serving_checks import ColumnTypes

SETTINGS = {"epochs": 5, "batch_size": 64, "random_state": 0}
COLUMNS = ["a", "b", "count"]
JSON_TYPE = "application/json"


def training_frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    a = rng.normal(size=n)
    return pd.DataFrame({"a": a, "b": 0.5 * a + 0.3 * rng.normal(size=n), "count": rng.integers(0, 9, size=n)})


@pytest.fixture(scope="module")
def numeric_model(mlflow_store):
    frame = training_frame()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = anomvae.AnomalyVAE(**SETTINGS).fit(frame)
    info = anomvae.log_model(detector, input_example=frame.head())
    model = mlflow.pyfunc.load_model(info.model_uri)
    return detector, frame, info.model_uri, model


def split(columns, data, **extra) -> dict:
    return {"dataframe_split": {"columns": columns, "data": data}, **extra}


def mlflow_answer(model, document: dict, content_type: str = JSON_TYPE):
    answer = invocations(json.dumps(document), content_type, model, model.metadata.get_input_schema())
    return answer.status, answer.response


def test_numeric_model_gets_direct_scoring_and_the_schema_types(numeric_model):
    _, _, _, model = numeric_model
    types = ColumnTypes.from_model(model)
    assert types.columns == [("a", "double"), ("b", "double"), ("count", "long")]
    assert DirectScoring.from_model(model, types.columns) is not None


@pytest.mark.parametrize("rows", [1, 7, 20, DIRECT_MAX_ROWS])
def test_plain_request_gets_mlflows_exact_answer_bytes_and_native_scores(numeric_model, rows):
    detector, frame, _, model = numeric_model
    direct = DirectScoring.from_model(model, ColumnTypes.from_model(model).columns)
    chosen = frame.iloc[np.arange(rows) % len(frame)]
    data = [[float(a), float(b), int(count)] for a, b, count in chosen.itertuples(index=False)]
    data[0][0] = 2  # an integer in a double column, as JSON clients send it
    document = split(COLUMNS, data)
    answer = direct.answer_now(JSON_TYPE, document)
    status, expected = mlflow_answer(model, document)
    assert status == 200
    assert answer == expected.encode()
    served = [row["score"] for row in json.loads(answer)["predictions"]]
    native = detector.anomaly_score(pd.DataFrame(data, columns=COLUMNS).astype({"a": float}))
    np.testing.assert_allclose(served, native, rtol=1e-12, atol=0)


def test_integral_floats_in_a_long_column_are_scored_as_mlflow_casts_them(numeric_model):
    _, frame, _, model = numeric_model
    direct = DirectScoring.from_model(model, ColumnTypes.from_model(model).columns)
    document = split(COLUMNS, [[0.1, 0.2, 3.0]])
    assert direct.answer_now("application/json; charset=UTF-8", document) == mlflow_answer(model, document)[1].encode()


NOT_PLAIN = {
    "params": (JSON_TYPE, split(COLUMNS, [[0.1, 0.2, 3]], params={"threshold": 0.5})),
    "reordered columns": (JSON_TYPE, split(["b", "a", "count"], [[0.2, 0.1, 3]])),
    "extra column": (JSON_TYPE, split([*COLUMNS, "id"], [[0.1, 0.2, 3, 7]])),
    "missing column": (JSON_TYPE, split(["a", "b"], [[0.1, 0.2]])),
    "index": (JSON_TYPE, {"dataframe_split": {"columns": COLUMNS, "data": [[0.1, 0.2, 3]], "index": [5]}}),
    "records": (JSON_TYPE, {"dataframe_records": [{"a": 0.1, "b": 0.2, "count": 3}]}),
    "no rows": (JSON_TYPE, split(COLUMNS, [])),
    "too many rows": (JSON_TYPE, split(COLUMNS, [[0.1, 0.2, 3]] * (DIRECT_MAX_ROWS + 1))),
    "null": (JSON_TYPE, split(COLUMNS, [[None, 0.2, 3]])),
    "NaN": (JSON_TYPE, split(COLUMNS, [[math.nan, 0.2, 3]])),
    "fraction in a long column": (JSON_TYPE, split(COLUMNS, [[0.1, 0.2, 3.5]])),
    "integer beyond int64": (JSON_TYPE, split(COLUMNS, [[0.1, 0.2, 2**63]])),
    "ragged rows": (JSON_TYPE, split(COLUMNS, [[0.1, 0.2, 3], [0.1, 0.2]])),
    "another charset": ("application/json; charset=latin-1", split(COLUMNS, [[0.1, 0.2, 3]])),
    "another media type": ("text/csv", split(COLUMNS, [[0.1, 0.2, 3]])),
}


@pytest.mark.parametrize("name", NOT_PLAIN)
def test_every_other_request_is_left_to_mlflow(numeric_model, name):
    _, _, _, model = numeric_model
    direct = DirectScoring.from_model(model, ColumnTypes.from_model(model).columns)
    content_type, document = NOT_PLAIN[name]
    assert direct.answer_now(content_type, document) is None
    assert asyncio.run(direct.answer(content_type, document)) is None


def test_models_with_text_or_boolean_columns_are_left_to_mlflow(mlflow_store):
    frame = training_frame(60).assign(kind=lambda f: np.where(f["a"] > 0, "x", "y"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = anomvae.AnomalyVAE(**SETTINGS).fit(frame)
    model = mlflow.pyfunc.load_model(anomvae.log_model(detector, input_example=frame.head()).model_uri)
    assert DirectScoring.from_model(model, ColumnTypes.from_model(model).columns) is None


def test_served_plain_and_refused_requests_over_one_connection(numeric_model, tmp_path):
    """A real ``anomvae serve``: exact scores directly, MLflow's 400 for NaN, params honoured, in any order."""
    detector, frame, uri, _ = numeric_model
    rows = frame.iloc[:5]
    data = [[float(a), float(b), int(count)] for a, b, count in rows.itertuples(index=False)]
    with local_server(uri, tmp_path / "server.log", guarded=True) as url:
        connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)

        def post(document: dict) -> tuple[int, dict]:
            connection.request("POST", "/invocations", body=json.dumps(document),
                               headers={"Content-Type": JSON_TYPE})
            answer = connection.getresponse()
            return answer.status, json.loads(answer.read())

        for _ in range(2):
            status, answer = post(split(COLUMNS, data))
            assert status == 200
            np.testing.assert_allclose([row["score"] for row in answer["predictions"]],
                                       detector.anomaly_score(rows), rtol=1e-12, atol=0)
            status, answer = post(split(COLUMNS, [[math.nan, 0.2, 3]]))
            assert status == 400 and "contains NaN" in answer["message"] and "stack_trace" not in answer
            status, answer = post(split(COLUMNS, data, params={"threshold": -1e9}))
            assert status == 200 and all(row["is_anomaly"] for row in answer["predictions"])

"""The bad-input matrix through the pyfunc model and a real ``anomvae serve``, and a small load test.

One AnomalyVAE per kind of model (DataFrame, images) is logged and served
once for the module (one server start each, always stopped); every request
wait is bounded. :mod:`anomvae.lifecycle.serving` starts the server and
``benchmarks/serving_load.py`` supplies the load generator, so the default
suite runs a tiny version of the benchmark.
"""

import re
import sys
import warnings
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.exceptions import MlflowException
from reliability_matrix import Refused, case_id, cases, check_scores, images, rest_body, table_rows

import anomvae
from anomvae.lifecycle.serving import local_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import serving_load  # noqa: E402

SETTINGS = {"epochs": 5, "batch_size": 64, "random_state": 0}
WELL_FORMED_ROWS = 6


def serve_model(kind, tmp_path_factory):
    """(detector, pyfunc model, server URL, well-formed rows, their scores, max training score)."""
    data = table_rows() if kind == "table" else images()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detector = anomvae.AnomalyVAE(**SETTINGS).fit(data)
    info = anomvae.log_model(detector, input_example=data[:5])
    model = mlflow.pyfunc.load_model(info.model_uri)
    rows = data.iloc[:WELL_FORMED_ROWS] if kind == "table" else data[:WELL_FORMED_ROWS]
    scores = detector.anomaly_score(rows)
    training_max = float(np.max(detector.anomaly_score(data)))
    with local_server(info.model_uri, tmp_path_factory.mktemp("serve") / "server.log", guarded=True) as url:
        yield detector, model, url, rows, scores, training_max


@pytest.fixture(scope="module")
def table_model(mlflow_store, tmp_path_factory):
    yield from serve_model("table", tmp_path_factory)


@pytest.fixture(scope="module")
def image_model(mlflow_store, tmp_path_factory):
    yield from serve_model("image", tmp_path_factory)


def n_rows(request) -> int:
    return len(request) if isinstance(request, pd.DataFrame) or np.ndim(request) > 1 else 1


PYFUNC_CASES = cases("table", "pyfunc") + cases("image", "pyfunc")
REST_CASES = cases("table", "rest") + cases("image", "rest")


@pytest.mark.parametrize("case", PYFUNC_CASES, ids=case_id)
def test_pyfunc_answers_bad_input_as_the_matrix_says(request, case):
    _, model, _, rows, scores, training_max = request.getfixturevalue(f"{case.model}_model")
    bad_input = case.build(rows.copy())
    outcome = case.outcome("pyfunc")
    if isinstance(outcome, Refused):
        with pytest.raises((MlflowException, ValueError, TypeError), match=re.escape(outcome.pattern)):
            model.predict(bad_input)
    else:
        check_scores(outcome.check, model.predict(bad_input)["score"], scores, training_max, n_rows(bad_input))


@pytest.mark.parametrize("case", REST_CASES, ids=case_id)
def test_rest_answers_bad_input_as_the_matrix_says(request, case):
    _, _, url, rows, scores, training_max = request.getfixturevalue(f"{case.model}_model")
    bad_input = case.build(rows.copy())
    status, answer = serving_load.post(url, rest_body(bad_input))
    outcome = case.outcome("rest")
    if isinstance(outcome, Refused):
        assert 400 <= status < 500, (status, answer)
        assert outcome.pattern in answer["message"], answer["message"]
        assert "Traceback" not in answer["message"]
    else:
        assert status == 200, answer
        served_scores = [row["score"] for row in answer["predictions"]]
        check_scores(outcome.check, served_scores, scores, training_max, n_rows(bad_input))


def test_small_load_mixing_malformed_requests_gets_no_5xx_and_exact_scores(table_model):
    detector, _, url, _, _, _ = table_model
    pool_frame = table_rows(n=60, seed=5)
    pool = [[value.item() if isinstance(value, np.generic) else value for value in row]
            for row in pool_frame.itertuples(index=False)]
    requests = serving_load.make_requests(pool, list(pool_frame.columns), n=80, malformed_fraction=0.3, seed=1)
    assert {request.kind for request in requests} >= {"good", *serving_load.MALFORMED_KINDS}
    answers = serving_load.send_all(url, requests, concurrency=8)
    summary = serving_load.summarise(answers, detector.anomaly_score(pool_frame), wall_seconds=1.0)
    assert summary["responses_5xx_or_none"] == 0, summary
    assert summary["malformed_not_4xx"] == 0 and summary["good_not_200"] == 0, summary
    assert summary["good_with_wrong_scores"] == 0, summary
    assert serving_load.passed(summary)


def test_load_script_refuses_hosts_other_than_localhost():
    with pytest.raises(SystemExit, match="127.0.0.1"):
        serving_load.check_local("http://example.com:5000")
    assert serving_load.check_local("http://127.0.0.1:5000/") == "http://127.0.0.1:5000"


def test_load_summary_flags_wrong_scores_and_5xx():
    good = serving_load.Request("good", "{}", np.array([0, 1]))
    bad = serving_load.Request("nan", "{}")
    answers = [
        serving_load.Answer(good, 200, 0.01, {"predictions": [{"score": 1.0}, {"score": 2.0 + 1e-6}]}),
        serving_load.Answer(bad, 500, 0.02, {"message": "boom"}),
    ]
    summary = serving_load.summarise(answers, np.array([1.0, 2.0]), wall_seconds=1.0)
    assert summary["good_with_wrong_scores"] == 1
    assert summary["responses_5xx_or_none"] == 1 and summary["malformed_not_4xx"] == 1
    assert not serving_load.passed(summary)

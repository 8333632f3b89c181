"""A real ``mlflow models serve`` process answering for a registered detector.

One server is started for the module; it is always killed, and every wait is
bounded.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import FAST

import anomvae

MODEL_NAME = "serving-test"
START_TIMEOUT_S = 120
REQUEST_TIMEOUT_S = 30
COLUMNS = [f"x{i}" for i in range(4)]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(url: str, body: bytes | str) -> tuple[int, dict]:
    """POST JSON; the status and the decoded answer, for errors too."""
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


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
    port = free_port()
    repository = str(Path(anomvae.__file__).resolve().parents[1])
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repository, os.environ.get("PYTHONPATH")]))}
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL_NAME}@champion",
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
            stdout=output, stderr=subprocess.STDOUT, env=environment, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"mlflow models serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no answer on /ping within {START_TIMEOUT_S} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_dataframe_split_scores_equal_native_and_pyfunc_scores(server, detector, rows):
    batch = rows[:25] * np.linspace(0.5, 3, 25)[:, None]
    status, answer = post(
        f"{server}/invocations", json.dumps({"dataframe_split": {"columns": COLUMNS, "data": batch.tolist()}})
    )
    assert status == 200
    served = np.array([row["score"] for row in answer["predictions"]])
    native = -detector.score_samples(batch)
    np.testing.assert_allclose(served, native, rtol=1e-12)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    pyfunc_scores = model.predict(pd.DataFrame(batch, columns=COLUMNS))["score"]
    np.testing.assert_allclose(served, pyfunc_scores, rtol=1e-12)
    assert [row["is_anomaly"] for row in answer["predictions"]] == list(detector.predict(batch) == -1)


def test_dataframe_records_with_a_threshold_param(server, detector, rows):
    records = [dict(zip(COLUMNS, row)) for row in rows[:10].tolist()]
    native = -detector.score_samples(rows[:10])
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

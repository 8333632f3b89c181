"""The lifecycle (log, register, alias, promote, load, serve, monitor) against a real ``mlflow server``.

The tracking URI is the server's HTTP address; artifacts go through the
server's own artifact store (``mlflow-artifacts:/``), never a local path.
"""

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import FAST
from model_server import post, serving
from tracking_server import tracking_server

import anomvae
from anomvae.lifecycle import tracking
from anomvae.cli import main

MODEL_NAME = "server-lifecycle"
COLUMNS = ["a", "b", "c", "d", "e"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with tracking_server(tmp_path_factory.mktemp("tracking-server")) as url, pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", url)
        yield url


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(11)
    frame = pd.DataFrame(rng.normal(size=(220, 5)) @ rng.normal(size=(5, 5)), columns=COLUMNS)
    return frame


@pytest.fixture(scope="module")
def trained(server, rows):
    detector = anomvae.AnomalyVAE(**FAST)
    result = tracking.fit_and_log(detector, rows, experiment_name="server-lifecycle",
                                  registered_model_name=MODEL_NAME, dataset_name="synthetic")
    return detector, result


def test_training_run_and_model_live_on_the_server(server, trained):
    detector, result = trained
    assert mlflow.get_tracking_uri() == server
    client = mlflow.MlflowClient()
    run = client.get_run(result.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert run.data.metrics["threshold"] == pytest.approx(-detector.offset_)
    low, high = detector.threshold_.to_dict()["confidence_interval"]
    assert (run.data.metrics["threshold_ci_low"], run.data.metrics["threshold_ci_high"]) == pytest.approx((low, high))
    assert run.data.tags["threshold_method"] == detector.threshold_.to_dict()["method"]
    version = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert int(version.version) == result.version and version.run_id == result.run_id


def test_alias_loads_and_scores_like_native(trained, rows):
    detector, _ = trained
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    np.testing.assert_allclose(model.predict(rows)["score"], -detector.score_samples(rows), rtol=1e-6)


def test_promote_moves_the_alias_on_the_server(trained, rows, capsys):
    _, result = trained
    assert main(["promote", MODEL_NAME, "--threshold", "4.5"]) == 0
    out = capsys.readouterr().out
    version = mlflow.MlflowClient().get_model_version_by_alias(MODEL_NAME, "champion")
    assert int(version.version) == result.version + 1 and float(version.tags["threshold"]) == 4.5
    assert version.run_id == result.run_id  # the promoted version links to its training run
    assert "tracking store  http://127.0.0.1" in out
    flagged = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion").predict(rows)
    assert (flagged["is_anomaly"] == (flagged["score"] > 4.5)).all()


def test_served_alias_answers_over_rest(trained, rows, tmp_path):
    detector, _ = trained
    with serving(f"models:/{MODEL_NAME}/1", tmp_path / "serve.log") as url:
        status, answer = post(f"{url}/invocations",
                              rows.iloc[:7].to_json(orient="split", index=False).join(['{"dataframe_split": ', "}"]))
    assert status == 200, answer
    scores = [prediction["score"] for prediction in answer["predictions"]]
    np.testing.assert_allclose(scores, -detector.score_samples(rows.iloc[:7]), rtol=1e-6)


def test_monitor_builds_a_time_series_on_the_server(trained, rows, tmp_path):
    rows.to_csv(tmp_path / "batch.csv", index=False)
    for _ in range(3):
        assert main(["monitor", f"models:/{MODEL_NAME}@champion", str(tmp_path / "batch.csv"), "--log-to-mlflow"]) == 0
    run = mlflow.search_runs(search_all_experiments=True, output_format="list",
                             filter_string=f"attributes.run_name = 'monitor-{MODEL_NAME}'")
    assert len(run) == 1
    history = mlflow.MlflowClient().get_metric_history(run[0].info.run_id, "monitor.flag_rate")
    assert [point.step for point in history] == [0, 1, 2]

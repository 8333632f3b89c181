"""``anomvae train`` with MLflow tracking, and ``anomvae promote``."""

import contextlib
import io

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from anomvae.cli import main

MODEL_NAME = "cli-test"


@pytest.fixture(scope="module")
def trained(mlflow_store, tmp_path_factory):
    """``anomvae train`` on a labelled CSV, registered as ``cli-test``; its printed output."""
    folder = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(300, 4)), columns=["a", "b", "c", "d"])
    frame["label"] = 0
    frame.loc[:19, ["a", "b"]] += 8
    frame.loc[:19, "label"] = 1
    frame.to_csv(folder / "data.csv", index=False)
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "AnomalyVAE", "params": {"epochs": 10, "random_state": 0}},
        "data": {"source": str(folder / "data.csv"), "label_column": "label"},
        "output": str(folder / "model.safetensors"),
    }))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # the experiment the command creates keeps its artifacts under ./mlruns
        assert main(["train", "--config", str(config), "--registered-model-name", MODEL_NAME]) == 0
    return printed.getvalue()


def test_train_logs_registers_and_prints_how_to_open_and_serve(trained, mlflow_store):
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias(MODEL_NAME, "champion")
    run = client.get_run(version.run_id)
    assert run.data.metrics["eval_roc_auc"] > 0.9
    assert f"mlflow ui --backend-store-uri {mlflow_store}" in trained
    assert f"anomvae serve models:/{MODEL_NAME}@champion --port 5001" in trained
    assert "mlflow_run_id" in trained and version.run_id in trained


def test_promote_command_moves_the_alias_to_a_new_threshold(trained, capsys):
    client = mlflow.MlflowClient()
    before = int(client.get_model_version_by_alias(MODEL_NAME, "champion").version)
    assert main(["promote", MODEL_NAME, "--threshold", "3.5"]) == 0
    out = capsys.readouterr().out
    after = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert int(after.version) == before + 1
    assert float(after.tags["threshold"]) == 3.5
    assert f"{MODEL_NAME} version {after.version} is now @champion\n" in out

    assert main(["promote", MODEL_NAME, "--false-positive-rate", "0.05", "--version", str(before)]) == 0
    latest = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert latest.tags["threshold_calibration"].startswith("false_positive_rate(rate=0.05)")
    assert latest.tags["source_version"] == str(before)


def test_promote_command_says_when_it_creates_an_alias(trained, capsys):
    # New-user finding: a mistyped --alias silently became a new alias on the latest version.
    assert main(["promote", MODEL_NAME, "--alias", "challengr"]) == 0
    assert "is now @challengr (a new alias: @challengr named no version before)" in capsys.readouterr().out
    assert main(["promote", MODEL_NAME, "--alias", "challengr"]) == 0
    assert "a new alias" not in capsys.readouterr().out


def test_promote_command_reports_an_unknown_model_without_traceback(mlflow_store, capsys):
    assert main(["promote", "no-such-model", "--threshold", "1.0"]) == 2
    err = capsys.readouterr().err
    assert "anomvae promote: error:" in err and "no-such-model" in err

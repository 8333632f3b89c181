"""The operations side of the CLI: registry URIs, passthrough columns, Parquet, pipes, monitoring runs."""

import os
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import FAST

import anomvae
from anomvae.cli import main

MODEL_NAME = "cli-operations"
FEATURES = ["a", "b", "c", "d"]


@pytest.fixture(scope="module")
def registered(mlflow_store, tmp_path_factory):
    """A detector registered as ``cli-operations@champion``, its file, and a table with id and ts columns."""
    folder = tmp_path_factory.mktemp("operations")
    rng = np.random.default_rng(3)
    rows = pd.DataFrame(rng.normal(size=(240, 4)), columns=FEATURES)
    rows.loc[:9, ["a", "b"]] += 8
    detector = anomvae.AnomalyVAE(**FAST).fit(rows.iloc[10:])
    with mlflow.start_run() as run:
        anomvae.log_model(detector, name="model", registered_model_name=MODEL_NAME, input_example=rows.iloc[:5])
    detector.save(folder / "model.safetensors")
    table = rows.assign(id=np.arange(len(rows)) + 1000, ts=pd.date_range("2026-01-01", periods=len(rows), freq="h"))
    table.to_csv(folder / "batch.csv", index=False)
    return detector, rows, folder, run.info.run_id


def _native(detector, rows):
    return -detector.score_samples(rows)


@pytest.mark.parametrize("uri", [f"models:/{MODEL_NAME}@champion", f"models:/{MODEL_NAME}/1", "runs"])
def test_score_reads_registry_and_run_uris(registered, uri, capsys):
    detector, rows, folder, run_id = registered
    uri = f"runs:/{run_id}/model" if uri == "runs" else uri
    output = folder / "scored.csv"
    assert main(["score", uri, str(folder / "batch.csv"), "--keep", "id,ts", "-o", str(output)]) == 0
    scored = pd.read_csv(output)
    assert list(scored.columns) == ["id", "ts", "score", "is_anomaly"]
    np.testing.assert_allclose(scored["score"], _native(detector, rows), rtol=1e-6)
    assert scored["id"].tolist() == list(range(1000, 1000 + len(rows)))


def test_score_writes_parquet_with_top_features_and_p_values(registered):
    detector, rows, folder, _ = registered
    output = folder / "scored.parquet"
    assert main(["score", str(folder / "model.safetensors"), str(folder / "batch.csv"), "--keep", "id,ts",
                 "--top-features", "2", "--p-values", "-o", str(output)]) == 0
    with open(output, "rb") as handle:
        assert handle.read(4) == b"PAR1"
    scored = pd.read_parquet(output)
    assert list(scored.columns) == ["id", "ts", "score", "is_anomaly", "top_feature_1", "top_feature_1_score",
                                    "top_feature_2", "top_feature_2_score", "p_value"]
    np.testing.assert_allclose(scored["p_value"], detector.p_values(rows))
    assert scored.loc[:9, "top_feature_1"].isin(["a", "b"]).all()
    assert scored["is_anomaly"].dtype == bool


def test_score_keeps_a_model_column_and_still_scores_it(registered):
    detector, rows, folder, _ = registered
    output = folder / "kept-feature.csv"
    assert main(["score", str(folder / "model.safetensors"), str(folder / "batch.csv"), "--keep", "id,ts,a",
                 "-o", str(output)]) == 0
    scored = pd.read_csv(output)
    assert list(scored.columns) == ["id", "ts", "a", "score", "is_anomaly"]
    np.testing.assert_allclose(scored["score"], _native(detector, rows), rtol=1e-6)


def test_score_of_a_table_with_extra_columns_points_to_keep(registered, capsys):
    _, _, folder, _ = registered
    assert main(["score", str(folder / "model.safetensors"), str(folder / "batch.csv")]) == 2
    err = capsys.readouterr().err
    assert "id" in err and "--keep" in err


def test_columns_are_matched_by_name_wherever_ids_stand_and_in_any_order(tmp_path):
    # Review finding: the CSV reader typed text columns by position, so an id column in front
    # of a text column read "01" as 1 (an unseen category: every score silently changed).
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"a": rng.normal(size=200), "code": rng.choice(["01", "02", "03"], 200),
                         "b": rng.normal(size=200)})
    detector = anomvae.AnomalyVAE(**FAST).fit(rows)
    detector.save(tmp_path / "model.safetensors")
    batch = rows.head(20).copy()
    batch.insert(1, "id", [f"{i:02d}" for i in range(20)])
    batch[["b", "id", "code", "a"]].to_csv(tmp_path / "batch.csv", index=False)
    assert main(["score", str(tmp_path / "model.safetensors"), str(tmp_path / "batch.csv"), "--keep", "id",
                 "-o", str(tmp_path / "scored.csv")]) == 0
    scored = pd.read_csv(tmp_path / "scored.csv", dtype={"id": str})
    np.testing.assert_allclose(scored["score"], _native(detector, rows.head(20)), rtol=1e-6)
    assert scored["id"].tolist() == batch["id"].tolist()
    assert main(["monitor", str(tmp_path / "model.safetensors"), str(tmp_path / "batch.csv"), "--keep", "id"]) == 0
    assert main(["report", str(tmp_path / "model.safetensors"), str(tmp_path / "batch.csv"), "--keep", "id",
                 "-o", str(tmp_path / "report.html")]) == 0


def test_report_reads_true_false_labels_and_names_a_missing_keep_column(tmp_path, capsys):
    rng = np.random.default_rng(1)
    rows = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    anomvae.AnomalyVAE(**FAST).fit(rows).save(tmp_path / "model.safetensors")
    rows.head(40).assign(is_fraud=[True, False] * 20).to_csv(tmp_path / "labelled.csv", index=False)
    model, data = str(tmp_path / "model.safetensors"), str(tmp_path / "labelled.csv")
    assert main(["report", model, data, "--label-column", "is_fraud", "-o", str(tmp_path / "r.html")]) == 0
    assert main(["report", model, data, "--label-column", "is_fraud", "--keep", "nope"]) == 2
    assert "--keep names column(s) ['nope']" in capsys.readouterr().err


def test_the_cli_says_image_models_are_scored_from_python(tmp_path, capsys):
    # Review finding: each error sent the user to the other input form (2-d rows, then images).
    images = np.random.default_rng(0).integers(0, 255, size=(40, 8, 8), dtype=np.uint8)
    anomvae.AnomalyVAE(**FAST).fit(images).save(tmp_path / "images.safetensors")
    np.savez(tmp_path / "batch.npz", X=images[:5].reshape(5, -1))
    for command in ("score", "monitor", "report"):
        assert main([command, str(tmp_path / "images.safetensors"), str(tmp_path / "batch.npz")]) == 2
        assert "image model: the command line reads tables" in capsys.readouterr().err


def test_score_refuses_a_missing_keep_column_and_an_unknown_model(registered, capsys):
    _, _, folder, _ = registered
    assert main(["score", str(folder / "model.safetensors"), str(folder / "batch.csv"), "--keep", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["score", "models:/no-such-model@champion", str(folder / "batch.csv")]) == 2
    err = capsys.readouterr().err
    assert "no-such-model" in err and "tracking store" in err


def test_score_exits_quietly_when_the_reader_closes_the_pipe(registered):
    _, _, folder, _ = registered
    big = folder / "big.csv"
    pd.concat([pd.read_csv(folder / "batch.csv").drop(columns=["id", "ts"])] * 200).to_csv(big, index=False)
    command = f"{sys.executable} -m anomvae.cli score {folder / 'model.safetensors'} {big} | head -n 2"
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
    assert result.stdout.splitlines()[0].startswith("a,b,c,d,score,is_anomaly")
    assert result.stderr == ""


def test_version_and_plain_text_help(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"anomvae {anomvae.__version__}"
    for command in ([], ["train"], ["score"], ["monitor"], ["promote"]):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        assert "``" not in capsys.readouterr().out


@pytest.mark.parametrize("value", ["-1e3", "-1000", "-2.5E-1"])
def test_a_negative_number_with_or_without_an_exponent_is_an_option_value(value):
    # A user's finding: `promote --threshold -1e3` failed with "expected one argument" (argparse reads
    # "-1e3" as an option), while "-1000" worked.
    from anomvae.cli_arguments import build_parser

    assert build_parser().parse_args(["promote", "m", "--threshold", value]).threshold == float(value)
    assert build_parser().parse_args(["monitor", "m", "b.csv", "--significance", value]).significance == float(value)


def test_numbers_are_joined_only_to_options_that_take_a_value_and_never_after_a_double_dash(capsys):
    # A review's findings: "promote -- --threshold -1e3" took "--threshold=-1e3" as the model name, and a
    # flag followed by a number was told of an "explicit argument" the user never wrote.
    from anomvae.cli_arguments import build_parser

    for argv, message in ((["promote", "--", "--threshold", "-1e3"], "unrecognized arguments: -1e3"),
                          (["score", "m", "d.csv", "--p-values", "-1e3"], "unrecognized arguments: -1e3")):
        with pytest.raises(SystemExit):
            build_parser().parse_args(argv)
        assert message in capsys.readouterr().err


def test_promote_names_the_store_and_creates_none(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    result = subprocess.run([sys.executable, "-m", "anomvae.cli", "promote", "card-fraud", "--threshold", "2"],
                            capture_output=True, text=True, cwd=tmp_path,
                            env={key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"})
    assert result.returncode == 2
    assert "no MLflow tracking store" in result.stderr and str(tmp_path) in result.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_serve_from_the_registry_names_the_missing_store_and_creates_none(tmp_path):
    result = subprocess.run([sys.executable, "-m", "anomvae.cli", "serve", "models:/card-fraud@champion"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            env={key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"})
    assert result.returncode == 2
    assert "no MLflow tracking store" in result.stderr and str(tmp_path) in result.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_a_tracking_uri_naming_a_missing_sqlite_file_is_refused_not_created(tmp_path, monkeypatch):
    from anomvae.lifecycle._mlflow import existing_tracking_uri

    missing = tmp_path / "typo.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{missing}")
    with pytest.raises(ValueError, match="names a SQLite file that does not exist"):
        existing_tracking_uri()
    assert not missing.exists()


def test_promote_prints_the_store_it_used(registered, mlflow_store, capsys):
    assert main(["promote", MODEL_NAME]) == 0
    assert f"tracking store  {mlflow_store}" in capsys.readouterr().out


def test_monitor_appends_to_one_run_per_registered_model(registered, capsys):
    _, _, folder, _ = registered
    batch = folder / "monitor.csv"
    pd.read_csv(folder / "batch.csv").drop(columns=["id", "ts"]).to_csv(batch, index=False)
    for uri in (f"models:/{MODEL_NAME}@champion", f"models:/{MODEL_NAME}@champion", f"models:/{MODEL_NAME}/1"):
        assert main(["monitor", uri, str(batch), "--log-to-mlflow"]) == 0
    runs = mlflow.search_runs(search_all_experiments=True, filter_string=f"attributes.run_name = 'monitor-{MODEL_NAME}'",
                              output_format="list")
    assert len(runs) == 1
    history = mlflow.MlflowClient().get_metric_history(runs[0].info.run_id, "monitor.flag_rate")
    assert [point.step for point in history] == [0, 1, 2]
    assert [point.timestamp for point in history] == sorted(point.timestamp for point in history)
    versions = mlflow.MlflowClient().get_metric_history(runs[0].info.run_id, "monitor.model_version")
    assert [(point.step, point.value) for point in versions] == [(0, 1.0), (1, 1.0), (2, 1.0)]
    assert mlflow.active_run() is None


def test_monitoring_runs_never_mix_two_models_and_take_quoted_names(registered, tmp_path, capsys):
    # Review finding: runs:/<id>/model URIs and every file named model.safetensors shared one
    # monitoring run; a quote in a file or run name crashed MLflow's filter with exit code 1.
    from anomvae.lifecycle.monitoring_runs import monitored_name

    names = {monitored_name(uri) for uri in ("runs:/0123abcd/model", "runs:/ffff9999/model",
                                             str(tmp_path / "a" / "model.safetensors"),
                                             str(tmp_path / "b" / "model.safetensors"))}
    assert len(names) == 4
    _, _, folder, _ = registered
    batch = folder / "monitor-quoted.csv"
    pd.read_csv(folder / "batch.csv").drop(columns=["id", "ts"]).to_csv(batch, index=False)
    uri = f"models:/{MODEL_NAME}/1"
    for _ in range(2):
        assert main(["monitor", uri, str(batch), "--log-to-mlflow", "--monitoring-run", "bob's run"]) == 0
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="attributes.run_name = \"bob's run\"",
                              output_format="list")
    assert len(runs) == 1
    assert main(["monitor", uri, str(batch), "--json", str(tmp_path)]) == 2  # a folder: an error, not 1 (alarm)
    assert "error" in capsys.readouterr().err


def test_exit_codes_keep_1_for_alarms_only(monkeypatch, capsys):
    # Review finding: MlflowException subclasses (RestException from a tracking server) and other
    # failures exited 1, which --fail-on-alarm reserves for an alarm.
    from mlflow.exceptions import RestException

    import anomvae.cli as cli

    def refused(args):
        raise RestException({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no model card-fraud"})

    def broken(args):
        raise RuntimeError("boom")

    monkeypatch.setitem(cli.COMMANDS, "score", refused)
    assert main(["score", "m.safetensors", "x.csv"]) == 2
    assert "no model card-fraud" in capsys.readouterr().err
    monkeypatch.setitem(cli.COMMANDS, "score", broken)
    assert main(["score", "m.safetensors", "x.csv"]) == 3
    assert "RuntimeError: boom" in capsys.readouterr().err


def test_a_file_monitored_before_runs_were_keyed_per_file_keeps_its_run(mlflow_store):
    from anomvae.lifecycle import monitoring_runs

    experiment = monitoring_runs._experiment_id()
    with mlflow.start_run(experiment_id=experiment, run_name="monitor-legacy",
                          tags={"anomvae.model_source": "/srv/a/legacy.safetensors"}) as run:
        legacy = run.info.run_id
    with monitoring_runs.monitoring_run("/srv/a/legacy.safetensors") as run:
        assert run.info.run_id == legacy
    with monitoring_runs.monitoring_run("/srv/b/legacy.safetensors") as run:
        assert run.info.run_id != legacy and run.info.run_name.startswith("monitor-legacy-")


def test_train_progress_experiment_and_run_name(tmp_path, mlflow_store):
    frame = pd.DataFrame(np.random.default_rng(0).normal(size=(120, 3)), columns=["x", "y", "z"])
    frame.to_csv(tmp_path / "sensors.csv", index=False)
    (tmp_path / "c.yaml").write_text(
        f"model: {{name: AnomalyVAE, params: {{epochs: 3, random_state: 0}}}}\n"
        f"data: {{source: {tmp_path / 'sensors.csv'}}}\noutput: {tmp_path / 'm.safetensors'}\n"
        "tracking: {registered_model_name: cli-progress}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "anomvae.cli", "train", "--config", str(tmp_path / "c.yaml"),
         "--experiment", "cli-experiment", "--progress"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "anomvae fit" in result.stderr and "INFO" not in result.stderr
    assert "train_flag_rate" in result.stdout
    experiment = mlflow.get_experiment_by_name("cli-experiment")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    run = mlflow.search_runs([experiment.experiment_id], output_format="list")[0]
    assert run.info.run_name.startswith("AnomalyVAE-sensors-")
    assert run.data.params["hidden_dims"] != "None" and run.data.params["latent_dim"] != "None"
    assert [dataset.dataset.name for dataset in run.inputs.dataset_inputs] == ["sensors"]

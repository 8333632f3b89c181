"""Training runs in MLflow, and thresholds changed in the registry without retraining."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import FAST

import anomvae
from anomvae import tracking
from anomvae.persistence import read_document
from anomvae.thresholds import FalsePositiveRate

MODEL_NAME = "tracking-test"


@pytest.fixture(scope="module")
def labelled():
    rng = np.random.default_rng(4)
    normal = rng.normal(size=(260, 5)) @ rng.normal(size=(5, 5))
    outliers = rng.uniform(-8, 8, size=(20, 5))
    X = pd.DataFrame(np.vstack([normal, outliers]), columns=[f"f{i}" for i in range(5)])
    y = np.r_[np.zeros(260, dtype=int), np.ones(20, dtype=int)]
    return X, y


@pytest.fixture(scope="module")
def trained(mlflow_store, labelled):
    X, y = labelled
    detector = anomvae.AnomalyVAE(**FAST)
    result = tracking.fit_and_log(
        detector, X.iloc[:200], y[:200], validation=(X.iloc[200:], y[200:]),
        run_name="unit", registered_model_name=MODEL_NAME,
    )
    return detector, result


def test_run_holds_params_epoch_losses_final_metrics_and_plots(trained):
    detector, result = trained
    client = mlflow.MlflowClient()
    run = client.get_run(result.run_id)
    assert run.data.params["epochs"] == str(FAST["epochs"])
    assert run.data.params["estimator"] == "AnomalyVAE"
    losses = [key for key in detector.history_ if key != "epoch"]
    assert losses and "val_loss" in losses
    for key in losses:
        history = client.get_metric_history(result.run_id, key)
        assert [point.step for point in history] == detector.history_["epoch"]
        np.testing.assert_allclose([point.value for point in history], detector.history_[key])
    metrics = run.data.metrics
    assert metrics["threshold"] == pytest.approx(-detector.offset_)
    for name in ("train_flag_rate", "train_score_q50", "train_score_q99", "training_time_s", "eval_flag_rate",
                 "eval_recall", "eval_false_alarm_rate", "eval_anomaly_share"):
        assert np.isfinite(metrics[name])
    assert metrics["eval_roc_auc"] > 0.8
    assert 0 < metrics["eval_average_precision"] <= 1
    assert "train_roc_auc" not in metrics  # the first 200 rows are all normal: no AUC to compute
    assert run.data.tags["device"] == "cpu"
    low, high = detector.threshold_.rate_interval
    assert metrics["threshold_rate_low"] == pytest.approx(low) and metrics["threshold_rate_high"] == pytest.approx(high)
    assert "threshold_estimated_contamination" in metrics
    assert run.data.tags["threshold_warnings"] == ("; ".join(detector.threshold_.warnings) or "none")
    plots = {item.path for item in client.list_artifacts(result.run_id, "plots")}
    assert plots == {"plots/loss_curves.png", "plots/score_histogram.png", "plots/feature_contributions.png"}


def test_log_training_scores_the_training_and_evaluation_rows_once_each(mlflow_store, labelled, monkeypatch):
    X, y = labelled
    detector = anomvae.AnomalyVAE(**FAST).fit(X.iloc[:200])
    calls = []
    for name in ("anomaly_score", "score_samples", "feature_scores"):
        method = getattr(detector, name)
        monkeypatch.setattr(detector, name, lambda rows, _method=method, _name=name:
                            calls.append((_name, len(rows))) or _method(rows))
    tracking.log_training(detector, X.iloc[:200], y[:200], validation=(X.iloc[200:], y[200:]))
    assert sorted(calls) == [("anomaly_score", 80), ("anomaly_score", 200),
                             ("feature_scores", 80), ("feature_scores", 200)]


def test_a_threshold_that_cannot_honour_its_rate_is_tagged(mlflow_store, labelled):
    X, _ = labelled
    with pytest.warns(anomvae.calibration.ThresholdWarning):
        result = tracking.fit_and_log(anomvae.AnomalyVAE(**FAST), X.iloc[:40], run_name="tiny")
    tags = mlflow.MlflowClient().get_run(result.run_id).data.tags
    assert "cannot be honoured with" in tags["threshold_warnings"]


def test_fit_and_log_registers_and_sets_the_champion_alias(trained):
    _, result = trained
    assert result.serving_uri == f"models:/{MODEL_NAME}@champion"
    version = mlflow.MlflowClient().get_model_version_by_alias(MODEL_NAME, "champion")
    assert int(version.version) == result.version
    assert version.tags["run_id"] == result.run_id
    assert version.tags["threshold_origin"] == "training"


def test_promote_registers_a_new_threshold_without_retraining(trained, labelled, tmp_path):
    detector, result = trained
    X, _ = labelled
    client = mlflow.MlflowClient()
    new_threshold = float(np.quantile(detector.anomaly_score(X), 0.5))
    promoted = tracking.promote(MODEL_NAME, threshold=new_threshold)
    assert int(promoted.version) == result.version + 1
    assert int(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == int(promoted.version)
    assert float(promoted.tags["threshold"]) == new_threshold
    assert promoted.tags["source_version"] == str(result.version)
    assert "not retrained" in promoted.tags["threshold_origin"]
    assert promoted.tags["threshold_calibration"].startswith(f"fixed_score(value={new_threshold!r})")

    old = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{result.version}").predict(X)
    new = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion").predict(X)
    np.testing.assert_array_equal(new["score"], old["score"])
    np.testing.assert_array_equal(new["is_anomaly"], new["score"] > new_threshold)
    assert new["is_anomaly"].mean() == pytest.approx(0.5, abs=0.01)

    weights = [
        read_document(Path(mlflow.artifacts.download_artifacts(
            f"models:/{MODEL_NAME}/{version}/artifacts/detector.safetensors", dst_path=str(tmp_path / str(version))
        )))[0]
        for version in (result.version, promoted.version)
    ]
    assert weights[0]["sha256"] == weights[1]["sha256"]

    names = [logged.name for logged in mlflow.search_logged_models(
        filter_string=f"source_run_id = '{result.run_id}'", output_format="list")]
    assert "model" in names and any(name.startswith(f"model-from-v{result.version}-") for name in names)
    trained_in_run = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model").predict(X)
    np.testing.assert_array_equal(trained_in_run["is_anomaly"], old["is_anomaly"])  # still the trained model

    back = tracking.promote(MODEL_NAME, version=result.version)
    assert int(back.version) == result.version
    assert int(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == result.version


def test_promote_recalibrates_a_strategy_on_the_stored_reference_scores(trained):
    detector, result = trained
    promoted = tracking.promote(MODEL_NAME, threshold=FalsePositiveRate(0.2), version=result.version, alias="fpr")
    expected = copy.deepcopy(detector).set_threshold(FalsePositiveRate(0.2))
    assert float(promoted.tags["threshold"]) == pytest.approx(-expected.offset_, rel=1e-12)
    assert promoted.tags["threshold_calibration"].startswith("false_positive_rate(rate=0.2)")
    assert int(mlflow.MlflowClient().get_model_version_by_alias(MODEL_NAME, "fpr").version) == int(promoted.version)


def test_promote_warns_when_the_threshold_flags_most_reference_rows(trained, labelled):
    detector, result = trained
    lowest = float(np.min(detector.anomaly_score(labelled[0])))
    with pytest.warns(UserWarning, match="flags 100% of the reference rows"):
        tracking.promote(MODEL_NAME, threshold=lowest - 1.0, version=result.version, alias="everything")


@pytest.mark.parametrize("alias", ["latest", "v1", "bad alias!", ""])
def test_an_alias_the_registry_refuses_is_refused_before_anything_is_trained(alias, labelled):
    # Review finding: `mlflow run ... -P alias=latest` trained, logged and registered a version,
    # then failed on the alias, leaving versions without one.
    X, y = labelled
    detector = anomvae.AnomalyVAE(epochs=1, random_state=0)
    client = mlflow.MlflowClient()
    before = len(client.search_model_versions(f"name = '{MODEL_NAME}'"))
    with pytest.raises(ValueError, match="cannot be used"):
        tracking.fit_and_log(detector, X, y, registered_model_name=MODEL_NAME, alias=alias)
    assert not hasattr(detector, "scorer_")
    with pytest.raises(ValueError, match="cannot be used"):
        tracking.promote(MODEL_NAME, threshold=1.0, alias=alias)
    assert len(client.search_model_versions(f"name = '{MODEL_NAME}'")) == before


@pytest.mark.parametrize("name, message", [("team/fraud", "cannot contain '/'"), ("card@eu", "starts an alias"),
                                           ("card?eu", "starts a query"), ("card\neu", "control character"),
                                           ("", "cannot be used")])
def test_a_registered_model_name_the_registry_refuses_is_refused_before_anything_is_trained(name, message, labelled):
    X, y = labelled
    detector = anomvae.AnomalyVAE(epochs=1, random_state=0)
    runs = len(mlflow.search_runs(search_all_experiments=True))
    with pytest.raises(ValueError, match=message):
        tracking.fit_and_log(detector, X, y, registered_model_name=name)
    with pytest.raises(ValueError, match=message):
        anomvae.autolog(registered_model_name=name)
    assert not hasattr(detector, "scorer_")
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs


@pytest.mark.parametrize("labels, validation, message", [
    (np.full(280, -1), None, "pass \\(y == -1\\)"),
    (np.zeros(279, dtype=int), None, "one label per row: 279 labels for 280 rows"),
    (None, "not a pair", "pair \\(X_eval, y_eval\\)"),
    (np.zeros((140, 2), dtype=int), None, "one column of labels, got shape \\(140, 2\\)"),
    (None, "wrong columns", "missing \\['f4'\\], extra \\[\\]"),
])
def test_labels_that_do_not_fit_their_rows_are_refused_before_anything_is_trained(labels, validation, message,
                                                                                   labelled):
    X, _ = labelled
    if validation == "wrong columns":
        validation = (X.iloc[:20, :4], np.zeros(20, dtype=int))
    detector = anomvae.AnomalyVAE(epochs=1, random_state=0)
    runs = len(mlflow.search_runs(search_all_experiments=True))
    with pytest.raises((ValueError, TypeError), match=message):
        tracking.fit_and_log(detector, X, labels, validation=validation)
    assert not hasattr(detector, "scorer_")
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs


def test_promote_inside_a_run_of_the_callers_logs_nothing_into_it(trained):
    detector, result = trained
    with mlflow.start_run(run_name="caller") as caller:
        tracking.promote(MODEL_NAME, threshold=100.0, version=result.version, alias="inside")
        assert mlflow.active_run().info.run_id == caller.info.run_id
    assert mlflow.search_logged_models(filter_string=f"source_run_id = '{caller.info.run_id}'",
                                       output_format="list") == []


def test_promote_logs_into_a_new_run_when_the_training_run_was_deleted(mlflow_store, labelled):
    X, y = labelled
    name = "tracking-test-deleted-run"
    trained = tracking.fit_and_log(anomvae.AnomalyVAE(**FAST), X, y, registered_model_name=name)
    mlflow.MlflowClient().delete_run(trained.run_id)
    promoted = tracking.promote(name, threshold=100.0)
    run = mlflow.get_run(promoted.run_id)
    assert run.info.run_name == f"promote-{name}-v{trained.version}"
    assert run.info.experiment_id == mlflow.get_run(trained.run_id).info.experiment_id
    assert run.data.tags["source_run_id"] == trained.run_id
    assert mlflow.MlflowClient().get_model_version_by_alias(name, "champion").version == promoted.version


def test_text_labels_are_read_as_numbers_in_every_figure(mlflow_store, labelled, monkeypatch):
    from anomvae.lifecycle import plots

    X, y = labelled
    seen = []
    histogram = plots.score_histogram
    monkeypatch.setattr(plots, "score_histogram",
                        lambda *args, **kwargs: seen.append(args[2]) or histogram(*args, **kwargs))
    tracking.fit_and_log(anomvae.AnomalyVAE(**FAST), X, pd.Series(y).map({0: "false", 1: "true"}),
                         log_model=False)
    np.testing.assert_array_equal(seen[0], y)


def test_promote_works_from_another_experiment_and_with_a_quote_in_the_name(mlflow_store, labelled, monkeypatch):
    # Review findings: MLflow refused to resume the training run while another experiment was
    # active, and the version search broke on the quote.
    from mlflow.tracking import fluent

    X, y = labelled
    name = "bob's model"
    trained = tracking.fit_and_log(anomvae.AnomalyVAE(**FAST), X, y, registered_model_name=name, alias=None,
                                   experiment_name="promote-source")
    # What mlflow.set_experiment("promote-elsewhere") does in this process, set back afterwards.
    monkeypatch.setattr(fluent, "_active_experiment_id", mlflow.create_experiment("promote-elsewhere"))
    with mlflow.start_run():
        promoted = tracking.promote(name, threshold=100.0)
    assert promoted.run_id == trained.run_id and int(promoted.version) == trained.version + 1


def test_promote_refuses_a_non_finite_threshold(trained):
    with pytest.raises(ValueError, match="finite number"):
        tracking.promote(MODEL_NAME, threshold=float("nan"))


def test_mlflow_is_lazy_and_the_default_store_is_sqlite_in_the_working_directory(tmp_path):
    environment = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    code = (
        "import sys, anomvae; assert 'mlflow' not in sys.modules, 'importing anomvae imported mlflow'; "
        "print(anomvae.tracking.use_default_tracking_uri())"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=environment, capture_output=True, text=True,
        timeout=120, check=True,
    ).stdout.strip()
    assert output == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"


def test_explicit_tracking_uri_is_kept(mlflow_store):
    assert tracking.use_default_tracking_uri() == mlflow_store


def test_fit_and_log_reads_a_pyarrow_table_as_fit_does(mlflow_store, labelled):
    # Review finding: fit took a pyarrow Table, but fit_and_log's column check failed on it with
    # "unhashable type: 'pyarrow.lib.ChunkedArray'".
    import pyarrow as pa

    X, y = labelled
    table = pa.Table.from_pandas(X.assign(zone=np.where(y == 1, "b", "a")))
    detector = anomvae.AnomalyVAE(**FAST)
    result = tracking.fit_and_log(detector, table, y, validation=(table, y))
    assert list(detector.feature_names_in_) == [*X.columns, "zone"]
    assert mlflow.get_run(result.run_id).data.metrics["eval_roc_auc"] > 0.5


def test_next_steps_quote_names_a_shell_would_split(mlflow_store):
    # A platform engineer's trial: "anomvae serve models:/with space@champion" could not be pasted.
    from anomvae.lifecycle.tracking import next_steps

    serve = next_steps("models:/with space@champion")[1]
    assert "anomvae serve 'models:/with space@champion' --port 5001" in serve
    assert "anomvae serve models:/card@champion --port" in next_steps("models:/card@champion")[1]


def test_an_experiment_name_the_active_run_overrides_is_named_in_a_warning(mlflow_store, labelled, monkeypatch):
    # Left open by a trial: a config's tracking.experiment was ignored without a word under `mlflow run`.
    X, _ = labelled
    with mlflow.start_run(experiment_id=mlflow.create_experiment("chosen-by-caller")) as outer:
        with pytest.warns(UserWarning, match="experiment 'mine' is ignored: the run belongs to the experiment "
                                             "'chosen-by-caller' \\(it is logged to the active run\\)"):
            tracking.fit_and_log(anomvae.AnomalyVAE(**FAST), X, experiment_name="mine", log_model=False)
    assert mlflow.get_experiment_by_name("mine") is None
    assert mlflow.get_run(outer.info.run_id).info.experiment_id == outer.info.experiment_id
    monkeypatch.setenv("MLFLOW_RUN_ID", outer.info.run_id)  # as `mlflow run` launches the entry point
    with pytest.warns(UserWarning, match="mlflow run --experiment-name"):
        tracking.fit_and_log(anomvae.AnomalyVAE(**FAST), X, experiment_name="mine", log_model=False)

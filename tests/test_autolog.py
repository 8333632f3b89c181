"""anomvae.autolog(): every anomvae fit logged to MLflow, with the model in the safe format."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import FAST
from sklearn.model_selection import GridSearchCV, StratifiedKFold

import anomvae
from anomvae.lifecycle import tracking
from anomvae.metrics import outlier_roc_auc


@pytest.fixture
def autologging(mlflow_store):
    anomvae.autolog()
    yield
    anomvae.autolog(disable=True)


def test_fit_logs_params_metrics_report_and_model(autologging, blobs):
    normal, outliers = blobs
    detector = anomvae.AnomalyVAE(**FAST).fit(normal)
    run = mlflow.last_active_run()
    assert run.info.run_name.startswith("AnomalyVAE-")
    assert run.data.params["epochs"] == str(FAST["epochs"]) and run.data.params["latent_dim"] != "None"
    assert run.data.metrics["threshold"] == pytest.approx(-detector.offset_)
    assert run.data.tags["anomvae.autolog"] == "true"
    artifacts = {item.path for item in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert "report.html" in artifacts
    model = mlflow.pyfunc.load_model(mlflow.search_logged_models(filter_string=f"source_run_id = '{run.info.run_id}'",
                                                                 output_format="list")[0].model_uri)
    frame = pd.DataFrame(outliers, columns=[f"x{i}" for i in range(outliers.shape[1])])
    np.testing.assert_allclose(model.predict(frame)["score"], -detector.score_samples(outliers), rtol=1e-6)


def test_fit_inside_an_active_run_logs_into_it(autologging, blobs):
    normal, _ = blobs
    with mlflow.start_run() as run:
        anomvae.AnomalyVAEGAN(**FAST).fit(normal)
    assert mlflow.MlflowClient().get_run(run.info.run_id).data.params["estimator"] == "AnomalyVAEGAN"


def test_grid_search_inside_an_active_run_logs_each_fit_as_a_child_run(autologging, blobs):
    # Review finding: every fit logged into the one active run, the second candidate's params
    # clashed, its fit raised, and GridSearchCV scored it NaN and picked the first.
    normal, outliers = blobs
    X = np.vstack([normal, outliers])
    y = np.r_[np.zeros(len(normal)), np.ones(len(outliers))]
    search = GridSearchCV(anomvae.AnomalyVAE(**FAST), {"latent_dim": [2, 3]}, scoring=outlier_roc_auc,
                          cv=StratifiedKFold(2, shuffle=True, random_state=0))
    with mlflow.start_run() as parent:
        search.fit(X, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    children = mlflow.search_runs(filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                                  output_format="list")
    assert len(children) == 4  # 2 candidates x 2 folds + the refit, the first of which went into the parent
    assert {run.data.params["latent_dim"] for run in children} == {"2", "3"}


def test_a_fit_that_cannot_be_logged_warns_and_still_fits(autologging, blobs):
    normal, _ = blobs
    with mlflow.start_run():
        mlflow.log_param("latent_dim", "99")  # the user's own param: the fit's value clashes with it
        with pytest.warns(anomvae.AutologWarning, match="could not log the fit"):
            detector = anomvae.AnomalyVAE(latent_dim=2, **FAST).fit(normal)
    assert hasattr(detector, "threshold_")


def test_an_artifact_store_that_refuses_writes_warns_and_still_fits(autologging, blobs, tmp_path, monkeypatch):
    # Review finding: an unwritable artifact location raised out of fit (only MLflow's own errors were caught).
    normal, _ = blobs
    (tmp_path / "a-file").write_text("")
    experiment = mlflow.create_experiment("unwritable-artifacts", artifact_location=str(tmp_path / "a-file" / "art"))
    with mlflow.start_run(experiment_id=experiment) as users_run:
        with pytest.warns(anomvae.AutologWarning, match="could not log the fit"):
            detector = anomvae.AnomalyVAE(**FAST).fit(normal)
        assert mlflow.active_run().info.run_id == users_run.info.run_id  # the user's run is left open
    assert hasattr(detector, "threshold_")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", experiment)  # a run of autolog's own, in that experiment
    with pytest.warns(anomvae.AutologWarning, match="could not log the fit"):
        anomvae.AnomalyVAE(**FAST).fit(normal)
    runs = mlflow.search_runs([experiment], order_by=["attributes.start_time DESC"], output_format="list")
    assert [run.info.status for run in runs] == ["FAILED", "FINISHED"]  # autolog's run, then the user's


def test_fit_and_log_is_not_logged_twice(autologging, blobs):
    normal, _ = blobs
    result = tracking.fit_and_log(anomvae.AnomalyVAE(**FAST), normal, log_model=False)
    run = mlflow.MlflowClient().get_run(result.run_id)
    assert "anomvae.autolog" not in run.data.tags
    assert mlflow.last_active_run().info.run_id == result.run_id
    assert len(mlflow.MlflowClient().get_metric_history(result.run_id, "threshold")) == 1


def test_disable_restores_plain_fit(mlflow_store, blobs):
    normal, _ = blobs
    anomvae.autolog()
    anomvae.autolog(disable=True)
    before = mlflow.last_active_run()
    anomvae.AnomalyVAE(**FAST).fit(normal)
    after = mlflow.last_active_run()
    assert (before is None and after is None) or before.info.run_id == after.info.run_id

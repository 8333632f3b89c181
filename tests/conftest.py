"""Shared fixtures: small data, fast estimator settings, the shared data folder."""

import os

import numpy as np
import pytest
import torch

from anomvae.datasets import shared_data_dir

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))

FAST = {"epochs": 5, "batch_size": 64, "random_state": 0}
"""Settings that train in well under a second on small data."""


@pytest.fixture
def fast_params():
    return dict(FAST)


@pytest.fixture
def blobs():
    """200 normal rows in 6 correlated features and 10 clear outliers."""
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(200, 2))
    mixing = rng.normal(size=(2, 6))
    normal = latent @ mixing + 0.1 * rng.normal(size=(200, 6))
    outliers = rng.uniform(-6, 6, size=(10, 6))
    return normal, outliers


@pytest.fixture(scope="session")
def shared_data():
    folder = shared_data_dir()
    if folder is None and os.environ.get("CI"):
        pytest.fail("CI must have ../shared/data beside the checkout, and it is missing")
    if folder is None:
        pytest.skip("../shared/data is not on this machine (set ANOMVAE_DATA to its path)")
    return folder


def pytest_sessionfinish(session, exitstatus):
    """A run in which no test passed is a failure, not a green skip."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    passed = len(reporter.stats.get("passed", [])) if reporter else 0
    if exitstatus == 0 and passed == 0:
        session.exitstatus = 1


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory):
    """One SQLite MLflow store for the session, artifacts in a temporary folder.

    Creating the database takes seconds, so the MLflow tests share it (each
    uses its own registered model names). The tracking URI and experiment are
    set through the environment, which ``mlflow models serve`` and
    ``mlflow run`` subprocesses inherit.
    """
    import mlflow

    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        mlflow.MlflowClient().create_experiment("anomvae-tests", artifact_location=(folder / "artifacts").as_uri())
        patch.setenv("MLFLOW_EXPERIMENT_NAME", "anomvae-tests")
        yield uri

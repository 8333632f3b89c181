"""The MLflow project in ``mlflow/``: its environment file, and ``mlflow run`` for real."""

import subprocess
import sys
import tomllib
from pathlib import Path

import mlflow
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "mlflow"


def test_project_folder_cannot_shadow_the_mlflow_package():
    assert not (PROJECT / "__init__.py").exists()
    code = "import importlib.util; print(importlib.util.find_spec('mlflow').origin)"
    location = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    ).stdout.strip()
    assert location and not location.startswith(str(PROJECT))


def test_environment_file_lists_the_package_dependencies():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    environment = yaml.safe_load((PROJECT / "python_env.yaml").read_text())
    assert environment["dependencies"] == declared


@pytest.mark.slow
def test_mlflow_run_trains_registers_and_sets_the_champion_alias(mlflow_store, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": "AnomalyVAE", "params": {"epochs": 3, "random_state": 0}},
        "data": {"source": "embedded"},
        "output": str(tmp_path / "model.safetensors"),
    }))
    result = subprocess.run(
        [sys.executable, "-m", "mlflow", "run", str(PROJECT), "-P", f"config={config}",
         "-P", "registered_model_name=project-test", "--env-manager", "local"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    version = mlflow.MlflowClient().get_model_version_by_alias("project-test", "champion")
    run = mlflow.MlflowClient().get_run(version.run_id)
    assert run.data.tags["mlflow.source.type"] == "PROJECT"
    assert run.data.metrics["eval_roc_auc"] > 0.5
    assert (tmp_path / "model.safetensors").is_file()

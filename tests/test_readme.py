"""The README's Python blocks run as written, one after the other, against a temporary MLflow store."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def test_readme_has_python_blocks():
    assert len(PYTHON_BLOCK.findall(README.read_text())) >= 3


def test_readme_python_blocks_run_as_written(mlflow_store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    for number, block in enumerate(PYTHON_BLOCK.findall(README.read_text()), start=1):
        try:
            exec(compile(block, f"README.md python block {number}", "exec"), namespace)
        except Exception as error:  # noqa: BLE001 - name the block that failed
            pytest.fail(f"README python block {number} failed: {error!r}\n{block}")
    predictions = namespace["model"].predict(namespace["X_new"])
    assert len(predictions) == len(namespace["X_new"]) and predictions["is_anomaly"].any()

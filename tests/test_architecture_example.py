"""The "add a model" steps of docs/architecture.md work as written: the example model's
files, copied from the document into a package of their own, fit, score, save and load
after one call to ``anomvae.registry.register``, touching no shared file."""

import importlib
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import anomvae
from anomvae import registry

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
BLOCK = re.compile(r"```python example-model: (\S+)\n(.*?)```", re.S)


@pytest.fixture
def tiny_package(tmp_path, monkeypatch):
    package = tmp_path / "tiny_model"
    package.mkdir()
    for name, code in BLOCK.findall(DOC.read_text()):
        (package / name).write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield importlib.import_module("tiny_model")
    for name in [module for module in sys.modules if module.startswith("tiny_model")]:
        del sys.modules[name]


def test_the_documented_example_model_fits_scores_saves_and_loads(tiny_package, tmp_path):
    assert {"scorer.py", "estimator.py", "__init__.py"} <= {p.name for p in (tmp_path / "tiny_model").iterdir()}
    TinyVAE = tiny_package.TinyVAE
    rows = np.random.default_rng(0).normal(size=(120, 5))
    outliers = np.full((5, 5), 6.0)
    detector = TinyVAE(epochs=5, batch_size=32, random_state=0).fit(rows)
    assert detector.scorer_.n_train == 108  # on_fit_start saw the training size
    assert detector.anomaly_score(outliers).min() > np.median(detector.anomaly_score(rows))
    assert "epochs : int, default=100" in TinyVAE.__doc__  # shared parameters composed in
    assert "TinyVAE" not in registry.names()
    registry.register(TinyVAE)
    try:
        path = tmp_path / "tiny.safetensors"
        detector.save(path)
        loaded = anomvae.load(path, device="cpu")
        np.testing.assert_array_equal(loaded.anomaly_score(rows), detector.anomaly_score(rows))
    finally:
        registry.unregister("TinyVAE")
    with pytest.raises(anomvae.ModelFormatError, match="unknown estimator class 'TinyVAE'"):
        anomvae.load(path)


def test_the_example_model_passes_the_parameter_checks(tiny_package):
    from sklearn.base import clone

    detector = tiny_package.TinyVAE(beta=0.5, epochs=3)
    assert clone(detector).get_params() == detector.get_params()
    with pytest.raises(ValueError, match="beta"):
        tiny_package.TinyVAE(beta=-1.0).fit(np.zeros((10, 2)))
    with pytest.raises(TypeError, match="unexpected keyword argument 'gamma'"):
        tiny_package.TinyVAE(gamma=1.0)

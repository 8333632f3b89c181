"""Registration without import side effects: built-in models load in a fresh process,
unknown class names are a clear ModelFormatError, and classes of your own are registered
explicitly."""

import json
import subprocess
import sys

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import anomvae
from anomvae import ModelFormatError, registry
from anomvae.persistence import DESCRIPTION_DIGEST_KEY, METADATA_KEY, description_digest

FAST = dict(epochs=2, batch_size=32, random_state=0)


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    rows = np.random.default_rng(0).normal(size=(80, 4))
    folder = tmp_path_factory.mktemp("models")
    paths = {}
    for name, estimator_class in registry.estimators().items():
        detector = estimator_class(**FAST).fit(rows)
        paths[name] = (folder / f"{name}.safetensors", detector.anomaly_score(rows[:5]).tolist())
        detector.save(paths[name][0])
    return rows, paths


def test_every_built_in_model_loads_in_a_fresh_process(saved_models):
    rows, paths = saved_models
    code = (
        "import json, sys, numpy as np\n"
        "from anomvae.persistence import load\n"
        "rows = np.array(json.loads(sys.argv[1]))\n"
        "out = {}\n"
        "for name, path in json.loads(sys.argv[2]).items():\n"
        "    model = load(path, device='cpu')\n"
        "    out[name] = [type(model).__name__, model.anomaly_score(rows).tolist()]\n"
        "print(json.dumps(out))\n"
    )
    arguments = [json.dumps(rows[:5].tolist()), json.dumps({n: str(p) for n, (p, _) in paths.items()})]
    run = subprocess.run([sys.executable, "-c", code, *arguments], capture_output=True, text=True,
                         check=True, timeout=300)
    loaded = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(loaded) == set(registry.BUILT_IN)
    for name, (class_name, scores) in loaded.items():
        assert class_name == name
        np.testing.assert_array_equal(scores, paths[name][1])


def test_unknown_class_name_is_a_model_format_error_naming_it(saved_models, tmp_path):
    _, paths = saved_models
    source = paths["AnomalyVAE"][0]
    with safe_open(str(source), framework="pt") as handle:
        document = json.loads(handle.metadata()[METADATA_KEY])
    document["estimator"] = "AnomalyFromANewerVersion"
    document[DESCRIPTION_DIGEST_KEY] = description_digest(document)  # a file written by a newer anomvae
    forged = tmp_path / "forged.safetensors"
    save_file(load_file(str(source)), str(forged), metadata={METADATA_KEY: json.dumps(document)})
    with pytest.raises(ModelFormatError, match="unknown estimator class 'AnomalyFromANewerVersion'.*AnomalyVAE"):
        anomvae.load(forged)


def test_register_refuses_clashes_and_non_estimators():
    with pytest.raises(ValueError, match="already registered"):
        registry.register(type("AnomalyVAE", (anomvae.AnomalyVAE,), {}))
    with pytest.raises(TypeError, match="BaseDeepDetector subclass"):
        registry.register(dict)
    with pytest.raises(KeyError, match="unknown estimator class 'Nope'"):
        registry.get("Nope")


def test_defining_a_subclass_registers_nothing():
    class _Variant(anomvae.AnomalyVAE):
        pass

    class Variant(anomvae.AnomalyVAE):
        pass

    assert "Variant" not in registry.names()
    registry.register(Variant)
    try:
        assert registry.get("Variant") is Variant
    finally:
        registry.unregister("Variant")
    assert "Variant" not in registry.names()

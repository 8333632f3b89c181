"""A logged model carries what it needs to be rebuilt on a machine without anomvae."""

import email
import subprocess
import sys
import zipfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import FAST
from mlflow.artifacts import download_artifacts

import anomvae
from anomvae.lifecycle import packaging

SCORE_SCRIPT = """
import sys
import mlflow.pyfunc, numpy as np, pandas as pd
import anomvae
assert "site-packages" in anomvae.__file__, anomvae.__file__
model = mlflow.pyfunc.load_model(sys.argv[1])
rows = pd.read_csv(sys.argv[2])
np.save(sys.argv[3], model.predict(rows)["score"].to_numpy())
"""


@pytest.fixture(scope="module")
def logged(mlflow_store, tmp_path_factory):
    rng = np.random.default_rng(5)
    rows = pd.DataFrame(rng.normal(size=(150, 4)), columns=["a", "b", "c", "d"])
    detector = anomvae.AnomalyVAE(**FAST).fit(rows)
    info = anomvae.log_model(detector, name="model", input_example=rows.iloc[:5])
    folder = Path(download_artifacts(info.model_uri, dst_path=str(tmp_path_factory.mktemp("model"))))
    return detector, rows, folder


def test_requirements_install_the_stored_wheel_and_pin_every_dependency(logged):
    _, _, folder = logged
    lines = (folder / "requirements.txt").read_text().split()
    wheel = f"artifacts/anomvae-{anomvae.__version__}-py3-none-any.whl"
    assert lines[0] == wheel and (folder / wheel).is_file()
    pinned = dict(line.split("==") for line in lines[1:])
    assert set(packaging.runtime_dependencies()) | {"mlflow"} == set(pinned)
    assert pinned["torch"] == packaging.installed_version("torch")
    assert "+" not in pinned["torch"]


def test_wheel_holds_the_package_and_its_metadata(tmp_path):
    wheel = packaging.build_wheel(tmp_path)
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = email.message_from_bytes(archive.read(f"anomvae-{anomvae.__version__}.dist-info/METADATA"))
    assert {"anomvae/__init__.py", "anomvae/pyfunc.py", "anomvae/models/vae/__init__.py"} <= names
    assert not any("__pycache__" in name for name in names)
    assert metadata["Name"] == "anomvae"
    assert any(requirement.startswith("torch") for requirement in metadata.get_all("Requires-Dist"))
    assert packaging.build_wheel(tmp_path / "again").read_bytes() == wheel.read_bytes()


@pytest.mark.parametrize("site_packages", [
    pytest.param(False, marks=pytest.mark.slow, id="empty"),
    pytest.param(True, id="beside-the-installed-dependencies"),
])
def test_model_installs_and_scores_in_a_fresh_virtualenv(logged, tmp_path, site_packages):
    """pip installs requirements.txt into a new virtualenv; the model scores there like native.

    Only the package indexes configured for pip are used; torch is pinned to
    the version installed here, so no other build is downloaded. The empty
    virtualenv installs every dependency (two minutes, so under ``-m slow``);
    the default run's sees the installed ones (``--system-site-packages``),
    so pip still resolves every pin against them and installs the stored
    wheel, which the scoring process imports from the virtualenv.
    """
    detector, rows, folder = logged
    environment = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", *(["--system-site-packages"] if site_packages else []),
                    str(environment)], check=True)
    python = environment / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", "requirements.txt"],
        cwd=folder, capture_output=True, text=True,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    rows.to_csv(tmp_path / "rows.csv", index=False)
    scored = subprocess.run(
        [str(python), "-c", SCORE_SCRIPT, str(folder), str(tmp_path / "rows.csv"), str(tmp_path / "scores.npy")],
        cwd=tmp_path, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert scored.returncode == 0, scored.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "scores.npy"), -detector.score_samples(rows), rtol=1e-6)

"""Image requests to a real ``mlflow models serve`` process, in both documented forms.

Slow (one server start per form); the same requests go through MLflow's
``/invocations`` handler in the default run (``test_mlflow_images.py``).
"""

import json

import numpy as np
import pytest
from conftest import FAST
from model_server import post, serving

import anomvae
from anomvae.lifecycle import serving_inputs

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("image_format", ["tensor", "png"])
def test_served_image_scores_equal_native_scores(mlflow_store, tmp_path, image_format):
    rng = np.random.default_rng(8)
    images = rng.integers(0, 40, size=(30, 1, 8, 8), dtype=np.uint8)
    images[:, :, 2:5, 2:5] = 230
    detector = anomvae.AnomalyVAE(**FAST).fit(images)
    name = f"serving-images-{image_format}"
    anomvae.log_model(detector, registered_model_name=name, input_example=images[:3], image_format=image_format,
                      alias="champion")
    if image_format == "tensor":
        body = {"inputs": images.astype(np.float32).tolist()}
    else:
        body = {"dataframe_split": {"columns": ["image"], "data": [[text] for text in serving_inputs.encode_png(images)]}}
    with serving(f"models:/{name}@champion", tmp_path / "server.log") as url:
        status, answer = post(f"{url}/invocations", json.dumps(body))
        assert status == 200, answer
        served = [row["score"] for row in answer["predictions"]]
        np.testing.assert_allclose(served, detector.anomaly_score(images), rtol=1e-12)
        status, answer = post(f"{url}/invocations", json.dumps({"inputs": [[[1.0]]]}) if image_format == "tensor"
                              else json.dumps({"dataframe_split": {"columns": ["image"], "data": [["not png"]]}}))
        assert 400 <= status < 500, answer

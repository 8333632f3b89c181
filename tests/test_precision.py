"""AnomalyVAE's bfloat16 matrix products on the CPU: chosen in fit, kept by saved models, batch-independent."""

import pickle

import numpy as np
import pytest
import torch

import anomvae
from anomvae import AnomalyVAE
from anomvae.device import inference_autocast, native_bfloat16
from anomvae.inference import map_batches
from anomvae.neighbours import kth_neighbour_distance


def _rows(n_rows, n_features, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_rows, 4)) @ rng.normal(size=(4, n_features)) + 0.1 * rng.normal(size=(n_rows, n_features))


@pytest.fixture(scope="module")
def bf16_model():
    return AnomalyVAE(precision="bfloat16", epochs=3, random_state=0).fit(_rows(300, 12))


def test_precision_is_validated_in_fit():
    detector = AnomalyVAE(precision="half")
    with pytest.raises(ValueError, match="precision"):
        detector.fit(_rows(50, 3))


def test_auto_keeps_narrow_tables_in_float32():
    detector = AnomalyVAE(epochs=1, random_state=0).fit(_rows(100, 6))
    assert detector.precision_ == "float32" and detector.scorer_.dtype == torch.float32


def test_auto_multiplies_wide_tables_in_bfloat16_where_the_cpu_does_it_natively():
    detector = AnomalyVAE(epochs=1, random_state=0, device="cpu").fit(_rows(64, 200))
    expected = "bfloat16" if native_bfloat16(torch.device("cpu")) else "float32"
    assert detector.precision_ == expected


def test_float32_is_kept_when_asked_at_any_width():
    detector = AnomalyVAE(precision="float32", epochs=1, random_state=0).fit(_rows(64, 200))
    assert detector.precision_ == "float32"


def test_bfloat16_scores_are_finite_close_to_float32_and_batch_independent(bf16_model):
    X = _rows(200, 12, seed=1)
    scores = bf16_model.score_samples(X)
    assert bf16_model.precision_ == "bfloat16" and bf16_model.scorer_.dtype == torch.bfloat16
    assert np.isfinite(scores).all()
    for rows in (slice(0, 1), slice(3, 8), slice(17, 50), slice(100, 200)):
        np.testing.assert_array_equal(bf16_model.score_samples(X[rows]), scores[rows])
    scorer = bf16_model.scorer_
    full = -map_batches(scorer.anomaly_score, bf16_model.encoder_.transform(X), scorer.device, dtype=torch.float32)
    np.testing.assert_allclose(scores, full, rtol=5e-2)
    assert np.corrcoef(np.argsort(np.argsort(scores)), np.argsort(np.argsort(full)))[0, 1] > 0.99


def test_saved_and_pickled_models_keep_the_precision(bf16_model, tmp_path):
    X = _rows(40, 12, seed=2)
    bf16_model.save(tmp_path / "model")
    loaded = anomvae.load(tmp_path / "model")
    assert loaded.precision_ == "bfloat16" and loaded.scorer_.matmul_dtype == torch.bfloat16
    np.testing.assert_array_equal(loaded.score_samples(X), bf16_model.score_samples(X))
    unpickled = pickle.loads(pickle.dumps(bf16_model))
    np.testing.assert_array_equal(unpickled.score_samples(X), bf16_model.score_samples(X))


def test_neighbour_distances_stay_exact_under_bfloat16_autocast():
    generator = torch.Generator().manual_seed(0)
    reference, queries = torch.randn(300, 8, generator=generator), torch.randn(50, 8, generator=generator)
    expected = kth_neighbour_distance(queries, reference, 5)
    with torch.inference_mode(), inference_autocast(torch.device("cpu"), torch.bfloat16):
        distances = kth_neighbour_distance(queries, reference, 5)
    assert distances.dtype == torch.float32
    torch.testing.assert_close(distances, expected, rtol=0, atol=0)


def test_networks_that_score_in_float64_stay_in_full_precision():
    images = np.random.default_rng(0).integers(0, 255, size=(20, 1, 8, 8)).astype(np.uint8)
    with pytest.warns(UserWarning, match="precision='bfloat16' applies to dense networks"):
        detector = AnomalyVAE(precision="bfloat16", epochs=1, random_state=0).fit(images)
    assert detector.precision_ == "float32"
    detector = AnomalyVAE(latent_dim=1, epochs=1, random_state=0).fit(_rows(64, 200))
    assert detector.precision_ == "float32" and detector.scorer_.dtype == torch.float64


def test_a_model_file_with_an_unknown_precision_is_refused(bf16_model, tmp_path):
    bf16_model.precision_ = "float64"
    try:
        bf16_model.save(tmp_path / "model")
    finally:
        bf16_model.precision_ = "bfloat16"
    with pytest.raises(anomvae.persistence.ModelFormatError, match="precision_"):
        anomvae.load(tmp_path / "model")

"""The "reconstruction+knn" scoring rule of AnomalyVAE and its neighbour search."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from anomvae import AnomalyVAE, load
from anomvae.nn.latent_density import MAX_REFERENCE_CODES
from anomvae import neighbours
from anomvae.neighbours import kth_neighbour_distance, pairwise_squared_distances


def test_kth_neighbour_distance_matches_brute_force():
    generator = torch.Generator().manual_seed(0)
    reference = torch.randn(50, 3, generator=generator, dtype=torch.float64)
    queries = torch.randn(20, 3, generator=generator, dtype=torch.float64)
    expected = torch.cdist(queries, reference).sort(dim=1).values[:, 4]
    assert torch.allclose(kth_neighbour_distance(queries, reference, 5), expected)
    leave_one_out = torch.cdist(reference, reference).sort(dim=1).values[:, 5]
    assert torch.allclose(kth_neighbour_distance(reference, reference, 5, exclude_self=True), leave_one_out)


@pytest.mark.parametrize("spread, offset", [(1.0, 0.0), (1e-4, 100.0), (1.0, 1e3)])
def test_screened_search_is_the_exact_kth_distance_whatever_the_batch(spread, offset):
    """Spread-out codes, collapsed codes far from the origin (where the matrix-product
    expansion cancels), and large offsets: always the exact pairwise k-th distance, bit for bit."""
    generator = torch.Generator().manual_seed(1)
    reference = offset + spread * torch.randn(300, 16, generator=generator)
    queries = offset + spread * torch.randn(200, 16, generator=generator)
    exact = pairwise_squared_distances(queries[:, None], reference[None]).sort(dim=1).values[:, 4].sqrt()
    together = kth_neighbour_distance(queries, reference, 5)
    assert torch.equal(together, exact)
    alone = torch.cat([kth_neighbour_distance(row[None], reference, 5) for row in queries[:40]])
    assert torch.equal(alone, together[:40])
    assert torch.equal(kth_neighbour_distance(queries[7:30], reference, 5), together[7:30])


def test_screen_and_full_search_agree_bit_for_bit(monkeypatch):
    generator = torch.Generator().manual_seed(2)
    reference, queries = torch.randn(500, 8, generator=generator), torch.randn(100, 8, generator=generator)
    screened = kth_neighbour_distance(queries, reference, 5, exclude_self=False)
    monkeypatch.setattr(neighbours, "SCREEN_MARGIN", len(reference))
    assert torch.equal(kth_neighbour_distance(queries, reference, 5), screened)


def test_kth_neighbour_distance_caps_k_and_refuses_an_empty_reference():
    reference = torch.zeros(3, 2)
    assert kth_neighbour_distance(torch.ones(4, 2), reference, 10).shape == (4,)
    with pytest.raises(ValueError, match="at least 2 reference points"):
        kth_neighbour_distance(reference[:1], reference[:1], 1, exclude_self=True)


def local_density_data(seed=0):
    """Normal rows on two tight clusters; anomalies between them, on no cluster."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-3.0, -3.0, 0.0, 0.0], [3.0, 3.0, 0.0, 0.0]])
    normal = centres[rng.integers(0, 2, 600)] + 0.2 * rng.normal(size=(600, 4))
    anomalies = rng.uniform(-1.0, 1.0, size=(30, 4)) * np.array([2.0, 2.0, 0.2, 0.2])
    return normal, anomalies


def test_knn_term_finds_rows_in_sparse_regions_that_reconstruction_misses(fast_params):
    normal, anomalies = local_density_data()
    test_rows, y = np.vstack([normal[500:], anomalies]), np.r_[np.zeros(100), np.ones(len(anomalies))]
    auc = {}
    for scoring in ("reconstruction", "reconstruction+knn"):
        detector = AnomalyVAE(**{**fast_params, "epochs": 20, "scoring": scoring}).fit(normal[:500])
        scores = detector.score_samples(test_rows)
        assert np.all(np.isfinite(scores))
        auc[scoring] = roc_auc_score(y, -scores)
    assert auc["reconstruction"] < 0.5
    assert auc["reconstruction+knn"] > 0.85
    assert detector.scorer_.reference_codes.shape[0] == 450  # training rows less the 10% held out
    assert torch.all(detector.scorer_.score_scales > 0)


def test_knn_rule_round_trips_and_does_not_depend_on_the_batch(tmp_path, fast_params):
    normal, anomalies = local_density_data(1)
    detector = AnomalyVAE(**{**fast_params, "scoring": "reconstruction+knn"}).fit(normal)
    rows = np.vstack([normal[:50], anomalies])
    scores = detector.score_samples(rows)
    assert np.array_equal(detector.score_samples(rows[:3]), scores[:3])
    detector.save(tmp_path / "model.safetensors")
    restored = load(tmp_path / "model.safetensors")
    assert np.array_equal(restored.score_samples(rows), scores)


def test_reference_codes_are_a_bounded_sample(fast_params):
    rows = np.random.default_rng(0).normal(size=(MAX_REFERENCE_CODES + 500, 3))
    detector = AnomalyVAE(**{**fast_params, "epochs": 1, "validation_fraction": 0.0,
                             "scoring": "reconstruction+knn"}).fit(rows)
    assert detector.scorer_.reference_codes.shape[0] == MAX_REFERENCE_CODES


def test_other_rules_keep_no_reference(fast_params):
    normal, _ = local_density_data()
    detector = AnomalyVAE(**{**fast_params, "scoring": "reconstruction"}).fit(normal)
    assert detector.scorer_.reference_codes.shape[0] == 0


def test_the_default_is_the_trimmed_reconstruction_plus_latent_density_rule():
    params = AnomalyVAE().get_params()
    assert params["scoring"] == "reconstruction+knn"
    assert params["trim_fraction"] == 0.1


def test_a_lone_training_row_is_a_clear_error_naming_validation_fraction():
    # Review finding: 2 rows with validation_fraction=0.5 failed with "need at least 2 reference points"
    # (fits under 5 rows are refused since; 5 rows holding out 80% leave the same lone row).
    rows = np.random.default_rng(0).normal(size=(5, 4))
    with pytest.raises(ValueError, match="at least 2 training rows, got 1 .* validation_fraction"):
        AnomalyVAE(epochs=2, validation_fraction=0.8, random_state=0).fit(rows)
    AnomalyVAE(epochs=2, validation_fraction=0.8, scoring="reconstruction", random_state=0).fit(rows)


def test_n_neighbors_beyond_the_training_codes_warns_and_scores_as_the_farthest():
    # An attack's finding: n_neighbors=1000 on 100 rows scored exactly as n_neighbors=99, without a word.
    rows = np.random.default_rng(0).normal(size=(100, 3))
    with pytest.warns(UserWarning, match="n_neighbors=1000 exceeds the 90 training codes"):
        capped = AnomalyVAE(epochs=2, n_neighbors=1000, random_state=0).fit(rows)
    farthest = AnomalyVAE(epochs=2, n_neighbors=90, random_state=0).fit(rows)
    np.testing.assert_array_equal(capped.score_samples(rows), farthest.score_samples(rows))

"""VAE-SVDD: centre initialisation, the bias-free SVDD path, scoring rules,
persistence and the hypersphere-collapse diagnostic."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from anomvae import AnomalyVAESVDD, TrainingHealthWarning, load
from anomvae.models.vae_svdd.losses import centre_distance, clamp_centre
from anomvae.models.vae_svdd.network import VAESVDDNetwork
from anomvae.models.vae_svdd.scorer import CENTRE_EPS, VAESVDDScorer


TRAINED = {"epochs": 30, "batch_size": 16, "patience": None, "random_state": 0}
"""Enough steps on the 200 blob rows for the latent code to become informative."""


def make_scorer(warmup_epochs=2, **params):
    settings = {"latent_dim": 3, "beta": 1.0, "likelihood": "gaussian", "svdd_weight": 1.0,
                "svdd_latent": "mean", "distance": "squared", "scoring": "objective", **params}
    network = VAESVDDNetwork((6,), (16,), settings["latent_dim"])
    return VAESVDDScorer(network, warmup_epochs=warmup_epochs, **settings)


def test_clamp_centre_pushes_small_coordinates_to_plus_or_minus_eps():
    clamped = clamp_centre(torch.tensor([0.5, 0.05, -0.05, 0.0, -0.3]), 0.1)
    torch.testing.assert_close(clamped, torch.tensor([0.5, 0.1, -0.1, 0.1, -0.3]))


@pytest.mark.parametrize("distance, expected", [("squared", 25.0), ("plain", 5.0)])
def test_centre_distance(distance, expected):
    value = centre_distance(torch.tensor([[3.0, 4.0]]), torch.zeros(2), distance)
    assert value.item() == pytest.approx(expected, rel=1e-5)


def test_svdd_path_has_no_bias_but_the_decoder_keeps_its_own():
    network = VAESVDDNetwork((1, 12, 12), (16,), 4)
    biased = [name for name, _ in network.named_parameters() if name.endswith("bias")]
    assert not [name for name in biased if name.startswith(("encoder.body", "encoder.mean"))]
    assert any(name.startswith("decoder") for name in biased)


def test_centre_tracks_the_mean_embedding_during_warmup_then_freezes(blobs):
    scorer = make_scorer(warmup_epochs=2)
    data = torch.from_numpy(blobs[0]).float()
    batches = lambda: torch.split(data, 64)  # noqa: E731

    scorer.on_epoch_start(0, batches)
    with torch.no_grad():
        expected = clamp_centre(scorer.network.embed(data).mean(dim=0), CENTRE_EPS)
    torch.testing.assert_close(scorer.centre, expected)
    assert not scorer.compacting
    assert torch.all(scorer.centre.abs() >= CENTRE_EPS)

    with torch.no_grad():
        for parameter in scorer.network.encoder.mean.parameters():
            parameter.mul_(3.0)
    scorer.on_epoch_start(2, batches)
    assert scorer.compacting
    frozen = scorer.centre.clone()
    assert not torch.allclose(frozen, expected)
    with torch.no_grad():
        for parameter in scorer.network.encoder.mean.parameters():
            parameter.mul_(3.0)
    scorer.on_epoch_start(3, batches)
    torch.testing.assert_close(scorer.centre, frozen)


def test_centre_is_a_saved_buffer():
    assert "centre" in make_scorer().state_dict()


def test_svdd_term_pulls_embeddings_towards_the_centre(blobs):
    spread = {}
    for weight in (0.0, 5.0):
        detector = AnomalyVAESVDD(svdd_weight=weight, warmup_epochs=2, epochs=20, batch_size=64,
                                  latent_dim=3, patience=None, random_state=0).fit(blobs[0])
        spread[weight] = detector.diagnostics_["mean_centre_distance"]
    assert spread[5.0] < 0.5 * spread[0.0]


def test_early_stopping_does_not_end_the_fit_inside_the_warm_up():
    # 48 rows: one step per epoch, and the warm-up's validation losses (a moving centre)
    # once made early stopping keep epoch 1's weights, so the SVDD term never acted.
    rows = np.random.default_rng(0).normal(size=(48, 6))
    fits = {weight: AnomalyVAESVDD(svdd_weight=weight, scoring="distance", contamination=0.1,
                                   random_state=0).fit(rows) for weight in (0.0, 1.0)}
    assert len(fits[1.0].history_["epoch"]) > fits[1.0].warmup_epochs + fits[1.0].patience
    assert not np.array_equal(fits[0.0].score_samples(rows), fits[1.0].score_samples(rows))
    assert fits[1.0].scorer_.early_stopping_start == fits[1.0].warmup_epochs


def test_warmup_trains_the_vae_alone(blobs):
    detector = AnomalyVAESVDD(svdd_weight=1.0, warmup_epochs=3, epochs=5, batch_size=64,
                              patience=None, random_state=0).fit(blobs[0])
    losses = np.asarray(detector.history_["loss_model"])
    terms = (np.asarray(detector.history_["reconstruction"]) + np.asarray(detector.history_["kl"]))
    np.testing.assert_allclose(losses[:3], terms[:3], rtol=1e-5)
    assert np.all(losses[3:] > terms[3:])


@pytest.mark.parametrize("scoring", ["objective", "reconstruction"])
def test_scorings_using_the_decoder_separate_outliers(blobs, scoring):
    normal, outliers = blobs
    detector = AnomalyVAESVDD(scoring=scoring, warmup_epochs=5, **TRAINED).fit(normal)
    scores = detector.score_samples(np.vstack([normal, outliers]))
    assert roc_auc_score([1] * len(normal) + [0] * len(outliers), scores) > 0.9


def test_scoring_changes_only_the_score_and_every_score_is_deterministic(blobs):
    detector = AnomalyVAESVDD(warmup_epochs=5, **TRAINED).fit(blobs[0])
    scores = {}
    for scoring in ("objective", "distance", "reconstruction"):
        detector.scorer_.scoring = scoring
        scores[scoring] = detector.score_samples(blobs[1])
        np.testing.assert_array_equal(detector.score_samples(blobs[1]), scores[scoring])
    assert not np.allclose(scores["distance"], scores["reconstruction"])
    assert np.all(scores["objective"] < scores["reconstruction"] / 2)


def test_distance_score_is_the_distance_of_the_posterior_mean(blobs):
    detector = AnomalyVAESVDD(scoring="distance", distance="plain", warmup_epochs=1, **TRAINED)
    detector.fit(blobs[0])
    encoded = torch.from_numpy(detector.encoder_.transform(blobs[1])).to(detector.scorer_.dtype)
    with torch.no_grad():
        embedding = detector.scorer_.network.embed(encoded)
    expected = (embedding - detector.scorer_.centre).norm(dim=1).numpy()
    np.testing.assert_allclose(detector.anomaly_score(blobs[1]), expected, rtol=1e-6)


def test_feature_scores_add_up_to_the_reconstruction_score(blobs):
    detector = AnomalyVAESVDD(scoring="reconstruction", warmup_epochs=1, **TRAINED).fit(blobs[0])
    contributions = detector.feature_scores(blobs[1])
    assert contributions.shape == blobs[1].shape and np.all(contributions >= 0)
    np.testing.assert_allclose(contributions.sum(axis=1), detector.anomaly_score(blobs[1]), rtol=1e-6)


def test_save_load_keeps_centre_and_scores(blobs, tmp_path):
    detector = AnomalyVAESVDD(warmup_epochs=1, distance="plain", svdd_latent="sample",
                              **TRAINED).fit(blobs[0])
    detector.save(tmp_path / "svdd.safetensors")
    loaded = load(tmp_path / "svdd.safetensors", device="cpu")
    torch.testing.assert_close(loaded.scorer_.centre, detector.scorer_.centre)
    np.testing.assert_allclose(loaded.score_samples(blobs[1]), detector.score_samples(blobs[1]))


def test_more_warmup_than_epochs_still_leaves_a_centre(blobs):
    detector = AnomalyVAESVDD(warmup_epochs=50, epochs=3, random_state=0).fit(blobs[0])
    assert torch.all(detector.scorer_.centre.abs() >= CENTRE_EPS)
    assert np.all(np.isfinite(detector.score_samples(blobs[1])))


def test_hypersphere_collapse_is_reported(blobs):
    with pytest.warns(TrainingHealthWarning, match="hypersphere collapse"):
        detector = AnomalyVAESVDD(svdd_weight=1e4, warmup_epochs=0, epochs=30, batch_size=64,
                                  random_state=0).fit(blobs[0])
    assert any("hypersphere collapse" in problem for problem in detector.health_warnings_)


def test_healthy_fit_reports_no_hypersphere_collapse(blobs):
    detector = AnomalyVAESVDD(warmup_epochs=5, **TRAINED).fit(blobs[0])
    assert not any("hypersphere" in problem for problem in detector.health_warnings_)


def test_auto_beta_is_one_for_rows_and_smaller_for_images(blobs):
    rows = AnomalyVAESVDD(epochs=1, random_state=0).fit(blobs[0])
    images = AnomalyVAESVDD(epochs=1, random_state=0).fit(np.random.default_rng(0).random((20, 8, 8)))
    assert rows.scorer_.beta == 1.0
    assert images.scorer_.beta == 0.1
    assert AnomalyVAESVDD(beta=0.5, epochs=1).fit(blobs[0]).scorer_.beta == 0.5


def test_partial_fit_keeps_the_centre_and_compacts_from_its_first_epoch():
    # Review finding: an update re-ran the warm-up (the centre recomputed, the SVDD term off); on the
    # same rows an 8-epoch update moved the centre and took the distance score's AUC from 0.98 to 0.82.
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(3, 8))
    rows = rng.normal(size=(300, 3)) @ mixing + 0.1 * rng.normal(size=(300, 8))
    detector = AnomalyVAESVDD(scoring="distance", epochs=40, warmup_epochs=10, latent_dim=4, patience=None,
                              random_state=0).fit(rows)
    centre = detector.scorer_.centre.clone()
    detector.set_params(epochs=8).partial_fit(rows)
    assert torch.equal(detector.scorer_.centre, centre)
    assert detector.history_["distance"][-8] < 2 * detector.history_["distance"][-9]  # no jump back to warm-up

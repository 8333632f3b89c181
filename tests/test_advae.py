"""AnomalyAdVAE: the two-step self-adversarial update, scoring and persistence."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import anomvae
from anomvae import AnomalyAdVAE


def _auc(detector, normal, outliers):
    labels = np.r_[np.zeros(len(normal)), np.ones(len(outliers))]
    return roc_auc_score(labels, detector.anomaly_score(np.vstack([normal, outliers])))


def test_separates_obvious_outliers(blobs, fast_params):
    normal, outliers = blobs
    detector = AnomalyAdVAE(**fast_params).fit(normal)
    assert _auc(detector, normal, outliers) > 0.95
    assert (detector.predict(outliers) == -1).mean() >= 0.8


def test_scores_are_deterministic_and_batch_independent(blobs, fast_params):
    normal, outliers = blobs
    detector = AnomalyAdVAE(**fast_params).fit(normal)
    together = detector.score_samples(np.vstack([outliers, normal]))
    np.testing.assert_allclose(detector.score_samples(outliers), together[: len(outliers)], rtol=1e-9)
    np.testing.assert_array_equal(detector.score_samples(normal), detector.score_samples(normal))


def test_same_seed_gives_identical_scores(blobs, fast_params):
    normal, _ = blobs
    first = AnomalyAdVAE(**fast_params).fit(normal).score_samples(normal)
    second = AnomalyAdVAE(**fast_params).fit(normal).score_samples(normal)
    np.testing.assert_array_equal(first, second)


def test_save_and_load_give_identical_scores(blobs, fast_params, tmp_path):
    normal, outliers = blobs
    detector = AnomalyAdVAE(n_samples=7, **fast_params).fit(normal)
    detector.save(tmp_path / "advae.safetensors")
    loaded = anomvae.load(tmp_path / "advae.safetensors", device="cpu")
    assert isinstance(loaded, AnomalyAdVAE)
    X = np.vstack([normal, outliers])
    np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))
    np.testing.assert_array_equal(loaded.feature_scores(X), detector.feature_scores(X))


@pytest.mark.parametrize(
    "params", [{"lam": -1.0}, {"gamma": -0.1}, {"m_x": -1.0}, {"m_z": "big"}, {"n_samples": 0}]
)
def test_invalid_parameters_are_rejected(blobs, params):
    with pytest.raises(ValueError, match=next(iter(params))):
        AnomalyAdVAE(**params).fit(blobs[0])


def test_feature_scores_sum_to_the_anomaly_score(blobs, fast_params):
    normal, outliers = blobs
    detector = AnomalyAdVAE(**fast_params).fit(normal)
    contributions = detector.feature_scores(outliers)
    assert contributions.shape == outliers.shape
    assert np.all(contributions >= 0)
    np.testing.assert_allclose(contributions.sum(axis=1), detector.anomaly_score(outliers), rtol=1e-6)


def test_score_averages_the_fixed_decoded_samples(blobs, fast_params):
    """The score is the error of the mean of L decoded samples, not the mean error."""
    normal, _ = blobs
    scorer = AnomalyAdVAE(n_samples=5, **fast_params).fit(normal).scorer_
    batch = torch.as_tensor(normal[:20], dtype=scorer.dtype)
    with torch.no_grad():
        mean, log_variance = scorer.network.encode(batch)
        samples = torch.stack([
            scorer.network.decode(mean + torch.exp(0.5 * log_variance) * noise)
            for noise in scorer.score_noise
        ])
        expected = (batch - samples.mean(dim=0)).pow(2).double().sum(dim=1)
        torch.testing.assert_close(scorer.anomaly_score(batch), expected)


def _snapshot(module):
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


def _changed(module, snapshot):
    return [name for name, value in module.state_dict().items() if not torch.equal(value, snapshot[name])]


def test_frozen_networks_do_not_change_in_their_step(blobs):
    """Drive one training step with real Adam optimisers, as the engine does:
    step 1 must leave the encoder untouched, step 2 the decoder and transformer."""
    normal, _ = blobs
    scorer = AnomalyAdVAE(epochs=2, batch_size=64, random_state=0).fit(normal).scorer_.float().train()
    groups = scorer.optimizer_groups()
    optimizers = {name: torch.optim.Adam(params, lr=1e-2) for name, params in groups.items()}
    network = scorer.network
    steps = scorer.training_step(torch.as_tensor(normal[:64], dtype=torch.float32))

    encoder_before = _snapshot(network.encoder)
    generator_before = {"decoder": _snapshot(network.decoder), "transformer": _snapshot(network.transformer)}
    phase = next(steps)
    assert phase.optimizer == "generator"
    optimizers[phase.optimizer].zero_grad(set_to_none=True)
    phase.loss.backward()
    optimizers[phase.optimizer].step()
    assert _changed(network.encoder, encoder_before) == []
    assert _changed(network.decoder, generator_before["decoder"])
    assert _changed(network.transformer, generator_before["transformer"])

    encoder_before = _snapshot(network.encoder)
    generator_before = {"decoder": _snapshot(network.decoder), "transformer": _snapshot(network.transformer)}
    phase = next(steps)
    assert phase.optimizer == "encoder"
    optimizers[phase.optimizer].zero_grad(set_to_none=True)
    phase.loss.backward()
    optimizers[phase.optimizer].step()
    assert _changed(network.decoder, generator_before["decoder"]) == []
    assert _changed(network.transformer, generator_before["transformer"]) == []
    assert _changed(network.encoder, encoder_before)
    assert next(steps, None) is None


def test_step_one_gives_the_encoder_no_gradient_of_its_own_input(blobs):
    """In step 1 E(x) is a constant: the transformer KL term cannot reach the encoder."""
    normal, _ = blobs
    scorer = AnomalyAdVAE(epochs=1, batch_size=64, random_state=0).fit(normal).scorer_.float().train()
    phase = next(scorer.training_step(torch.as_tensor(normal[:64], dtype=torch.float32)))
    transformer_kl = phase.logs["transformer_kl"]
    assert not transformer_kl.requires_grad or all(
        grad is None for grad in torch.autograd.grad(
            transformer_kl, list(scorer.network.encoder.parameters()), allow_unused=True
        )
    )


def test_reports_kl_of_rows_and_of_pseudo_anomalies(blobs, fast_params):
    detector = AnomalyAdVAE(**fast_params).fit(blobs[0])
    assert detector.diagnostics_["mean_kl"] > 0
    assert detector.diagnostics_["mean_kl_transformed"] >= 0
    assert {"reconstruction", "kl", "kl_transformed", "transformer_kl"} <= set(detector.history_)


def test_fits_and_scores_images_with_the_default_architecture(fast_params):
    images = np.random.default_rng(0).uniform(size=(40, 1, 8, 8)).astype(np.float32)
    detector = AnomalyAdVAE(**fast_params).fit(images)
    scores = detector.score_samples(images)
    assert scores.shape == (40,) and np.all(np.isfinite(scores))
    assert detector.feature_scores(images[:3]).shape == (3, 1, 8, 8)
    assert any(isinstance(m, torch.nn.Conv2d) for m in detector.scorer_.modules())

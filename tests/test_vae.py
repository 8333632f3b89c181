"""AnomalyVAE: its scoring rules, its decoder likelihood, and its public anomaly score.

The outlier contract and input handling it shares with every estimator are in
``test_base.py``; the ``"reconstruction+knn"`` rule in ``test_latent_neighbours.py``.
"""

import inspect

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from anomvae import AnomalyVAE
from anomvae.nn.posterior import active_units
from anomvae.nn.vae_losses import MIN_NOISE_VARIANCE, trimmed_mean


@pytest.mark.parametrize("scoring", ["reconstruction", "elbo", "iwae"])
def test_every_scoring_rule_is_deterministic_and_batch_independent(blobs, fast_params, scoring):
    normal, outliers = blobs
    detector = AnomalyVAE(scoring=scoring, **fast_params).fit(normal)
    together = detector.score_samples(np.vstack([outliers, normal]))
    np.testing.assert_allclose(detector.score_samples(outliers), together[: len(outliers)], rtol=1e-9)
    np.testing.assert_array_equal(detector.score_samples(normal), detector.score_samples(normal))
    assert np.all(np.isfinite(together))


def test_tabular_default_uses_the_calibrated_decoder(blobs, fast_params):
    normal, outliers = blobs
    detector = AnomalyVAE(**{**fast_params, "epochs": 30}).fit(normal)
    assert detector.scorer_.likelihood == "calibrated"
    variance = float(detector.scorer_.noise_variance)
    # the training rows' mean squared error of one sampled reconstruction each, on standardised data
    assert MIN_NOISE_VARIANCE <= variance < 1.5
    assert detector.score_samples(outliers).mean() < detector.score_samples(normal).mean()
    elbo = AnomalyVAE(**{**fast_params, "scoring": "elbo"}).fit(normal)
    assert np.all(np.isfinite(elbo.score_samples(outliers)))


def test_anomaly_score_is_the_negated_score_samples_and_matches_the_threshold(blobs, fast_params):
    normal, outliers = blobs
    detector = AnomalyVAE(**fast_params).fit(normal)
    rows = np.vstack([normal, outliers])
    np.testing.assert_array_equal(detector.anomaly_score(rows), -detector.score_samples(rows))
    flagged = detector.anomaly_score(rows) > detector.threshold_.value
    np.testing.assert_array_equal(flagged, detector.predict(rows) == -1)


def test_only_its_own_parameters_are_written_in_its_docstring_source():
    source = inspect.getsource(AnomalyVAE)
    assert "    epochs : int" not in source
    assert "    epochs : int, default=100" in AnomalyVAE.__doc__
    assert "    beta : float, default=1.0" in AnomalyVAE.__doc__


def test_active_units_count_latent_means_that_vary():
    means = torch.stack([torch.linspace(-1, 1, 50), torch.zeros(50), 0.01 * torch.randn(50)], dim=1)
    assert active_units(means) == 1
    assert active_units(means[:1]) == 0


def test_trimmed_mean_leaves_out_the_largest_values_and_their_gradient():
    values = torch.tensor([1.0, 2.0, 3.0, 100.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], requires_grad=True)
    trimmed = trimmed_mean(values, 0.1)
    assert trimmed.item() == pytest.approx(5.0)
    trimmed.backward()
    assert values.grad[3] == 0
    np.testing.assert_allclose(values.grad[[0, 1, 2, 4, 5, 6, 7, 8, 9]].numpy(), 1 / 9, rtol=1e-6)
    assert trimmed_mean(values, 0.0).item() == pytest.approx(values.mean().item())
    assert trimmed_mean(values[:5], 0.1).item() == pytest.approx(values[:5].mean().item())
    # Review finding: int(0.29 * 100) is 28 (the product is 28.999999999999996); floor means 29.
    assert trimmed_mean(torch.arange(100.0), 0.29).item() == pytest.approx(35.0)


def test_trimmed_training_keeps_planted_training_anomalies_unexplained(fast_params):
    rng = np.random.default_rng(1)
    latent = rng.normal(size=(400, 2))
    normal = latent @ rng.normal(size=(2, 8)) + 0.1 * rng.normal(size=(400, 8))
    planted = rng.normal(size=(40, 8)) * 3
    training = np.vstack([normal, planted])
    params = {**fast_params, "epochs": 40, "patience": None, "scoring": "reconstruction"}
    plain = AnomalyVAE(trim_fraction=0.0, **params).fit(training)
    trimmed = AnomalyVAE(trim_fraction=0.1, **params).fit(training)

    def separation(detector):
        scores = detector.anomaly_score(training)
        return np.median(scores[400:]) / np.median(scores[:400])

    assert separation(trimmed) > separation(plain)


def _optimiser_steps(detector, X) -> int:
    steps = []
    handle = register_optimizer_step_pre_hook(lambda optimizer, args, kwargs: steps.append(1))
    try:
        detector.fit(X)
    finally:
        handle.remove()
    return len(steps)


def test_small_training_sets_get_at_least_min_batches_per_epoch_steps():
    X = np.random.default_rng(0).normal(size=(100, 4))  # a pass is one or two batches
    params = dict(epochs=2, patience=None, contamination=0.1, random_state=0)
    one_pass = _optimiser_steps(AnomalyVAE(**params), X)
    assert one_pass == _optimiser_steps(AnomalyVAE(min_batches_per_epoch=1, **params), X)
    steps = _optimiser_steps(AnomalyVAE(min_batches_per_epoch=15, **params), X)
    assert one_pass == 2  # a pass of 90 rows is one batch of 128
    assert 2 * 15 <= steps <= 2 * 17  # whole passes of 90 rows, run into batches of 128
    large = np.random.default_rng(0).normal(size=(2500, 4))  # 2,250 training rows, 18 batches a pass
    assert (_optimiser_steps(AnomalyVAE(min_batches_per_epoch=15, **params), large)
            == _optimiser_steps(AnomalyVAE(**params), large))


def test_min_batches_per_epoch_below_one_is_refused():
    with pytest.raises(ValueError, match="min_batches_per_epoch"):
        AnomalyVAE(min_batches_per_epoch=0).fit(np.zeros((20, 2)))


def test_the_calibrated_variance_of_the_elbo_score_comes_from_the_training_rows_not_the_last_batch():
    # Review finding: the variance was the last training batch's mean squared error; with 897 training
    # rows and batches of 128 that batch is one row, and the variance was 1.40 against 1.00 over the rows.
    import torch

    rng = np.random.default_rng(0)
    rows = (rng.normal(size=(1200, 8)) @ rng.normal(size=(8, 8)))[:996]
    detector = AnomalyVAE(epochs=15, random_state=0, scoring="elbo", hidden_dims=(32, 16), latent_dim=3,
                          patience=None).fit(rows)
    encoded = torch.tensor(detector.encoder_.transform(rows))
    with torch.no_grad():
        torch.manual_seed(0)
        squared_error = (detector.scorer_.network(encoded)[0] - encoded).pow(2).mean().item()
    assert float(detector.scorer_.noise_variance) == pytest.approx(squared_error, rel=0.03)

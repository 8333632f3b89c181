"""AnomalyVAE: its scoring rules, its decoder likelihood, and its public anomaly score.

The outlier contract and input handling it shares with every estimator are in
``test_base.py``; the ``"reconstruction+knn"`` rule in ``test_latent_neighbours.py``.
"""

import inspect

import numpy as np
import pytest
import torch

from anomvae import AnomalyVAE
from anomvae.nn.posterior import active_units
from anomvae.nn.vae_losses import MIN_NOISE_VARIANCE


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
    assert MIN_NOISE_VARIANCE <= variance < 1.0
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

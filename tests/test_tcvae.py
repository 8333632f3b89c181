"""AnomalyTCVAE: the beta-TCVAE decomposition and the estimator."""

import numpy as np
import pytest
import torch
from conftest import FAST
from sklearn.metrics import roc_auc_score

from anomvae import AnomalyTCVAE, load
from anomvae.models.tcvae.losses import gaussian_log_density, kl_decomposition

pytestmark = pytest.mark.filterwarnings("ignore::anomvae.TrainingHealthWarning")


def test_the_three_terms_sum_to_the_single_sample_kl():
    generator = torch.Generator().manual_seed(0)
    mean, log_variance = torch.randn(64, 3, generator=generator), torch.randn(64, 3, generator=generator) * 0.3
    z = mean + torch.exp(0.5 * log_variance) * torch.randn(64, 3, generator=generator)
    information, correlation, dimension_wise = kl_decomposition(z, mean, log_variance, n_train=1000)
    kl = (gaussian_log_density(z, mean, log_variance)
          - gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))).sum(dim=1)
    torch.testing.assert_close(information + correlation + dimension_wise, kl)
    assert information.shape == correlation.shape == (64,)


def test_independent_codes_have_less_total_correlation_than_correlated_ones():
    generator = torch.Generator().manual_seed(1)
    independent = torch.randn(256, 2, generator=generator)
    shared = torch.randn(256, 1, generator=generator)
    correlated = torch.cat([shared, shared + 0.05 * torch.randn(256, 1, generator=generator)], dim=1)
    small = torch.full((256, 2), -6.0)
    tc = [kl_decomposition(codes, codes, small, n_train=256)[1].mean() for codes in (independent, correlated)]
    assert tc[0] < tc[1]


def test_detects_off_manifold_rows_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(600, 2))
    rows = latent @ rng.normal(size=(2, 6)) + 0.05 * rng.normal(size=(600, 6))
    outliers = rng.normal(size=(30, 6)) * 2
    detector = AnomalyTCVAE(epochs=40, random_state=0).fit(rows[:500])
    assert detector.scorer_.n_train == 450  # minibatch-weighted sampling uses the training size
    scores = detector.anomaly_score(np.vstack([rows[500:], outliers]))
    assert roc_auc_score(np.r_[np.zeros(100), np.ones(30)], scores) > 0.9
    detector.save(tmp_path / "tcvae.safetensors")
    np.testing.assert_allclose(load(tmp_path / "tcvae.safetensors", device="cpu").anomaly_score(rows[:20]),
                               detector.anomaly_score(rows[:20]), rtol=1e-12)


def test_tc_weight_one_trains_like_the_elbo():
    rows = np.random.default_rng(0).normal(size=(200, 4))
    detector = AnomalyTCVAE(tc_weight=1.0, **FAST).fit(rows)
    assert {"mutual_information", "total_correlation", "dimension_wise_kl"} <= set(detector.history_)

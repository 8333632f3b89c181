"""The hand-written VAE step gives autograd's loss and gradient, and AnomalyVAE's fused fits behave."""

import pickle

import numpy as np
import pytest
import torch

import anomvae
from anomvae import AnomalyVAE
from anomvae.flat_parameters import FlatGroup
from anomvae.models.vae.scorer import VAEScorer
from anomvae.nn import VAENetwork, build_decoder, build_encoder
from anomvae.nn.fused_vae_step import FusedVAEStep, supports

CPU = torch.device("cpu")


def scorer(likelihood="calibrated", beta=1.0, trim_fraction=0.0, hidden_dims=(16, 8), latent_dim=3,
           input_shape=(7,)):
    torch.manual_seed(0)
    network = VAENetwork(build_encoder(input_shape, hidden_dims, latent_dim),
                         build_decoder(latent_dim, hidden_dims, input_shape)).double()
    return VAEScorer(network, latent_dim=latent_dim, beta=beta, likelihood=likelihood,
                     scoring="reconstruction", n_samples=2, trim_fraction=trim_fraction)


@pytest.mark.parametrize("likelihood", ["calibrated", "gaussian"])
@pytest.mark.parametrize("beta", [1.0, 0.3])
@pytest.mark.parametrize("trim_fraction", [0.0, 0.2])
def test_loss_logs_and_gradient_match_autograd(likelihood, beta, trim_fraction):
    batch = 3 * torch.randn(23, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    reference, fused_scorer = scorer(likelihood, beta, trim_fraction), scorer(likelihood, beta, trim_fraction)
    torch.manual_seed(2)
    phase = next(reference.training_step(batch))
    phase.loss.backward()
    group = FlatGroup(list(fused_scorer.parameters()))
    group.grad.fill_(float("nan"))  # the fused backward must overwrite every gradient
    step = FusedVAEStep(fused_scorer.network, likelihood, beta, trim_fraction)
    torch.manual_seed(2)
    loss, reconstruction, kl, variance = step.forward(batch)
    step.backward()
    expected = torch.cat([p.grad.reshape(-1) for p in reference.parameters()])
    torch.testing.assert_close(group.grad, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(loss, phase.loss.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(reconstruction, phase.logs["reconstruction"], rtol=1e-12, atol=0)
    torch.testing.assert_close(kl, phase.logs["kl"], rtol=1e-12, atol=1e-15)
    assert float(variance) == pytest.approx(float(reference.noise_variance), rel=1e-6)


def test_clamped_log_variance_passes_no_gradient():
    fused_scorer = scorer()
    with torch.no_grad():
        fused_scorer.network.encoder.log_variance.bias.fill_(50.0)
    group = FlatGroup(list(fused_scorer.parameters()))
    step = FusedVAEStep(fused_scorer.network, "calibrated", 1.0)
    step.forward(torch.randn(9, 7, dtype=torch.float64))
    step.backward()
    assert torch.all(fused_scorer.network.encoder.log_variance.weight.grad == 0)
    assert torch.isfinite(group.grad).all()


def test_supports_only_cpu_mlp_vaes_with_gaussian_decoders():
    network = scorer().network
    assert supports(network, "calibrated", CPU) and supports(network, "gaussian", CPU)
    assert not supports(network, "bernoulli", CPU)
    assert not supports(network, "calibrated", torch.device("cuda"))
    image = scorer(hidden_dims=(16,), input_shape=(1, 8, 8)).network
    assert not supports(image, "calibrated", CPU)


def test_fused_fit_matches_autograd_fit_and_repeats_exactly(blobs, fast_params):
    normal, outliers = blobs
    X = np.vstack([normal, outliers])
    fused = AnomalyVAE(**fast_params).fit(normal).score_samples(X)
    again = AnomalyVAE(**fast_params).fit(normal).score_samples(X)
    autograd = AnomalyVAE(**fast_params, fused_step=False).fit(normal).score_samples(X)
    np.testing.assert_array_equal(fused, again)
    np.testing.assert_allclose(fused, autograd, rtol=1e-4, atol=1e-5)


def test_fused_fit_saves_loads_and_pickles_without_its_buffers(blobs, fast_params, tmp_path):
    normal, outliers = blobs
    detector = AnomalyVAE(**fast_params).fit(normal)
    assert detector.scorer_._fused is None
    detector.save(tmp_path / "model.safetensors")
    loaded = anomvae.load(tmp_path / "model.safetensors")
    np.testing.assert_array_equal(loaded.score_samples(outliers), detector.score_samples(outliers))
    assert loaded.get_params()["fused_step"] is True
    unpickled = pickle.loads(pickle.dumps(detector))
    np.testing.assert_array_equal(unpickled.score_samples(outliers), detector.score_samples(outliers))

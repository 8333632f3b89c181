"""AnomalyVAEGAN: training phases, balance rule, scoring rules, persistence."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

import anomvae
from anomvae import AnomalyVAEGAN, TrainingHealthWarning
from anomvae.health import assess
from anomvae.models.vae_gan.losses import input_nll
from anomvae.models.vae_gan.scorer import EQUILIBRIUM, SCORINGS


def _auc(detector, normal, outliers):
    labels = np.r_[np.zeros(len(normal)), np.ones(len(outliers))]
    return roc_auc_score(labels, detector.anomaly_score(np.vstack([normal, outliers])))


def test_separates_obvious_outliers(blobs, fast_params):
    normal, outliers = blobs
    detector = AnomalyVAEGAN(**fast_params).fit(normal)
    assert _auc(detector, normal, outliers) > 0.95
    assert (detector.predict(outliers) == -1).mean() >= 0.8


@pytest.mark.parametrize("scoring", SCORINGS)
def test_every_scoring_rule_is_deterministic_and_batch_independent(blobs, fast_params, scoring):
    normal, outliers = blobs
    detector = AnomalyVAEGAN(scoring=scoring, **fast_params).fit(normal)
    together = detector.score_samples(np.vstack([outliers, normal]))
    np.testing.assert_allclose(detector.score_samples(outliers), together[: len(outliers)], rtol=1e-9)
    np.testing.assert_array_equal(detector.score_samples(normal), detector.score_samples(normal))
    assert np.all(np.isfinite(together))


@pytest.mark.parametrize("scoring", ["input", "feature", "combined"])
def test_reconstruction_based_rules_rank_outliers_first(blobs, fast_params, scoring):
    normal, outliers = blobs
    assert _auc(AnomalyVAEGAN(scoring=scoring, **fast_params).fit(normal), normal, outliers) > 0.85


def test_same_seed_gives_identical_scores(blobs, fast_params):
    normal, _ = blobs
    first = AnomalyVAEGAN(**fast_params).fit(normal).score_samples(normal)
    second = AnomalyVAEGAN(**fast_params).fit(normal).score_samples(normal)
    np.testing.assert_array_equal(first, second)


def test_save_and_load_give_identical_scores(blobs, fast_params, tmp_path):
    normal, outliers = blobs
    detector = AnomalyVAEGAN(scoring="combined", **fast_params).fit(normal)
    detector.save(tmp_path / "vaegan.safetensors")
    loaded = anomvae.load(tmp_path / "vaegan.safetensors", device="cpu")
    assert isinstance(loaded, AnomalyVAEGAN)
    X = np.vstack([normal, outliers])
    np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))
    np.testing.assert_array_equal(loaded.predict(X), detector.predict(X))
    assert loaded.get_params() == detector.get_params()


@pytest.mark.parametrize(
    "params", [{"gamma": -1.0}, {"balance_margin": -0.1}, {"scoring": "likelihood"}, {"epochs": 0}]
)
def test_invalid_parameters_are_rejected(blobs, params):
    with pytest.raises(ValueError, match=next(iter(params))):
        AnomalyVAEGAN(**params).fit(blobs[0])


def test_feature_scores_decompose_the_input_error(blobs, fast_params):
    normal, outliers = blobs
    detector = AnomalyVAEGAN(scoring="input", **fast_params).fit(normal)
    contributions = detector.feature_scores(outliers)
    assert contributions.shape == outliers.shape
    assert np.all(contributions >= 0)
    np.testing.assert_allclose(contributions.sum(axis=1), detector.anomaly_score(outliers), rtol=1e-6)


def _scorer(normal):
    detector = AnomalyVAEGAN(epochs=1, batch_size=64, random_state=0).fit(normal)
    return detector.scorer_.float().train()


def test_each_step_updates_discriminator_then_decoder_then_encoder(blobs):
    scorer = _scorer(blobs[0])
    phases = list(scorer.training_step(torch.as_tensor(blobs[0][:64], dtype=torch.float32)))
    assert [phase.optimizer for phase in phases] == ["discriminator", "decoder", "encoder"]
    assert set(scorer.optimizer_groups()) == {"discriminator", "decoder", "encoder"}


def test_gan_gradient_never_reaches_the_encoder(blobs):
    scorer = _scorer(blobs[0])
    batch = torch.as_tensor(blobs[0][:64], dtype=torch.float32)
    for phase in scorer.training_step(batch):
        scorer.zero_grad(set_to_none=True)
        phase.loss.backward()
        encoder_grads = [p.grad for p in scorer.network.encoder.parameters()]
        if phase.optimizer == "encoder":
            assert any(grad is not None and grad.abs().sum() > 0 for grad in encoder_grads)
        else:
            assert all(grad is None for grad in encoder_grads), phase.optimizer


def test_balance_rule_skips_the_stronger_side():
    scorer = AnomalyVAEGAN()._make_scorer((4,), image=False)
    strong, weak = EQUILIBRIUM - 0.5, EQUILIBRIUM + 0.5
    assert scorer._balance(strong, EQUILIBRIUM) == (False, True)
    assert scorer._balance(EQUILIBRIUM, weak) == (True, False)
    assert scorer._balance(strong, weak) == (True, True)
    assert scorer._balance(EQUILIBRIUM, EQUILIBRIUM) == (True, True)


def test_discriminator_that_wins_outright_is_reported():
    """Unscaled rows far from the origin: the generator cannot catch up in a few
    epochs, and without the balance rule the discriminator wins outright."""
    rows = 50.0 + np.random.default_rng(0).normal(size=(200, 6))
    params = {"epochs": 5, "batch_size": 64, "random_state": 0, "scaling": "none"}
    with pytest.warns(TrainingHealthWarning, match="discriminator wins outright"):
        unbalanced = AnomalyVAEGAN(balance_margin=None, **params).fit(rows)
    assert unbalanced.diagnostics_["discriminator_accuracy"] >= 0.99
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainingHealthWarning)
        balanced = AnomalyVAEGAN(**params).fit(rows)
    assert not any("discriminator" in problem for problem in balanced.health_warnings_)


def test_health_rule_reads_discriminator_accuracy():
    scores = np.linspace(0.0, 1.0, 10)
    assert any("discriminator" in p for p in assess({"discriminator_accuracy": 0.995}, scores))
    assert not any("discriminator" in p for p in assess({"discriminator_accuracy": 0.8}, scores))


def test_reports_mean_kl_for_the_collapse_check(blobs, fast_params):
    detector = AnomalyVAEGAN(**fast_params).fit(blobs[0])
    assert detector.diagnostics_["mean_kl"] >= 0
    assert {"discriminator_accuracy", "generator_adversarial_loss"} <= set(detector.diagnostics_)


def test_fits_and_scores_images_with_the_default_architecture(fast_params):
    images = np.random.default_rng(0).uniform(size=(40, 1, 8, 8)).astype(np.float32)
    detector = AnomalyVAEGAN(**fast_params).fit(images)
    scores = detector.score_samples(images)
    assert scores.shape == (40,) and np.all(np.isfinite(scores))
    assert detector.feature_scores(images[:3]).shape == (3, 1, 8, 8)
    assert any(isinstance(m, torch.nn.Conv2d) for m in detector.scorer_.modules())


def _bar_images(n, *, seed, vertical=False, length=12):
    """``(n, 12, 12)`` uint8 images with one bright bar of ``length`` pixels each."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 12, 12), dtype=np.uint8)
    for image, position in zip(images, rng.integers(2, 10, n)):
        if vertical:
            image[:length, position] = 255
        else:
            image[position, :length] = 255
    return images


def test_input_score_on_images_ranks_sparser_anomalies_first():
    """Short vertical bars have fewer bright pixels than any normal image, so a
    decoder that is not faithful in pixel space (trained only through the
    discriminator's features) scores them as more normal than the normal rows."""
    detector = AnomalyVAEGAN(epochs=15, batch_size=32, random_state=0).fit(_bar_images(200, seed=0))
    normal, anomalous = _bar_images(30, seed=1), _bar_images(30, seed=2, vertical=True, length=6)
    assert _auc(detector, normal, anomalous) > 0.9
    assert detector.scorer_.likelihood == "bernoulli"


def test_input_likelihood_is_bernoulli_on_pixels_and_gaussian_on_rows():
    x = torch.tensor([[0.0, 1.0, 0.25]])
    reconstruction = torch.tensor([[0.5, 0.5, 0.25]])
    expected = -(np.log(0.5) * 2 + 0.25 * np.log(0.25) + 0.75 * np.log(0.75))
    np.testing.assert_allclose(input_nll(x, reconstruction, "bernoulli").item(), expected, rtol=1e-6)
    np.testing.assert_allclose(input_nll(x, reconstruction, "gaussian").item(), 0.5 * 0.5, rtol=1e-6)
    saturated = input_nll(torch.tensor([[1.0]]), torch.tensor([[0.0]]), "bernoulli")
    assert torch.isfinite(saturated).all()
    rows, decoded = torch.tensor([[0.0, 2.0], [1.0, 1.0]]), torch.tensor([[1.0, 2.0], [1.0, 0.0]])
    calibrated = input_nll(rows, decoded, "calibrated")  # shared variance = mean squared error = 0.5
    np.testing.assert_allclose(calibrated.numpy(), [1.0 + np.log(0.5), 1.0 + np.log(0.5)], rtol=1e-6)


def test_tabular_rows_use_the_calibrated_likelihood_of_the_vae():
    assert AnomalyVAEGAN()._make_scorer((4,), image=False).likelihood == "calibrated"

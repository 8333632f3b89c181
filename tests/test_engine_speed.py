"""Training-engine behaviour that the speed work must keep: early stopping,
epoch logs, thread settings; and the calibrated decoder's likelihood."""

import numpy as np
import pytest
import torch

from anomvae import AnomalyVAE
from anomvae.engine import TrainingEngine, epoch_means, training_threads
from anomvae.nn.vae_losses import MIN_NOISE_VARIANCE


def _engine(**overrides):
    settings = dict(epochs=60, batch_size=32, learning_rate=1e-3, patience=3, gradient_clip=10.0,
                    generator=torch.Generator().manual_seed(0))
    return TrainingEngine(**{**settings, **overrides})


def _scorer(n_features=6):
    return AnomalyVAE(random_state=0)._make_scorer((n_features,), image=False)


def test_early_stopping_keeps_training_while_validation_improves(blobs):
    normal, _ = blobs
    data = torch.from_numpy(((normal - normal.mean(0)) / normal.std(0)).astype(np.float32))
    torch.manual_seed(0)
    history = _engine().fit(_scorer(), data[:160], data[160:])
    epochs_run = len(history["epoch"])
    best_epoch = int(np.argmin(history["val_loss"])) + 1
    assert epochs_run > 3, "stopped after exactly `patience` epochs: no best epoch was recorded"
    assert epochs_run == 60 or epochs_run == best_epoch + 3


def test_epoch_means_weigh_batches_by_their_rows():
    logged = {"loss": [(torch.tensor(1.0), 30), (torch.tensor(4.0), 10)]}
    assert epoch_means(logged, 40) == pytest.approx({"loss": (30 * 1.0 + 10 * 4.0) / 40})


def test_small_training_steps_run_on_one_thread_and_restore_the_setting():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with training_threads(_scorer(), batch_size=32, device=torch.device("cpu")):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_calibrated_nll_equals_the_per_element_likelihood_at_the_batch_variance():
    from anomvae.nn.vae_losses import calibrated_gaussian_nll, reconstruction_nll, sum_per_row

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(16, 5, generator=generator, dtype=torch.float64)
    output = (x + 0.3 * torch.randn(16, 5, generator=generator, dtype=torch.float64)).requires_grad_()
    nll, variance = calibrated_gaussian_nll(x, output)
    assert variance.item() == pytest.approx((x - output).pow(2).mean().item())
    assert not variance.requires_grad
    expected = sum_per_row(reconstruction_nll(x, output, "calibrated", variance))
    assert torch.allclose(nll, expected)
    nll.sum().backward()
    assert torch.allclose(output.grad, (output - x).detach() / variance)
    floor = calibrated_gaussian_nll(x, x.clone())[1]
    assert floor.item() == MIN_NOISE_VARIANCE

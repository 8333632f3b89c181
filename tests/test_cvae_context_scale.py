"""AnomalyCVAE's per-context score scale, shrunk toward the global one."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FAST
from test_cvae import merchants

from anomvae import AnomalyCVAE, load
from anomvae.models.cvae.context_scale import context_keys, credibility_factors, row_factors

pytestmark = pytest.mark.filterwarnings("ignore::anomvae.TrainingHealthWarning")


def scores_by_context(sizes, means, seed=0):
    generator = torch.Generator().manual_seed(seed)
    keys = torch.cat([torch.full((size,), key) for key, size in enumerate(sizes)])
    scores = torch.cat([mean * (1 + 0.1 * torch.randn(size, generator=generator, dtype=torch.float64))
                        for size, mean in zip(sizes, means)])
    return keys, scores


def test_a_well_sampled_context_keeps_its_own_scale_and_a_rare_one_is_shrunk():
    keys, scores = scores_by_context([500, 500, 500, 3], [1.0, 2.0, 3.0, 6.0])
    cells, factors = credibility_factors(keys, scores)
    assert cells.tolist() == [0, 1, 2, 3]
    overall = scores.mean().item()
    np.testing.assert_allclose(factors[:3].numpy(), np.array([1.0, 2.0, 3.0]) / overall, rtol=0.02)
    assert 1.0 < factors[3].item() < 6.0 / overall  # pulled toward the global scale, not onto it


def test_contexts_that_differ_only_by_noise_are_not_rescaled():
    keys, scores = scores_by_context([300, 300, 300], [2.0, 2.0, 2.0])
    cells, factors = credibility_factors(keys, scores)
    assert len(cells) == 0 or np.allclose(factors.numpy(), 1.0, atol=0.02)


def test_contexts_seen_once_and_unknown_keys_keep_factor_one():
    keys, scores = scores_by_context([1, 1, 1, 1], [1.0, 2.0, 3.0, 4.0])
    assert len(credibility_factors(keys, scores)[0]) == 0
    cells, factors = torch.tensor([3, 7]), torch.tensor([0.5, 2.0])
    np.testing.assert_array_equal(row_factors(torch.tensor([7, 5, 3, 9]), cells, factors).numpy(),
                                  [2.0, 1.0, 0.5, 1.0])


def test_equal_context_vectors_get_equal_keys_and_different_ones_do_not():
    context = torch.eye(6, dtype=torch.float64).repeat(3, 1)
    keys = context_keys(context)
    assert len(torch.unique(keys)) == 6
    torch.testing.assert_close(context_keys(context.float()), keys)


def test_the_estimator_keeps_one_factor_per_merchant_and_none_when_asked():
    train, test, _ = merchants(n=600)
    scaled = AnomalyCVAE(context=["merchant"], **FAST).fit(train)
    assert len(scaled.scorer_.context_cells) == train["merchant"].nunique()
    raw = AnomalyCVAE(context=["merchant"], context_scaling="none", **FAST).fit(train)
    assert len(raw.scorer_.context_cells) == 0
    assert np.all(np.isfinite(scaled.anomaly_score(test)))
    with pytest.raises(ValueError, match="context_scaling"):
        AnomalyCVAE(context=["merchant"], context_scaling="per-context").fit(train)


def test_context_keys_beyond_float32_precision_survive_save_and_load(tmp_path):
    # Review finding (hostile-input round): save wrote every buffer as float32, so the int64 keys of
    # numeric contexts beyond 2**24 were rounded, their contexts lost their credibility factor on load
    # (25 of 600 rows scored up to 3x differently, one label flipped).
    rng = np.random.default_rng(0)
    store = rng.integers(1, 60, 600)
    frame = pd.DataFrame({"amount": rng.normal(size=600) * (1 + store / 20), "store": store})
    detector = AnomalyCVAE(context=["store"], scaling="none", **FAST).fit(frame)
    assert detector.scorer_.context_cells.abs().max().item() > 2 ** 24
    detector.save(tmp_path / "cvae.safetensors")
    loaded = load(tmp_path / "cvae.safetensors", device="cpu")
    assert torch.equal(loaded.scorer_.context_cells, detector.scorer_.context_cells)
    np.testing.assert_array_equal(loaded.score_samples(frame), detector.score_samples(frame))

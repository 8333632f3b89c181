"""AnomalyVaDE: the mixture prior, its KL term, the cohort API and the estimator."""

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FAST
from sklearn.exceptions import NotFittedError
from sklearn.metrics import adjusted_rand_score, roc_auc_score
from sklearn.mixture import GaussianMixture

import anomvae
from anomvae import AnomalyVaDE, load
from anomvae.batch_scoring import score_table
from anomvae.metrics import outlier_roc_auc
from anomvae.models.vade.losses import mixture_kl
from anomvae.models.vade.network import GaussianMixturePrior
from anomvae.nn.vae_losses import gaussian_kl

pytestmark = pytest.mark.filterwarnings("ignore::anomvae.TrainingHealthWarning",
                                        "ignore::anomvae.ThresholdWarning")


@pytest.fixture(scope="module")
def segments():
    """Three well-separated segments in six features, and their labels."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 6)) * 6
    labels = rng.integers(0, 3, 1000)
    return centres[labels] + rng.normal(size=(1000, 6)), labels


@pytest.fixture(scope="module")
def fitted(segments):
    rows, _ = segments
    return AnomalyVaDE(n_components=3, random_state=1).fit(rows[:900])


def test_standard_normal_components_give_the_plain_vae_kl():
    generator = torch.Generator().manual_seed(0)
    mean, log_variance = torch.randn(32, 4, generator=generator), 0.3 * torch.randn(32, 4, generator=generator)
    z = mean + torch.exp(0.5 * log_variance) * torch.randn(32, 4, generator=generator)
    torch.testing.assert_close(mixture_kl(z, mean, log_variance, GaussianMixturePrior(3, 4)),
                               gaussian_kl(mean, log_variance))


def test_mixture_density_matches_scikit_learn_and_stays_finite_far_away():
    codes = np.random.default_rng(0).normal(size=(300, 2)) + np.repeat([[0, 0], [5, 5], [-5, 5]], 100, axis=0)
    reference = GaussianMixture(3, covariance_type="diag", random_state=0).fit(codes)
    prior = GaussianMixturePrior(3, 2).double()
    prior.assign(reference.weights_, reference.means_, reference.covariances_)
    z = torch.from_numpy(codes)
    np.testing.assert_allclose(prior.log_density(z).numpy(), reference.score_samples(codes), rtol=1e-10)
    np.testing.assert_allclose(prior.responsibilities(z).numpy(), reference.predict_proba(codes), atol=1e-10)
    far = torch.full((2, 2), 1e8, dtype=torch.float64)
    assert torch.isfinite(prior.log_density(far)).all()
    assert torch.isfinite(prior.responsibilities(far)).all()
    assert (prior.log_density_bound() >= prior.log_density(z)).all()


def test_cohorts_recover_well_separated_segments(segments, fitted):
    rows, labels = segments
    cohorts = fitted.predict_cohort(rows[900:])
    assert cohorts.shape == (100,) and np.issubdtype(cohorts.dtype, np.integer)
    assert adjusted_rand_score(labels[900:], cohorts) > 0.95
    probabilities = fitted.predict_cohort_proba(rows[900:])
    assert probabilities.shape == (100, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(probabilities.argmax(axis=1), cohorts)
    assert fitted.diagnostics_["effective_components"] > 2.5


@pytest.mark.parametrize("scoring", ["reconstruction+prior", "prior", "reconstruction"])
def test_every_scoring_rule_ranks_rows_outside_the_segments_above_them(segments, scoring):
    rows, _ = segments
    outliers = np.random.default_rng(1).uniform(-12, 12, size=(40, 6))
    detector = AnomalyVaDE(n_components=3, scoring=scoring, random_state=1).fit(rows[:900])
    scores = detector.anomaly_score(np.vstack([rows[900:], outliers]))
    assert np.isfinite(scores).all()
    assert roc_auc_score(np.r_[np.zeros(100), np.ones(40)], scores) > 0.9


def test_save_and_load_keep_cohorts_and_scores(segments, fitted, tmp_path):
    rows, _ = segments
    fitted.save(tmp_path / "vade.safetensors")
    loaded = load(tmp_path / "vade.safetensors", device="cpu")
    np.testing.assert_array_equal(loaded.predict_cohort(rows), fitted.predict_cohort(rows))
    np.testing.assert_allclose(loaded.predict_cohort_proba(rows), fitted.predict_cohort_proba(rows), rtol=1e-12)
    np.testing.assert_allclose(loaded.anomaly_score(rows), fitted.anomaly_score(rows), rtol=1e-12)


def test_every_door_returns_each_rows_cohort(segments, mlflow_store):
    rows, _ = segments
    columns = [f"x{i}" for i in range(rows.shape[1])]
    detector = AnomalyVaDE(n_components=3, **FAST).fit(pd.DataFrame(rows[:900], columns=columns))
    frame = pd.DataFrame(rows[900:], columns=columns)
    expected = detector.predict_cohort(frame)
    np.testing.assert_array_equal(score_table(detector, frame)["cohort"], expected)
    info = anomvae.log_model(detector, name="model", input_example=frame.head())
    predictions = mlflow.pyfunc.load_model(info.model_uri).predict(frame)
    np.testing.assert_array_equal(predictions["cohort"], expected)


def test_the_mixture_is_fitted_even_when_training_ends_in_the_warm_up(segments):
    rows, _ = segments
    detector = AnomalyVaDE(n_components=3, warmup_epochs=50, **FAST).fit(rows[:300])
    assert detector.scorer_.mixture_fitted.item() == 1
    means = detector.scorer_.prior.means
    assert not torch.allclose(means, means[:1].expand_as(means))  # no longer K copies of N(0, I)


def test_early_stopping_waits_for_the_mixture():
    # Three segments, 450 rows: the "auto" warm-up is 75 epochs of 4 steps; early stopping
    # once ended this fit at epoch 38, so the mixture was never trained with the networks.
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0, 0, 0], [8, 8, 0, 0], [-8, 8, 5, 0]])
    rows = centres[rng.integers(0, 3, 450)] + rng.normal(size=(450, 4))
    detector = AnomalyVaDE(n_components=3, random_state=0).fit(rows)
    start = detector.scorer_.early_stopping_start
    assert start == detector.scorer_.warmup_epochs > 10
    assert len(detector.history_["epoch"]) >= min(detector.epochs, start + detector.patience)


def test_components_that_coincide_over_two_segments_are_parted():
    # Review finding: three clear segments of 450 rows came out as two cohorts (sizes 0 / 169 / 281):
    # two components met while the codes still overlapped and EM kept them identical.
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(0)
    centres = np.array([[0, 0, 0, 0], [8, 8, 0, 0], [-8, 8, 5, 0]])
    labels = rng.integers(0, 3, 450)
    rows = centres[labels] + rng.normal(size=(450, 4))
    detector = AnomalyVaDE(n_components=3, random_state=0).fit(rows)
    assert adjusted_rand_score(labels, detector.predict_cohort(rows)) > 0.95
    # With the cohorts right, the prior density finds rows between them (docs/variants.md: 0.991).
    between = np.repeat((centres[[0, 0, 1]] + centres[[1, 2, 2]]) / 2, 20, axis=0) + rng.normal(scale=0.3, size=(60, 4))
    inside = centres[rng.integers(0, 3, 200)] + rng.normal(size=(200, 4))
    prior = AnomalyVaDE(n_components=3, scoring="prior", random_state=0).fit(rows)
    assert outlier_roc_auc(prior, np.vstack([inside, between]), np.r_[np.zeros(200), np.ones(60)]) > 0.95


def test_the_split_test_leaves_surplus_components_on_one_segment_alone():
    from anomvae.models.vade.mixture_fit import split_coincident
    from anomvae.models.vade.network import GaussianMixturePrior

    prior = GaussianMixturePrior(2, 2)
    prior.assign(np.array([0.5, 0.5]), np.zeros((2, 2)), np.ones((2, 2)))
    one_segment = torch.randn(400, 2, generator=torch.Generator().manual_seed(0))
    assert split_coincident(prior, one_segment, torch.full((400, 2), 0.01), seed=0) == 0
    two_segments = torch.cat([one_segment[:200] - 4, one_segment[200:] + 4])
    assert split_coincident(prior, two_segments, torch.full((400, 2), 0.01), seed=0) == 1
    assert sorted(prior.means[:, 0].round().tolist()) == [-4.0, 4.0]


def test_an_update_of_a_fitted_mixture_does_not_wait_for_a_warm_up(segments):
    # Review finding: partial_fit sat through the warm-up again (55 epochs against 11), though the
    # mixture was fitted and the objective no longer switches.
    rows, _ = segments
    detector = AnomalyVaDE(n_components=3, random_state=0).fit(rows[:700])
    assert detector.scorer_.early_stopping_start > 0
    detector.partial_fit(rows[700:])
    assert detector.scorer_.early_stopping_start == 0


def test_bad_input_is_refused_with_a_clear_error(fitted):
    with pytest.raises(ValueError, match="n_components"):
        AnomalyVaDE(n_components=0).fit(np.zeros((10, 2)))
    with pytest.raises(ValueError, match="warmup_epochs"):
        AnomalyVaDE(warmup_epochs="soon").fit(np.zeros((10, 2)))
    with pytest.raises(NotFittedError):
        AnomalyVaDE().predict_cohort(np.zeros((3, 6)))
    with pytest.raises(ValueError, match="features"):
        fitted.predict_cohort(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        fitted.predict_cohort_proba(np.full((3, 6), np.nan))


def test_more_components_than_training_rows_warn():
    # An attack's finding: n_components=150 on 100 rows fitted without a word.
    rows = np.random.default_rng(0).normal(size=(100, 3))
    with pytest.warns(UserWarning, match="n_components=150 exceeds the 90 training rows"):
        AnomalyVaDE(n_components=150, epochs=1, random_state=0).fit(rows)

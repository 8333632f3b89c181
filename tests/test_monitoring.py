"""anomvae.monitor: alarm rate, score drift, features driving alarms, MLflow logging, CLI."""

import copy
import json

import numpy as np
import pandas as pd
import pytest

import anomvae
from anomvae import AnomalyVAE
from anomvae.cli import main
from anomvae.drift import flag_count_p_value, psi_test
from anomvae.monitoring import PSI_MAJOR, population_stability_index
from anomvae.calibration import RobustFalsePositiveRate
from anomvae.thresholds import Contamination, FalsePositiveRate, FixedScore

COLUMNS = [f"f{i}" for i in range(6)]


def normal_rows(n, seed):
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(100).normal(size=(6, 6))
    return pd.DataFrame(rng.normal(size=(n, 6)) @ mixing, columns=COLUMNS)


@pytest.fixture(scope="module")
def detector():
    return AnomalyVAE(
        threshold=FalsePositiveRate(0.05), validation_fraction=0.4, epochs=10, random_state=0
    ).fit(normal_rows(2000, seed=0))


def drifted(rows):
    shifted = rows.copy()
    spread = shifted[["f1", "f4"]].std()
    shifted[["f1", "f4"]] = 1.5 * shifted[["f1", "f4"]] + 3 * spread
    return shifted


def test_clean_batch_raises_no_alarm(detector):
    report = anomvae.monitor(detector, normal_rows(1000, seed=1))
    assert report.alarms == []
    assert report.n_rows == 1000 and report.expected_rate == detector.threshold_.expected_rate
    assert report.flag_rate_p_value > 0.01 and report.psi < 0.1
    assert "no alarm" in str(report)


def test_drifted_batch_raises_both_alarms_and_names_the_drifted_features(detector):
    report = anomvae.monitor(detector, drifted(normal_rows(1000, seed=2)), n_top_features=3)
    assert report.flag_rate_alarm and report.flag_rate > report.expected_rate
    assert report.drift_alarm and report.psi > PSI_MAJOR and report.ks_p_value < 1e-6
    assert {feature.name for feature in report.top_features[:2]} == {"f1", "f4"}
    assert report.top_features[0].lift > 1 and 0 < report.top_features[0].share <= 1
    text = str(report)
    assert "ALARMS" in text and "f1" in text and "drifted" in text


def test_report_serialises_to_json(detector):
    document = json.loads(json.dumps(anomvae.monitor(detector, drifted(normal_rows(300, seed=3))).to_dict()))
    assert document["flag_rate_alarm"] is True and document["ks_alarm"] is True
    assert len(document["alarms"]) == 2 + document["psi_alarm"]
    assert document["threshold"]["method"] == "false_positive_rate"
    assert set(document["top_features"][0]) == {"name", "mean_score", "reference_score", "excess", "share", "lift"}


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_numpy_batches_use_the_fitted_feature_names(detector):
    report = anomvae.monitor(detector, drifted(normal_rows(500, seed=4)).to_numpy(), n_top_features=2)
    assert {feature.name for feature in report.top_features} <= set(COLUMNS)


@pytest.mark.parametrize("batch_rows", [1, 5, 20, 100, 1000])
def test_false_alarms_on_normal_batches_stay_near_the_significance_level(detector, batch_rows):
    # Fresh reference sets (set_threshold on new normal rows, no retraining) and fresh
    # batches: the alarm rate is averaged over calibrations, as the tests' levels are.
    significance, n_references, n_batches = 0.05, 20, 10
    rows = normal_rows(n_references * (200 + n_batches * batch_rows), seed=7).to_numpy()
    calibrated = copy.deepcopy(detector)
    drift, any_alarm, start = 0, 0, 0
    for _ in range(n_references):
        with pytest.warns(UserWarning, match="does not have valid feature names"):
            calibrated.set_threshold(FalsePositiveRate(0.05), rows[start:start + 200])
        start += 200
        for _ in range(n_batches):
            with pytest.warns(UserWarning, match="does not have valid feature names"):
                report = anomvae.monitor(calibrated, rows[start:start + batch_rows],
                                         significance=significance, n_top_features=0)
            start += batch_rows
            drift += report.drift_alarm
            any_alarm += bool(report.alarms)
    total = n_references * n_batches
    assert drift / total <= 2 * significance
    assert any_alarm / total <= 3 * significance  # the flag-rate test has its own level


def test_psi_of_a_handful_of_rows_is_too_few_rows_not_an_alarm(detector):
    report = anomvae.monitor(detector, normal_rows(5, seed=8))
    assert report.psi is None and not report.psi_alarm
    assert "too few rows" in str(report)
    assert "psi" not in report.metrics()


def test_one_row_however_far_out_raises_no_drift_alarm(detector):
    # Review finding: with 800 reference rows one far row had KS p = 2/801 < 0.005, a "drift" alarm.
    far = normal_rows(1, seed=9) * 50
    report = anomvae.monitor(detector, far)
    assert not report.drift_alarm and report.ks_statistic == 1.0
    assert detector.predict(far)[0] == -1


def test_alarm_text_names_the_statistic_that_fired(detector):
    report = anomvae.monitor(detector, drifted(normal_rows(1000, seed=9)))
    assert any("KS test" in alarm for alarm in report.alarms)
    assert any("PSI" in alarm for alarm in report.alarms)
    assert any("flag rate" in alarm for alarm in report.alarms)


def test_flag_rate_between_the_stated_rate_and_the_set_aside_share_raises_no_alarm():
    # Review finding: on clean lognormal data the fence set 2% of the calibration rows aside, normal
    # rows were then flagged at 2.4% against a stated 1%, and monitor alarmed on clean batches.
    rng = np.random.default_rng(0)
    scores = np.exp(rng.normal(0.0, 1.0, 1000))
    scores[:30] *= 1e4
    fitted = RobustFalsePositiveRate(0.01, folds=0).calibrate(scores)
    assert fitted.estimated_contamination == pytest.approx(0.03)
    assert fitted.upper_expected_rate == pytest.approx(0.03 + 0.97 * fitted.expected_rate)
    assert "alarm rate about 0.04" in str(fitted)
    assert flag_count_p_value(30, 1000, fitted) > 0.5  # as many flagged as the calibration rows
    assert flag_count_p_value(10, 1000, fitted) > 0.5  # the stated rate: the set-aside rows were anomalies
    assert flag_count_p_value(80, 1000, fitted) < 1e-3
    assert flag_count_p_value(0, 5000, fitted) < 1e-3
    clean = FalsePositiveRate(0.01).calibrate(scores[30:])
    assert clean.upper_expected_rate == clean.expected_rate
    assert flag_count_p_value(30, 1000, clean) < 1e-3


def test_a_rate_that_counts_training_anomalies_alarms_only_on_too_many_flags():
    # A user's finding: Contamination(0.05) fitted on rows holding 5% anomalies flagged 0.01-0.13%
    # of clean rows, and monitor called every clean batch "below the expected 5.00%".
    scores = np.random.default_rng(0).normal(size=2000)
    fitted = Contamination(0.05).calibrate(scores, source="training")
    assert flag_count_p_value(0, 200, fitted) == 1.0
    assert flag_count_p_value(10, 200, fitted) > 0.3
    assert flag_count_p_value(30, 200, fitted) < 1e-3
    conformal = FalsePositiveRate(0.05).calibrate(scores)
    assert flag_count_p_value(0, 200, conformal) < 1e-3


def test_alarm_text_gives_the_expected_range_when_calibration_rows_were_set_aside(detector):
    flagged = copy.deepcopy(detector)
    flagged.threshold_ = RobustFalsePositiveRate(0.05, folds=0).calibrate(
        np.r_[detector.reference_scores_, np.full(40, 1e6)], source="held-out")
    flagged.offset_ = flagged.threshold_.offset
    report = anomvae.monitor(flagged, drifted(normal_rows(1000, seed=9)))
    assert report.upper_expected_rate > report.expected_rate
    line = next(alarm for alarm in report.alarms if "flag rate" in alarm)
    assert f"above the expected {report.expected_rate:.2%}-{report.upper_expected_rate:.2%}" in line
    assert "set aside as contamination" in str(report)
    assert report.metrics()["upper_expected_rate"] == report.upper_expected_rate


def test_population_stability_index():
    rng = np.random.default_rng(5)
    reference = rng.normal(size=5000)
    assert population_stability_index(reference, rng.normal(size=5000)) < 0.01
    assert population_stability_index(reference, rng.normal(1.0, 1.0, size=5000)) > PSI_MAJOR
    assert np.isfinite(population_stability_index(reference, np.full(100, 50.0)))


@pytest.mark.parametrize("n_reference", [60, 1000])
def test_psi_p_value_holds_its_level_on_a_hundred_rows(n_reference):
    # Ten rows per decile: the chi-square approximation gave 2.1-3.5% false alarms at
    # level 1% here; the simulated law of the PSI holds the level.
    rng = np.random.default_rng(3)
    trials = 2000
    alarms = sum(
        psi_test(rng.normal(size=n_reference), rng.normal(size=100), draws=2000)[1] < 0.01
        for _ in range(trials)
    )
    assert alarms / trials <= 0.01 + 3 * np.sqrt(0.01 * 0.99 / trials)


@pytest.mark.parametrize("n_reference", [1, 2, 5])
def test_psi_p_value_holds_its_level_on_references_of_a_few_rows(n_reference):
    # Review finding: under ten reference rows the bin above the maximum was given almost no
    # mass, though a new row exceeds n exchangeable ones with probability 1 / (n + 1): a 1-row
    # reference gave p < 0.005 on every normal 1,000-row batch, 2 rows on 29%.
    rng = np.random.default_rng(4)
    trials = 600
    p_values = np.array([psi_test(rng.normal(size=n_reference), rng.normal(size=1000), draws=500)[1]
                         for _ in range(trials)])
    for level in (0.01, 0.1):
        assert np.mean(p_values < level) <= level + 3 * np.sqrt(level * (1 - level) / trials)


def test_psi_still_sees_a_shift_above_a_tied_maximum():
    # Review finding on the mend above: it gave the bin above a *tied* maximum the mass 1/(n+1)
    # too, and a 5% shift above a constant reference went from p = 0.007 to 0.03.
    psi, p_value = psi_test(np.ones(100), np.r_[np.ones(950), np.full(50, 2.0)])
    assert psi > PSI_MAJOR and p_value < 0.01


def test_fits_of_a_dozen_rows_raise_no_false_drift_alarms():
    # 15 rows hold out one: that single held-out score is the drift reference.
    detector = AnomalyVAE(epochs=5, random_state=0).fit(normal_rows(15, seed=30))
    assert detector.drift_reference_scores_.size == 1
    rows = normal_rows(20 * 1000, seed=31)
    reports = [anomvae.monitor(detector, rows.iloc[start:start + 1000], n_top_features=0)
               for start in range(0, len(rows), 1000)]
    assert sum(report.drift_alarm for report in reports) <= 1
    assert sum(report.update_recommended for report in reports) <= 1


def test_psi_sees_shifts_of_a_tied_reference_both_ways():
    reference = np.ones(500)
    assert psi_test(reference, np.full(200, 2.0))[0] > PSI_MAJOR
    assert psi_test(reference, np.zeros(200))[0] > PSI_MAJOR
    assert psi_test(reference, np.ones(200)) == (0.0, 1.0)


@pytest.mark.parametrize("batch", [np.array([]), np.full(200, np.nan), np.ones((10, 2))])
def test_psi_test_refuses_empty_or_non_finite_scores(batch):
    with pytest.raises(ValueError, match="batch"):
        psi_test(np.ones(100), batch)


def test_psi_test_checks_bins_and_draws_and_takes_lists():
    with pytest.raises(ValueError, match="bins"):
        psi_test(np.arange(100.0), np.arange(50.0), bins=1)
    with pytest.raises(ValueError, match="draws"):
        psi_test(np.arange(100.0), np.arange(50.0), draws=0)
    assert psi_test(list(range(100)), list(range(50))) == psi_test(np.arange(100.0), np.arange(50.0))


def test_psi_test_is_deterministic_and_separates_a_shift():
    rng = np.random.default_rng(4)
    reference, batch = rng.normal(size=500), rng.normal(size=200)
    assert psi_test(reference, batch) == psi_test(reference, batch)
    psi, p_value = psi_test(reference, batch + 1.0)
    assert psi == population_stability_index(reference, batch + 1.0) and p_value < 1e-3


def test_bad_arguments_are_refused(detector):
    with pytest.raises(ValueError, match="significance"):
        anomvae.monitor(detector, normal_rows(10, seed=6), significance=1.5)
    with pytest.raises(ValueError, match="n_top_features"):
        anomvae.monitor(detector, normal_rows(10, seed=6), n_top_features=-1)
    with pytest.raises(ValueError, match="feature names"):
        anomvae.monitor(detector, normal_rows(10, seed=6).iloc[:, :3])


def test_active_mlflow_run_gets_a_time_series_of_metrics(detector, mlflow_store):
    import mlflow

    with mlflow.start_run() as run:
        for seed in (7, 8):
            anomvae.monitor(detector, normal_rows(200, seed=seed))
        anomvae.monitor(detector, normal_rows(200, seed=9), log_to_mlflow=False)
    history = mlflow.MlflowClient().get_metric_history(run.info.run_id, "monitor.flag_rate")
    assert sorted(entry.step for entry in history) == [0, 1]
    psi = mlflow.MlflowClient().get_metric_history(run.info.run_id, "monitor.psi")
    assert len(psi) == 2
    thresholds = mlflow.MlflowClient().get_metric_history(run.info.run_id, "monitor.threshold")
    assert [entry.value for entry in thresholds] == pytest.approx([-detector.offset_] * 2)


def test_cli_monitor_prints_writes_json_and_fails_on_alarm(detector, tmp_path, capsys):
    model = tmp_path / "model.safetensors"
    detector.save(model)
    clean, shifted = tmp_path / "clean.csv", tmp_path / "shifted.csv"
    normal_rows(300, seed=10).to_csv(clean, index=False)
    drifted(normal_rows(300, seed=11)).to_csv(shifted, index=False)
    assert main(["monitor", str(model), str(clean), "--fail-on-alarm"]) == 0
    assert "no alarm" in capsys.readouterr().out
    report_path = tmp_path / "report.json"
    assert main(["monitor", str(model), str(shifted), "--json", str(report_path), "--fail-on-alarm"]) == 1
    assert "ALARMS" in capsys.readouterr().out
    assert json.loads(report_path.read_text())["drift_alarm"] is True
    assert main(["monitor", str(model), str(tmp_path / "missing.csv")]) == 2
    # New-user finding: an unwritable --json path failed after the report was printed, exit 2 hiding the alarm.
    capsys.readouterr()
    assert main(["monitor", str(model), str(shifted), "--json", str(tmp_path / "nodir" / "r.json")]) == 2
    captured = capsys.readouterr()
    assert "folder" in captured.err and "does not exist" in captured.err and "ALARMS" not in captured.out
    # ... and monitor gives the --keep hint for an id column, as score does.
    normal_rows(50, seed=12).assign(ts=range(50)).to_csv(tmp_path / "with_id.csv", index=False)
    assert main(["monitor", str(model), str(tmp_path / "with_id.csv")]) == 2
    assert "named with --keep" in capsys.readouterr().err


def test_image_models_are_monitored_per_pixel():
    rng = np.random.default_rng(12)
    images = rng.uniform(size=(300, 1, 8, 8)).astype(np.float32)
    detector = AnomalyVAE(epochs=2, validation_fraction=0.3, random_state=0).fit(images)
    assert detector.reference_feature_scores_.shape == (64,)
    batch = images[:50].copy()
    batch[:, 0, 2, 3] = 1.0
    report = anomvae.monitor(detector, batch, n_top_features=2)
    assert report.n_rows == 50 and all(f.name.startswith("pixel_") for f in report.top_features)
    detector.set_threshold(FalsePositiveRate(0.1), images[200:])
    assert detector.reference_feature_scores_.shape == (64,) and detector.reference_scores_.size == 100


def test_feature_scores_are_computed_for_flagged_rows_only(detector):
    batch = pd.concat([normal_rows(400, seed=13), drifted(normal_rows(100, seed=14))], ignore_index=True)
    report = anomvae.monitor(detector, batch, n_top_features=6)
    flagged = detector.anomaly_score(batch) > detector.threshold_.value
    expected = detector.feature_scores(batch[flagged]).mean(axis=0)
    for feature in report.top_features:
        assert feature.mean_score == pytest.approx(expected[feature.name])
    assert report.n_reference == 800 and report.reference_source == "held-out"
    assert "800 held-out rows" in str(report)


def test_offset_changed_by_hand_is_refused(detector):
    edited = copy.deepcopy(detector)
    edited.offset_ -= 1.0
    with pytest.raises(ValueError, match="FixedScore"):
        anomvae.monitor(edited, normal_rows(10, seed=15))
    edited.set_threshold(FixedScore(-detector.offset_ + 1.0))
    assert anomvae.monitor(edited, normal_rows(10, seed=15)).threshold["method"] == "fixed_score"


def test_model_saved_before_thresholds_cannot_be_monitored_without_a_reference():
    from pathlib import Path

    from sklearn.exceptions import NotFittedError

    old = anomvae.load(Path(__file__).parent / "fixtures" / "model_v1.safetensors")
    rows = pd.DataFrame({"x": [0.1, 5.0], "y": [0.0, -4.0], "kind": ["a", "b"]})
    with pytest.raises(NotFittedError, match="set_threshold"):
        anomvae.monitor(old, rows)


@pytest.fixture(scope="module")
def small_fit():
    """200 rows: the default threshold cross-fits, and 20 rows are held out."""
    return AnomalyVAE(epochs=20, random_state=0).fit(normal_rows(200, seed=1000))


def test_a_cross_fitted_threshold_keeps_held_out_scores_as_the_drift_reference(small_fit):
    assert small_fit.reference_source_ == "out-of-fold" and small_fit.reference_scores_.size == 200
    assert small_fit.drift_reference_source_ == "held-out" and small_fit.drift_reference_scores_.size == 20
    report = anomvae.monitor(small_fit, normal_rows(100, seed=21), n_top_features=0)
    assert (report.reference_source, report.n_reference) == ("held-out", 20)


def test_drift_reference_survives_saving_and_follows_a_supplied_reference(small_fit, tmp_path):
    small_fit.save(tmp_path / "m.safetensors")
    loaded = anomvae.load(tmp_path / "m.safetensors")
    np.testing.assert_array_equal(loaded.drift_reference_scores_, small_fit.drift_reference_scores_)
    assert (loaded.drift_reference_source_, loaded.reference_source_) == ("held-out", "out-of-fold")
    loaded.set_threshold(RobustFalsePositiveRate(0.05))
    assert (loaded.drift_reference_source_, loaded.drift_reference_scores_.size) == ("held-out", 20)
    loaded.set_threshold(FalsePositiveRate(0.05), normal_rows(300, seed=22))
    assert (loaded.drift_reference_source_, loaded.drift_reference_scores_.size) == ("supplied", 300)


def test_large_normal_batches_after_a_small_fit_raise_no_drift_alarms(small_fit):
    # Against this fit's out-of-fold scores (fold models trained on 144 rows, the final one on 180)
    # 12 of these 40 batches raised drift alarms (benchmarks/monitor_false_alarms.py: 21% over three fits).
    rows = normal_rows(40 * 1000, seed=23)
    alarms = sum(anomvae.monitor(small_fit, rows.iloc[start:start + 1000], n_top_features=0).drift_alarm
                 for start in range(0, len(rows), 1000))
    assert alarms <= 2

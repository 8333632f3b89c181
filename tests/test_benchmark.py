"""The benchmark harness: splits, failure recording, and a small end-to-end run."""

import json

import numpy as np
import pandas as pd
import pytest

from anomvae import registry
from anomvae.benchmark import run_benchmark, select_detectors, split
from anomvae.benchmark.report import markdown_table
from anomvae.benchmark.runner import Job, run_jobs
from anomvae.benchmark.protocols import contaminated_protocol
from anomvae.benchmark.suites import CONFIRMATION, DEVELOPMENT, TableTask, discover_tasks

SMALL_DATASETS = "14_glass,42_WBC"


@pytest.fixture
def csv_dataset(tmp_path):
    """A 300-row CSV table with a label column and 15 clear anomalies."""
    rng = np.random.default_rng(0)
    normal = rng.normal(size=(285, 4))
    anomalies = rng.normal(loc=6.0, size=(15, 4))
    frame = pd.DataFrame(np.vstack([normal, anomalies]), columns=list("abcd"))
    frame["label"] = [0] * 285 + [1] * 15
    folder = tmp_path / "data"
    folder.mkdir()
    frame.sample(frac=1.0, random_state=0).to_csv(folder / "blobs.csv", index=False)
    return folder


def test_every_registered_estimator_and_the_six_peers_take_part():
    names = [detector.name for detector in select_detectors("all")]
    assert set(registry.names()) <= set(names)
    for peer in ("IForest", "ECOD", "KNN", "VAE", "AutoEncoder", "DeepSVDD"):
        assert f"PyOD-{peer}" in names
    with pytest.raises(ValueError, match="unknown detector"):
        select_detectors("NoSuchDetector")


@pytest.mark.parametrize("protocol", ["semi-supervised", "unsupervised"])
def test_splits_are_disjoint_reproducible_and_respect_the_protocol(protocol):
    y = np.r_[np.zeros(900, int), np.ones(100, int)]
    train, test = split(y, protocol, seed=3, max_rows=500)
    again_train, _ = split(y, protocol, seed=3, max_rows=500)
    assert np.array_equal(train, again_train)
    assert not set(train) & set(test)
    assert len(train) + len(test) <= 500
    if protocol == "semi-supervised":
        assert y[train].sum() == 0
    else:
        assert 0 < y[train].sum() < len(train)
    assert y[test].sum() > 0


@pytest.mark.parametrize("rate", [0.01, 0.05, 0.1])
def test_contaminated_protocol_injects_the_asked_share_of_anomalies_into_training(rate):
    y = np.r_[np.zeros(2000, int), np.ones(400, int)]
    train, test = split(y, contaminated_protocol(rate), seed=1)
    clean_train, _ = split(y, "semi-supervised", seed=1)
    assert not set(train) & set(test)
    assert set(clean_train) <= set(train)
    assert y[train].mean() == pytest.approx(rate, abs=0.002)
    assert y[test].sum() == 400 - y[train].sum()


def test_contaminated_protocol_keeps_half_the_anomalies_for_testing_and_checks_its_rate():
    y = np.r_[np.zeros(1000, int), np.ones(10, int)]
    train, test = split(y, contaminated_protocol(0.2), seed=0)
    assert y[train].sum() == 5 and y[test].sum() == 5
    with pytest.raises(ValueError, match="contamination rate"):
        contaminated_protocol(0.5)
    with pytest.raises(ValueError, match="protocol must be one of"):
        split(y, "contaminated-lots", seed=0)


def test_development_and_confirmation_parts_cover_the_shared_suite_once():
    assert not set(DEVELOPMENT) & set(CONFIRMATION)
    assert len(DEVELOPMENT) + len(CONFIRMATION) == 33
    assert abs(len(DEVELOPMENT) - len(CONFIRMATION)) <= 1


@pytest.mark.needs_shared_data
def test_a_part_name_selects_exactly_that_part(shared_data):
    names = [task.name for task in discover_tasks("tabular", shared_data / "tabular", "confirmation")]
    assert sorted(names) == sorted(CONFIRMATION)


def test_failures_are_recorded_not_dropped(csv_dataset):
    task = TableTask("blobs", str(csv_dataset / "blobs.csv"))
    bad_params = {"params": {"AnomalyVAE": {"epochs": 0}}}
    jobs = [Job(task, "AnomalyVAE", 0, "semi-supervised", None, bad_params),
            Job(task, "PyOD-KNN", 0, "semi-supervised", None)]
    records = run_jobs(jobs, threads=1, progress=False)
    assert [r["status"] for r in records] == ["error", "ok"]
    assert "epochs" in records[0]["error"]
    assert records[1]["roc_auc"] > 0.9
    assert records[1]["peak_memory_mb"] >= 0 and records[1]["fit_rows_per_second"] > 0
    table = markdown_table(records, "roc_auc")
    assert "*error*" in table and "| **failed** | 1 | 0 |" in table


def test_a_run_over_its_time_limit_is_a_timeout(csv_dataset):
    task = TableTask("blobs", str(csv_dataset / "blobs.csv"))
    slow = {"epochs": 10_000}  # the limit counts from when the worker is ready, not its start-up
    records = run_jobs([Job(task, "AnomalyVAE", 0, "semi-supervised", None, slow)], timeout=0.5,
                       threads=1, progress=False)
    assert records[0]["status"] == "timeout"


def test_csv_folder_end_to_end(csv_dataset, tmp_path):
    out = tmp_path / "results"
    result = run_benchmark("tabular", csv_dataset, detectors="AnomalyVAE,PyOD-IForest", seeds=1,
                           epochs=2, threads=1, out=out, plots=False, progress=False)
    assert {r["status"] for r in result["records"]} == {"ok"}
    assert "| blobs |" in (out / "results.md").read_text()


@pytest.mark.needs_shared_data
def test_smoke_benchmark_on_two_small_datasets(shared_data, tmp_path):
    out = tmp_path / "results"
    run_benchmark("tabular", shared_data / "tabular", datasets=SMALL_DATASETS,
                  detectors="AnomalyVAE,PyOD-KNN,PyOD-AutoEncoder", seeds=1, epochs=2, threads=1,
                  out=out, progress=False)
    report = json.loads((out / "results.json").read_text())
    assert report["environment"]["versions"]["pyod"]
    assert report["environment"]["hardware"]["available_cores"] >= 1
    runs = report["runs"]
    assert len(runs) == 2 * 3
    assert all(run["status"] == "ok" and 0.0 <= run["roc_auc"] <= 1.0 for run in runs)
    assert all(run["fit_seconds"] > 0 and run["score_rows_per_second"] > 0 for run in runs)
    markdown = (out / "results.md").read_text()
    for needle in ("14_glass", "42_WBC", "**mean rank**", "Speed and memory"):
        assert needle in markdown
    for plot in ("rank.png", "auc_per_dataset.png", "fit_time_vs_auc.png"):
        assert (out / plot).stat().st_size > 1000


def test_image_suite_finds_one_class_mnist_tasks(shared_data):
    tasks = discover_tasks("images", shared_data / "images")
    names = [task.name for task in tasks]
    assert [f"mnist_{digit}" for digit in range(10)] == names[:10]
    data = tasks[0].run_data("semi-supervised", seed=0, max_rows=300)
    assert data.X_train.shape[1:] == (28, 28) and len(data.X_train) == 300
    assert 0 < data.y_test.mean() < 1


@pytest.mark.slow
def test_full_tabular_benchmark(shared_data, tmp_path):
    """The foundation measurement (about an hour on two busy cores)."""
    result = run_benchmark("tabular", shared_data / "tabular",
                           detectors="AnomalyVAE,PyOD-VAE,PyOD-AutoEncoder,PyOD-KNN", seeds=1,
                           out=tmp_path, plots=False, progress=False)
    table = pd.DataFrame(result["records"]).pivot_table(index="dataset", columns="detector",
                                                        values="roc_auc")
    assert table["AnomalyVAE"].mean() > table["PyOD-VAE"].mean()
    assert table["AnomalyVAE"].mean() > table["PyOD-AutoEncoder"].mean()


def test_cli_bench_subcommand_reports_a_missing_folder(tmp_path, capsys):
    from anomvae.cli import main

    assert main(["bench", "--suite", "tabular", "--data", str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("arguments, message", [
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--detectors", ""], "no detector named"),
    (["--max-rows", "0"], "--max-rows must be at least 2"),
    (["--datasets", "nosuch"], "matches none of the 1 tabular datasets"),
    (["--rows", "5"], "belong to --suite throughput"),
])
def test_bench_refuses_arguments_it_could_only_fail_on_or_ignore(csv_dataset, tmp_path, capsys, arguments, message):
    from anomvae.cli import main

    base = ["bench", "--data", str(csv_dataset), "--detectors", "KNN", "--out", str(tmp_path / "r"), "--quiet"]
    assert main([*base, *arguments]) == 2
    assert message in capsys.readouterr().err


def test_the_speed_suite_refuses_options_it_does_not_read(tmp_path, capsys):
    from anomvae.cli import main

    assert main(["bench", "--suite", "speed", "--rows", "500", "--epochs", "1", "--out", str(tmp_path)]) == 2
    assert "does not take --epochs, --rows" in capsys.readouterr().err


def test_a_detector_named_twice_runs_once():
    assert [d.name for d in select_detectors("KNN,PyOD-KNN,KNN")] == ["PyOD-KNN"]


def test_resume_refuses_runs_made_with_other_settings(csv_dataset, tmp_path):
    # Review finding: --resume reused --epochs 1 runs under a --epochs 60 command line.
    out = tmp_path / "results"
    settings = dict(detectors="PyOD-KNN", seeds=1, threads=1, out=out, plots=False, progress=False)
    run_benchmark("tabular", csv_dataset, epochs=1, **settings)
    assert run_benchmark("tabular", csv_dataset, epochs=1, resume=True, **settings)["records"]
    with pytest.raises(ValueError, match="holds runs made with"):
        run_benchmark("tabular", csv_dataset, epochs=60, resume=True, **settings)
    with pytest.raises(ValueError, match="holds runs made with"):
        run_benchmark("tabular", csv_dataset, epochs=1, max_rows=100, resume=True, **settings)


def test_parallel_workers_give_the_same_results_in_job_order(csv_dataset, tmp_path):
    task = TableTask("blobs", str(csv_dataset / "blobs.csv"))
    jobs = [Job(task, name, seed, "semi-supervised", None)
            for seed in (0, 1) for name in ("PyOD-KNN", "PyOD-IForest")]
    journal = tmp_path / "runs.jsonl"
    parallel = run_jobs(jobs, threads=1, progress=False, workers=2, journal=journal)
    serial = run_jobs(jobs, threads=1, progress=False)
    assert [(r["detector"], r["seed"]) for r in parallel] == [(j.detector, j.seed) for j in jobs]
    assert [r["roc_auc"] for r in parallel] == [r["roc_auc"] for r in serial]
    assert len(journal.read_text().splitlines()) == len(jobs)


def test_workers_must_be_positive(csv_dataset):
    task = TableTask("blobs", str(csv_dataset / "blobs.csv"))
    with pytest.raises(ValueError, match="workers"):
        run_jobs([Job(task, "PyOD-KNN", 0, "semi-supervised", None)], workers=0, progress=False)


def test_speed_benchmark_reports_the_ratio_and_the_eager_pytorch_floor():
    from anomvae.benchmark.speed import markdown, measure

    result = measure(n_rows=64, n_features=5, repeats=1, score_rows=500, threads=1)
    assert result["fit_speedup"] > 0
    assert set(result["step_seconds"]) == {"anomvae", "anomvae_autograd", "pyod", "bare_pytorch"}
    assert result["fit_speedup_autograd"] > 0
    assert 0 < result["step_seconds"]["bare_pytorch"] < 1
    assert result["eager_pytorch_ceiling_speedup"] == pytest.approx(
        result["step_seconds"]["pyod"] / result["step_seconds"]["bare_pytorch"])
    report = markdown(result)
    assert "Fit speed-up" in report and "bare eager-PyTorch" in report and "AnomalyVAE (autograd)" in report


def test_named_configurations_build_their_estimator_with_their_parameters():
    detector = select_detectors("AnomalyVAE-reconstruction")[0]
    model = detector.build(4, 3, {"epochs": 2})
    assert type(model).__name__ == "AnomalyVAE"
    assert model.get_params()["scoring"] == "reconstruction"
    assert model.get_params()["trim_fraction"] == 0
    assert model.get_params()["epochs"] == 2 and model.get_params()["random_state"] == 3

"""The benchmark on a user's own data: checked tables, resumes that notice changes, interrupts, journals."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from anomvae.benchmark import run_benchmark
from anomvae.benchmark.journal import append_record, read_journal
from anomvae.benchmark.preflight import MIN_TRAIN_ROWS, check_tasks
from anomvae.benchmark.report import contamination_notes, markdown_table
from anomvae.benchmark.runner import Job, run_jobs
from anomvae.benchmark.suites import TableTask, discover_tasks

QUICK = dict(detectors="PyOD-KNN", seeds=1, threads=1, plots=False, progress=False)


def blobs(rows: int = 120, anomalies: int = 8, seed: int = 0) -> pd.DataFrame:
    """A table with features a, b, c and a label column: anomalies far from the normal rows."""
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(rows - anomalies, 3)), rng.normal(loc=5.0, size=(anomalies, 3))])
    frame = pd.DataFrame(X, columns=list("abc"))
    frame["label"] = [0] * (rows - anomalies) + [1] * anomalies
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def reasons(folder, protocol="semi-supervised", seeds=(0,)) -> dict:
    _, skipped, _ = check_tasks(discover_tasks("tabular", folder), protocol, list(seeds), None)
    return {entry["dataset"]: entry["reason"] for entry in skipped}


def test_bad_tables_are_skipped_once_with_a_reason_naming_the_file(tmp_path):
    nan = blobs()
    nan.loc[4, "b"] = np.nan
    nan.to_csv(tmp_path / "nan.csv", index=False)
    blobs().assign(city="x").to_csv(tmp_path / "text.csv", index=False)
    blobs().assign(label=0).to_csv(tmp_path / "noanomaly.csv", index=False)
    blobs(rows=12, anomalies=1).to_csv(tmp_path / "tiny.csv", index=False)
    (tmp_path / "empty.csv").write_text("")
    np.savez(tmp_path / "noX.npz", A=np.zeros((5, 2)))
    np.savez(tmp_path / "flat.npz", X=np.zeros(50), y=np.zeros(50))
    blobs().to_csv(tmp_path / "good.csv", index=False)
    found = reasons(tmp_path)
    assert "good" not in found and len(found) == 7
    assert "nan.csv" in found["nan"] and "line 6, column 'b'" in found["nan"]
    assert "non-numeric feature column(s) city" in found["text"]
    assert "no anomaly" in found["noanomaly"]
    assert f"fewer than {MIN_TRAIN_ROWS}" in found["tiny"]
    assert "empty" in found["empty"]
    assert "needs the arrays X and y" in found["noX"]
    assert "2-D" in found["flat"]
    # A review's findings: a truncated .npz crashed the whole command, and boolean X was refused.
    (tmp_path / "trunc.npz").write_bytes((tmp_path / "noX.npz").read_bytes()[:100])
    np.savez(tmp_path / "flags.npz", X=blobs()[["a", "b"]].to_numpy() > 0, y=blobs()["label"].to_numpy())
    found = reasons(tmp_path)
    assert "trunc.npz: not a readable .npz file" in found["trunc"] and "flags" not in found


def test_skipped_datasets_are_listed_apart_from_detector_failures(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    blobs().to_csv(data / "good.csv", index=False)
    blobs().assign(label=0).to_csv(data / "bad.csv", index=False)
    result = run_benchmark("tabular", data, out=tmp_path / "r", **QUICK)
    assert [r["dataset"] for r in result["records"]] == ["good"]
    markdown = (tmp_path / "r" / "results.md").read_text()
    assert "## Datasets skipped" in markdown and "- bad:" in markdown and "| bad |" not in markdown
    assert "skipping" in capsys.readouterr().err
    from anomvae.cli import main

    assert main(["bench", "--data", str(data / "bad.csv"), "--out", str(tmp_path / "r2"), "--quiet"]) == 1
    assert "no dataset can be run: " in capsys.readouterr().err


def test_label_column_rule_option_and_a_saved_index(tmp_path, capsys):
    frame = blobs().rename(columns={"label": "Class"})
    frame.to_csv(tmp_path / "t.csv")  # with pandas' unnamed index column
    assert reasons(tmp_path) == {}  # no known label name: the last column, Class, is the label
    task = TableTask("t", str(tmp_path / "t.csv"))
    table = task.read()
    assert table.X.shape == (120, 3) and table.notes and "Unnamed: 0" in table.notes[0]
    frame[["Class", "a", "b", "c"]].to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(ValueError, match="label column 'c': labels must be 1 .anomaly. or 0 .normal.*first at line 2;.*--label-column NAME"):
        task.read()
    assert TableTask("t", str(tmp_path / "t.csv"), "Class").read().X.shape == (120, 3)
    with pytest.raises(ValueError, match="no column 'nope'"):
        TableTask("t", str(tmp_path / "t.csv"), "nope").read()


def test_a_single_file_and_parquet_tables_are_accepted(tmp_path):
    blobs().to_parquet(tmp_path / "p.parquet")
    (tmp_path / "notes.txt").write_text("x")
    assert [task.name for task in discover_tasks("tabular", tmp_path)] == ["p"]
    assert [task.name for task in discover_tasks("tabular", tmp_path / "p.parquet")] == ["p"]
    assert TableTask("p", str(tmp_path / "p.parquet")).read().X.shape == (120, 3)
    with pytest.raises(ValueError, match=r"\.npz, \.csv or \.parquet"):
        discover_tasks("tabular", tmp_path / "notes.txt")
    (tmp_path / "p.parquet").unlink()
    with pytest.raises(ValueError, match=r"no tabular datasets \(\.npz, \.csv or \.parquet files\)"):
        discover_tasks("tabular", tmp_path)


def test_resume_reruns_changed_data_and_failed_runs_and_keeps_unfingerprinted_ones(tmp_path):
    data, out = tmp_path / "data", tmp_path / "r"
    data.mkdir()
    blobs(seed=0).to_csv(data / "t.csv", index=False)
    first = run_benchmark("tabular", data, out=out, **QUICK)["records"][0]
    assert first["fingerprint"].startswith("sha256:")
    blobs(seed=1).to_csv(data / "t.csv", index=False)  # edited in place
    second = run_benchmark("tabular", data, out=out, resume=True, **QUICK)["records"][0]
    journal = out / "runs.jsonl"
    assert second["fingerprint"] != first["fingerprint"] and len(read_journal(journal)) == 2  # run again
    old = {key: value for key, value in second.items() if key != "fingerprint"}
    journal.write_text(json.dumps({**old, "roc_auc": 0.123}) + "\n")
    kept = run_benchmark("tabular", data, out=out, resume=True, **QUICK)["records"][0]
    assert kept["roc_auc"] == 0.123  # a record without a fingerprint is accepted as before
    journal.write_text(json.dumps({**second, "status": "crashed", "error": "worker process died"}) + "\n")
    retried = run_benchmark("tabular", data, out=out, resume=True, **QUICK)["records"][0]
    assert retried["status"] == "ok" and retried["roc_auc"] == second["roc_auc"]


def test_a_cut_short_last_journal_line_is_dropped_and_other_damage_named(tmp_path, capsys):
    journal = tmp_path / "runs.jsonl"
    journal.write_text('{"dataset": "a"}\n{"dataset": "b", "sta')
    assert read_journal(journal) == [{"dataset": "a"}]
    assert journal.read_text() == '{"dataset": "a"}\n'
    assert "cut short" in capsys.readouterr().err
    journal.write_text('{"dataset": "a"}\n{"dataset": \n{"dataset": "c"}\n')
    with pytest.raises(ValueError, match=r"runs.jsonl, line 2: not a JSON record.*delete that line"):
        read_journal(journal)
    # A review's finding: a complete last record without its newline shared a line with the next one.
    journal.write_text('{"dataset": "a"}')
    append_record(journal, {"dataset": "b"})
    assert read_journal(journal) == [{"dataset": "a"}, {"dataset": "b"}]


def test_the_time_limit_does_not_count_worker_start_up(tmp_path):
    path = tmp_path / "t.csv"
    blobs(rows=2000, anomalies=50).to_csv(path, index=False)
    task = TableTask("t", str(path))
    slow = Job(task, "AnomalyVAE", 0, "semi-supervised", None, {"epochs": 10_000})
    quick = Job(task, "PyOD-KNN", 0, "semi-supervised", None)
    records = run_jobs([quick, slow, quick], timeout=1.5, threads=1, progress=False)
    assert [r["status"] for r in records] == ["ok", "timeout", "ok"]  # each worker start-up takes seconds
    assert records[2]["wall_seconds"] < 1.5


@pytest.mark.parametrize("option, value", [("--threads", "-1"), ("--threads", "0"), ("--timeout", "0"),
                                           ("--timeout", "-5"), ("--epochs", "0"), ("--jobs", "0")])
def test_bad_numbers_are_refused_naming_the_option(tmp_path, capsys, option, value):
    from anomvae.cli import main

    blobs().to_csv(tmp_path / "t.csv", index=False)
    assert main(["bench", "--data", str(tmp_path / "t.csv"), "--detectors", "KNN", "--out",
                 str(tmp_path / "r"), "--quiet", option, value]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"anomvae bench: {option} must be") and error.count("\n") == 1


def test_ctrl_c_exits_130_with_one_line_and_journals_no_cut_short_run(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for seed in range(3):
        blobs(rows=3000, anomalies=60, seed=seed).to_csv(data / f"t{seed}.csv", index=False)
    command = [sys.executable, "-m", "anomvae.benchmark", "--data", str(data), "--detectors",
               "KNN,AnomalyVAE", "--seeds", "3", "--threads", "1", "--out", str(tmp_path / "r"), "--no-plots"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    while not process.stderr.readline().startswith("[1/18]"):  # until the first run is journalled
        assert process.poll() is None
    os.killpg(process.pid, signal.SIGINT)
    _, error = process.communicate(timeout=60)
    assert process.returncode == 130
    assert error.strip().splitlines()[-1].startswith("anomvae bench: interrupted")
    assert "Traceback" not in error
    records = read_journal(tmp_path / "r" / "runs.jsonl")
    assert records and all(record["status"] == "ok" for record in records)


def test_realised_contamination_is_recorded_and_reported_when_short(tmp_path):
    blobs(rows=200, anomalies=6).to_csv(tmp_path / "t.csv", index=False)
    task = TableTask("t", str(tmp_path / "t.csv"))
    (record,) = run_jobs([Job(task, "PyOD-KNN", 0, "contaminated-0.2", None)], threads=1, isolate=False,
                         progress=False)
    assert record["n_train_anomalies"] == 3 and record["anomaly_share_train"] == pytest.approx(3 / 100)
    (note,) = contamination_notes([record])
    assert "asked 20% of the training rows, realised 3.00%" in note


def test_bold_marks_the_unrounded_best_and_all_failed_detectors_show_a_dash():
    records = [
        {"dataset": "d", "detector": "A", "seed": 0, "status": "ok", "roc_auc": 0.9998},
        {"dataset": "d", "detector": "B", "seed": 0, "status": "ok", "roc_auc": 1.0},
        {"dataset": "d", "detector": "C", "seed": 0, "status": "error", "error": "boom"},
    ]
    table = markdown_table(records, "roc_auc")
    assert "| d | 0.9998 | **1.0000** | *error* |" in table
    # A review's finding: 0.8504 bold as "0.850" beside 0.8503 looked the smaller one.
    close = [{"dataset": "d", "detector": name, "seed": 0, "status": "ok", "roc_auc": value}
             for name, value in (("A", 0.8504), ("B", 0.8503), ("C", 0.7))]
    assert "| d | **0.8504** | 0.8503 | 0.700 |" in markdown_table(close, "roc_auc")
    assert "| **mean** | 1.000 | 1.000 | - |" in table

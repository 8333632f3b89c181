"""The HTML report: its figures, written without MLflow, logged with training runs, rendered by a real browser."""

import re
import shutil
import subprocess

import mlflow
import numpy as np
import pandas as pd
import pytest
from conftest import FAST
from sklearn.metrics import f1_score, precision_score, recall_score

import anomvae
from anomvae.lifecycle import tracking
from anomvae.cli import main
from anomvae.report import build_report

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
needs_browser = pytest.mark.skipif(BROWSER is None, reason="chromium is not installed (.ci/run installs Debian's)")


@pytest.fixture(scope="module")
def labelled():
    rng = np.random.default_rng(21)
    normal = pd.DataFrame(rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5)), columns=list("abcde"))
    outliers = pd.DataFrame(rng.uniform(-9, 9, size=(25, 5)), columns=list("abcde"))
    rows = pd.concat([normal, outliers], ignore_index=True)
    labels = np.r_[np.zeros(300, dtype=int), np.ones(25, dtype=int)]
    detector = anomvae.AnomalyVAE(**FAST).fit(normal.iloc[:200])
    return detector, rows.iloc[200:], labels[200:]


def _dump_dom(path, tmp_path) -> tuple[str, list[str]]:
    """The DOM chromium renders from ``path`` and the console messages it logged."""
    result = subprocess.run(
        [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, [line for line in result.stderr.splitlines() if ":CONSOLE" in line]


def test_report_holds_the_threshold_and_the_figures_at_it(labelled):
    detector, rows, labels = labelled
    page = build_report(detector, rows, labels)
    flagged = (-detector.score_samples(rows) > -detector.offset_).astype(int)
    for value in (precision_score(labels, flagged), recall_score(labels, flagged), f1_score(labels, flagged),
                  -detector.offset_):
        assert f"{value:.4g}" in page
    assert str(detector.threshold_.to_dict()["method"]) in page
    assert page.count("data:image/png;base64,") == 3
    assert not re.search(r"""(src|href)=["']?https?:""", page), "the report must not reach the network"
    assert "<script" not in page


def test_report_without_labels_has_no_classification_section(labelled):
    detector, rows, _ = labelled
    page = build_report(detector, rows)
    assert 'id="confusion"' not in page and 'id="top-rows"' in page


@pytest.mark.parametrize("convert, message", [
    (lambda y: np.where(y == 1, -1, 1), "for scikit-learn's +1/-1 convention"),
    (lambda y: np.where(y == 1, "anomaly", "normal"), "got ['anomaly', 'normal'], first at row 0; map your labels"),
])
def test_report_labels_other_than_0_and_1_get_a_clear_error(labelled, convert, message):
    # Review finding: these raised sklearn's "Target is multiclass" or int("normal") from deep inside.
    detector, rows, labels = labelled
    with pytest.raises(ValueError, match=re.escape(message)):
        build_report(detector, rows, convert(np.asarray(labels)))
    assert 'id="confusion"' in build_report(detector, rows, np.asarray(labels) == 1)  # booleans are fine


def test_undefined_figures_read_n_a_and_bad_top_rows_or_paths_are_refused(labelled, tmp_path):
    # A user's trial: all-normal labels showed "recall 0", a negative top_rows listed nearly every row
    # under "top 564", and a missing output folder failed only after all the scoring.
    detector, rows, labels = labelled
    page = build_report(detector, rows, np.zeros(len(rows), dtype=int))
    assert "n/a (no labelled anomaly)" in page and "n/a (precision or recall undefined)" in page
    with pytest.raises(ValueError, match="top_rows must be a non-negative whole number, got -5"):
        build_report(detector, rows, top_rows=-5)
    assert 'id="top-rows"' in build_report(detector, rows, top_rows=0)
    with pytest.raises(ValueError, match="no folder"):
        anomvae.report.write_report(detector, rows, path=tmp_path / "missing" / "r.html")
    with pytest.raises(ValueError, match="it is a folder"):
        anomvae.report.write_report(detector, rows, path=tmp_path)


def test_one_extreme_score_and_long_column_names_leave_the_figures_readable(labelled):
    # A user's trial: one score of 1.6e12 beside a median of 6 put every row and the threshold in the
    # histogram's first bin; 80-character column names were cut to fragments such as "an_tag_2".
    from anomvae.lifecycle.plots import axis_range, short_names

    scores = np.r_[np.random.default_rng(0).lognormal(1.5, 0.5, 500), 1.6e12]
    low, high = axis_range(scores, threshold=18.0)
    assert low <= np.median(scores) and 18.0 <= high < 100
    names = [f"sensor_{i}_{'very_long_' * 6}tag_{i}" for i in (23, 24)] + ["same" * 10, "same" * 10]
    shown = short_names(names)
    assert len(set(shown)) == 4 and all(len(name) <= 37 for name in shown)
    assert shown[0].endswith("tag_23") and shown[1].endswith("tag_24")
    detector, rows, labels = labelled
    page = build_report(detector, rows, labels)
    assert "ROC-AUC (threshold-free)" in page and "weights kept from" in page


def test_the_kept_epoch_counts_every_fit_and_partial_fit():
    # A review's finding: after two partial_fit calls the report said "10 (epoch 5)" for weights of epoch 10.
    rows = np.random.default_rng(0).normal(size=(200, 4))
    detector = anomvae.AnomalyVAE(epochs=3, patience=None, random_state=0).fit(rows)
    detector.partial_fit(rows).partial_fit(rows)
    assert "9 (epoch 9)" in build_report(detector, rows[:20])


def test_a_threshold_that_cannot_honour_its_rate_is_a_warning_of_the_report():
    # A user's trial: "Training health: no warnings" beside a threshold warning.
    rows = np.random.default_rng(0).normal(size=(150, 4))
    detector = anomvae.AnomalyVAEGAN(**FAST).fit(rows)
    assert detector.threshold_.warnings
    page = build_report(detector, rows[:20])
    assert "cannot be honoured" in page.split('id="health"')[1].split("</div>")[0]
    assert "no warnings" not in page


def test_cli_report_reads_a_csv_with_the_model_schema(tmp_path):
    rng = np.random.default_rng(3)
    rows = pd.DataFrame({"amount": rng.normal(size=120), "branch": rng.choice(["01", "02", "10"], 120)})
    detector = anomvae.AnomalyVAE(**FAST).fit(rows)
    detector.save(tmp_path / "model.safetensors")
    rows.to_csv(tmp_path / "rows.csv", index=False)
    output = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "model.safetensors"), str(tmp_path / "rows.csv"), "-o", str(output)]) == 0
    median_and_tail = r"score median / 99th percentile</td><td>([^<]+)<"
    native = re.search(median_and_tail, build_report(detector, rows)).group(1)
    assert re.search(median_and_tail, output.read_text()).group(1) == native


@needs_browser
def test_console_messages_are_caught(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<html><body><script>console.error("report-check-42")</script></body></html>')
    _, console = _dump_dom(page, tmp_path)
    assert any("report-check-42" in line for line in console)


@needs_browser
def test_cli_report_renders_in_a_browser_without_console_errors(labelled, tmp_path, capsys):
    detector, rows, labels = labelled
    detector.save(tmp_path / "model.safetensors")
    rows.assign(label=labels, id=np.arange(len(rows))).to_csv(tmp_path / "eval.csv", index=False)
    output = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "model.safetensors"), str(tmp_path / "eval.csv"),
                 "--keep", "id", "-o", str(output)]) == 0
    dom, console = _dump_dom(output, tmp_path)
    assert console == []
    flagged = (-detector.score_samples(rows) > -detector.offset_).astype(int)
    true_positives = int(((flagged == 1) & (labels == 1)).sum())
    assert re.search(rf"anomaly \(y=1\)</td><td>{true_positives}</td>", dom)
    assert f"{-detector.offset_:.4g}" in dom and f"{precision_score(labels, flagged):.4g}" in dom
    assert dom.count('src="data:image/png;base64,') == 3


def test_training_run_logs_the_report(mlflow_store, labelled):
    _, rows, labels = labelled
    detector = anomvae.AnomalyVAE(**FAST)
    result = tracking.fit_and_log(detector, rows.iloc[:80], validation=(rows, labels), log_model=False)
    page = mlflow.artifacts.load_text(f"runs:/{result.run_id}/report.html")
    assert 'id="confusion"' in page and f"{-detector.offset_:.4g}" in page


def test_report_never_names_a_context_column_as_a_row_driver():
    rng = np.random.default_rng(4)
    rows = pd.DataFrame({"merchant": rng.choice(["m1", "m2", "m3"], 300), "amount": rng.normal(size=300),
                         "items": rng.normal(size=300)})
    detector = anomvae.AnomalyCVAE(context=["merchant"], **FAST).fit(rows)
    page = build_report(detector, rows.head(50), top_rows=10)
    drivers = re.findall(r"(\w+) \(-?[\d.e+-]+\)", page)
    assert drivers and set(drivers) <= {"amount", "items"}

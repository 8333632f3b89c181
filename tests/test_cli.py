"""The anomvae command line, run as a real subprocess where it matters."""

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import yaml

from anomvae.cli import main


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 4)), columns=["a", "b", "c", "d"])
    frame["label"] = 0
    frame.loc[:19, ["a", "b"]] += 8
    frame.loc[:19, "label"] = 1
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return frame, path


@pytest.fixture
def config(tmp_path, table):
    _, path = table
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump({
        "model": {"name": "AnomalyVAE", "params": {"epochs": 20, "random_state": 0}},
        "data": {"source": str(path), "label_column": "label"},
        "output": str(tmp_path / "model.safetensors"),
        "tracking": {"enabled": False},
    }))
    return config_path


def test_train_prints_report_and_saves(config, tmp_path, capsys):
    assert main(["train", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    for field in ("rows_train", "features", "training_seconds", "threshold", "eval_flag_rate", "eval_roc_auc",
                  "eval_recall", "eval_false_alarm_rate", "eval_anomaly_share"):
        assert field in out
    auc = float(next(line.split()[1] for line in out.splitlines() if line.startswith("eval_roc_auc")))
    assert auc > 0.9
    assert (tmp_path / "model.safetensors").is_file()


@pytest.mark.parametrize("label, expected", [(0, "eval_false_alarm_rate"), (1, "marks 0 of 300 rows normal"),
                                             ("one normal", "marks 1 of 300 rows normal")])
def test_train_on_labels_of_one_class_prints_no_nan_and_names_a_missing_class(config, table, capsys, label,
                                                                              expected):
    # A user's trial: all-normal labels printed "eval_recall nan" with numpy's and scikit-learn's
    # warnings; all-anomaly labels gave "Found array with 0 sample(s)".
    frame, path = table
    frame.assign(label=np.r_[0, np.ones(len(frame) - 1, int)] if label == "one normal" else label).to_csv(
        path, index=False)
    settings = yaml.safe_load(config.read_text())
    settings["model"]["params"]["epochs"] = 2
    config.write_text(yaml.safe_dump(settings))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        code = main(["train", "--config", str(config)])
    captured = capsys.readouterr()
    assert expected in captured.out + captured.err
    assert code == (0 if label == 0 else 2) and "nan" not in captured.out


def test_train_report_says_when_the_threshold_cannot_honour_its_rate(tmp_path, table, capsys):
    frame, _ = table
    path = tmp_path / "small.csv"
    frame.iloc[20:80].drop(columns="label").to_csv(path, index=False)
    config_path = tmp_path / "small.yaml"
    config_path.write_text(yaml.safe_dump({
        "model": {"name": "AnomalyVAE", "params": {"epochs": 5, "random_state": 0}},
        "data": {"source": str(path)}, "output": str(tmp_path / "small.safetensors"),
        "tracking": {"enabled": False},
    }))
    with pytest.warns(UserWarning, match="cannot be honoured"):
        assert main(["train", "--config", str(config_path)]) == 0
    out = capsys.readouterr().out
    assert "threshold_expected_rate" in out and "threshold_rate_interval" in out
    assert "threshold_warnings" in out and "cannot be honoured with" in out


def test_score_keeps_rows_in_order_csv_and_parquet(config, table, tmp_path):
    frame, _ = table
    assert main(["train", "--config", str(config)]) == 0
    features = frame.drop(columns=["label"]).sample(frac=1.0, random_state=1)
    for suffix, write in ((".csv", lambda f, p: f.to_csv(p, index=False)),
                          (".parquet", lambda f, p: f.to_parquet(p, index=False))):
        source = tmp_path / f"new{suffix}"
        write(features, source)
        output = tmp_path / f"scored{suffix}.csv"
        assert main(["score", str(tmp_path / "model.safetensors"), str(source), "-o", str(output)]) == 0
        scored = pd.read_csv(output)
        np.testing.assert_allclose(scored[["a", "b", "c", "d"]].to_numpy(), features.to_numpy())
        assert scored["is_anomaly"].dtype == bool
        injected = features.index < 20
        assert scored["score"][injected].median() > scored["score"][~injected].quantile(0.95)


def test_score_reports_bad_columns_without_traceback(config, table, tmp_path):
    frame, _ = table
    assert main(["train", "--config", str(config)]) == 0
    bad = tmp_path / "bad.csv"
    frame.drop(columns=["label", "d"]).to_csv(bad, index=False)
    result = subprocess.run(
        [sys.executable, "-m", "anomvae.cli", "score", str(tmp_path / "model.safetensors"), str(bad)],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "error" in result.stderr and "d" in result.stderr and "Traceback" not in result.stderr


def test_unknown_config_section_is_refused(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("modle: {}\n")
    assert main(["train", "--config", str(path)]) == 2
    assert "modle" in capsys.readouterr().err


def test_misspelt_key_inside_a_config_section_is_refused(config, capsys):
    settings = yaml.safe_load(config.read_text())
    settings["model"]["parms"] = settings["model"].pop("params")
    config.write_text(yaml.safe_dump(settings))
    assert main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "parms" in err and "'model'" in err


def test_config_section_that_is_not_a_mapping_is_refused(config, capsys):
    settings = yaml.safe_load(config.read_text())
    settings["tracking"] = False
    config.write_text(yaml.safe_dump(settings))
    assert main(["train", "--config", str(config)]) == 2
    assert "'tracking' must be a mapping" in capsys.readouterr().err


def test_score_into_a_missing_folder_is_refused_before_scoring(config, table, tmp_path, capsys):
    _, path = table
    assert main(["train", "--config", str(config)]) == 0
    out = tmp_path / "missing" / "scores.csv"
    assert main(["score", str(tmp_path / "model.safetensors"), str(path), "-o", str(out)]) == 2
    assert "missing" in capsys.readouterr().err and not out.exists()


def test_score_output_dash_is_standard_output(config, table, tmp_path, capsys, monkeypatch):
    frame, _ = table
    path = tmp_path / "features.csv"
    frame.drop(columns=["label"]).to_csv(path, index=False)
    assert main(["train", "--config", str(config)]) == 0
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    assert main(["score", str(tmp_path / "model.safetensors"), str(path), "-o", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "score" in lines[0].split(",") and len(lines) == 1 + 300
    assert not (tmp_path / "-").exists()


def test_main_job_on_embedded_default(tmp_path, mlflow_store):
    result = subprocess.run(
        [sys.executable, "-m", "anomvae.cli", "train", "--output", str(tmp_path / "m.safetensors")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "eval_roc_auc" in result.stdout and (tmp_path / "m.safetensors").is_file()
    assert "anomvae serve models:/anomvae@champion" in result.stdout
    assert "Hint: Inferred schema" not in result.stderr


def test_score_reads_an_npz_with_or_without_labels(config, table, tmp_path, capsys):
    frame, _ = table
    settings = yaml.safe_load(config.read_text())
    features = frame[["a", "b", "c", "d"]].to_numpy()
    np.savez(tmp_path / "train.npz", X=features, y=frame["label"].to_numpy())
    settings["data"] = {"source": str(tmp_path / "train.npz"), "label_column": "label"}
    config.write_text(yaml.safe_dump(settings))
    assert main(["train", "--config", str(config)]) == 0
    model = str(tmp_path / "model.safetensors")
    np.savez(tmp_path / "unlabelled.npz", X=features[:50])
    assert main(["score", model, str(tmp_path / "unlabelled.npz"), "-o", str(tmp_path / "s.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "s.csv")) == 50
    # A labelled .npz (the shared data's form) scores as monitor and report take it: the label is copied, not scored.
    np.savez(tmp_path / "labelled.npz", X=features[:50], y=frame["label"].to_numpy()[:50])
    assert main(["score", model, str(tmp_path / "labelled.npz"), "-o", str(tmp_path / "l.csv")]) == 0
    labelled = pd.read_csv(tmp_path / "l.csv")
    assert list(labelled.columns[:5]) == ["x0", "x1", "x2", "x3", "label"]
    np.testing.assert_allclose(labelled["score"], pd.read_csv(tmp_path / "s.csv")["score"], rtol=1e-6)
    np.savez(tmp_path / "no_x.npz", features=features)
    capsys.readouterr()
    assert main(["score", model, str(tmp_path / "no_x.npz")]) == 2
    assert "needs an array named X, one row per sample" in capsys.readouterr().err
    np.savez(tmp_path / "fractional.npz", X=features[:3], y=np.array([0.0, 0.2, 1.0]))
    assert main(["score", model, str(tmp_path / "fractional.npz")]) == 2
    assert "labels must be 1 (anomaly) or 0 (normal), or true/false; got [0.2], first at row 1" in capsys.readouterr().err
    np.savez(tmp_path / "short.npz", X=features[:3], y=np.array([0, 1]))
    assert main(["score", model, str(tmp_path / "short.npz")]) == 2
    assert "2 labels for 3 rows" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    # A platform engineer's trial: each failed deep inside (AttributeError, "&=: 'str' and 'bool'", ...).
    ("data: {{source: null}}\n", "data.source must be a path, got None"),
    ("tracking: {{enabled: 'false'}}\n", "tracking.enabled must be true or false, got 'false'"),
    ("model: {{params: [1, 2]}}\n", "model.params must be a mapping"),
    ("output: 5\n", "output must be a path, got 5"),
    ("output: {tmp}\n", "is a folder; name a file in it"),
    ("output: {tmp}/file.txt/model.safetensors\n", "which is a file, not a folder"),
    ("data: {{source: {tmp}/missing.parquet}}\n", "missing.parquet: no such file"),
    ("data: {{source: embedded, label_column: nosuch}}\n", "label_column apply to a file source"),
])
def test_config_values_of_the_wrong_kind_are_named_before_any_work(tmp_path, capsys, text, message):
    (tmp_path / "file.txt").write_text("x")
    text = text.format(tmp=tmp_path)
    (tmp_path / "c.yaml").write_text(text if "tracking" in text else text + "tracking: {enabled: false}\n")
    assert main(["train", "--config", str(tmp_path / "c.yaml")]) == 2
    assert message in capsys.readouterr().err


def test_train_names_the_file_row_of_a_missing_value_and_keeps_the_default_seed(tmp_path, table, capsys):
    # The same trial: a NaN in file row 5 was reported as "row 1" of the training split, and a config
    # setting only epochs lost the default random_state: 0 (two runs, two thresholds).
    frame, path = table
    frame.loc[5, "b"] = np.nan
    frame.to_csv(tmp_path / "nan.csv", index=False)
    settings = {"model": {"params": {"epochs": 2}}, "data": {"source": str(tmp_path / "nan.csv"), "label_column": "label"},
                "output": str(tmp_path / "m.safetensors"), "tracking": {"enabled": False}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(settings))
    assert main(["train", "--config", str(tmp_path / "c.yaml")]) == 2
    assert "nan.csv: Input X contains NaN in row 5, column b" in capsys.readouterr().err
    settings["data"]["source"] = str(path)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(settings))
    thresholds = [main(["train", "--config", str(tmp_path / "c.yaml")]) or capsys.readouterr().out.split(
        "threshold ")[1].split()[0] for _ in range(2)]
    assert thresholds[0] == thresholds[1]


@pytest.mark.parametrize("text, message", [("model: [\n", "not valid YAML"), ("- a\n- b\n", "must be a mapping"),
                                           ("model: {name: AnomalyVAE\ndata: x\n",
                                            "not valid YAML: expected ',' or '}', but got ':' (line 2, column 5)"),
                                           ("[]\n", "must be a mapping"), ("false\n", "must be a mapping")])
def test_malformed_config_file_is_refused(tmp_path, capsys, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert main(["train", "--config", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_serve_refuses_a_bad_port_and_an_unknown_model(mlflow_store, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "models:/nosuch@champion", "--port", "99999"])
    assert exit_info.value.code == 2 and "between 0 and 65535" in capsys.readouterr().err
    assert main(["serve", "models:/nosuch@champion"]) == 2
    assert "cannot serve models:/nosuch@champion" in capsys.readouterr().err
    assert main(["serve", "models:/nosuch@champion", "--max-body-mb", "inf"]) == 2
    assert "positive finite" in capsys.readouterr().err


def test_serve_says_a_model_file_must_be_logged_first(config, tmp_path, capsys):
    # New-user finding: serve of a .safetensors file failed with MLflow's 'Could not find an "MLmodel"
    # configuration file at .../model.safetensors/MLmodel', while score and report take the file.
    assert main(["train", "--config", str(config)]) == 0
    capsys.readouterr()
    assert main(["serve", str(tmp_path / "model.safetensors")]) == 2
    assert "is a model file; serve takes a logged MLflow model" in capsys.readouterr().err


def test_bench_exits_1_when_every_run_failed(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "garbage.csv").write_bytes(bytes(range(256)))
    status = main(["bench", "--suite", "tabular", "--data", str(data), "--detectors", "KNN", "--quiet",
                   "--no-plots", "--out", str(tmp_path / "out")])
    assert status == 1 and "every run failed" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--registered-model-name", "--alias", "--experiment", "--run-name"])
def test_an_empty_tracking_option_is_refused_not_replaced_by_the_default(config, option, capsys):
    # Review finding: mlflow run -P registered_model_name='' registered the model as 'anomvae'.
    assert main(["train", "--config", str(config), option, ""]) == 2
    assert f"{option} must not be empty" in capsys.readouterr().err



def test_scoring_an_npz_with_a_model_fitted_on_an_array_raises_no_feature_name_warning(tmp_path):
    # Review finding: the .npz door names its columns x0, x1, ...; sklearn then warned twice that
    # "X has feature names, but AnomalyVaDE was fitted without feature names".
    import warnings

    from anomvae import AnomalyVaDE

    rows = np.random.default_rng(0).normal(size=(300, 4))
    AnomalyVaDE(epochs=3, random_state=0).fit(rows).save(tmp_path / "vade.safetensors")
    np.savez(tmp_path / "rows.npz", X=rows[:10])
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert main(["score", str(tmp_path / "vade.safetensors"), str(tmp_path / "rows.npz"),
                     "-o", str(tmp_path / "out.csv")]) == 0
    assert list(pd.read_csv(tmp_path / "out.csv").columns[-3:]) == ["score", "is_anomaly", "cohort"]


def test_a_missing_value_in_an_array_models_x_frame_is_named_like_any_nan():
    # Review finding: dropping the x0, x1, ... names by converting to an array left pd.NA in an
    # object array ("float() argument must be ... not 'NAType'"); the frame keeps its nullable reading.
    from anomvae import AnomalyVAE

    detector = AnomalyVAE(epochs=2, random_state=0).fit(np.random.default_rng(0).normal(size=(100, 2)))
    rows = pd.DataFrame({"x0": pd.array([1, None, 3], dtype="Int64"), "x1": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="contains NaN in row 1, column 0"):
        detector.score_samples(rows)


def test_an_array_models_x_columns_in_another_order_are_matched_by_name(tmp_path):
    # Review finding: the CLI scored x2,x1,x0 by position (each value as the wrong feature, no error)
    # while REST and the pyfunc matched the names.
    from anomvae import AnomalyVAE

    rows = np.random.default_rng(0).normal(size=(300, 3))
    detector = AnomalyVAE(epochs=3, random_state=0).fit(rows)
    detector.save(tmp_path / "m.safetensors")
    pd.DataFrame(rows[:3], columns=["x0", "x1", "x2"])[["x2", "x1", "x0"]].to_csv(tmp_path / "r.csv", index=False)
    assert main(["score", str(tmp_path / "m.safetensors"), str(tmp_path / "r.csv"), "-o", str(tmp_path / "o.csv")]) == 0
    np.testing.assert_allclose(pd.read_csv(tmp_path / "o.csv")["score"], detector.anomaly_score(rows[:3]), rtol=1e-6)


def test_integer_categories_written_as_floats_score_the_same_natively_and_from_csv(tmp_path):
    # Review finding: a category column turned float (2.0) matched category "2" natively, but the
    # CSV cell "2.0" was read as text and scored as an unseen category by anomvae score.
    from anomvae import AnomalyVAE

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "icat": pd.Categorical(rng.choice([1, 2, 3], 200))})
    detector = AnomalyVAE(epochs=3, random_state=0).fit(frame)
    detector.save(tmp_path / "m.safetensors")
    floats = frame.head(4).assign(icat=frame["icat"].head(4).astype(float))
    floats.to_csv(tmp_path / "r.csv", index=False)
    assert main(["score", str(tmp_path / "m.safetensors"), str(tmp_path / "r.csv"), "-o", str(tmp_path / "o.csv")]) == 0
    np.testing.assert_allclose(pd.read_csv(tmp_path / "o.csv")["score"], detector.anomaly_score(frame.head(4)),
                               rtol=1e-6)


def test_train_leaves_out_the_dropped_columns_and_warns_of_an_id_that_counts_the_rows(tmp_path, capsys):
    # New-user finding: read as numbers, the id "00001" was trained on and the model flagged every row
    # with a later id; there was no way to leave it out from the config.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": [f"{i:05d}" for i in range(400)], "amount": rng.lognormal(3, 1, 400),
                          "zone": rng.choice(["north", "south"], 400)})
    frame.to_csv(tmp_path / "tx.csv", index=False)
    settings = {"model": {"name": "AnomalyVAE", "params": {"epochs": 3, "random_state": 0}},
                "data": {"source": str(tmp_path / "tx.csv")}, "output": str(tmp_path / "m.safetensors"),
                "tracking": {"enabled": False}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(settings))
    with pytest.warns(UserWarning, match="'id' counts the rows .*drop_columns"):
        assert main(["train", "--config", str(tmp_path / "c.yaml")]) == 0
    settings["data"]["drop_columns"] = ["id"]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(settings))
    assert main(["train", "--config", str(tmp_path / "c.yaml")]) == 0
    import anomvae

    assert list(anomvae.load(tmp_path / "m.safetensors").feature_names_in_) == ["amount", "zone"]
    for drop, message in (("id", "must be a list of column names"), (["idx"], "['idx'] not among the columns")):
        settings["data"]["drop_columns"] = drop
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(settings))
        capsys.readouterr()
        assert main(["train", "--config", str(tmp_path / "c.yaml")]) == 2
        assert message in capsys.readouterr().err
    # A text id is refused by fit's identifier check, which train completes with the config key to use.
    frame.assign(id=[f"tx-{i}" for i in range(400)]).to_csv(tmp_path / "tx.csv", index=False)
    settings["data"].pop("drop_columns")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(settings))
    assert main(["train", "--config", str(tmp_path / "c.yaml")]) == 2
    error = capsys.readouterr().err
    assert "'id' has" in error and "looks like an identifier" in error and "drop_columns" in error
    # Review of the change: the date checks raise TypeError, which the hint did not reach.
    frame.assign(id=pd.date_range("2026-01-01", periods=400, freq="h").astype(str)).to_csv(tmp_path / "tx.csv",
                                                                                           index=False)
    assert main(["train", "--config", str(tmp_path / "c.yaml")]) == 2
    error = capsys.readouterr().err
    assert "holds dates" in error and "drop_columns" in error


def test_train_warns_of_a_column_that_counts_the_rows(tmp_path):
    rng = np.random.default_rng(0)
    pd.DataFrame({"amount": rng.normal(size=200)}).to_csv(tmp_path / "tx.csv")  # the index as 'Unnamed: 0'
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "model": {"name": "AnomalyVAE", "params": {"epochs": 2, "random_state": 0}},
        "data": {"source": str(tmp_path / "tx.csv")}, "output": str(tmp_path / "m.safetensors"),
        "tracking": {"enabled": False}}))
    with pytest.warns(UserWarning, match="'Unnamed: 0' counts the rows .*drop_columns"):
        assert main(["train", "--config", str(tmp_path / "c.yaml")]) == 0


@pytest.mark.parametrize("ending", [",0.5", ","])
def test_score_refuses_rows_longer_than_the_header(tmp_path, capsys, ending):
    # A user's finding: pandas read a first extra field as a row index, every value moved one column
    # to the left and the rows were scored as normal; trailing commas did the same.
    from anomvae import AnomalyVAE

    detector = AnomalyVAE(epochs=2, random_state=0).fit(np.random.default_rng(0).normal(size=(50, 3)))
    detector.save(tmp_path / "m.safetensors")
    (tmp_path / "r.csv").write_text(f"x0,x1,x2\n0.1,0.2,0.3{ending}\n9,0.2,0.3{ending}\n")
    assert main(["score", str(tmp_path / "m.safetensors"), str(tmp_path / "r.csv")]) == 2
    assert "r.csv: row 0 holds 4 fields, the header 3" in capsys.readouterr().err

"""Issue 13: the inputs a fresh probe found, each at the doors where it applies.

Every test here is one failing input from the issue: non-string column names,
numbers held in object columns, CSV files re-typed by the reader, time
columns, huge integers, overflowing variances, masked arrays, booleans where
numbers belong and the reverse.
"""

import decimal
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from anomvae import AnomalyVAE
from anomvae.cli import main

FAST = {"epochs": 2, "batch_size": 64, "random_state": 0}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # health warnings of 2-epoch models are not what is tested here
        yield


def test_non_string_column_names_with_a_boolean_column_fit_and_score():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(50, 2)))
    frame[2] = frame[0] > 0
    detector = AnomalyVAE(**FAST).fit(frame)
    assert np.all(np.isfinite(detector.score_samples(frame)))


def test_non_string_column_names_with_a_text_column_fit_and_score():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(50, 2)))
    frame[2] = rng.choice(["a", "b"], 50)
    detector = AnomalyVAE(**FAST).fit(frame)
    assert np.all(np.isfinite(detector.score_samples(frame)))


def test_decimal_column_is_numeric_at_fit_so_price_matters():
    rng = np.random.default_rng(0)
    prices = [decimal.Decimal(f"{value:.2f}") for value in rng.uniform(10, 100, 300)]
    frame = pd.DataFrame({"price": prices, "quantity": rng.normal(size=300)})
    detector = AnomalyVAE(**FAST).fit(frame)  # > 200 distinct values: no longer "an identifier"
    assert detector.encoder_.kinds == ["numeric", "numeric"]
    cheap, dear = frame.iloc[:1].copy(), frame.iloc[:1].copy()
    cheap["price"], dear["price"] = decimal.Decimal("10.00"), decimal.Decimal("5000.00")
    assert detector.score_samples(dear)[0] < detector.score_samples(cheap)[0]
    floats = frame.assign(price=frame["price"].astype(float))
    np.testing.assert_allclose(detector.score_samples(frame), detector.score_samples(floats))


def test_a_stray_string_in_a_numeric_object_column_is_refused_at_fit():
    values = pd.Series([1.5] * 49 + ["1e5"], dtype=object)
    frame = pd.DataFrame({"amount": values, "b": np.arange(50.0)})
    with pytest.raises(TypeError, match=r"column 'amount' mixes numbers and text \('1e5' in row 49\)"):
        AnomalyVAE(**FAST).fit(frame)


def test_object_column_of_python_booleans_is_boolean():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=50), "flag": pd.Series(rng.random(50) > 0.5, dtype=object)})
    detector = AnomalyVAE(**FAST).fit(frame)
    assert detector.encoder_.kinds == ["numeric", "boolean"]


@pytest.mark.parametrize("column", [
    pd.Series(pd.date_range("2024-01-01", periods=50)),
    pd.Series(pd.to_timedelta(np.arange(50), unit="s")),
    pd.Series(pd.date_range("2024-01-01", periods=50, tz="UTC")),
    pd.Series(pd.period_range("2024-01", periods=50, freq="M")),
    pd.Series(list(pd.date_range("2024-01-01", periods=50).date), dtype=object),
    pd.Series(pd.date_range("2024-01-01", periods=50).strftime("%Y-%m-%d").tolist(), dtype=object),
    pd.Series(pd.date_range("2024-01-01", periods=50, freq="h").strftime("%Y-%m-%dT%H:%M:%SZ").tolist(), dtype="str"),
    # Review finding: Arrow durations and times of day were one-hot encoded as categories.
    pd.Series(pd.array(pd.to_timedelta(np.arange(50), unit="s"), dtype="duration[ns][pyarrow]")),
    pd.Series(pd.array(pd.date_range("2024-01-01", periods=50, freq="min").time, dtype="time64[us][pyarrow]")),
], ids=["datetime64", "timedelta64", "datetime-tz", "period", "date-objects", "date-text", "datetime-text",
        "arrow-duration", "arrow-time"])
def test_time_columns_are_refused_naming_the_column(column):
    frame = pd.DataFrame({"when": column, "x": np.arange(50.0)})
    with pytest.raises(TypeError, match="column 'when' holds dates, times or durations"):
        AnomalyVAE(**FAST).fit(frame)


def test_text_that_only_starts_like_a_date_stays_a_category():
    frame = pd.DataFrame({"code": ["2024-01-01", "2024-01-02-b", "n/a"] * 20, "x": np.arange(60.0)})
    assert AnomalyVAE(**FAST).fit(frame).encoder_.kinds == ["category", "numeric"]


def test_cli_reads_text_columns_of_a_csv_as_text(tmp_path, capsys):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "branch": rng.choice(["01", "02", "10"], 100),
        "amount": rng.normal(size=100),
        "flag": rng.random(100) > 0.5,
    })
    detector = AnomalyVAE(**FAST).fit(frame)
    model, source, output = tmp_path / "m.safetensors", tmp_path / "rows.csv", tmp_path / "scored.csv"
    detector.save(model)
    frame.to_csv(source, index=False)
    assert main(["score", str(model), str(source), "-o", str(output)]) == 0, capsys.readouterr().err
    scored = pd.read_csv(output, dtype=str)
    np.testing.assert_array_equal(scored["score"].astype(float), -detector.score_samples(frame))
    assert scored["branch"].tolist() == frame["branch"].tolist()


def test_cli_refuses_an_empty_text_cell_as_missing(tmp_path, capsys):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"branch": rng.choice(["a", "None", "NA"], 60), "amount": rng.normal(size=60)})
    detector = AnomalyVAE(**FAST).fit(frame)
    model, source = tmp_path / "m.safetensors", tmp_path / "rows.csv"
    detector.save(model)
    frame.to_csv(source, index=False)
    assert main(["score", str(model), str(source), "-o", str(tmp_path / "out.csv")]) == 0
    frame.loc[3, "branch"] = None
    frame.to_csv(source, index=False)
    assert main(["score", str(model), str(source)]) == 2
    assert "NaN or empty text in categorical column 'branch'" in capsys.readouterr().err


def test_huge_python_int_is_a_value_error():
    rows = np.array([[10**400, 1.0], [1, 2.0], [3, 4.0]], dtype=object)
    with pytest.raises(ValueError, match="too large for a float64"):
        AnomalyVAE(**FAST).fit(rows)
    frame = pd.DataFrame({"a": pd.Series([10**400, 1, 2], dtype=object), "b": ["x", "y", "x"]})
    with pytest.raises(ValueError, match="column 'a' holds a number too large"):
        AnomalyVAE(**FAST).fit(frame)


def test_features_near_1e160_are_scaled_and_a_100x_outlier_stands_out():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    X[:, 0] *= 1e160
    detector = AnomalyVAE(epochs=5, random_state=0).fit(X)
    assert 0.1 < detector.encoder_.scale[0] / 1e160 < 10
    outlier = X[:5].copy()
    outlier[:, 0] *= 100
    assert np.all(detector.score_samples(outlier) < detector.score_samples(X).min())


def test_masked_values_are_refused():
    rng = np.random.default_rng(0)
    X = np.ma.masked_array(rng.normal(size=(20, 3)), mask=np.zeros((20, 3), dtype=bool))
    detector = AnomalyVAE(**FAST).fit(X)  # nothing masked: fine
    X[4, 1] = np.ma.masked
    with pytest.raises(ValueError, match=r"masked values in rows \[4\]"):
        AnomalyVAE(**FAST).fit(X)
    with pytest.raises(ValueError, match="masked"):
        detector.score_samples(X)


@pytest.fixture(scope="module")
def flagged():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=80), "flag": rng.random(80) > 0.5, "kind": rng.choice(["a", "b"], 80)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return AnomalyVAE(**FAST).fit(frame), frame


def test_a_non_boolean_number_in_a_boolean_column_is_refused(flagged):
    detector, frame = flagged
    bad = frame.head(3).astype({"flag": float})
    bad.loc[1, "flag"] = 0.5
    with pytest.raises(TypeError, match=r"column 'flag' was boolean in fit but now holds 0.5 \(row 1\)"):
        detector.score_samples(bad)
    as_numbers = frame.head(3).astype({"flag": int})
    np.testing.assert_array_equal(detector.score_samples(as_numbers), detector.score_samples(frame.head(3)))


def test_a_missing_boolean_is_refused(flagged):
    detector, frame = flagged
    bad = frame.head(3).astype({"flag": object})
    bad.loc[0, "flag"] = None
    with pytest.raises(ValueError, match="NaN in row 0, column flag"):
        detector.score_samples(bad)


def test_a_boolean_in_a_numeric_column_is_refused(flagged):
    detector, frame = flagged
    bad = frame.head(3).astype({"x": object})
    bad.loc[2, "x"] = True
    with pytest.raises(TypeError, match="column 'x' was numeric in fit but now holds booleans"):
        detector.score_samples(bad)


def test_fits_in_two_threads_equal_the_same_fits_in_sequence_and_leave_the_rng_alone():
    import threading

    import torch

    rng = np.random.default_rng(2)
    data = [rng.normal(size=(300, 6)), rng.normal(size=(300, 6)) * 2]
    settings = [{"epochs": 4, "random_state": 1}, {"epochs": 4, "random_state": 2}]
    sequential = [AnomalyVAE(**s).fit(X).score_samples(X) for s, X in zip(settings, data)]
    torch.manual_seed(123)
    before = torch.get_rng_state()
    threaded = [None, None]

    def fit(i):
        threaded[i] = AnomalyVAE(**settings[i]).fit(data[i]).score_samples(data[i])

    workers = [threading.Thread(target=fit, args=(i,)) for i in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for alone, together in zip(sequential, threaded):
        np.testing.assert_array_equal(alone, together)
    assert torch.equal(before, torch.get_rng_state())


def test_load_leaves_the_global_rng_alone(tmp_path):
    import torch

    import anomvae

    detector = AnomalyVAE(**FAST).fit(np.random.default_rng(0).normal(size=(50, 3)))
    detector.save(tmp_path / "m.safetensors")
    before = torch.get_rng_state()
    anomvae.load(tmp_path / "m.safetensors")
    assert torch.equal(before, torch.get_rng_state())


def test_log_model_without_example_types_integer_columns_as_long(mlflow_store):
    import mlflow

    import anomvae

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"count": rng.integers(0, 50, 100), "amount": rng.normal(size=100)})
    detector = AnomalyVAE(**FAST).fit(frame)
    info = anomvae.log_model(detector)
    types = {spec.name: spec.type.name for spec in info.signature.inputs.inputs}
    assert types == {"count": "long", "amount": "double"}
    model = mlflow.pyfunc.load_model(info.model_uri)
    np.testing.assert_allclose(model.predict(frame)["score"], -detector.score_samples(frame), rtol=1e-9)


def test_pyfunc_scores_a_model_fitted_with_non_string_column_names(mlflow_store):
    import mlflow

    import anomvae

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, 2)))
    frame[2] = rng.choice(["a", "b"], 60)
    frame[3] = frame[0] > 0
    detector = AnomalyVAE(**FAST).fit(frame)
    info = anomvae.log_model(detector, input_example=frame.head())
    model = mlflow.pyfunc.load_model(info.model_uri)
    request = frame.set_axis([f"x{i}" for i in range(4)], axis=1)
    np.testing.assert_allclose(model.predict(request)["score"], -detector.score_samples(frame), rtol=1e-9)


def test_pyfunc_load_refuses_a_model_directory_changed_after_logging(mlflow_store, tmp_path):
    import mlflow
    from mlflow.exceptions import MlflowException

    import anomvae

    detector = AnomalyVAE(**FAST).fit(np.random.default_rng(0).normal(size=(50, 3)))
    info = anomvae.log_model(detector)
    for changed in ("_pyfunc_model_code.py", "artifacts/detector.safetensors"):
        local = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(tmp_path / changed.replace("/", "_"))))
        mlflow.pyfunc.load_model(str(local))  # untouched: loads
        with open(local / changed, "ab") as handle:
            handle.write(b"\n# appended after logging\n")
        with pytest.raises(MlflowException, match=f"model file {changed} .* differs from the one logged"):
            mlflow.pyfunc.load_model(str(local))


def test_text_in_a_numpy_array_points_to_dataframes():
    rows = np.empty((60, 2), dtype=object)
    rows[:, 0] = ["a", "b"] * 30
    rows[:, 1] = np.arange(60.0)
    with pytest.raises(ValueError, match="pass a pandas DataFrame"):
        AnomalyVAE(**FAST).fit(rows)

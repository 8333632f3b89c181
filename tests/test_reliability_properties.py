"""Property-based tests over random DataFrames: every door sees the same data.

Hypothesis draws frames with random column-name types (text, integers, or a
mix), dtypes (floats with NaN, int64, nullable Int64/Float64/boolean,
``decimal.Decimal`` objects, datetimes, categories, text, booleans held as
objects, numbers mixed with text) and values. For each frame:

- ``fit`` either succeeds or raises ``ValueError``/``TypeError`` (never
  ``KeyError``, ``OverflowError`` or an error from inside torch);
- when it succeeds, the native scores of the training rows equal those of
  ``anomvae score`` on the frame written as CSV and as Parquet, and those of
  the logged pyfunc model.
"""

import decimal
import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anomvae
from anomvae import AnomalyVAE
from anomvae.cli import main
from anomvae.lifecycle import serving_inputs

TEXT = ["01", "02", "10", "a", "NA", "None", "1e5", " x"]
"""Text values that a careless reader re-types ("01" -> 1, "NA" -> NaN); never ''."""

KINDS = ("float", "float-nan", "int", "Int64", "Float64", "bool", "boolean", "decimal", "datetime",
         "timedelta", "category", "text", "bool-object", "number-text-mix", "float-object")


def column_values(draw, kind: str, n: int) -> pd.Series:
    floats = st.floats(-1e6, 1e6, allow_nan=False)
    if kind == "float":
        return pd.Series(draw(st.lists(floats, min_size=n, max_size=n)), dtype=float)
    if kind == "float-nan":
        return pd.Series(draw(st.lists(st.one_of(floats, st.just(np.nan)), min_size=n, max_size=n)), dtype=float)
    if kind == "int":
        return pd.Series(draw(st.lists(st.integers(-(2**40), 2**40), min_size=n, max_size=n)), dtype=np.int64)
    if kind == "Int64":
        return pd.Series(draw(st.lists(st.one_of(st.integers(-1000, 1000), st.none()), min_size=n, max_size=n)),
                         dtype="Int64")
    if kind == "Float64":
        return pd.Series(draw(st.lists(st.one_of(floats, st.none()), min_size=n, max_size=n)), dtype="Float64")
    if kind in ("bool", "bool-object"):
        values = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        return pd.Series(values, dtype=bool if kind == "bool" else object)
    if kind == "boolean":
        return pd.Series(draw(st.lists(st.one_of(st.booleans(), st.none()), min_size=n, max_size=n)),
                         dtype="boolean")
    if kind == "decimal":
        values = draw(st.lists(st.decimals(-10_000, 10_000, places=2, allow_nan=False), min_size=n, max_size=n))
        return pd.Series(values, dtype=object)
    if kind == "datetime":
        return pd.Series(pd.to_datetime(draw(st.lists(st.integers(0, 10**9), min_size=n, max_size=n)), unit="s"))
    if kind == "timedelta":
        return pd.Series(pd.to_timedelta(draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n)), unit="s"))
    if kind == "category":
        return pd.Series(draw(st.lists(st.sampled_from(TEXT), min_size=n, max_size=n)), dtype="category")
    if kind == "text":
        return pd.Series(draw(st.lists(st.sampled_from(TEXT), min_size=n, max_size=n)), dtype=object)
    if kind == "float-object":
        return pd.Series(draw(st.lists(st.one_of(floats, st.none()), min_size=n, max_size=n)), dtype=object)
    values = draw(st.lists(st.one_of(floats, st.sampled_from(TEXT)), min_size=n, max_size=n))
    return pd.Series(values, dtype=object)


@st.composite
def frames(draw) -> pd.DataFrame:
    n_rows = draw(st.integers(2, 12))
    n_columns = draw(st.integers(1, 4))
    name_kind = draw(st.sampled_from(["text", "int", "mixed"]))
    text_names = st.text(alphabet="abcxyz_", min_size=1, max_size=5)
    names = {
        "text": st.lists(text_names, min_size=n_columns, max_size=n_columns, unique=True),
        "int": st.lists(st.integers(0, 99), min_size=n_columns, max_size=n_columns, unique=True),
        "mixed": st.lists(st.one_of(text_names, st.integers(0, 99)), min_size=n_columns, max_size=n_columns,
                          unique_by=str),
    }[name_kind]
    columns = draw(names)
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=n_columns, max_size=n_columns))
    return pd.DataFrame({name: column_values(draw, kind, n_rows) for name, kind in zip(columns, kinds)})


def fit_or_refuse(frame: pd.DataFrame):
    """The fitted detector, or None when fit refused the frame with ValueError/TypeError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # health warnings of 1-epoch models on a few rows
        try:
            return AnomalyVAE(epochs=1, batch_size=16, validation_fraction=0.0, random_state=0).fit(frame)
        except (ValueError, TypeError):
            return None


def cli_scores(detector, frame: pd.DataFrame, folder, suffix: str) -> np.ndarray:
    model, source, output = folder / "m.safetensors", folder / f"rows{suffix}", folder / "scored.csv"
    detector.save(model)
    if suffix == ".csv":
        frame.to_csv(source, index=False)
    else:
        frame.rename(columns=str).to_parquet(source, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # string names for a model fitted without names
        status = main(["score", str(model), str(source), "-o", str(output)])
    assert status == 0, f"anomvae score refused its own training rows ({suffix})"
    return pd.read_csv(output, usecols=["score"])["score"].to_numpy()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(frame=frames())
def test_fit_succeeds_or_refuses_and_native_cli_csv_and_parquet_agree(frame, tmp_path_factory):
    detector = fit_or_refuse(frame)
    if detector is None:
        return
    native = -detector.score_samples(frame)
    assert np.all(np.isfinite(native))
    folder = tmp_path_factory.mktemp("property")
    for suffix in (".csv", ".parquet"):
        np.testing.assert_allclose(cli_scores(detector, frame, folder, suffix), native, rtol=1e-9, err_msg=suffix)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(frame=frames())
def test_the_logged_pyfunc_model_scores_its_training_rows_like_the_detector(frame, mlflow_store):
    import mlflow

    detector = fit_or_refuse(frame)
    if detector is None:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = anomvae.log_model(detector, input_example=frame.head())
        model = mlflow.pyfunc.load_model(info.model_uri)
        request = serving_inputs.as_frame(detector, frame)
        served = model.predict(request)["score"].to_numpy()
    np.testing.assert_allclose(served, -detector.score_samples(frame), rtol=1e-9)


def test_the_issue_frames_are_among_those_drawn():
    """The shapes of issue 13's inputs, checked directly (Hypothesis may not draw them every run)."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(20, 2)))
    frame[2] = frame[0] > 0
    assert fit_or_refuse(frame) is not None
    prices = pd.DataFrame({"price": [decimal.Decimal(f"{v:.2f}") for v in rng.uniform(1, 9, 20)]})
    assert fit_or_refuse(prices).encoder_.kinds == ["numeric"]

"""Reliability: old model files, property-based input checks (NumPy, mixed DataFrames, the pyfunc path).

Determinism across processes, for every estimator, is in test_reliability_estimators.py.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import anomvae
from anomvae import AnomalyVAE

FIXTURES = Path(__file__).parent / "fixtures"


def test_model_written_by_format_version_1_still_loads():
    sys.path.insert(0, str(FIXTURES))
    try:
        from make_v1_model import fixture_data
    finally:
        sys.path.pop(0)
    detector = anomvae.load(FIXTURES / "model_v1.safetensors")
    # The stored scores were computed in float64; dense models score in float32 on the
    # CPU since issue 18, which moves a score by at most a few float32 units in the last place.
    np.testing.assert_allclose(
        detector.score_samples(fixture_data()), np.load(FIXTURES / "model_v1_scores.npy"), rtol=1e-6
    )


def test_loading_on_cpu_explicitly(tmp_path, blobs, fast_params):
    detector = AnomalyVAE(**fast_params).fit(blobs[0])
    detector.save(tmp_path / "m.safetensors")
    loaded = anomvae.load(tmp_path / "m.safetensors", device="cpu")
    assert loaded.scorer_.device.type == "cpu"


@pytest.fixture(scope="module")
def fitted_detector():
    rng = np.random.default_rng(0)
    return AnomalyVAE(epochs=3, random_state=0).fit(rng.normal(size=(200, 4)))


finite_or_not = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(min_value=-1e30, max_value=1e30),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=arrays(
        np.float64,
        st.tuples(st.integers(0, 6), st.integers(1, 6)),
        elements=finite_or_not,
    )
)
def test_scoring_any_float_matrix_gives_finite_scores_or_a_clear_error(fitted_detector, rows):
    try:
        scores = fitted_detector.score_samples(rows)
    except ValueError as error:
        message = str(error)
        assert any(word in message for word in ("NaN", "infinity", "features", "sample")), message
        expected_problem = (
            rows.shape[1] != 4 or len(rows) == 0 or not np.all(np.isfinite(rows))
        )
        assert expected_problem, message
        return
    assert scores.shape == (len(rows),)
    assert np.all(np.isfinite(scores))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dtype=st.sampled_from([np.int8, np.int32, np.int64, np.uint8, np.float16, np.float32, bool]))
def test_numeric_dtypes_are_accepted(fitted_detector, dtype):
    rows = (np.arange(12).reshape(3, 4) % 2).astype(dtype)
    assert np.all(np.isfinite(fitted_detector.score_samples(rows)))


def test_error_rows_are_positions_in_the_whole_input_when_streaming(fast_params):
    import pandas as pd

    from anomvae.inference import SCORING_BATCH_SIZE

    frame = pd.DataFrame({"a": np.arange(300.0), "kind": ["x", "y", "z"] * 100})
    detector = AnomalyVAE(**fast_params).fit(frame)
    big = pd.concat([frame] * (SCORING_BATCH_SIZE // 300 + 2), ignore_index=True)
    bad_row = SCORING_BATCH_SIZE + 5
    big.loc[bad_row, "a"] = np.nan
    with pytest.raises(ValueError, match=f"NaN in row {bad_row}, column a"):
        detector.score_samples(big)


def test_out_of_memory_halves_the_batch_and_retries():
    import torch

    from anomvae.inference import map_batches

    sizes = []

    def needs_small_batches(rows):
        sizes.append(len(rows))
        if len(rows) > 100:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated by the scoring function)")
        return rows.sum(dim=1)

    data = np.arange(1000 * 3, dtype=np.float32).reshape(1000, 3)
    result = map_batches(needs_small_batches, data, torch.device("cpu"), batch_size=1000)
    np.testing.assert_allclose(result, data.sum(axis=1))
    assert sizes[:4] == [1000, 500, 250, 125] and max(sizes[4:]) <= 100


@pytest.fixture(scope="module")
def mixed_rows():
    import pandas as pd

    rng = np.random.default_rng(4)
    return pd.DataFrame({
        "a": rng.normal(size=150),
        "b": rng.integers(0, 10, size=150),
        "kind": rng.choice(["red", "green", "blue"], size=150).astype(object),
        "flag": rng.random(150) < 0.5,
    })


@pytest.fixture(scope="module")
def mixed_detector(mixed_rows):
    return AnomalyVAE(epochs=3, random_state=0).fit(mixed_rows)


def mixed_frames(max_rows=6):
    """DataFrames with the training columns: floats of any kind, integers, any text, booleans."""
    from hypothesis.extra.pandas import column, data_frames, range_indexes

    return data_frames(
        [
            column("a", elements=finite_or_not, dtype=float),
            column("b", elements=st.integers(-(2**40), 2**40), dtype=np.int64),
            column("kind", elements=st.one_of(st.sampled_from(["red", "green", "blue"]), st.text(max_size=8)),
                   dtype=object),
            column("flag", elements=st.booleans(), dtype=bool),
        ],
        index=range_indexes(min_size=0, max_size=max_rows),
    )


def expected_problem(frame) -> bool:
    return (len(frame) == 0 or not np.all(np.isfinite(frame["a"].to_numpy()))
            or bool(frame["kind"].eq("").any()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=mixed_frames())
def test_scoring_any_mixed_dataframe_gives_finite_scores_or_a_clear_error(mixed_detector, frame):
    try:
        scores = mixed_detector.score_samples(frame)
    except ValueError as error:
        assert expected_problem(frame), str(error)
        assert any(word in str(error) for word in ("NaN in row", "infinity in row", "0 sample",
                                                   "empty text in categorical column")), str(error)
        return
    assert not expected_problem(frame)
    assert scores.shape == (len(frame),) and np.all(np.isfinite(scores))


@pytest.fixture(scope="module")
def mixed_pyfunc(mlflow_store, mixed_detector, mixed_rows):
    import mlflow

    info = anomvae.log_model(mixed_detector, input_example=mixed_rows[:5])
    return mlflow.pyfunc.load_model(info.model_uri)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=mixed_frames())
def test_pyfunc_input_path_scores_like_the_detector_or_refuses_clearly(mixed_pyfunc, mixed_detector, frame):
    from mlflow.exceptions import MlflowException

    try:
        predictions = mixed_pyfunc.predict(frame)
    except MlflowException as error:
        assert expected_problem(frame), error.message
        assert any(word in error.message for word in ("NaN in row", "infinity in row", "0 sample",
                                                      "empty text in categorical column")), error.message
        assert error.get_http_status_code() == 400
        return
    assert not expected_problem(frame)
    assert len(predictions) == len(frame) and list(predictions.index) == list(frame.index)
    np.testing.assert_allclose(predictions["score"], mixed_detector.anomaly_score(frame), rtol=1e-12)


def test_empty_request_to_the_model_of_a_numpy_fitted_detector_names_the_problem(fitted_detector):
    import pandas as pd

    from anomvae.lifecycle.pyfunc import score_frame

    with pytest.raises(ValueError, match="0 sample"):
        score_frame(fitted_detector, pd.DataFrame(columns=[f"x{i}" for i in range(4)], dtype=float))

"""Reliability: determinism across processes, old model files, property-based input checks."""

import subprocess
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

FIT_AND_PRINT = """
import numpy as np
from anomvae import AnomalyVAE
rng = np.random.default_rng(0)
X = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
scores = AnomalyVAE(epochs=4, random_state=11).fit(X).score_samples(X)
print(scores.tobytes().hex())
"""


def test_same_seed_is_bit_identical_across_processes():
    runs = [
        subprocess.run([sys.executable, "-c", FIT_AND_PRINT], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    assert runs[0].stdout == runs[1].stdout
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5))
    in_process = AnomalyVAE(epochs=4, random_state=11).fit(X).score_samples(X)
    assert in_process.tobytes().hex() == runs[0].stdout.strip()


def test_model_written_by_format_version_1_still_loads():
    sys.path.insert(0, str(FIXTURES))
    try:
        from make_v1_model import fixture_data
    finally:
        sys.path.pop(0)
    detector = anomvae.load(FIXTURES / "model_v1.safetensors")
    np.testing.assert_allclose(
        detector.score_samples(fixture_data()), np.load(FIXTURES / "model_v1_scores.npy"), rtol=1e-12
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

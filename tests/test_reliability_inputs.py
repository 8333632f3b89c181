"""The bad-input matrix (``reliability_matrix.py``) through every estimator and the CLI.

One small model per estimator and kind of input (DataFrame, NumPy array,
images) is fitted once for the module; the pyfunc and REST columns of the
matrix run in ``test_reliability_serving.py``.
"""

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from reliability_matrix import (
    CASES,
    Refused,
    case_id,
    cases,
    check_scores,
    images,
    render_table,
    table_rows,
)

from anomvae.cli import main
import anomvae
from anomvae import AnomalyVAE, registry

ESTIMATORS = sorted(registry.estimators().values(), key=lambda cls: cls.__name__)
SETTINGS = {"epochs": 5, "batch_size": 64, "random_state": 0}
EXTRA_SETTINGS = {"AnomalyTCVAE": {"epochs": 30}}
"""beta-TCVAE's total-correlation penalty slows its fit: after 5 epochs an unseen
category did not yet score above its well-formed row."""
WELL_FORMED_ROWS = 6
DOCS = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


def training_data():
    rows = table_rows()
    return {"table": rows, "array": rows[["a", "b", "c"]].to_numpy(), "image": images()}


def well_formed(model: str, data):
    return data.iloc[:WELL_FORMED_ROWS] if model == "table" else data[:WELL_FORMED_ROWS]


@pytest.fixture(scope="module", params=ESTIMATORS, ids=lambda cls: cls.__name__)
def fitted(request):
    """For each kind of input: (detector, well-formed rows, their anomaly scores, max training anomaly score)."""
    models = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # health warnings of 5-epoch models are not what is tested here
        for model, data in training_data().items():
            detector = request.param(**{**SETTINGS, **EXTRA_SETTINGS.get(request.param.__name__, {})}).fit(data)
            rows = well_formed(model, data)
            models[model] = (detector, rows, detector.anomaly_score(rows), float(np.max(detector.anomaly_score(data))))
    return models


def n_rows(request) -> int:
    return len(request) if np.ndim(request) > 1 or isinstance(request, pd.DataFrame) else 1


@pytest.mark.parametrize("case", cases("table", "native") + cases("array", "native") + cases("image", "native"),
                         ids=case_id)
def test_every_estimator_answers_bad_input_as_the_matrix_says(fitted, case):
    detector, rows, scores, training_max = fitted[case.model]
    request = case.build(rows.copy())
    outcome = case.outcome("native")
    if isinstance(outcome, Refused):
        with pytest.raises((ValueError, TypeError), match=re.escape(outcome.pattern)):
            detector.score_samples(request)
    else:
        check_scores(outcome.check, detector.anomaly_score(request), scores, training_max, n_rows(request))


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """The AnomalyVAE DataFrame model of the matrix, saved for ``anomvae score``."""
    from anomvae import AnomalyVAE

    rows = table_rows()
    detector = AnomalyVAE(**SETTINGS).fit(rows)
    path = tmp_path_factory.mktemp("cli") / "model.safetensors"
    detector.save(path)
    well = well_formed("table", rows)
    return path, well, detector.anomaly_score(well), float(np.max(detector.anomaly_score(rows)))


@pytest.mark.parametrize("case", cases("table", "cli"), ids=case_id)
def test_cli_answers_bad_input_as_the_matrix_says(saved_model, case, tmp_path, capsys):
    path, rows, scores, training_max = saved_model
    request = case.build(rows.copy())
    source, output = tmp_path / "input.csv", tmp_path / "scored.csv"
    request.to_csv(source, index=False)
    status = main(["score", str(path), str(source), "-o", str(output)])
    outcome = case.outcome("cli")
    error = capsys.readouterr().err
    if isinstance(outcome, Refused):
        assert status == 2
        assert error.startswith("anomvae score: error:") and outcome.pattern in error, error
        assert "Traceback" not in error
    else:
        assert status == 0, error
        check_scores(outcome.check, pd.read_csv(output)["score"], scores, training_max, len(request))


def test_docs_hold_the_matrix_the_tests_run():
    assert render_table() in DOCS.read_text(), "regenerate with: python tests/reliability_matrix.py"


def test_every_case_has_an_outcome_for_some_interface():
    assert all(case.outcomes for case in CASES)
    assert len({case_id(case) for case in CASES}) == len(CASES)


def test_a_model_without_categorical_columns_checks_each_column_against_its_kind():
    # Review finding: without a categorical column, DataFrames skipped the per-column checks:
    # 5 in a boolean column, True or "0.5" in a numeric one were silently read as numbers.
    rng = np.random.default_rng(0)
    rows = pd.DataFrame({"a": rng.normal(size=120), "b": rng.normal(size=120)})
    with_flag = AnomalyVAE(epochs=2, random_state=0).fit(rows.assign(flag=rng.random(120) > 0.5))
    with pytest.raises(TypeError, match="column 'flag' was boolean in fit but now holds 5.0"):
        with_flag.score_samples(rows.head(3).assign(flag=[5, 0, 1]))
    np.testing.assert_array_equal(with_flag.score_samples(rows.head(3).assign(flag=[1, 0, 1])),
                                  with_flag.score_samples(rows.head(3).assign(flag=[True, False, True])))
    with pytest.raises(TypeError, match="column 'flag' was boolean in fit but now holds 5.0"):
        with_flag.score_samples(np.array([[0.1, 0.2, 5.0]]))  # an array is checked the same way
    numeric = AnomalyVAE(epochs=2, random_state=0).fit(rows)
    with pytest.raises(TypeError, match="column 'a' was numeric in fit but now holds booleans"):
        numeric.score_samples(rows.head(2).assign(a=[True, False]))
    with pytest.raises(TypeError, match="column 'a' was numeric in fit but now holds non-numeric values"):
        numeric.score_samples(rows.head(2).assign(a=["0.5", "1.5"]))
    # New-user finding: the example was the column's first value ('3'), a valid number.
    with pytest.raises(TypeError, match=r"non-numeric values \(dtype (str|object), e.g. '3am' in row 2\)"):
        numeric.score_samples(rows.head(4).assign(a=["3", "4", "3am", "5"]))

    class Unreadable:
        def __float__(self):
            raise RuntimeError("no number")

    with pytest.raises(ValueError, match="contains NaN in row 1, column a"):  # review: pd.NA gave float()'s TypeError
        numeric.score_samples(rows.head(2).assign(a=pd.Series([1.0, pd.NA], dtype=object)))
    with pytest.raises(TypeError, match="non-numeric values"):  # review: its RuntimeError escaped
        numeric.score_samples(rows.head(2).assign(a=pd.Series([Unreadable(), 1.0], dtype=object)))
    np.testing.assert_array_equal(numeric.score_samples(rows.head(2).assign(a=np.array([1.0, 2.0], dtype=object))),
                                  numeric.score_samples(rows.head(2).assign(a=[1.0, 2.0])))


def test_integral_numbers_in_a_categorical_column_match_their_other_spelling():
    # Review finding: a category fitted from the integers 1, 2, 3 read the same ids as floats
    # (after a merge that introduced NaN elsewhere) as unseen categories, silently.
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=150), "c": pd.Categorical(rng.choice([1, 2, 3], 150))})
    detector = AnomalyVAE(epochs=2, random_state=0).fit(frame)
    rows = frame.head(5)
    expected = detector.score_samples(rows)
    np.testing.assert_array_equal(detector.score_samples(rows.assign(c=rows["c"].astype(float))), expected)
    np.testing.assert_array_equal(detector.score_samples(rows.assign(c=rows["c"].astype(int))), expected)
    encoded = detector.encoder_.transform(rows.assign(c=pd.Series([1.5, 7.0, 2.0, 3, "x"], dtype=object)))
    assert encoded[:, -1].tolist() == [1, 1, 0, 0, 1]  # the "unseen" indicator: 1.5, 7.0 and "x" only


def test_a_small_fit_warns_of_a_column_that_holds_one_value():
    # New-user finding: a 2-row fit whose 'errors' column held one value stated a 33% alarm rate
    # and flagged every fresh row; on larger fits a constant column is taken at its word.
    rows = pd.DataFrame({"latency": [1.0, 2.0, 3.0, 1.5, 2.5, 3.5], "errors": [0] * 6, "region": ["eu", "us"] * 3})
    with pytest.warns(UserWarning, match=r"numeric column\(s\) \['errors'\] hold a single value in all 6 training"):
        AnomalyVAE(epochs=2, random_state=0).fit(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", category=anomvae.calibration.ThresholdWarning)
        warnings.filterwarnings("ignore", category=anomvae.TrainingHealthWarning)
        AnomalyVAE(epochs=2, random_state=0).fit(np.c_[np.arange(30.0), np.zeros(30)])


def test_other_dimensions_complex_numbers_and_intervals_are_named():
    # An attack's findings: scikit-learn's "dim <= 2 is required" although images are taken, a
    # complex column refused with the whole frame printed, and intervals called "dates".
    detector = AnomalyVAE(epochs=1, random_state=0).fit(np.random.default_rng(0).random((10, 3)))
    with pytest.raises(ValueError, match=r"X has 5 dimensions; .*\(N, C, H, W\)"):
        AnomalyVAE(epochs=1).fit(np.zeros((5, 2, 2, 2, 2)))
    with pytest.raises(ValueError, match="X has 5 dimensions"):
        detector.score_samples(np.zeros((2, 3, 1, 1, 1)))
    frame = pd.DataFrame({"a": np.arange(6) + 1j, "b": np.arange(6.0)})
    with pytest.raises(ValueError, match=r"not supported: column\(s\) 'a' hold complex numbers") as refused:
        AnomalyVAE(epochs=1).fit(frame)
    assert "0.0+1.0j" not in str(refused.value)
    with pytest.raises(TypeError, match="column 'iv' holds intervals"):
        AnomalyVAE(epochs=1).fit(pd.DataFrame({"iv": pd.interval_range(0, 6), "b": np.arange(6.0)}))

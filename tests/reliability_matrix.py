"""The bad-input matrix: each input, through each interface, and what must come of it.

The tests in ``test_reliability_inputs.py`` and ``test_reliability_serving.py``
run every cell; ``docs/reliability.md`` holds the table :func:`render_table`
writes, and a test checks that the two agree. Print the table with
``python tests/reliability_matrix.py``.

Interfaces: ``native`` (``score_samples`` of every registered estimator),
``cli`` (``anomvae score`` on a CSV file), ``pyfunc``
(``mlflow.pyfunc.load_model(...).predict``) and ``rest`` (``POST /invocations``
of ``anomvae serve``: MLflow's scoring server behind :mod:`anomvae.serving_front`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

INTERFACES = ("native", "cli", "pyfunc", "rest")


@dataclass(frozen=True)
class Refused:
    """A clear error whose message contains ``pattern`` (a 4xx over REST, exit code 2 from the CLI)."""

    pattern: str

    def describe(self) -> str:
        return f"error: `{self.pattern}`"


CHECKS = {
    "finite": "scored, finite",
    "same": "scored = the well-formed rows' scores",
    "higher": "scored, each above its well-formed row",
    "alarm": "finite, above every training score",
}
"""What a scored answer must satisfy, by name (see ``check_scores``)."""


@dataclass(frozen=True)
class Scored:
    check: str

    def describe(self) -> str:
        return CHECKS[self.check]


@dataclass(frozen=True)
class RawBody:
    """A REST request body sent as it is (for requests that are not a table)."""

    text: str


@dataclass(frozen=True)
class Case:
    """One bad input: ``build(rows)`` makes it from well-formed rows; ``outcomes`` per interface.

    ``model`` says which fitted model it is sent to: ``"table"`` (a DataFrame
    with numeric, constant, categorical and boolean columns), ``"array"`` (a
    NumPy array of 3 columns) or ``"image"`` (``(N, 1, 8, 8)`` uint8 images).
    An interface missing from ``outcomes`` does not apply.
    """

    name: str
    model: str
    build: Callable
    outcomes: dict = field(default_factory=dict)

    def outcome(self, interface: str):
        return self.outcomes.get(interface)


def _set(column: str, value, row: int | None = None) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def build(rows: pd.DataFrame) -> pd.DataFrame:
        changed = rows.copy()
        if row is None:
            changed[column] = value
        else:
            changed[column] = changed[column].astype(object if isinstance(value, str) else changed[column].dtype)
            changed.loc[changed.index[row], column] = value
        return changed

    return build


def _set_object(column: str, value) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Put ``value`` in row 0 of ``column``, made an object column first (no dtype coercion)."""
    def build(rows: pd.DataFrame) -> pd.DataFrame:
        changed = rows.astype({column: object})
        changed.loc[changed.index[0], column] = value
        return changed

    return build


def _all(outcome, *, cli=True, rest=None, pyfunc=None) -> dict:
    """The same outcome through every interface, with the exceptions given."""
    outcomes = {"native": outcome, "pyfunc": pyfunc or outcome, "rest": rest or pyfunc or outcome}
    if cli:
        outcomes["cli"] = cli if not isinstance(cli, bool) else outcome
    return outcomes


SCHEMA_MISSING = "missing inputs"
"""MLflow's schema check, before the model sees the request."""

TABLE_CASES = [
    Case("NaN in a numeric column", "table", _set("a", np.nan, row=0),
         _all(Refused("contains NaN in row 0, column a"))),
    Case("+inf in a numeric column", "table", _set("a", np.inf, row=0),
         _all(Refused("contains infinity in row 0, column a"))),
    Case("-inf in a numeric column", "table", _set("a", -np.inf, row=0),
         _all(Refused("contains infinity in row 0, column a"))),
    Case("None in a categorical column", "table", _set("kind", None, row=1),
         _all(Refused("NaN or empty text in categorical column 'kind'"))),
    Case("empty text in a categorical column", "table", _set("kind", "", row=1),
         _all(Refused("NaN or empty text in categorical column 'kind'"))),
    Case("a column missing (wrong number of features)", "table", lambda rows: rows.drop(columns=["b"]),
         _all(Refused("now missing"), pyfunc=Refused(f"{SCHEMA_MISSING} ['b']"),
              rest=Refused("lacks the model column(s) ['b']"))),
    Case("a column renamed", "table", lambda rows: rows.rename(columns={"a": "z"}),
         _all(Refused("unseen at fit time"), pyfunc=Refused(f"{SCHEMA_MISSING} ['a']"),
              rest=Refused("lacks the model column(s) ['a']"))),
    Case("columns reordered", "table", lambda rows: rows[list(reversed(rows.columns))],
         _all(Refused("same order"), cli=Scored("same"), pyfunc=Scored("same"))),
    Case("an extra column", "table", lambda rows: rows.assign(extra=1.0),
         _all(Refused("unseen at fit time"), pyfunc=Scored("same"))),
    Case("empty input (0 rows)", "table", lambda rows: rows.iloc[:0],
         _all(Refused("0 sample(s)"), rest=Refused("the request holds no rows"))),
    Case("a single row", "table", lambda rows: rows.iloc[:1], _all(Scored("same"))),
    Case("text in a numeric column", "table", _set("a", "abc", row=0),
         _all(Refused("column 'a' was numeric in fit"), pyfunc=Refused("Failed to convert column a"),
              rest=Refused("column 'a' takes numbers: row 0 holds 'abc'"))),
    Case("numbers in an object-dtype column", "table", lambda rows: rows.astype({"a": object}),
         _all(Scored("same"))),
    Case("integers in a float column", "table", lambda rows: rows.assign(a=rows["a"].round().astype(int)),
         _all(Scored("finite"), pyfunc=Refused("convert int64 to float64"), rest=Scored("finite"))),
    Case("an unseen category", "table", _set("kind", "never-seen"), _all(Scored("higher"))),
    Case("a number in a categorical column", "table", _set("kind", 5),
         _all(Scored("higher"), pyfunc=Refused("Can not safely convert int64"),
              rest=Refused("column 'kind' takes text: row 0 holds 5"))),
    Case("a constant training column takes a new value", "table", _set("c", 4.0), _all(Scored("higher"))),
    Case("1e30 in a numeric column", "table", _set("a", 1e30), _all(Scored("alarm"))),
    Case("-1e30 in a numeric column", "table", _set("a", -1e30), _all(Scored("alarm"))),
    Case("text in a boolean column", "table", _set("flag", "no"),
         _all(Refused("column 'flag' was boolean in fit"), pyfunc=Refused("convert str to bool"),
              rest=Refused("column 'flag' is boolean: row 0 holds 'no'"))),
    Case("a missing boolean", "table", _set_object("flag", None),
         _all(Refused("contains NaN in row 0, column flag"),
              rest=Refused("column 'flag' is boolean: row 0 holds a missing value"))),
    Case("0.5 in a boolean column", "table", _set_object("flag", 0.5),
         _all(Refused("column 'flag' was boolean in fit"),
              rest=Refused("column 'flag' is boolean: row 0 holds 0.5"))),
    Case("true in a numeric column", "table", _set_object("a", True),
         _all(Refused("column 'a' was numeric in fit"), pyfunc=Scored("finite"),
              rest=Refused("column 'a' takes numbers: row 0 holds True"))),
    Case("a record without the boolean column", "table",
         lambda rows: RawBody(json.dumps({"dataframe_records": [{"a": 0.1, "b": 0.2, "c": 3.0, "kind": "x"}]})),
         {"rest": Refused("row 0 lacks the column 'flag'")}),
    Case("one row as a 1-D array", "table", lambda rows: rows.iloc[0].to_numpy(),
         {"native": Refused("pass a DataFrame"), "pyfunc": Refused("Failed to enforce schema"),
          "rest": Refused("row 0 must be an object mapping column names to values")}),
    Case("request body is not JSON", "table", lambda rows: RawBody("{'dataframe_split': nonsense"),
         {"rest": Refused("valid JSON")}),
    Case("JSON without a known input key", "table", lambda rows: RawBody(json.dumps({"rows": [[1, 2]]})),
         {"rest": Refused("dataframe_split")}),
    Case("rows shorter than the columns", "table",
         lambda rows: RawBody(json.dumps({"dataframe_split": {"columns": list(rows.columns), "data": [[1.0]]}})),
         {"rest": Refused("row 0 of dataframe_split must be a list of 5 values")}),
]

ARRAY_CASES = [
    Case("wrong number of features", "array", lambda rows: rows[:, :2],
         {"native": Refused("X has 2 features, but")}),
    Case("1-D array", "array", lambda rows: rows[0], {"native": Refused("Expected 2D array")}),
    Case("empty array", "array", lambda rows: rows[:0], {"native": Refused("0 sample(s)")}),
    Case("a single row", "array", lambda rows: rows[:1], {"native": Scored("same")}),
    Case("NaN", "array", lambda rows: np.where(np.arange(rows.size).reshape(rows.shape) == 1, np.nan, rows),
         {"native": Refused("contains NaN in row 0, column 1")}),
    Case("1e30", "array", lambda rows: np.full_like(rows, 1e30), {"native": Scored("alarm")}),
    Case("numbers as text", "array", lambda rows: rows.astype(str), {"native": Scored("same")}),
    Case("words", "array", lambda rows: np.full(rows.shape, "abc"),
         {"native": Refused("could not convert string to float")}),
    Case("complex dtype", "array", lambda rows: rows.astype(complex), {"native": Refused("Complex data")}),
    Case("float16 dtype", "array", lambda rows: rows.astype(np.float16), {"native": Scored("finite")}),
    Case("nested lists", "array", lambda rows: rows.tolist(), {"native": Scored("same")}),
    Case("an image batch", "array", lambda rows: rows.reshape(len(rows), 1, 1, -1),
         {"native": Refused("fitted on tabular rows")}),
]

IMAGE_CASES = [
    Case("wrong height and width", "image", lambda images: images[:, :, :6, :6],
         {"native": Refused("images have shape (1, 6, 6)"), "pyfunc": Refused("Failed to enforce schema")}),
    Case("wrong channel count", "image", lambda images: np.repeat(images, 3, axis=1),
         {"native": Refused("images have shape (3, 8, 8)"), "pyfunc": Refused("Failed to enforce schema")}),
    Case("channels last", "image", lambda images: np.repeat(images, 3, axis=1).transpose(0, 2, 3, 1),
         {"native": Refused("channels-last"), "pyfunc": Refused("Failed to enforce schema")}),
    Case("no channel axis (N, H, W)", "image", lambda images: images[:, 0],
         {"native": Scored("same"), "pyfunc": Refused("Failed to enforce schema")}),
    Case("NaN pixel", "image", lambda images: np.where(images == images.max(), np.nan, images.astype(np.float32)),
         {"native": Refused("contains NaN"), "pyfunc": Refused("contains NaN")}),
    Case("1e30 pixels", "image", lambda images: np.full(images.shape, 1e30, dtype=np.float32),
         {"native": Refused("pass them on the scale of fit"), "pyfunc": Refused("pass them on the scale of fit")}),
    Case("float32 pixels", "image", lambda images: images.astype(np.float32),
         {"native": Scored("same"), "pyfunc": Scored("same")}),
    Case("numbers as text pixels", "image", lambda images: images.astype(str),
         {"native": Refused("images must hold integers or floats"),
          "pyfunc": Refused("does not match expected dtype float32"), "rest": Scored("same")}),
    Case("uint8 pixels", "image", lambda images: images,
         {"native": Scored("same"), "pyfunc": Refused("does not match expected dtype float32"),
          "rest": Scored("same")}),
    Case("boolean pixels", "image", lambda images: images > 0,
         {"native": Refused("images must hold integers or floats")}),
    Case("empty batch", "image", lambda images: images[:0].astype(np.float32),
         {"native": Refused("0 sample(s)"), "pyfunc": Refused("0 sample(s)"),
          "rest": Refused("Failed to enforce schema")}),
    Case("a single image", "image", lambda images: images[:1].astype(np.float32),
         {"native": Scored("same"), "pyfunc": Scored("same")}),
    Case("tabular rows", "image", lambda images: images.reshape(len(images), -1).astype(np.float32),
         {"native": Refused("fitted on images"), "pyfunc": Refused("Failed to enforce schema")}),
]
for _case in IMAGE_CASES:  # unless told otherwise, REST answers as the pyfunc model does
    if "pyfunc" in _case.outcomes:
        _case.outcomes.setdefault("rest", _case.outcomes["pyfunc"])

CASES = TABLE_CASES + ARRAY_CASES + IMAGE_CASES


def cases(model: str, interface: str) -> list[Case]:
    """The cases sent to ``model`` through ``interface``."""
    return [case for case in CASES if case.model == model and case.outcome(interface) is not None]


def case_id(case: Case) -> str:
    return f"{case.model}:{case.name}"


# ---------------------------------------------------------------- helpers
def table_rows(n: int = 160, seed: int = 0) -> pd.DataFrame:
    """Training rows: numeric ``a``, ``b`` (correlated), constant ``c``, categorical ``kind``, boolean ``flag``."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    return pd.DataFrame({
        "a": a,
        "b": 0.5 * a + 0.3 * rng.normal(size=n),
        "c": np.full(n, 3.0),
        "kind": np.where(a > 0, "x", "y").astype(object),
        "flag": rng.random(n) < 0.3,
    })


def images(n: int = 64, seed: int = 0) -> np.ndarray:
    """``(n, 1, 8, 8)`` uint8 images, each one bright horizontal bar."""
    rng = np.random.default_rng(seed)
    batch = np.zeros((n, 1, 8, 8), dtype=np.uint8)
    for image, row in zip(batch, rng.integers(1, 7, n)):
        image[0, row, :] = 200
    return batch


def _json_value(value):
    if isinstance(value, np.generic):
        return value.item()
    return value


def rest_body(request) -> str:
    """The ``/invocations`` JSON for a request: floats exact, NaN and infinity as JSON tokens."""
    if isinstance(request, RawBody):
        return request.text
    if isinstance(request, pd.DataFrame):
        data = [[_json_value(value) for value in row] for row in request.itertuples(index=False)]
        return json.dumps({"dataframe_split": {"columns": [str(c) for c in request.columns], "data": data}})
    values = np.asarray(request)
    if values.dtype == object:
        return json.dumps({"inputs": [_json_value(value) for value in values.ravel()]})
    return json.dumps({"inputs": values.tolist()})


def check_scores(check: str, scores, well_formed, training_max: float, n_rows: int) -> None:
    """Assert that anomaly scores (higher = more anomalous) satisfy ``check``.

    ``well_formed`` are the native anomaly scores of the rows the bad input
    was made from (the first ``n_rows`` of them are compared).
    """
    scores = np.asarray(scores, dtype=np.float64)
    assert scores.shape == (n_rows,), f"{n_rows} rows in, {scores.shape} scores out"
    assert np.all(np.isfinite(scores)), scores
    expected = np.asarray(well_formed, dtype=np.float64)[:n_rows]
    if check == "same":
        np.testing.assert_allclose(scores, expected, rtol=1e-9)
    elif check == "higher":
        assert np.all(scores > expected), (scores, expected)
    elif check == "alarm":
        assert np.all(scores > training_max), (scores, training_max)
    else:
        assert check == "finite", check


def render_table() -> str:
    """The matrix as Markdown, one table per model kind."""
    titles = {
        "table": "DataFrame model (columns a, b, constant c, categorical kind, boolean flag)",
        "array": "NumPy model (3 numeric columns)",
        "image": "Image model ((N, 1, 8, 8) uint8; REST and pyfunc take float32 tensors)",
    }
    parts = []
    for model, title in titles.items():
        lines = [f"#### {title}", "", "| input | " + " | ".join(INTERFACES) + " |",
                 "|---" * (len(INTERFACES) + 1) + "|"]
        for case in CASES:
            if case.model == model:
                cells = [case.outcome(i).describe() if case.outcome(i) else "n/a" for i in INTERFACES]
                lines.append(f"| {case.name} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    print(render_table())

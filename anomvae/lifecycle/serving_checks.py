"""What a scoring request must hold: the model's columns and params, values of the right types.

:class:`ColumnTypes` reads a logged model's signature and refuses, with a
:class:`Refusal` naming the row, the column or the param, what MLflow's
scoring server would otherwise cast silently (``true`` in a number column
scored as 1.0, ``3.7`` in an integer column as 3), ignore (an unknown param)
or answer with an error that repeats the request's rows and the whole
schema (a missing column, an empty batch, a param of the wrong type).
:mod:`anomvae.lifecycle.serving_front` runs these checks before MLflow sees
a request.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from ..csv_fields import ragged_message, ragged_row
from .serving_direct import INTEGER_TYPES, NUMBER_TYPES

MAX_ROWS = 50_000
"""Most rows one request may hold; more get 413 (split the batch)."""
MAX_TENSOR_DEPTH = 5
"""Nesting of a tensor request: rows, channels, height, width, and one spare level."""
TABULAR_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


class Refusal(Exception):
    """A request the guard answers itself, with ``status`` and ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ColumnTypes:
    """What each input column and each param of a logged model takes, from its signature.

    Parameters
    ----------
    columns : list of (name, MLflow type)
        The tabular input schema; empty for tensor inputs.
    tensor : bool
        True when the model takes a tensor (``{"inputs": [...]}``).
    params : dict of name to MLflow type, optional
        The params a request may set (``threshold``: double, ``top_features``: long).
    """

    def __init__(self, columns: list[tuple[str, str]], tensor: bool = False,
                 params: dict[str, str] | None = None) -> None:
        self.columns = columns
        self.tensor = tensor
        self.params = params or {}

    @classmethod
    def from_model(cls, model) -> ColumnTypes:
        """From a loaded pyfunc model's input and params schemas."""
        schema = model.metadata.get_input_schema()
        params_schema = model.metadata.get_params_schema()
        params = {spec.name: getattr(spec.dtype, "name", str(spec.dtype)) for spec in params_schema.params} \
            if params_schema is not None else {}
        if schema is None:
            return cls([], params=params)
        if schema.is_tensor_spec():
            return cls([], tensor=True, params=params)
        return cls([(spec.name, getattr(spec.type, "name", str(spec.type))) for spec in schema.inputs],
                   params=params)

    def check(self, document: Any) -> None:
        """Refuse a decoded JSON request whose rows or values do not fit the model.

        Raises
        ------
        Refusal
        """
        if not isinstance(document, dict):
            raise Refusal(400, f"the request JSON must be an object with one of the keys {list(TABULAR_KEYS)}")
        keys = [key for key in TABULAR_KEYS if key in document]
        if len(keys) != 1:
            raise Refusal(400, f"the request JSON must hold exactly one of the keys {list(TABULAR_KEYS)}")
        self._check_params(document.get("params"))
        payload = document[keys[0]]
        if self.tensor:
            self._check_tensor(payload)
        elif keys[0] == "inputs" and isinstance(payload, list) and payload and isinstance(payload[0], list):
            names = [name for name, _ in self.columns]
            raise Refusal(400, f"this model takes named columns {names}, not a tensor: send "
                               f'{{"dataframe_split": {{"columns": {json.dumps(names)}, "data": [[...], ...]}}}}')
        elif keys[0] == "dataframe_split":
            self._check_split(payload)
        elif isinstance(payload, dict) and keys[0] != "dataframe_records":
            self._check_columnar(payload)
        else:
            self._check_records(payload)

    def _check_params(self, params: Any) -> None:
        """Refuse params the model does not take, or of the wrong type (MLflow would ignore or echo them)."""
        if params is None:
            return
        if not isinstance(params, dict):
            raise Refusal(400, f"params must be an object mapping names to values; this model takes {sorted(self.params)}")
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            raise Refusal(400, f"unknown param(s) {unknown}; this model takes {sorted(self.params)}")
        for name, value in params.items():
            if value is None:  # not given: the model's default applies
                continue
            kind = self.params[name]
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if kind in INTEGER_TYPES and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
                raise Refusal(400, f"param {name!r} takes a non-negative whole number, got {value!r}")
            if kind in NUMBER_TYPES and not (number and math.isfinite(value)):
                raise Refusal(400, f"param {name!r} takes a finite number, got {value!r}")

    def check_csv(self, body: bytes) -> None:
        """Refuse a CSV request that lacks a model column or holds a value MLflow would silently cast.

        Values are read as text: a number column takes numbers (an empty cell
        or ``nan`` is left to the model, which names it), an integer column
        whole numbers, a boolean column ``true`` or ``false``.
        """
        if self.tensor or not self.columns:
            return
        try:
            ragged = ragged_row(body.decode("utf-8"))
            frame = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
        except (ValueError, csv.Error, pd.errors.ParserError, UnicodeDecodeError) as error:
            raise Refusal(400, f"the request CSV cannot be read: {str(error)[:200]}") from error
        if ragged is not None:
            raise Refusal(400, ragged_message(ragged, "the request CSV"))
        check_row_count(len(frame))
        missing = [name for name, _ in self.columns if name not in frame.columns]
        if missing:
            raise Refusal(400, f"the request CSV lacks the model column(s) {missing}")
        if frame.empty:
            raise Refusal(400, "the request holds no rows")
        for name, kind in self.columns:
            text = frame[name].str.strip()
            if kind == "boolean":
                bad = ~text.str.lower().isin(["true", "false"])
                wanted = "true or false"
            elif kind in NUMBER_TYPES:
                numbers = pd.to_numeric(text, errors="coerce")
                missing_value = text.str.lower().isin(["", "nan", "-nan", "+nan"])
                bad = numbers.isna() & ~missing_value
                wanted = "numbers"
                if kind in INTEGER_TYPES:  # MLflow cannot hold a missing value in an int64 column
                    bad |= missing_value | (numbers.notna() & ~(np.isfinite(numbers) & (numbers % 1 == 0)))
                    wanted = "whole numbers, none missing (it held integers in fit)"
            else:
                continue
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise Refusal(400, f"column {name!r} takes {wanted}: row {row} holds {frame[name].iloc[row]!r}")

    def _check_tensor(self, payload: Any) -> None:
        if not isinstance(payload, list):
            raise Refusal(400, "this model takes a tensor: send {\"inputs\": [[...], ...]}")
        check_row_count(len(payload))
        try:
            array = np.asarray(payload, dtype=np.float64)
        except (ValueError, TypeError, RecursionError) as error:
            raise Refusal(400, f"the tensor is ragged or holds non-numbers ({str(error)[:200]})") from error
        if array.ndim > MAX_TENSOR_DEPTH:
            raise Refusal(400, f"the tensor has {array.ndim} dimensions; at most {MAX_TENSOR_DEPTH} are accepted")
        if any(type(value) is bool for value in np.asarray(payload, dtype=object).ravel()):
            # MLflow would cast true / false to pixels of 1 / 0 and score a black image
            raise Refusal(400, "the tensor holds true or false; pixels are numbers")

    def _check_split(self, payload: Any) -> None:
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            raise Refusal(400, 'dataframe_split must be {"columns": [...], "data": [[...], ...]}')
        columns = payload.get("columns")
        data = payload["data"]
        check_row_count(len(data))
        if not isinstance(columns, list) or not all(isinstance(name, str) for name in columns):
            raise Refusal(400, "dataframe_split needs \"columns\": a list of column names")
        counts = Counter(columns)
        repeated = sorted(name for name, _ in self.columns if counts[name] > 1)
        if repeated:
            raise Refusal(400, f"dataframe_split names the model column(s) {repeated} more than once")
        missing = [name for name, _ in self.columns if name not in counts]
        if missing:
            raise Refusal(400, f"dataframe_split lacks the model column(s) {missing}")
        if not data:
            raise Refusal(400, "the request holds no rows")
        index = payload.get("index")
        if index is not None and (not isinstance(index, list) or len(index) != len(data)):
            # pandas would repeat a single row along a longer index: one row scored several times
            shown = f"{len(index)} labels" if isinstance(index, list) else f"a {type(index).__name__}"
            raise Refusal(400, f"dataframe_split's \"index\" holds {shown} for {len(data)} row(s) of \"data\"; "
                               "give one label per row, or leave it out")
        position = {name: index for index, name in enumerate(columns)}
        for row, values in enumerate(data):
            if not isinstance(values, list) or len(values) != len(columns):
                raise Refusal(400, f"row {row} of dataframe_split must be a list of {len(columns)} values")
            for name, kind in self.columns:
                if name in position:
                    _check_value(values[position[name]], kind, name, row)

    def _check_records(self, payload: Any) -> None:
        if not isinstance(payload, list):
            raise Refusal(400, "records must be a list of objects, one per row")
        check_row_count(len(payload))
        if not payload and self.columns:
            raise Refusal(400, "the request holds no rows")
        for row, record in enumerate(payload):
            if not isinstance(record, dict):
                raise Refusal(400, f"row {row} must be an object mapping column names to values")
            for name, kind in self.columns:
                if name not in record:
                    raise Refusal(400, f"row {row} lacks the column {name!r}")
                _check_value(record[name], kind, name, row)

    def _check_columnar(self, payload: dict) -> None:
        for name, _ in self.columns:
            if name not in payload:
                raise Refusal(400, f"the request lacks the column {name!r} (a list of values)")
            if not isinstance(payload[name], list):
                raise Refusal(400, f"column {name!r} must be a list of values, one per row; got a "
                                   f"{type(payload[name]).__name__}")
        lengths = {name: len(values) for name, values in payload.items() if isinstance(values, list)}
        check_row_count(max(lengths.values(), default=0))
        if not max(lengths.values(), default=0) and self.columns:
            raise Refusal(400, "the request holds no rows")
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{name!r}: {length}" for name, length in lengths.items())
            raise Refusal(400, f"the columns hold lists of different lengths ({shown}); one value per row in each")
        for name, kind in self.columns:
            for row, value in enumerate(payload[name]):
                _check_value(value, kind, name, row)


def check_row_count(rows: int) -> None:
    """Refuse (413) a request of more than :data:`MAX_ROWS` rows."""
    if rows > MAX_ROWS:
        raise Refusal(413, f"the request holds {rows} rows; at most {MAX_ROWS} are scored per request: split it")


def _check_value(value: Any, kind: str, column: str, row: int) -> None:
    """Refuse a JSON value MLflow would silently cast for a column of MLflow type ``kind``."""
    if kind == "boolean":
        if not isinstance(value, bool):
            shown = "a missing value (null)" if value is None else f"{value!r}"
            raise Refusal(400, f"column {column!r} is boolean: row {row} holds {shown}; send true or false")
    elif kind in NUMBER_TYPES:
        if isinstance(value, bool) or isinstance(value, (str, list, dict)):
            raise Refusal(400, f"column {column!r} takes numbers: row {row} holds {value!r}")
        if kind in INTEGER_TYPES and value is None:
            raise Refusal(400, f"column {column!r} held integers in fit: row {row} holds a missing value (null); "
                               "anomvae scores complete rows only")
        if kind in INTEGER_TYPES and isinstance(value, (int, float)) and not _is_int64(value):
            raise Refusal(400, f"column {column!r} held integers in fit and takes integers: row {row} holds "
                               f"{value!r}, which the model's schema would truncate or wrap; send a whole number "
                               "within the int64 range")
    elif kind == "string" and not (value is None or value != value or isinstance(value, str)):  # NaN: missing
        raise Refusal(400, f"column {column!r} takes text: row {row} holds {value!r}; send it as a JSON string")


def _is_int64(value: int | float) -> bool:
    """Whether a JSON number is a whole number that int64 holds (MLflow casts ``long`` columns to int64)."""
    if isinstance(value, int):
        return -2**63 <= value < 2**63
    return math.isfinite(value) and value.is_integer() and -2.0**63 <= value < 2.0**63

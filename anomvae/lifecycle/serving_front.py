"""``anomvae serve``: MLflow's scoring server with a request guard in front.

MLflow's scoring server (:func:`mlflow.pyfunc.scoring_server.init`) answers
some requests badly: no ``Content-Type`` header, a 5,000-digit integer or JSON
nested 5,000 deep each raise inside it (HTTP 500, and the keep-alive
connection is often dropped); error bodies carry the server's Python stack
trace; JSON values are cast to the column types before the model sees them,
so ``null`` or a missing key in a boolean column is scored as False or True,
``true`` in a numeric column as 1.0 and ``0.5`` in a boolean column as True;
and nothing bounds a request's size, so one million-row request holds a
worker for tens of seconds.

:class:`RequestGuard` is an ASGI middleware that answers those requests itself
before MLflow parses them, and passes every other request to MLflow unchanged:

=============================================  ======================================
request                                        answer
=============================================  ======================================
no or unknown ``Content-Type``                 415
body over ``max_body_bytes`` (16 MiB)          413
more than ``max_rows`` rows (50,000)           413
not UTF-8, not JSON, JSON nested too deeply,   400
an integer literal over 100 digits
a JSON value of the wrong type for its column  400, naming the row and the column
(``null``/missing boolean, ``true`` where a
number belongs, ``0.5`` in a boolean column,
text in a numeric column, a number where
text belongs)
=============================================  ======================================

A request that passes the guard in the plain form (``dataframe_split`` with
exactly the model's numeric columns, no params) is then scored by
:class:`~anomvae.lifecycle.serving_direct.DirectScoring` with the same model
call and the same answer bytes, without MLflow's per-request pandas work
(a one-row request: 5.8 ms against 20.7 ms through MLflow, ``benchmarks/results/serving.md``);
every other request goes to MLflow.

Error answers are JSON ``{"error_code": ..., "message": ...}`` without a stack
trace; an unexpected exception behind the guard is a 500 with a generic
message (the trace goes to the server log). :mod:`anomvae.lifecycle.serving_app`
builds the guarded app and runs it: ``anomvae serve models:/fraud@champion --port 5001``.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from .serving_direct import INTEGER_TYPES, NUMBER_TYPES

LOGGER = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest request body accepted (bytes); larger ones get 413."""
MAX_ROWS = 50_000
"""Most rows one request may hold; more get 413 (split the batch)."""
MAX_INTEGER_DIGITS = 100
"""Longest integer literal accepted in JSON; a float64 holds ~308 digits, a score needs far fewer."""
MAX_TENSOR_DEPTH = 5
"""Nesting of a tensor request: rows, channels, height, width, and one spare level."""

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/x-parquet"
TABULAR_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class Refusal(Exception):
    """A request the guard answers itself, with ``status`` and ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error_body(status: int, message: str) -> bytes:
    code = {413: "REQUEST_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE", 500: "INTERNAL_ERROR"}.get(
        status, "BAD_REQUEST"
    )
    return json.dumps({"error_code": code, "message": message}).encode()


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise Refusal(400, f"an integer literal has {len(text)} digits; at most {MAX_INTEGER_DIGITS} are accepted")
    return int(text)


def parse_json(body: bytes) -> Any:
    """Decode a JSON body within the guard's limits.

    Raises
    ------
    Refusal
        400 for bodies that are not UTF-8 JSON, nest too deeply for the
        parser, or hold an over-long integer literal.
    """
    try:
        return json.loads(body.decode("utf-8"), parse_int=_integer)
    except UnicodeDecodeError as error:
        raise Refusal(400, f"the request body is not UTF-8 ({error.reason} at byte {error.start})") from error
    except RecursionError as error:
        raise Refusal(400, "the request JSON is nested too deeply") from error
    except json.JSONDecodeError as error:
        raise Refusal(400, f"the request body is not valid JSON: {error}") from error


class ColumnTypes:
    """What each input column of a logged model takes over JSON, from its signature.

    Parameters
    ----------
    columns : list of (name, MLflow type)
        The tabular input schema; empty for tensor inputs.
    tensor : bool
        True when the model takes a tensor (``{"inputs": [...]}``).
    """

    def __init__(self, columns: list[tuple[str, str]], tensor: bool = False) -> None:
        self.columns = columns
        self.tensor = tensor

    @classmethod
    def from_model(cls, model) -> ColumnTypes:
        """From a loaded pyfunc model's input schema."""
        schema = model.metadata.get_input_schema()
        if schema is None:
            return cls([])
        if schema.is_tensor_spec():
            return cls([], tensor=True)
        return cls([(spec.name, getattr(spec.type, "name", str(spec.type))) for spec in schema.inputs])

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
        payload = document[keys[0]]
        if self.tensor:
            self._check_tensor(payload)
        elif keys[0] == "dataframe_split":
            self._check_split(payload)
        elif isinstance(payload, dict) and keys[0] != "dataframe_records":
            self._check_columnar(payload)
        else:
            self._check_records(payload)

    def _check_tensor(self, payload: Any) -> None:
        if not isinstance(payload, list):
            raise Refusal(400, "this model takes a tensor: send {\"inputs\": [[...], ...]}")
        _check_row_count(len(payload))
        try:
            array = np.asarray(payload, dtype=np.float64)
        except (ValueError, TypeError, RecursionError) as error:
            raise Refusal(400, f"the tensor is ragged or holds non-numbers ({str(error)[:200]})") from error
        if array.ndim > MAX_TENSOR_DEPTH:
            raise Refusal(400, f"the tensor has {array.ndim} dimensions; at most {MAX_TENSOR_DEPTH} are accepted")

    def _check_split(self, payload: Any) -> None:
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            raise Refusal(400, 'dataframe_split must be {"columns": [...], "data": [[...], ...]}')
        columns = payload.get("columns")
        data = payload["data"]
        _check_row_count(len(data))
        if not isinstance(columns, list) or not all(isinstance(name, str) for name in columns):
            raise Refusal(400, "dataframe_split needs \"columns\": a list of column names")
        counts = Counter(columns)
        repeated = sorted(name for name, _ in self.columns if counts[name] > 1)
        if repeated:
            raise Refusal(400, f"dataframe_split names the model column(s) {repeated} more than once")
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
        _check_row_count(len(payload))
        for row, record in enumerate(payload):
            if not isinstance(record, dict):
                raise Refusal(400, f"row {row} must be an object mapping column names to values")
            for name, kind in self.columns:
                if name not in record:
                    raise Refusal(400, f"row {row} lacks the column {name!r}")
                _check_value(record[name], kind, name, row)

    def _check_columnar(self, payload: dict) -> None:
        lengths = {len(values) for values in payload.values() if isinstance(values, list)}
        _check_row_count(max(lengths, default=0))
        for name, kind in self.columns:
            values = payload.get(name)
            if not isinstance(values, list):
                raise Refusal(400, f"the request lacks the column {name!r} (a list of values)")
            for row, value in enumerate(values):
                _check_value(value, kind, name, row)


def _check_row_count(rows: int) -> None:
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


class RequestGuard:
    """ASGI middleware guarding ``POST /invocations`` of an MLflow scoring app.

    Parameters
    ----------
    app : ASGI application
        The app of :func:`mlflow.pyfunc.scoring_server.init`.
    types : ColumnTypes
        What the model's columns take.
    max_body_bytes : int
    direct : DirectScoring, optional
        Scores plain requests itself once they pass the guard
        (:mod:`anomvae.lifecycle.serving_direct`); others go to ``app``.
    """

    def __init__(self, app, types: ColumnTypes, max_body_bytes: int = MAX_BODY_BYTES, direct=None) -> None:
        self.app = app
        self.types = types
        self.max_body_bytes = max_body_bytes
        self.direct = direct

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") != "/invocations" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        try:
            body, content_type, document = await self._checked_body(scope, receive)
        except Refusal as refusal:
            await _answer(send, refusal.status, _error_body(refusal.status, refusal.message))
            return
        answer = None if self.direct is None or document is None else await self.direct.answer(content_type, document)
        if answer is not None:
            await _answer(send, 200, answer)
            return
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        guarded = _TraceFreeSend(send)
        try:
            await self.app(scope, replay, guarded)
        except Exception:  # never a trace or a dropped connection for the client
            LOGGER.exception("unexpected error while scoring a request")
            if not guarded.answered:
                await _answer(send, 500, _error_body(500, "unexpected error while scoring the request; see the server log"))

    async def _checked_body(self, scope: Scope, receive: Receive) -> tuple[bytes, str, Any]:
        """The body, the ``Content-Type`` header and the decoded JSON (None for CSV and Parquet)."""
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        content_type = headers.get("content-type", "")
        media_type = content_type.split(";")[0].strip().lower()
        if media_type not in (JSON, CSV, PARQUET):
            raise Refusal(415, f"Content-Type must be {JSON}, {CSV} or {PARQUET}; got {media_type or 'none'!r}")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            raise Refusal(413, f"the request body is {declared} bytes; at most {self.max_body_bytes} are accepted")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Refusal(400, "the client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise Refusal(413, f"the request body exceeds {self.max_body_bytes} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        document = None
        if media_type == JSON:
            document = parse_json(body)
            self.types.check(document)
        elif media_type == CSV:
            _check_row_count(body.count(b"\n") - 1)
        return body, content_type, document


class _TraceFreeSend:
    """Wraps ``send`` so that error answers lose MLflow's ``stack_trace`` field."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.answered = False
        self.held: dict | None = None
        self.parts: list[bytes] = []

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.answered = True
            if message["status"] >= 400:
                self.held = message
                return
        if self.held is None:
            await self.send(message)
            return
        self.parts.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        status = self.held["status"]
        await _answer(self.send, status, _strip_trace(b"".join(self.parts), status))


def _strip_trace(body: bytes, status: int) -> bytes:
    try:
        document = json.loads(body)
    except ValueError:
        return _error_body(status, body.decode("utf-8", "replace").split("Traceback")[0].strip()[:2000])
    if isinstance(document, dict):
        document.pop("stack_trace", None)
        return json.dumps(document).encode()
    return body


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body, "more_body": False})

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
a JSON or CSV value of the wrong type for its  400, naming the row and the column
column (``null``/missing boolean, ``true``
where a number belongs, ``0.5`` in a boolean
column, text in a numeric column, a fraction
in an integer column, a number where text
belongs)
a missing model column, no rows, an unknown    400, naming the column or the param
param or one of the wrong type
=============================================  ======================================

The checks live in :mod:`anomvae.lifecycle.serving_checks`. Parquet is
accepted as ``application/vnd.apache.parquet`` (MLflow's name) or
``application/x-parquet``, and media types in any case: MLflow's server is
handed the canonical lower-case one.

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
from collections.abc import Awaitable, Callable
from typing import Any

from .serving_checks import ColumnTypes, Refusal, check_row_count

__all__ = ["MAX_BODY_BYTES", "RequestGuard", "parse_json"]

LOGGER = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024
"""Largest request body accepted (bytes); larger ones get 413."""
MAX_INTEGER_DIGITS = 100
"""Longest integer literal accepted in JSON; a float64 holds ~308 digits, a score needs far fewer."""

JSON = "application/json"
CSV = "text/csv"
PARQUET = "application/vnd.apache.parquet"
MEDIA_TYPES = {JSON: JSON, CSV: CSV, PARQUET: PARQUET, "application/x-parquet": PARQUET}
"""Accepted media types (any case), and the one MLflow's server is handed for each."""

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


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
        # MLflow compares the media type as sent: hand it the canonical lower-case one.
        headers = [(name, value) for name, value in scope["headers"] if name.lower() != b"content-type"]
        scope = {**scope, "headers": [*headers, (b"content-type", content_type.encode("latin-1"))]}
        try:
            await self.app(scope, replay, guarded)
        except Exception:  # never a trace or a dropped connection for the client
            LOGGER.exception("unexpected error while scoring a request")
            if not guarded.answered:
                await _answer(send, 500, _error_body(500, "unexpected error while scoring the request; see the server log"))

    async def _checked_body(self, scope: Scope, receive: Receive) -> tuple[bytes, str, Any]:
        """The body, the ``Content-Type`` header and the decoded JSON (None for CSV and Parquet)."""
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        sent_type, _, parameters = headers.get("content-type", "").partition(";")
        media_type = MEDIA_TYPES.get(sent_type.strip().lower())
        if media_type is None:
            raise Refusal(415, f"Content-Type must be {JSON}, {CSV} or {PARQUET}; got {sent_type.strip() or 'none'!r}")
        content_type = media_type + (f";{parameters}" if parameters else "")
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
            check_row_count(body.count(b"\n") - 1)
            self.types.check_csv(body)
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

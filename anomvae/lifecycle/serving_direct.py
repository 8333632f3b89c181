"""The common request, scored by ``anomvae serve`` without MLflow's per-request pandas work.

Profiled through MLflow's scoring app (``benchmarks/serving_latency.py``'s
model: 30 numeric columns, one row), a request spends most of its time
around the model rather than in it: the JSON becomes a DataFrame whose
columns are cast one by one to the signature's types, schema enforcement
builds another DataFrame column by column, then FastAPI's middleware and a
hop to a worker thread; the model's own ``predict`` was about a quarter of it.
For a request in the plain form below each of those steps returns what it
was given, so :class:`DirectScoring` skips them:

* ``Content-Type: application/json`` (``charset=utf-8`` at most), a JSON
  object whose only key is ``dataframe_split``, holding only ``columns``,
  exactly the model's columns in order, and ``data``, 1 to
  :data:`DIRECT_MAX_ROWS` rows;
* a model whose input columns are all ``double`` or ``long``, every value a
  JSON number, integral in ``long`` columns.

It builds the frame MLflow would hand the model (float64; the model reads
``long`` columns as float64 anyway), calls the same
:meth:`AnomalyDetectorModel.predict <anomvae.lifecycle.pyfunc.AnomalyDetectorModel.predict>`
with no params (so the logged defaults) and writes the answer with MLflow's
own ``predictions_to_json``: the bytes MLflow would send. Any other request,
and any request the model refuses, goes to MLflow's app unchanged, so every
error answer is still MLflow's (behind the guard).
"""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd

DIRECT_MAX_ROWS = 1000
"""Largest request scored directly, on the event loop (a few ms); larger ones go to MLflow's worker thread."""
DIRECT_MEDIA_TYPES = ("application/json", "application/json; charset=utf-8")
INTEGER_TYPES = ("long", "integer")
NUMBER_TYPES = ("double", "float", *INTEGER_TYPES)


class DirectScoring:
    """Score plain ``dataframe_split`` requests with the loaded model, bypassing MLflow's parsing.

    Parameters
    ----------
    python_model : AnomalyDetectorModel
        The loaded model (``pyfunc_model.unwrap_python_model()``).
    columns : list of (name, MLflow type)
        The model's input schema; every type numeric.
    """

    def __init__(self, python_model, columns: list[tuple[str, str]]) -> None:
        self.python_model = python_model
        self.names = [name for name, _ in columns]
        self.integer = np.array([kind in INTEGER_TYPES for _, kind in columns])
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="anomvae-direct-scoring")

    @classmethod
    def from_model(cls, model, columns: list[tuple[str, str]]) -> DirectScoring | None:
        """For a loaded pyfunc ``model`` of an anomvae tabular detector with numeric columns; None otherwise."""
        from .pyfunc import AnomalyDetectorModel

        try:
            python_model = model.unwrap_python_model()
        except Exception:  # not a PythonModel: MLflow answers every request
            return None
        if not isinstance(python_model, AnomalyDetectorModel) or not columns:
            return None
        if any(kind not in NUMBER_TYPES for _, kind in columns):
            return None
        return cls(python_model, columns)

    async def answer(self, content_type: str, document: Any) -> bytes | None:
        """MLflow's answer body to a plain request, or None for MLflow to answer it.

        The work runs on this object's one scoring thread, so the event loop
        stays free to read requests and to drive the requests MLflow answers
        (scored inline, a busy loop held those back: at concurrency 16 a
        request MLflow answered waited ~0.5 s behind directly scored ones).

        Parameters
        ----------
        content_type : str
            The request's ``Content-Type`` header.
        document : object
            The decoded JSON body (already through the guard's checks).
        """
        return await asyncio.get_running_loop().run_in_executor(self.executor, self.answer_now, content_type, document)

    def answer_now(self, content_type: str, document: Any) -> bytes | None:
        """:meth:`answer`, in the calling thread."""
        frame = self.frame(content_type, document)
        if frame is None:
            return None
        from mlflow.pyfunc.scoring_server import predictions_to_json

        try:
            predictions = self.python_model.predict(None, frame)
        except Exception:  # refused (NaN, ...): MLflow's app gives the answer it always gives
            return None
        body = io.StringIO()
        predictions_to_json(predictions, body)
        return body.getvalue().encode()

    def frame(self, content_type: str, document: Any) -> pd.DataFrame | None:
        """The frame of a plain request (see the module's docstring); None for any other request."""
        if content_type.strip().lower() not in DIRECT_MEDIA_TYPES:
            return None
        if not isinstance(document, dict) or document.keys() != {"dataframe_split"}:
            return None
        payload = document["dataframe_split"]
        if not isinstance(payload, dict) or payload.keys() != {"columns", "data"} or payload["columns"] != self.names:
            return None
        data = payload["data"]
        if not isinstance(data, list) or not 0 < len(data) <= DIRECT_MAX_ROWS:
            return None
        try:
            values = np.array(data, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):
            return None
        if values.shape != (len(data), len(self.names)) or any(
            value is None or isinstance(value, bool) for row in data for value in row
        ):
            return None
        integers = values[:, self.integer]
        if not np.all(np.isfinite(integers) & (np.mod(integers, 1) == 0) & (np.abs(integers) < 2.0**63)):
            return None
        return pd.DataFrame(values, columns=self.names)

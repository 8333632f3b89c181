"""Single-row scoring latency: native, in-process pyfunc and REST, side by side.

Fits an AnomalyVAE on ``--features`` standard-normal columns, logs it to a
temporary SQLite MLflow store, and times ``--requests`` one-row calls of

* ``native``: ``detector.score_samples(row)``;
* ``native+top``: ``score_frame(detector, row)``, what the model computes
  (score, ``is_anomaly`` and the top 3 features), without MLflow;
* ``pyfunc``: ``mlflow.pyfunc.load_model(uri).predict(row)`` in this process
  (MLflow's schema enforcement included);
* ``REST anomvae``: ``POST /invocations`` to ``anomvae serve`` on
  127.0.0.1 over one kept-alive HTTP connection, JSON ``dataframe_split``
  in and out;
* ``REST mlflow``: the same request to ``mlflow models serve --env-manager
  local``.

It prints p50 and p99 in milliseconds for each, beside the goals of issue 14
(REST p50 < 10 ms, pyfunc p50 < 3 ms for a 30-feature model on 2 cores) and
the load average (the machine may be shared), and checks that every path
returns the native score::

    nice -n 5 python benchmarks/serving_latency.py --requests 500 --threads 1
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPOSITORY = Path(__file__).resolve().parents[1]
GOALS_MS = {"pyfunc": 3.0, "REST anomvae": 10.0, "REST mlflow": 10.0}
WARMUP = 20


def timed(call, n: int) -> tuple[np.ndarray, float]:
    """Milliseconds of ``n`` calls after :data:`WARMUP` untimed ones, and the 1-minute load average after them."""
    for _ in range(WARMUP):
        call()
    elapsed = np.empty(n)
    for index in range(n):
        start = time.perf_counter()
        call()
        elapsed[index] = time.perf_counter() - start
    return 1000.0 * elapsed, os.getloadavg()[0]


def rest_caller(url: str, row: pd.DataFrame):
    """A function that POSTs ``row`` over one persistent connection; returns the served score."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    body = json.dumps({"dataframe_split": {"columns": list(row.columns), "data": row.to_numpy().tolist()}})
    headers = {"Content-Type": "application/json"}

    def call() -> float:
        connection.request("POST", "/invocations", body=body, headers=headers)
        answer = connection.getresponse()
        payload = answer.read()
        if answer.status != 200:
            raise RuntimeError(f"HTTP {answer.status}: {payload[:500]!r}")
        return json.loads(payload)["predictions"][0]["score"]

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1, help="torch threads here and in the server (default 1)")
    parser.add_argument("--no-rest", action="store_true", help="skip the REST server")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPOSITORY))
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import mlflow
    import torch

    import anomvae
    from anomvae.lifecycle.pyfunc import score_frame
    from anomvae.lifecycle.serving import local_server

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = pd.DataFrame(rng.normal(size=(2000, args.features)), columns=[f"f{i}" for i in range(args.features)])
    detector = anomvae.AnomalyVAE(epochs=5, random_state=0).fit(rows)
    row = rows.iloc[[7]]
    expected = float(-detector.score_samples(row)[0])
    results: dict[str, tuple[np.ndarray, float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        os.chdir(folder)
        info = anomvae.log_model(detector, name="model", input_example=rows.iloc[:5])
        model = mlflow.pyfunc.load_model(info.model_uri)
        assert np.isclose(model.predict(row)["score"].iloc[0], expected, rtol=1e-6)
        results["native"] = timed(lambda: detector.score_samples(row), args.requests)
        results["native+top"] = timed(lambda: score_frame(detector, row), args.requests)
        results["pyfunc"] = timed(lambda: model.predict(row), args.requests)
        for server in () if args.no_rest else ("anomvae", "mlflow"):
            with local_server(info.model_uri, Path(folder) / f"{server}.log", guarded=server == "anomvae",
                              threads=args.threads) as url:
                call = rest_caller(url, row)
                assert np.isclose(call(), expected, rtol=1e-6)
                results[f"REST {server}"] = timed(call, args.requests)
    print(f"single-row latency, {args.features} features, {args.requests} calls, torch threads {args.threads}; "
          f"load 1m: the machine's 1-minute load average after each path (2 cores here)")
    print(f"{'path':<12} {'p50 ms':>8} {'p99 ms':>8} {'load 1m':>8}  goal")
    for path, (values, load) in results.items():
        goal = f"p50 < {GOALS_MS[path]:g} ms: {'met' if np.median(values) < GOALS_MS[path] else 'NOT met'}" \
            if path in GOALS_MS else ""
        print(f"{path:<12} {np.median(values):8.3f} {np.quantile(values, 0.99):8.3f} {load:8.2f}  {goal}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

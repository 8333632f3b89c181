"""Bounded load test of ``anomvae serve`` (or ``mlflow models serve``) for an anomvae model, on 127.0.0.1 only.

Sends ``--requests`` POSTs to ``/invocations`` from ``--concurrency`` threads,
each thread on one keep-alive connection, about ``--malformed`` of them
broken on purpose (not JSON, a renamed column, a NaN, no Content-Type, a
5,000-digit integer, JSON nested 5,000 deep, a CSV body that does not parse,
``true`` in a numeric column), then reports p50/p99 latency and the count of
answers per status class, and checks that

* no request got a 5xx (or no answer: a reset connection counts as none),
* every malformed request got a 4xx,
* every good request got 200 with scores equal to the detector's own
  (``-score_samples``) to 1e-9 relative.

Without ``--url`` it fits a small AnomalyVAE, logs it to a temporary SQLite
MLflow store and starts ``anomvae serve`` (``--server mlflow``: ``mlflow models
serve --env-manager local``) on a free port (stopped at the end). With ``--url`` (which must be on 127.0.0.1) it
loads an already running server; ``--detector`` is then the served model's
``.safetensors`` file, needed to compute the expected scores (the requests
are rows drawn around its encoder's centre and scale, so this mode is for
models of numeric columns).

Standard library only for the load itself (``http.client`` and
``concurrent.futures``); exit status 0 when every check holds, 1 otherwise::

    nice -n 10 python benchmarks/serving_load.py --requests 1000 --concurrency 16 --workers 1 --threads 1

It prints the load average beside the figures: on a shared machine the
throughput says as much about the neighbours as about the server.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
REQUEST_TIMEOUT_S = 30
SCORE_RTOL = 1e-9
MALFORMED_KINDS = ("not-json", "renamed-column", "nan", "no-content-type", "huge-integer", "deep-json",
                   "bad-csv", "true-in-number")
JSON_HEADERS = {"Content-Type": "application/json"}


def check_local(url: str) -> str:
    """``url`` without a trailing slash; refuse anything but 127.0.0.1."""
    host = urllib.parse.urlsplit(url).hostname
    if host != "127.0.0.1":
        raise SystemExit(f"this load test only targets 127.0.0.1, not {host!r}")
    return url.rstrip("/")


def post(url: str, body: str) -> tuple[int, object]:
    """POST ``body`` to ``url``/invocations; the status (0 without an answer) and the decoded answer."""
    request = urllib.request.Request(f"{url}/invocations", data=body.encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, text.decode(errors="replace")
    except OSError as error:
        return 0, str(error)


@dataclass
class Request:
    kind: str
    """``"good"`` or one of :data:`MALFORMED_KINDS`."""
    body: str
    rows: np.ndarray | None = None
    """Positions in the row pool of a good request's rows."""
    headers: dict | None = None
    """HTTP headers; JSON's Content-Type when None."""


@dataclass
class Answer:
    request: Request
    status: int
    seconds: float
    payload: object


def split_body(columns: list[str], data: list[list]) -> str:
    return json.dumps({"dataframe_split": {"columns": columns, "data": data}})


def make_requests(pool: list[list], columns: list[str], n: int, malformed_fraction: float,
                  seed: int = 0, max_rows: int = 20) -> list[Request]:
    """``n`` requests of 1 to ``max_rows`` rows drawn from ``pool``, some malformed.

    ``pool`` holds JSON-ready rows (exact floats); the first column must be
    numeric, as the NaN requests put a NaN there.
    """
    rng = np.random.default_rng(seed)
    requests = []
    for _ in range(n):
        rows = rng.integers(0, len(pool), size=int(rng.integers(1, max_rows + 1)))
        data = [list(pool[row]) for row in rows]
        if rng.random() >= malformed_fraction:
            requests.append(Request("good", split_body(columns, data), rows))
            continue
        kind = MALFORMED_KINDS[sum(request.kind != "good" for request in requests) % len(MALFORMED_KINDS)]
        headers = None
        if kind == "not-json":
            body = split_body(columns, data)[: -7]
        elif kind == "renamed-column":
            body = split_body([columns[0] + "_renamed", *columns[1:]], data)
        elif kind == "no-content-type":
            body, headers = split_body(columns, data), {}
        elif kind == "huge-integer":
            body = split_body(columns, data).replace("[[", "[[" + "9" * 5000 + ", ", 1)
        elif kind == "deep-json":
            body = "[" * 5000 + "]" * 5000
        elif kind == "bad-csv":
            body, headers = ",".join(columns) + '\n"1.0,2\n3', {"Content-Type": "text/csv"}
        elif kind == "true-in-number":
            data[0][0] = True
            body = split_body(columns, data)
        else:
            data[0][0] = math.nan
            body = split_body(columns, data)
        requests.append(Request(kind, body, headers=headers))
    return requests


def send_all(url: str, requests: list[Request], concurrency: int) -> list[Answer]:
    """Send ``requests`` from ``concurrency`` threads, each on its own keep-alive connection.

    A request whose connection fails (reset, closed) gets status 0 and the
    thread opens a new connection for its next request.
    """
    address = urllib.parse.urlsplit(url).netloc
    local = threading.local()

    def send(request: Request) -> Answer:
        if getattr(local, "connection", None) is None:
            local.connection = http.client.HTTPConnection(address, timeout=REQUEST_TIMEOUT_S)
        started = time.perf_counter()
        headers = JSON_HEADERS if request.headers is None else request.headers
        try:
            local.connection.request("POST", "/invocations", body=request.body.encode(), headers=headers)
            answer = local.connection.getresponse()
            status, text = answer.status, answer.read()
            try:
                payload = json.loads(text)
            except ValueError:
                payload = text.decode(errors="replace")
        except (OSError, http.client.HTTPException) as error:
            local.connection.close()
            local.connection = None
            status, payload = 0, str(error)
        return Answer(request, status, time.perf_counter() - started, payload)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(send, requests))


def summarise(answers: list[Answer], expected_scores: np.ndarray, wall_seconds: float) -> dict:
    """Latency percentiles, status classes and the correctness checks."""
    latencies = np.array([answer.seconds for answer in answers]) * 1000
    classes = Counter(f"{answer.status // 100}xx" if answer.status else "no answer" for answer in answers)
    wrong_scores, malformed_not_4xx, good_not_200, good_unanswered = 0, 0, 0, 0
    for answer in answers:
        if answer.request.kind != "good":
            malformed_not_4xx += not 400 <= answer.status < 500
        elif answer.status != 200:
            good_not_200 += 1
            good_unanswered += answer.status == 0
        else:
            served = np.array([row["score"] for row in answer.payload["predictions"]], dtype=np.float64)
            expected = expected_scores[answer.request.rows]
            wrong_scores += not (served.shape == expected.shape
                                 and np.allclose(served, expected, rtol=SCORE_RTOL, atol=0.0))
    kinds = Counter(answer.request.kind for answer in answers)
    return {
        "requests": len(answers),
        "malformed": sum(count for kind, count in kinds.items() if kind != "good"),
        "wall_seconds": round(wall_seconds, 2),
        "requests_per_second": round(len(answers) / wall_seconds, 1),
        "p50_ms": round(float(np.percentile(latencies, 50)), 1),
        "p99_ms": round(float(np.percentile(latencies, 99)), 1),
        "status_classes": dict(sorted(classes.items())),
        "responses_5xx_or_none": classes.get("5xx", 0) + classes.get("no answer", 0),
        "malformed_not_4xx": malformed_not_4xx,
        "good_not_200": good_not_200,
        "good_unanswered": good_unanswered,
        "good_with_wrong_scores": wrong_scores,
    }


def passed(summary: dict) -> bool:
    return not (summary["responses_5xx_or_none"] or summary["malformed_not_4xx"]
                or summary["good_not_200"] or summary["good_with_wrong_scores"])


def run_load(url: str, detector, pool_rows: np.ndarray, *, n: int, concurrency: int,
             malformed_fraction: float, seed: int = 0) -> dict:
    """Build the requests for a numeric ``detector``, send them to ``url`` and summarise."""
    from anomvae.lifecycle.serving_inputs import input_columns

    pool = [[float(value) for value in row] for row in pool_rows]
    expected = detector.anomaly_score(np.asarray(pool))
    requests = make_requests(pool, input_columns(detector), n, malformed_fraction, seed)
    started = time.perf_counter()
    answers = send_all(url, requests, concurrency)
    return summarise(answers, expected, time.perf_counter() - started)


def typical_rows(detector, n: int, seed: int) -> np.ndarray:
    """Rows around the training distribution (the encoder's centre and scale), a few far out."""
    rng = np.random.default_rng(seed)
    encoder = detector.encoder_
    rows = encoder.centre + encoder.scale * rng.normal(size=(n, len(encoder.centre)))
    rows[: n // 20] *= 4
    return rows


def fit_and_serve(workers: int, seed: int, server: str = "anomvae", features: int = 30,
                  threads: int | None = None):
    """Context: a freshly fitted AnomalyVAE on ``features`` columns, served from a temporary SQLite store
    with ``workers`` workers of ``threads`` torch threads; yields (url, detector)."""

    @contextlib.contextmanager
    def context():
        with tempfile.TemporaryDirectory() as folder:
            os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{folder}/mlflow.db"
            import mlflow

            import anomvae
            from anomvae.lifecycle.serving import local_server

            mlflow.MlflowClient().create_experiment("serving-load", artifact_location=Path(folder, "artifacts").as_uri())
            os.environ["MLFLOW_EXPERIMENT_NAME"] = "serving-load"
            rng = np.random.default_rng(seed)
            latent = rng.normal(size=(2000, 3))
            rows = latent @ rng.normal(size=(3, features)) + 0.1 * rng.normal(size=(2000, features))
            detector = anomvae.AnomalyVAE(epochs=20, random_state=seed).fit(rows)
            info = anomvae.log_model(detector, input_example=rows[:5])
            with local_server(info.model_uri, Path(folder) / "server.log", workers,
                              guarded=server == "anomvae", threads=threads) as url:
                yield url, detector

    return context()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--malformed", type=float, default=0.1, help="fraction of malformed requests")
    parser.add_argument("--url", help="a running server on 127.0.0.1 (needs --detector)")
    parser.add_argument("--detector", help=".safetensors file of the model the --url server serves")
    parser.add_argument("--workers", type=int, default=1, help="server workers when the script starts one")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per server worker when the script starts one (default 1)")
    parser.add_argument("--features", type=int, default=30, help="columns of the model the script fits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--server", choices=("anomvae", "mlflow"), default="anomvae",
                        help="server the script starts: anomvae serve (default) or plain mlflow models serve")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPOSITORY))

    if args.url:
        if not args.detector:
            parser.error("--url needs --detector, the served model's .safetensors file")
        import anomvae

        detector = anomvae.load(args.detector, device="cpu")
        context = contextlib.nullcontext((check_local(args.url), detector))
    else:
        context = fit_and_serve(args.workers, args.seed, args.server, args.features, args.threads)
    with context as (url, detector):
        summary = run_load(url, detector, typical_rows(detector, 500, args.seed + 1), n=args.requests,
                           concurrency=args.concurrency, malformed_fraction=args.malformed, seed=args.seed)
    summary["load_average_1_5_15_min"] = tuple(round(load, 2) for load in os.getloadavg())
    for key, value in summary.items():
        print(f"{key:<24} {value}")
    print("PASS" if passed(summary) else "FAIL")
    return 0 if passed(summary) else 1


if __name__ == "__main__":
    raise SystemExit(main())

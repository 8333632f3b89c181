"""A local ``mlflow models serve`` process for an anomvae model, on 127.0.0.1.

Used by the serving tests and the load benchmark; handy for trying a
registered model by hand::

    with local_server("models:/card-fraud@champion", Path("serve.log")) as url:
        ...  # POST to f"{url}/invocations"
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

START_TIMEOUT_S = 180


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def local_server(model_uri: str, log_path: Path, workers: int = 1,
                 start_timeout: float = START_TIMEOUT_S, guarded: bool = False) -> Iterator[str]:
    """Run ``mlflow models serve --env-manager local`` for ``model_uri``; yield its base URL.

    With ``guarded=True`` it runs ``anomvae serve`` instead: the same MLflow
    scoring app behind :class:`anomvae.lifecycle.serving_front.RequestGuard`.

    The server listens on a free port of 127.0.0.1 only, inherits the
    environment (``MLFLOW_TRACKING_URI``), and gets the installed anomvae's
    folder first on ``PYTHONPATH``. The URL is yielded once ``/ping``
    answers; on exit the server's process group is terminated, and killed if
    it lingers. Every wait is bounded.

    Raises
    ------
    RuntimeError
        If the server exits or does not answer within ``start_timeout`` seconds;
        the message ends with the server's log.
    """
    port = free_port()
    package_root = str(Path(__file__).resolve().parents[1])
    python_path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    with open(log_path, "wb") as log:
        command = (
            [sys.executable, "-m", "anomvae.cli", "serve", model_uri, "--workers", str(workers)]
            if guarded else
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local", "-w",
             str(workers)]
        )
        process = subprocess.Popen(
            command + ["--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": python_path},
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while not _answers(f"{url}/ping"):
            if process.poll() is not None:
                raise RuntimeError(
                    f"mlflow models serve exited with {process.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer on /ping within {start_timeout} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

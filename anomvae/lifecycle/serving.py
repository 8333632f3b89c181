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
                 start_timeout: float = START_TIMEOUT_S, guarded: bool = False,
                 threads: int | None = None) -> Iterator[str]:
    """Run ``mlflow models serve --env-manager local`` for ``model_uri``; yield its base URL.

    With ``guarded=True`` it runs ``anomvae serve`` instead: the same MLflow
    scoring app behind :class:`anomvae.lifecycle.serving_front.RequestGuard`.

    The server listens on a free port of 127.0.0.1 only, inherits the
    environment (``MLFLOW_TRACKING_URI``), and gets the installed anomvae's
    folder first on ``PYTHONPATH``. The URL is yielded once ``/ping``
    answers; on exit the server's process group is terminated, and killed if
    it lingers. Every wait is bounded. ``threads`` sets the torch threads per
    worker (``anomvae serve --threads``; ``OMP_NUM_THREADS`` for MLflow's
    server); None leaves each server's default.

    Raises
    ------
    RuntimeError
        If the server exits or does not answer within ``start_timeout`` seconds;
        the message ends with the server's log.
    """
    port = free_port()
    package_root = str(Path(__file__).resolve().parents[1])
    python_path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    environment = {**os.environ, "PYTHONPATH": python_path}
    command = (
        [sys.executable, "-m", "anomvae.cli", "serve", model_uri, "--workers", str(workers)]
        + ([] if threads is None else ["--threads", str(threads)])
        if guarded else
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local", "-w",
         str(workers)]
    )
    name = "anomvae serve" if guarded else "mlflow models serve"
    if threads is not None and not guarded:
        environment["OMP_NUM_THREADS"] = str(threads)
    with server_process(name, command + ["--host", "127.0.0.1", "--port", str(port)], log_path,
                        f"http://127.0.0.1:{port}", "/ping", start_timeout,
                        env=environment) as url:
        yield url


@contextlib.contextmanager
def server_process(name: str, command: list[str], log_path: Path, url: str, health_path: str,
                   start_timeout: float, env: dict[str, str], cwd: Path | None = None) -> Iterator[str]:
    """Start the server ``name`` by ``command`` in its own process group; yield ``url`` once
    ``url + health_path`` answers 200.

    Output goes to ``log_path``. On exit the process group is terminated, and
    killed if it lingers; every wait is bounded.

    Raises
    ------
    RuntimeError
        If the process exits or does not answer within ``start_timeout``
        seconds; the message ends with its log.
    """
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + start_timeout
        while not _answers(f"{url}{health_path}"):
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer on {health_path} within {start_timeout} s:\n"
                                   f"{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


"""A real ``mlflow server`` process on 127.0.0.1, as teams run it: HTTP tracking URI, its own artifact store."""

import contextlib
import os
import sys
from pathlib import Path

from anomvae.lifecycle.serving import free_port, server_process

START_TIMEOUT_S = 180


@contextlib.contextmanager
def tracking_server(folder: Path):
    """Run ``mlflow server`` with a SQLite backend and a proxied artifact store under ``folder``; yield its URL.

    The process group is terminated on exit (killed if it lingers); every wait is bounded.
    """
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
               "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1"]
    environment = {key: value for key, value in os.environ.items() if key != "MLFLOW_TRACKING_URI"}
    with server_process("mlflow server", command, folder / "server.log", f"http://127.0.0.1:{port}", "/health",
                        START_TIMEOUT_S, env=environment, cwd=folder) as url:
        yield url

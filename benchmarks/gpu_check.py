"""The CUDA path of AnomalyVAE end to end, with training and scoring throughput per batch size.

On a machine with CUDA, for 30 and 512 features:

1. fit the default AnomalyVAE on the GPU (the engine trains under autocast there);
2. score with :func:`anomvae.inference.map_batches`, once as is and once
   through a scorer that refuses batches above 1,000 rows with
   ``torch.OutOfMemoryError``: the halve-and-retry path must give the same scores
   within the tolerance below (the latent distances come from matrix products,
   which round differently at other batch sizes: 5e-4 at scores near 2 was
   seen on one CI CPU);
3. save the GPU model, load it on the CPU, and compare the CPU scores with the
   GPU's;
4. log it as an MLflow pyfunc model (a SQLite tracking store in a temporary
   folder), load that, which puts it on the GPU, and compare its scores with
   the native ones;
5. print training rows/s (rows x epochs / fit seconds, no validation split)
   and scoring rows/s at batch sizes 256 to 8192.

Without CUDA the same steps run on the CPU in a tiny configuration (``--tiny``
is then implied), which the test suite runs so that the script cannot rot.
Scores may differ (between devices, or between batch sizes) by ``--rtol`` (relative, default 1e-3) plus
``--atol`` (default 1e-3); any larger difference, or any failed step, makes the
exit status 1. ``--time-cap`` seconds (default 480) bound the whole run: the
throughput sweeps stop early near it and the run is aborted with status 2 at it.

Run it on a lent GPU with::

    python benchmarks/gpu_check.py
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from anomvae import AnomalyVAE
from anomvae.benchmark.speed import correlated_rows
from anomvae.inference import map_batches
from anomvae.persistence import load

BATCH_SIZES = (256, 512, 1024, 2048, 4096, 8192)
WIDTHS = (30, 512)
FULL = {"train_rows": 100_000, "score_rows": 200_000, "epochs": 3, "batch_sizes": BATCH_SIZES}
TINY = {"train_rows": 600, "score_rows": 2_000, "epochs": 1, "batch_sizes": (256, 1024)}
OOM_ROWS = 1_000
"""Largest batch the OOM-simulating scorer of step 2 accepts."""


class TimeCap(Exception):
    """Raised by the alarm when the run exceeds ``--time-cap``."""


def report(step: str, ok: bool, detail: str) -> bool:
    """Print one check's outcome and return it."""
    print(f"[{'ok' if ok else 'FAIL'}] {step}: {detail}", flush=True)
    return ok


def close(reference: np.ndarray, other: np.ndarray, rtol: float, atol: float) -> tuple[bool, str]:
    """Whether ``other`` matches ``reference`` within the tolerance, and the largest difference."""
    if reference.shape != other.shape or not np.isfinite(other).all():
        return False, f"shapes {reference.shape} vs {other.shape} or non-finite scores"
    difference = np.abs(reference - other)
    ok = bool((difference <= atol + rtol * np.abs(reference)).all())
    return ok, f"max |difference| {difference.max():.3g} (tolerance {atol:g} + {rtol:g} x |score|)"


def oom_scorer(function):
    """``function``, refusing batches above :data:`OOM_ROWS` rows as if the device ran out of memory."""
    def scored(batch):
        if len(batch) > OOM_ROWS:
            raise torch.OutOfMemoryError(f"simulated: {len(batch)} rows > {OOM_ROWS}")
        return function(batch)
    return scored


def table(n_rows: int, width: int, seed: int) -> pd.DataFrame:
    """Synthetic rows with named columns, the form every door (native, pyfunc, REST) accepts."""
    return pd.DataFrame(correlated_rows(n_rows, width, seed=seed), columns=[f"f{i}" for i in range(width)])


def pyfunc_scores(model: AnomalyVAE, X: pd.DataFrame, folder: Path) -> tuple[np.ndarray, str]:
    """Scores of ``model`` logged and reloaded as an MLflow pyfunc model, and the device it loaded on."""
    import mlflow

    from anomvae import log_model

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    mlflow.set_experiment("gpu-check")
    info = log_model(model, input_example=X.iloc[:5])
    loaded = mlflow.pyfunc.load_model(info.model_uri)
    device = loaded.unwrap_python_model().detector.scorer_.device
    return loaded.predict(X).iloc[:, 0].to_numpy(), str(device)


def correctness(width: int, device: torch.device, settings: dict, tolerance: tuple[float, float],
                folder: Path) -> bool:
    """Steps 1 to 4 at one width; True when every check passed."""
    X = table(settings["train_rows"], width, seed=0)
    X_score = table(min(settings["score_rows"], 5_000), width, seed=1)
    started = time.perf_counter()
    model = AnomalyVAE(device=str(device), epochs=settings["epochs"], random_state=0).fit(X)
    ok = report(f"{width} features: fit on {device}", model.device_ == str(device),
                f"{time.perf_counter() - started:.1f} s, model on {model.device_}")
    native = -model.score_samples(X_score)
    encoded = model.encoder_.transform(X_score)
    retried = map_batches(oom_scorer(model.scorer_.anomaly_score), encoded, model.scorer_.device,
                          dtype=model.scorer_.dtype)
    ok &= report(f"{width} features: scoring after simulated out-of-memory errors",
                 *close(native, retried, *tolerance))
    path = folder / f"model-{width}.safetensors"
    model.save(path)
    on_cpu = load(path, device="cpu")
    ok &= report(f"{width} features: saved on {device}, loaded on cpu", *close(native, -on_cpu.score_samples(X_score),
                                                                                *tolerance))
    served, served_device = pyfunc_scores(model, X_score, folder)
    ok &= report(f"{width} features: pyfunc model (loaded on {served_device})", *close(native, served, *tolerance))
    return ok


def throughput(width: int, device: torch.device, settings: dict, deadline: float) -> None:
    """Step 5 at one width: training and scoring rows/s per batch size, until ``deadline``."""
    X = table(settings["train_rows"], width, seed=0)
    X_score = table(settings["score_rows"], width, seed=1)
    print(f"\n{width} features, {len(X):,} training rows x {settings['epochs']} epochs, {len(X_score):,} "
          f"scored rows, on {device} (load average {os.getloadavg()[0]:.2f})")
    print("| batch size | train rows/s | score rows/s |\n|---:|---:|---:|")
    for batch_size in settings["batch_sizes"]:
        if time.monotonic() > deadline:
            print("(remaining batch sizes skipped: near the time cap)")
            return
        model = AnomalyVAE(device=str(device), epochs=settings["epochs"], batch_size=batch_size,
                           validation_fraction=0.0, patience=None, random_state=0)
        started = time.perf_counter()
        model.fit(X)
        train_rate = len(X) * settings["epochs"] / (time.perf_counter() - started)
        encoded = model.encoder_.transform(X_score)
        map_batches(model.scorer_.anomaly_score, encoded[:batch_size], model.scorer_.device, batch_size,
                    dtype=model.scorer_.dtype)
        started = time.perf_counter()
        map_batches(model.scorer_.anomaly_score, encoded, model.scorer_.device, batch_size, dtype=model.scorer_.dtype)
        score_rate = len(X_score) / (time.perf_counter() - started)
        print(f"| {batch_size} | {train_rate:,.0f} | {score_rate:,.0f} |", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the check; returns the exit status (0 all passed, 1 a check failed, 2 time cap)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny configuration (implied without CUDA)")
    parser.add_argument("--rtol", type=float, default=1e-3)
    parser.add_argument("--atol", type=float, default=1e-3)
    parser.add_argument("--time-cap", type=float, default=480.0, help="seconds for the whole run")
    arguments = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    settings = TINY if arguments.tiny or device.type == "cpu" else FULL
    print(f"device: {torch.cuda.get_device_name(0) if device.type == 'cuda' else 'cpu (tiny configuration)'}; "
          f"torch {torch.__version__}; {torch.get_num_threads()} CPU threads")
    started = time.monotonic()

    def abort(signum, frame):
        raise TimeCap

    signal.signal(signal.SIGALRM, abort)
    signal.alarm(max(1, int(arguments.time_cap)))
    try:
        with tempfile.TemporaryDirectory() as folder:
            ok = all([correctness(width, device, settings, (arguments.rtol, arguments.atol), Path(folder))
                      for width in WIDTHS])
            for width in WIDTHS:
                throughput(width, device, settings, started + 0.8 * arguments.time_cap)
    except TimeCap:
        print(f"FAIL: time cap of {arguments.time_cap:.0f} s reached", flush=True)
        return 2
    finally:
        signal.alarm(0)
    print(f"\n{'all checks passed' if ok else 'SOME CHECKS FAILED'} in {time.monotonic() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

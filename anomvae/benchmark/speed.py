"""Training and scoring speed of AnomalyVAE against PyOD's VAE at equal settings.

Both models get PyOD's VAE defaults: encoder 128-64-32, latent size 2, 30
epochs, batch size 32, Adam with learning rate 1e-3, on the same synthetic
rows (30 correlated features). AnomalyVAE trains without a validation split
and without early stopping, so both make exactly the same number of passes.
Fits alternate between the two libraries in one process and the median of
``repeats`` fits is compared, so a burst of load on a shared machine affects
both sides alike.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

PYOD_VAE_DEFAULTS = {"hidden_dims": (128, 64, 32), "latent_dim": 2, "epochs": 30, "batch_size": 32,
                     "learning_rate": 1e-3}


def correlated_rows(n_rows: int, n_features: int, seed: int = 0) -> np.ndarray:
    """Rows from a linear factor model with noise: structure worth reconstructing."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(n_rows, max(2, n_features // 5)))
    loadings = rng.normal(size=(factors.shape[1], n_features))
    return factors @ loadings + 0.3 * rng.normal(size=(n_rows, n_features)) + 5.0


def anomvae_vae(**overrides):
    from anomvae import AnomalyVAE

    return AnomalyVAE(**{**PYOD_VAE_DEFAULTS, "validation_fraction": 0.0, "patience": None,
                         "random_state": 0, **overrides})


def pyod_vae():
    from pyod.models.vae import VAE

    return VAE(verbose=0, random_state=0)


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def _scoring_rate(score, X: np.ndarray, repeats: int) -> float:
    score(X[:1000])
    return len(X) / min(_timed(lambda: score(X)) for _ in range(repeats))


def measure(n_rows: int = 10_000, n_features: int = 30, repeats: int = 3, score_rows: int = 200_000,
            threads: int | None = None) -> dict[str, Any]:
    """Fit and scoring throughput of both models; see the module docstring.

    Returns
    -------
    dict
        Median fit seconds per library, ``fit_speedup`` (PyOD seconds /
        AnomalyVAE seconds), epoch-sample throughputs, and scoring rows/s of
        AnomalyVAE at the PyOD architecture, at its own default architecture,
        and of PyOD's VAE.
    """
    import torch

    from .runner import available_cores

    threads = threads or available_cores()
    torch.set_num_threads(threads)
    X = correlated_rows(n_rows, n_features)
    X_score = correlated_rows(score_rows, n_features, seed=1)
    fit_seconds: dict[str, list[float]] = {"anomvae": [], "pyod": []}
    models: dict[str, Any] = {}
    for _ in range(repeats):
        models["anomvae"] = anomvae_vae()
        fit_seconds["anomvae"].append(_timed(lambda: models["anomvae"].fit(X)))
        models["pyod"] = pyod_vae()
        fit_seconds["pyod"].append(_timed(lambda: models["pyod"].fit(X)))
    median = {name: statistics.median(values) for name, values in fit_seconds.items()}
    epochs = PYOD_VAE_DEFAULTS["epochs"]
    default_model = anomvae_vae(hidden_dims=None, latent_dim=None, epochs=1).fit(X)
    return {
        "n_rows": n_rows, "n_features": n_features, "repeats": repeats, "torch_threads": threads,
        "settings": {**PYOD_VAE_DEFAULTS, "hidden_dims": list(PYOD_VAE_DEFAULTS["hidden_dims"])},
        "fit_seconds": fit_seconds,
        "fit_seconds_median": median,
        "fit_speedup": median["pyod"] / median["anomvae"],
        "fit_samples_per_second": {name: n_rows * epochs / value for name, value in median.items()},
        "score_rows": score_rows,
        "score_rows_per_second": {
            "anomvae_pyod_architecture": _scoring_rate(models["anomvae"].score_samples, X_score, repeats),
            "anomvae_default_architecture": _scoring_rate(default_model.score_samples, X_score, repeats),
            "pyod": _scoring_rate(models["pyod"].decision_function, X_score, repeats),
        },
        "default_architecture": [list(default_model.scorer_.network.encoder.body[0].weight.shape)],
    }


def markdown(result: dict[str, Any]) -> str:
    """A short report of :func:`measure`'s result."""
    median = result["fit_seconds_median"]
    rates = result["score_rows_per_second"]
    return "\n".join([
        "# AnomalyVAE vs PyOD VAE: speed at equal settings",
        "",
        f"{result['n_rows']:,} rows x {result['n_features']} features; hidden 128-64-32, latent 2, "
        f"30 epochs, batch 32; {result['torch_threads']} torch thread(s); median of {result['repeats']} fits.",
        "",
        "| | AnomalyVAE | PyOD VAE |",
        "|---|---:|---:|",
        f"| fit seconds (median) | {median['anomvae']:.2f} | {median['pyod']:.2f} |",
        f"| fit samples/s (rows x epochs / s) | {result['fit_samples_per_second']['anomvae']:,.0f} | "
        f"{result['fit_samples_per_second']['pyod']:,.0f} |",
        f"| score rows/s (same architecture) | {rates['anomvae_pyod_architecture']:,.0f} | {rates['pyod']:,.0f} |",
        "",
        f"**Fit speed-up: {result['fit_speedup']:.1f}x.** AnomalyVAE scoring with its default "
        f"architecture for {result['n_features']} features: {rates['anomvae_default_architecture']:,.0f} rows/s "
        f"({result['score_rows']:,} rows, float64 on the CPU).",
        "",
    ])


def run_speed_benchmark(out: str | Path = "benchmark-results", threads: int | None = None,
                        command: str = "", **options) -> dict[str, Any]:
    """Run :func:`measure` and write ``speed.json`` and ``speed.md`` into ``out``."""
    from .report import environment

    result = measure(threads=threads, **options)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"json": folder / "speed.json", "markdown": folder / "speed.md"}
    files["json"].write_text(json.dumps({"command": command, "environment": environment(), **result}, indent=1))
    files["markdown"].write_text(markdown(result) + (f"\nCommand: `{command}`\n" if command else ""))
    return {"result": result, "files": files}

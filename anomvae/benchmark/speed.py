"""Training and scoring speed of AnomalyVAE against PyOD's VAE at equal settings.

Both models get PyOD's VAE defaults: encoder 128-64-32, latent size 2, 30
epochs, batch size 32, Adam with learning rate 1e-3, on the same synthetic
rows (30 correlated features). AnomalyVAE trains without a validation split
and without early stopping, so both make exactly the same number of passes.
Fits alternate between the two libraries in one process and the median of
``repeats`` fits is compared, so a burst of load on a shared machine affects
both sides alike. AnomalyVAE is fitted twice per round: as it trains by
default, with the hand-written fused step (:mod:`anomvae.nn.fused_vae_step`),
and with autograd (``fused_step=False``), the eager engine it replaces.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..models.vae import AnomalyVAE
from ..thresholds import RobustFalsePositiveRate
from .report import write_results
from .runner import available_cores

PYOD_VAE_DEFAULTS = {"hidden_dims": (128, 64, 32), "latent_dim": 2, "epochs": 30, "batch_size": 32,
                     "learning_rate": 1e-3}


def correlated_rows(n_rows: int, n_features: int, seed: int = 0) -> np.ndarray:
    """Rows from a linear factor model with noise: structure worth reconstructing."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(n_rows, max(2, n_features // 5)))
    loadings = rng.normal(size=(factors.shape[1], n_features))
    return factors @ loadings + 0.3 * rng.normal(size=(n_rows, n_features)) + 5.0


def anomvae_vae(**overrides):
    """AnomalyVAE at PyOD VAE's architecture and training settings, without early stopping.

    Like PyOD's, its threshold comes from the training rows' scores
    (``folds=0``): with no held-out rows the default threshold would
    otherwise cross-fit five more models, which is not training speed.
    """
    return AnomalyVAE(**{**PYOD_VAE_DEFAULTS, "validation_fraction": 0.0, "patience": None,
                         "threshold": RobustFalsePositiveRate(0.01, folds=0), "random_state": 0, **overrides})


def pyod_vae():
    """PyOD's VAE with its defaults."""
    from pyod.models.vae import VAE

    return VAE(verbose=0, random_state=0)


def bare_pytorch_step_seconds(n_features: int, steps: int = 2000, seed: int = 0) -> float:
    """Seconds per training step of the leanest eager PyTorch VAE of the PyOD shape.

    Encoder 128-64-32 with ReLU, latent 2, mirrored decoder, squared error
    plus KL, fused Adam, batch 32, one thread, one fixed batch: no data
    loading, clipping, validation or logging. It is not a detector, only the
    floor of what any library pays per step to train this network with eager
    PyTorch on this machine, against which both libraries' steps are read.
    """
    sizes = [n_features, *PYOD_VAE_DEFAULTS["hidden_dims"]]
    latent = PYOD_VAE_DEFAULTS["latent_dim"]

    def stack(widths):
        layers = []
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(width_in, width_out), nn.ReLU()]
        return layers

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generator = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            encoder = nn.Sequential(*stack(sizes), nn.Linear(sizes[-1], 2 * latent))
            decoder = nn.Sequential(*stack([latent, *sizes[:0:-1]]), nn.Linear(sizes[1], n_features))
        parameters = [*encoder.parameters(), *decoder.parameters()]
        optimizer = torch.optim.Adam(parameters, lr=PYOD_VAE_DEFAULTS["learning_rate"], fused=True)
        batch = torch.randn(PYOD_VAE_DEFAULTS["batch_size"], n_features, generator=generator)

        def step():
            mean, log_variance = encoder(batch).chunk(2, dim=1)
            z = mean + torch.exp(0.5 * log_variance) * torch.randn(mean.shape, generator=generator)
            reconstruction = (decoder(z) - batch).pow(2).sum(dim=1)
            kl = 0.5 * (mean.pow(2) + log_variance.exp() - 1 - log_variance).sum(dim=1)
            optimizer.zero_grad(set_to_none=True)
            (reconstruction + kl).mean().backward()
            optimizer.step()

        for _ in range(steps // 10):
            step()
        started = time.perf_counter()
        for _ in range(steps):
            step()
        return (time.perf_counter() - started) / steps
    finally:
        torch.set_num_threads(threads)


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
        Median fit seconds per library (``"anomvae_autograd"``: AnomalyVAE
        without the fused step), ``fit_speedup`` (PyOD seconds / AnomalyVAE
        seconds) and ``fit_speedup_autograd``, epoch-sample throughputs,
        seconds per training step of each and of
        :func:`bare_pytorch_step_seconds`, the
        speed-up that bare step would have over PyOD
        (``eager_pytorch_ceiling_speedup``), and scoring rows/s of
        AnomalyVAE at the PyOD architecture, at its own default architecture,
        and of PyOD's VAE.
    """
    threads = threads or available_cores()
    torch.set_num_threads(threads)
    X = correlated_rows(n_rows, n_features)
    X_score = correlated_rows(score_rows, n_features, seed=1)
    fit_seconds: dict[str, list[float]] = {"anomvae": [], "anomvae_autograd": [], "pyod": []}
    models: dict[str, Any] = {}
    builders = {"anomvae": anomvae_vae, "anomvae_autograd": lambda: anomvae_vae(fused_step=False),
                "pyod": pyod_vae}
    for _ in range(repeats):
        for name, build in builders.items():
            models[name] = build()
            fit_seconds[name].append(_timed(lambda: models[name].fit(X)))
    median = {name: statistics.median(values) for name, values in fit_seconds.items()}
    epochs = PYOD_VAE_DEFAULTS["epochs"]
    steps = epochs * -(-n_rows // PYOD_VAE_DEFAULTS["batch_size"])
    step_seconds = {name: value / steps for name, value in median.items()}
    step_seconds["bare_pytorch"] = bare_pytorch_step_seconds(n_features)
    default_model = anomvae_vae(hidden_dims=None, latent_dim=None, epochs=1).fit(X)
    return {
        "n_rows": n_rows, "n_features": n_features, "repeats": repeats, "torch_threads": threads,
        "settings": {**PYOD_VAE_DEFAULTS, "hidden_dims": list(PYOD_VAE_DEFAULTS["hidden_dims"])},
        "fit_seconds": fit_seconds,
        "fit_seconds_median": median,
        "fit_speedup": median["pyod"] / median["anomvae"],
        "fit_speedup_autograd": median["pyod"] / median["anomvae_autograd"],
        "step_seconds": step_seconds,
        "eager_pytorch_ceiling_speedup": step_seconds["pyod"] / step_seconds["bare_pytorch"],
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
    steps = result["step_seconds"]
    return "\n".join([
        "# AnomalyVAE vs PyOD VAE: speed at equal settings",
        "",
        f"{result['n_rows']:,} rows x {result['n_features']} features; hidden 128-64-32, latent 2, "
        f"30 epochs, batch 32; {result['torch_threads']} torch thread(s); median of {result['repeats']} fits.",
        "",
        "| | AnomalyVAE (fused step) | AnomalyVAE (autograd) | PyOD VAE |",
        "|---|---:|---:|---:|",
        f"| fit seconds (median) | {median['anomvae']:.2f} | {median['anomvae_autograd']:.2f} | "
        f"{median['pyod']:.2f} |",
        f"| fit samples/s (rows x epochs / s) | {result['fit_samples_per_second']['anomvae']:,.0f} | "
        f"{result['fit_samples_per_second']['anomvae_autograd']:,.0f} | "
        f"{result['fit_samples_per_second']['pyod']:,.0f} |",
        f"| score rows/s (same architecture) | {rates['anomvae_pyod_architecture']:,.0f} | | {rates['pyod']:,.0f} |",
        f"| microseconds per training step (fit seconds / steps) | {1e6 * steps['anomvae']:,.0f} | "
        f"{1e6 * steps['anomvae_autograd']:,.0f} | {1e6 * steps['pyod']:,.0f} |",
        "",
        f"A bare eager-PyTorch training step of the same network (no data loading, clipping or logging; "
        f"`bare_pytorch_step_seconds`) takes {1e6 * steps['bare_pytorch']:,.0f} us here: even that would be "
        f"{result['eager_pytorch_ceiling_speedup']:.1f}x faster than PyOD's step, the ceiling for eager PyTorch.",
        "",
        f"**Fit speed-up: {result['fit_speedup']:.1f}x** ({result['fit_speedup_autograd']:.1f}x with "
        f"autograd, `fused_step=False`). AnomalyVAE scoring with its default "
        f"architecture for {result['n_features']} features: {rates['anomvae_default_architecture']:,.0f} rows/s "
        f"({result['score_rows']:,} rows, float32 on the CPU for dense networks, as `score_samples` runs).",
        "",
    ])


def run_speed_benchmark(out: str | Path = "benchmark-results", threads: int | None = None,
                        command: str = "", **options) -> dict[str, Any]:
    """Run :func:`measure` and write ``speed.json`` and ``speed.md`` into ``out``."""
    result = measure(threads=threads, **options)
    return {"result": result, "files": write_results(out, "speed", result, markdown(result), command)}

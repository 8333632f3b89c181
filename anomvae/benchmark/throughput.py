"""Fit and scoring throughput across input widths, against PyOD and the machine's matmul limit.

For each width (features) and row count, the default :class:`AnomalyVAE`,
the same with ``precision="float32"``, PyOD's ``AutoEncoder`` and PyOD's
``VAE`` (each with its own defaults) are
fitted on ``rows`` synthetic rows (:func:`~anomvae.benchmark.speed.correlated_rows`)
and score ``rows`` other rows, in one process, one after the other. Beside
the rates the report gives the arithmetic AnomalyVAE's scoring needs per row
(multiply-adds of its linear layers, counted from their shapes, and the
latent nearest-neighbour term) and the share of the machine's matrix-product
throughput that scoring reaches; that throughput is measured in the same run
by a bare ``torch.matmul`` loop, in float32, float64 and bfloat16. Every figure carries
the 1-minute load average taken when it was measured: on a shared machine
rates move with the load.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..models.vae import AnomalyVAE
from ..nn import linear_flops
from .report import write_results
from .runner import available_cores
from .speed import correlated_rows

WIDTHS = (30, 128, 512, 768)
ROWS = (10_000, 100_000)
MATMUL_SIZE = 1024
"""Side of the square matrices of the bare matmul loop (large enough to reach the kernels' peak)."""


def load_average() -> float:
    """1-minute load average of the machine (0 where the platform has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def matmul_flops(dtype: torch.dtype, seconds: float = 1.0, size: int = MATMUL_SIZE) -> dict[str, float]:
    """Floating-point operations per second of a bare ``torch.matmul`` loop on the CPU.

    Two ``size`` x ``size`` matrices are multiplied repeatedly for about
    ``seconds``; each product counts ``2 size^3`` operations. It is the
    practical ceiling of any dense network on this machine with the current
    torch threads.

    Returns
    -------
    dict
        ``flops`` (operations per second) and ``load`` (load average).
    """
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator, dtype=dtype)
    b = torch.randn(size, size, generator=generator, dtype=dtype)
    torch.matmul(a, b)
    products, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.matmul(a, b)
        products += 1
    elapsed = time.perf_counter() - started
    return {"flops": 2 * size**3 * products / elapsed, "load": load_average()}


def scoring_flops_per_row(model: AnomalyVAE) -> dict[str, int]:
    """Arithmetic of one row's ``"reconstruction+knn"`` score by a fitted tabular AnomalyVAE.

    Returns
    -------
    dict
        ``network``: operations of the encoder and decoder linear layers;
        ``knn``: the matrix product that screens the reference codes for the
        nearest ones, ``2 (latent + 1)`` operations per reference code
        (:func:`anomvae.neighbours.kth_squared_distance`; the exact distances
        to the few candidates it keeps are not counted).
    """
    scorer = model.scorer_
    reference = getattr(scorer, "reference_codes", torch.zeros(0, 0))
    return {"network": linear_flops(scorer.network), "knn": 2 * (reference.shape[1] + 1) * len(reference)}


SCORING_REPEATS = 3
"""Scoring is timed this many times per detector and the fastest kept: the first call at a new
batch shape pays one-off set-up (oneDNN builds a bfloat16 kernel per shape), which a monitoring
service scoring batch after batch pays once."""


def _timed(function) -> tuple[float, float]:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started, load_average()


def _peers(seed: int) -> dict[str, Any]:
    from pyod.models.auto_encoder import AutoEncoder
    from pyod.models.vae import VAE

    return {
        "AnomalyVAE": AnomalyVAE(random_state=seed),
        "AnomalyVAE-float32": AnomalyVAE(random_state=seed, precision="float32"),
        "PyOD-AutoEncoder": AutoEncoder(random_state=seed, verbose=0),
        "PyOD-VAE": VAE(random_state=seed, verbose=0),
    }


def _score_function(name: str, model: Any):
    return model.score_samples if name.startswith("AnomalyVAE") else model.decision_function


def measure_cell(n_features: int, n_rows: int, epochs: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Fit and scoring rates of the three detectors at one width and row count.

    Parameters
    ----------
    n_features, n_rows : int
        Width of the rows and number of rows to fit on (and to score).
    epochs : int, optional
        Give every detector this many epochs instead of its default (quick runs).
    seed : int

    Returns
    -------
    dict
        Per detector: ``fit_seconds``, ``fit_rows_per_second`` (training rows
        / fit seconds, as a user sees it), ``score_rows_per_second`` (the
        fastest of :data:`SCORING_REPEATS` calls on the same rows) and the
        load averages after each; for AnomalyVAE also ``epochs_run`` and
        ``flops_per_row``.
    """
    X = correlated_rows(n_rows, n_features, seed=seed)
    X_score = correlated_rows(n_rows, n_features, seed=seed + 1)
    results: dict[str, Any] = {}
    for name, model in _peers(seed).items():
        if epochs is not None:
            model.set_params(epochs=epochs) if name.startswith("AnomalyVAE") else setattr(model, "epoch_num", epochs)
        fit_seconds, fit_load = _timed(lambda: model.fit(X))
        score = _score_function(name, model)
        score(X_score[:256])
        score_seconds, score_load = min(_timed(lambda: score(X_score)) for _ in range(SCORING_REPEATS))
        results[name] = {
            "fit_seconds": fit_seconds, "fit_rows_per_second": n_rows / fit_seconds, "fit_load": fit_load,
            "score_rows_per_second": n_rows / score_seconds, "score_load": score_load,
        }
        if name.startswith("AnomalyVAE"):
            results[name]["epochs_run"] = len(model.history_.get("epoch", []))
            results[name]["flops_per_row"] = scoring_flops_per_row(model)
            results[name]["scoring_dtype"] = str(model.scorer_.dtype).removeprefix("torch.")
    return results


def measure(widths: Sequence[int] = WIDTHS, rows: Sequence[int] = ROWS, epochs: int | None = None,
            threads: int | None = None, matmul_seconds: float = 1.0) -> dict[str, Any]:
    """Run :func:`measure_cell` over ``widths`` x ``rows`` and the bare matmul loop.

    Returns
    -------
    dict
        ``matmul`` (float32, float64 and bfloat16 peaks) and ``cells``: one record per
        width and row count, with the share of the matmul peak that
        AnomalyVAE's scoring reaches (``matmul_fraction``: matrix-product
        operations per row x rows per second / the peak in the dtype it scores in).
    """
    threads = threads or available_cores()
    torch.set_num_threads(threads)
    matmul = {str(dtype).removeprefix("torch."): matmul_flops(dtype, matmul_seconds)
              for dtype in (torch.float32, torch.float64, torch.bfloat16)}
    measure_cell(min(widths), 64, epochs=1)  # imports and first-call set-up, outside the timings
    cells = []
    for n_rows in rows:
        for n_features in widths:
            detectors = measure_cell(n_features, n_rows, epochs=epochs)
            for name, figures in detectors.items():
                if name.startswith("AnomalyVAE"):
                    reached = sum(figures["flops_per_row"].values()) * figures["score_rows_per_second"]
                    figures["matmul_fraction"] = reached / matmul[figures["scoring_dtype"]]["flops"]
            cells.append({"n_features": n_features, "n_rows": n_rows, "detectors": detectors,
                          "matmul_fraction": detectors["AnomalyVAE"]["matmul_fraction"]})
    return {"threads": threads, "epochs_override": epochs, "matmul": matmul, "cells": cells}


def markdown(result: dict[str, Any]) -> str:
    """One table per row count: width x detector rates, FLOPs per row and the matmul share."""
    matmul = result["matmul"]
    lines = [
        "# Throughput across input widths",
        "",
        f"{result['threads']} torch thread(s); bare `torch.matmul` ({MATMUL_SIZE}x{MATMUL_SIZE}): "
        + ", ".join(f"{dtype} {peak['flops'] / 1e9:.1f} GFLOP/s (load {peak['load']:.2f})"
                    for dtype, peak in matmul.items()) + ".",
        "",
        "Fit rows/s is training rows / fit seconds (whole fit, each detector's defaults"
        + (f", {result['epochs_override']} epochs for all" if result["epochs_override"] else "")
        + "); load is the 1-minute load average after each measurement.",
    ]
    for n_rows in dict.fromkeys(cell["n_rows"] for cell in result["cells"]):
        lines += ["", f"## {n_rows:,} rows", "",
                  "| features | detector | fit rows/s | score rows/s | load (fit, score) | notes |",
                  "|---:|---|---:|---:|---|---|"]
        for cell in (c for c in result["cells"] if c["n_rows"] == n_rows):
            for name, figures in cell["detectors"].items():
                lines.append(
                    f"| {cell['n_features']} | {name} | {figures['fit_rows_per_second']:,.0f} | "
                    f"{figures['score_rows_per_second']:,.0f} | {figures['fit_load']:.2f}, "
                    f"{figures['score_load']:.2f} | {_notes(name, figures)} |")
    return "\n".join(lines) + "\n"


def _notes(name: str, figures: dict[str, Any]) -> str:
    if not name.startswith("AnomalyVAE"):
        return ""
    flops = figures["flops_per_row"]
    return (f"{figures['epochs_run']} epochs; {flops['network'] / 1e3:,.0f} kFLOP/row network + "
            f"{flops['knn'] / 1e3:,.0f} kFLOP/row kNN; scoring in {figures['scoring_dtype']} at "
            f"{100 * figures['matmul_fraction']:.0f}% of its matmul peak")


def run_throughput_benchmark(out: str | Path = "benchmark-results", threads: int | None = None,
                             command: str = "", **options) -> dict[str, Any]:
    """Run :func:`measure` and write ``throughput.json`` and ``throughput.md`` into ``out``."""
    result = measure(threads=threads, **options)
    return {"result": result, "files": write_results(out, "throughput", result, markdown(result), command)}


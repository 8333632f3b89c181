"""Microseconds per training step: eager, ``torch.compile`` and a hand-fused MLP VAE step.

Issue 18 asks whether fusing the training step can take AnomalyVAE past 5x
PyOD's VAE at equal settings, where eager PyTorch tops out at about 2.7x
(``anomvae bench --suite speed``). This script times one training step on one
fixed batch, nothing else, for:

``pyod``
    PyOD's ``VAE.training_forward`` (zero_grad, forward, loss, backward, Adam).
``bare``
    :func:`anomvae.benchmark.speed.bare_pytorch_step_seconds`'s network
    (ReLU, squared error + KL, fused Adam): the leanest eager step.
``eager``
    AnomalyVAE's step as the engine runs it: anomvae's encoder and decoder
    (LeakyReLU, clamped log-variance), the calibrated-decoder negative ELBO,
    flat parameter and gradient buffers, gradient clipping, fused Adam.
``compile-default``, ``compile-max-autotune``
    The same step with the forward and loss under ``torch.compile`` (default
    mode, or ``mode="max-autotune-no-cudagraphs"``); AOTAutograd compiles the
    backward with it; zeroing, clipping and the fused Adam stay eager.
``compile-step``
    The forward and loss compiled as above and the clipping plus a foreach
    Adam step compiled too (``torch.compile`` of the optimiser step, as
    PyTorch's compiled-optimizer recipe does; fused Adam cannot be traced).
``hand-fused``
    No autograd: :class:`anomvae.nn.fused_vae_step.FusedVAEStep`, the forward
    and its hand-written backward as ``addmm``/``mm`` chains, every weight
    gradient written straight into the flat gradient buffer, then the same
    clipping and fused Adam.

Two networks: PyOD's defaults (30 features, hidden 128-64-32, latent 2, batch
32) and AnomalyVAE's default for 30 features (hidden 64-32, latent 8, batch
128). Compile time is the first call's extra cost over a warm step, paid once
per fit; the break-even is the number of steps after which a variant that
compiles has paid it back. One intra-op thread (what the engine uses for steps
this small) unless ``--threads`` says otherwise. Each figure is printed with
``os.getloadavg()``: the machine is shared, so only figures from one run
compare.

Run: ``PYTHONPATH=$PWD python benchmarks/fused_step.py --out benchmarks/results/fused_step``
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from anomvae.benchmark.speed import PYOD_VAE_DEFAULTS, bare_pytorch_step_seconds, correlated_rows
from anomvae.flat_parameters import FlatGroup
from anomvae.nn.blocks import build_decoder, build_encoder
from anomvae.nn.fused_vae_step import FusedVAEStep
from anomvae.nn.vae_losses import calibrated_gaussian_nll, gaussian_kl
from anomvae.nn.vae_network import VAENetwork

NETWORKS = {
    "pyod-defaults": {"n_features": 30, "hidden_dims": (128, 64, 32), "latent_dim": 2, "batch_size": 32},
    "anomvae-default-30": {"n_features": 30, "hidden_dims": (64, 32), "latent_dim": 8, "batch_size": 128},
    "anomvae-default-512": {"n_features": 512, "hidden_dims": (512, 256), "latent_dim": 32, "batch_size": 128,
                            "variants": ("eager", "hand-fused"), "steps": 200},
}
"""The networks timed; ``variants`` and ``steps`` limit a wide one, where arithmetic, not dispatch,
sets the step time, to checking that the fused step is no slower."""
VARIANTS = ("pyod", "bare", "eager", "compile-default", "compile-max-autotune", "compile-step", "hand-fused")
GRADIENT_CLIP = 10.0
LEARNING_RATE = 1e-3

Step = Callable[[], None]


def _batch(spec: dict) -> Tensor:
    rows = correlated_rows(spec["batch_size"], spec["n_features"])
    rows = (rows - rows.mean(0)) / rows.std(0)
    return torch.as_tensor(rows, dtype=torch.float32)


def _network(spec: dict) -> VAENetwork:
    torch.manual_seed(0)
    shape = (spec["n_features"],)
    return VAENetwork(build_encoder(shape, spec["hidden_dims"], spec["latent_dim"]),
                      build_decoder(spec["latent_dim"], spec["hidden_dims"], shape))


def _negative_elbo(network: VAENetwork, batch: Tensor) -> Tensor:
    output, mean, log_variance = network(batch)
    reconstruction, _ = calibrated_gaussian_nll(batch, output)
    return (reconstruction + gaussian_kl(mean, log_variance)).mean()


def _flat(network: nn.Module) -> FlatGroup:
    return FlatGroup(list(network.parameters()))


def pyod_step(spec: dict) -> Step:
    """PyOD's own training step on its VAE with PyOD's defaults."""
    from pyod.models.vae import VAE

    assert spec["hidden_dims"] == (128, 64, 32) and spec["latent_dim"] == 2, "PyOD's step only at its defaults"
    detector = VAE(verbose=0, random_state=0, batch_size=spec["batch_size"])
    detector.feature_size = spec["n_features"]
    detector.build_model()
    detector.training_prepare()
    batch = _batch(spec)
    return lambda: detector.training_forward(batch)


def eager_step(spec: dict, loss_of: Callable[[VAENetwork, Tensor], Tensor] | None = None) -> Step:
    """The engine's step: flat buffers, zero, backward, clip, fused Adam."""
    network, batch = _network(spec), _batch(spec)
    group = _flat(network)
    optimizer = torch.optim.Adam([group.parameter], lr=LEARNING_RATE, fused=True)
    loss_of = loss_of or _negative_elbo

    def step():
        loss = loss_of(network, batch)
        group.zero_grad()
        loss.backward()
        group.clip_grad_norm_(GRADIENT_CLIP)
        optimizer.step()
    return step


def compiled_forward_step(spec: dict, mode: str | None) -> Step:
    """:func:`eager_step` with the forward and loss under ``torch.compile``."""
    return eager_step(spec, torch.compile(_negative_elbo, mode=mode, dynamic=False))


def compiled_whole_step(spec: dict) -> Step:
    """Forward and loss compiled, and the clipping plus a foreach Adam step compiled as one."""
    network, batch = _network(spec), _batch(spec)
    group = _flat(network)
    optimizer = torch.optim.Adam([group.parameter], lr=LEARNING_RATE, foreach=True)
    loss_of = torch.compile(_negative_elbo, dynamic=False)

    @torch.compile(dynamic=False)
    def clip_and_update():
        norm = torch.linalg.vector_norm(group.grad)
        group.grad.mul_((GRADIENT_CLIP / (norm + 1e-6)).clamp(max=1.0))
        optimizer.step()

    def step():
        loss = loss_of(network, batch)
        group.zero_grad()
        loss.backward()
        clip_and_update()
    return step


def hand_fused_step(spec: dict) -> Step:
    """:class:`~anomvae.nn.fused_vae_step.FusedVAEStep` with the engine's flat buffers, clipping and fused Adam."""
    network, batch = _network(spec), _batch(spec)
    group = _flat(network)
    optimizer = torch.optim.Adam([group.parameter], lr=LEARNING_RATE, fused=True)
    fused = FusedVAEStep(network, "calibrated", beta=1.0)

    def step():
        fused.forward(batch)
        fused.backward()
        group.clip_grad_norm_(GRADIENT_CLIP)
        optimizer.step()
    return step


def check_hand_fused_gradient(spec: dict) -> float:
    """Largest difference between the hand-written and autograd gradients (same noise), relative to the largest."""
    network, reference, batch = _network(spec), _network(spec), _batch(spec)
    group = _flat(network)
    fused = FusedVAEStep(network, "calibrated", beta=1.0)
    torch.manual_seed(1)
    fused.forward(batch)
    fused.backward()
    torch.manual_seed(1)
    _negative_elbo(reference, batch).backward()
    theirs = torch.cat([p.grad.reshape(-1) for p in reference.parameters()])
    return float((group.grad - theirs).abs().max() / theirs.abs().max())


def time_step(make: Callable[[], Step], steps: int) -> dict:
    """Build the step, time its first call (compilation) and then ``steps`` warm calls."""
    started = time.perf_counter()
    step = make()
    step()
    first = time.perf_counter() - started
    for _ in range(max(10, steps // 10)):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    per_step = (time.perf_counter() - started) / steps
    return {"us_per_step": 1e6 * per_step, "compile_s": max(0.0, first - per_step),
            "load": os.getloadavg()[0]}


def measure(variants: tuple[str, ...], steps: int, threads: int) -> dict:
    torch.set_num_threads(threads)
    results: dict = {}
    for name, spec in NETWORKS.items():
        makers = {
            "pyod": lambda: pyod_step(spec),
            "eager": lambda: eager_step(spec),
            "compile-default": lambda: compiled_forward_step(spec, None),
            "compile-max-autotune": lambda: compiled_forward_step(spec, "max-autotune-no-cudagraphs"),
            "compile-step": lambda: compiled_whole_step(spec),
            "hand-fused": lambda: hand_fused_step(spec),
        }
        rows = results[name] = {"spec": {**spec, "hidden_dims": list(spec["hidden_dims"]),
                                         "variants": list(spec.get("variants", variants))}}
        for variant in variants:
            if variant not in spec.get("variants", variants) or (variant == "pyod" and name != "pyod-defaults"):
                continue
            torch._dynamo.reset()
            if variant == "bare":
                if name != "pyod-defaults":
                    continue
                rows[variant] = {"us_per_step": 1e6 * bare_pytorch_step_seconds(spec["n_features"], steps),
                                 "compile_s": 0.0, "load": os.getloadavg()[0]}
            else:
                rows[variant] = time_step(makers[variant], min(steps, spec.get("steps", steps)))
            row = rows[variant]
            if not variant.startswith("compile"):
                row["compile_s"] = 0.0  # only building the step: nothing a fit pays per se
            print(f"{name:20s} {variant:22s} {row['us_per_step']:8.0f} us/step  compile {row['compile_s']:6.1f} s"
                  f"  load {row['load']:.2f}", flush=True)
        eager = rows.get("eager", {}).get("us_per_step")
        for variant, row in rows.items():
            if variant in ("spec", "eager") or eager is None:
                continue
            saved = eager - row["us_per_step"]
            row["break_even_steps"] = (row["compile_s"] * 1e6 / saved if saved > 0 and row["compile_s"] > 0
                                       else (0 if saved > 0 else None))
        if "hand-fused" in rows:
            rows["hand_fused_gradient_max_relative_error"] = check_hand_fused_gradient(spec)
    return results


def markdown(results: dict, command: str, threads: int) -> str:
    lines = ["# One training step: eager, torch.compile and hand-fused", "",
             f"`{command}`; {threads} intra-op thread(s); torch {torch.__version__}.", ""]
    for name, rows in results.items():
        spec = rows["spec"]
        lines += [f"## {name}: {spec['n_features']} features, hidden {'-'.join(map(str, spec['hidden_dims']))}, "
                  f"latent {spec['latent_dim']}, batch {spec['batch_size']}", "",
                  "| variant | us/step | compile s | break-even steps vs eager | load |",
                  "|---|---:|---:|---:|---:|"]
        for variant, row in rows.items():
            if not isinstance(row, dict) or "us_per_step" not in row:
                continue
            even = row.get("break_even_steps", "")
            even = "never" if even is None else even if even == "" else f"{even:,.0f}"
            lines.append(f"| {variant} | {row['us_per_step']:,.0f} | {row['compile_s']:.1f} | {even} | "
                         f"{row['load']:.2f} |")
        if "hand_fused_gradient_max_relative_error" in rows:
            lines += ["", f"Hand-fused gradients against autograd's: largest relative difference "
                          f"{rows['hand_fused_gradient_max_relative_error']:.1e}."]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset of " + ", ".join(VARIANTS))
    parser.add_argument("--steps", type=int, default=1000, help="warm steps timed per variant")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="folder for fused_step.json and fused_step.md")
    args = parser.parse_args(argv)
    variants = tuple(v for v in args.variants.split(",") if v)
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    # Compile times are those of a first fit: the compiler's on-disk caches would
    # otherwise serve a later variant (or run) the kernels an earlier one built.
    torch.compiler.config.force_disable_caches = True
    results = measure(variants, args.steps, args.threads)
    command = "python " + shlex.join(["benchmarks/fused_step.py", *(argv if argv is not None else sys.argv[1:])])
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "fused_step.json").write_text(json.dumps(results, indent=2))
        (args.out / "fused_step.md").write_text(markdown(results, command, args.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

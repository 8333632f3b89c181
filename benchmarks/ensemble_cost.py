"""Cost probe: M AnomalyVAE-sized networks trained in one batched pass with ``torch.func``.

Issue 11's ensemble direction trains small VAEs "together in one batched
pass". This probe times what that would cost against one default network,
on synthetic rows (cost only, no quality): one training epoch of the
default's step (trimmed negative ELBO with the calibrated Gaussian decoder,
Adam, per-member gradient clipping) for

* one network of the default widths (the present fit's inner loop);
* ``M`` networks of the default widths, parameters stacked with
  :func:`torch.func.stack_module_state` and the step vectorised with
  :func:`torch.func.vmap`, each member on its own shuffled batch;
* ``M`` networks with halved hidden widths, likewise;

and the scoring throughput (rows/s) of the default rule
(:func:`anomvae.nn.latent_density.reconstruction_plus_knn`, 1,024 reference
codes) for one network and for ``M`` vmapped members.

    OMP_NUM_THREADS=1 python benchmarks/ensemble_cost.py --features 30 --members 5 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from anomvae.neighbours import kth_neighbour_distance
from anomvae.nn import build_decoder, build_encoder, default_architecture
from anomvae.nn.vae_losses import gaussian_kl
from anomvae.nn.vae_network import VAENetwork

TRIM = 0.1
CLIP = 10.0


def network(n_features: int, hidden: tuple[int, ...], latent: int) -> VAENetwork:
    shape = (n_features,)
    return VAENetwork(build_encoder(shape, hidden, latent), build_decoder(latent, hidden, shape))


def member_loss(model: VAENetwork, params: dict, buffers: dict, batch: Tensor) -> Tensor:
    """Trimmed negative ELBO of one member on its batch, calibrated Gaussian decoder (Rybkin et al. 2021)."""
    output, mean, log_variance = functional_call(model, (params, buffers), (batch,))
    squared = (batch - output).pow(2).sum(1)
    variance = squared.mean().detach() / batch.shape[1]
    reconstruction = squared / (2 * variance) + 0.5 * batch.shape[1] * torch.log(2 * torch.pi * variance)
    per_row = reconstruction + gaussian_kl(mean, log_variance)
    kept = int(len(per_row) * (1 - TRIM))
    return per_row.sort().values[:kept].mean()


def submodule(params: dict, prefix: str) -> dict:
    """The entries of ``params`` under ``prefix.``, without the prefix."""
    return {name[len(prefix) + 1:]: value for name, value in params.items() if name.startswith(prefix + ".")}


def time_epoch(models: list[VAENetwork], rows: Tensor, batch_size: int) -> float:
    """Seconds for one epoch of all ``models`` trained together by one vmapped step (one model: no vmap)."""
    params, buffers = stack_module_state(models)
    template = copy.deepcopy(models[0]).to("meta")
    if len(models) == 1:
        def step(p, b, x):
            return member_loss(template, {n: v[0] for n, v in p.items()}, {}, x[0])
    else:
        step = vmap(lambda p, b, x: member_loss(template, p, b, x), randomness="different")
    optimiser = torch.optim.Adam(params.values(), lr=1e-3)
    members = len(models)
    orders = torch.stack([torch.randperm(len(rows)) for _ in range(members)])
    started = time.perf_counter()
    for start in range(0, len(rows) - batch_size + 1, batch_size):
        batch = rows[orders[:, start:start + batch_size]]
        loss = step(params, buffers, batch).sum()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        norms = torch.stack([p.grad.reshape(members, -1).pow(2).sum(1) for p in params.values()]).sum(0).sqrt()
        factor = (CLIP / (norms + 1e-6)).clamp(max=1.0)
        for p in params.values():
            p.grad.mul_(factor.reshape(-1, *([1] * (p.dim() - 1))))
        optimiser.step()
    return time.perf_counter() - started


def time_scoring(models: list[VAENetwork], rows: Tensor, k: int = 5) -> float:
    """Rows per second of the mean of the members' reconstruction + latent kNN scores."""
    params = {name: value.detach() for name, value in stack_module_state(models)[0].items()}
    template = copy.deepcopy(models[0]).to("meta")

    def encode_decode(p, x):
        code, _ = functional_call(template.encoder, submodule(p, "encoder"), (x,))
        return code, (x - functional_call(template.decoder, submodule(p, "decoder"), (code,))).pow(2).sum(1)

    if len(models) == 1:
        def batched(p, x):
            code, errors = encode_decode({n: v[0] for n, v in p.items()}, x)
            return code[None], errors[None]
    else:
        batched = vmap(encode_decode, in_dims=(0, None))
    with torch.no_grad():
        reference_codes, _ = batched(params, rows[:1024])
        started = time.perf_counter()
        for chunk in rows.split(4096):
            codes, errors = batched(params, chunk)
            total = errors.double().clone()
            for member in range(len(models)):
                total[member] += kth_neighbour_distance(codes[member], reference_codes[member], k).double()
            total.mean(0)
        return len(rows) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--rows", type=int, default=18_000, help="training rows (90%% of the 20,000-row cap)")
    parser.add_argument("--score-rows", type=int, default=100_000)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    hidden, latent = default_architecture(args.features)
    halved = tuple(width // 2 for width in hidden)
    rows = torch.randn(args.rows, args.features)
    score_rows = torch.randn(args.score_rows, args.features)
    setups = {
        "1 default network": [network(args.features, hidden, latent)],
        f"{args.members} default networks, vmapped": [network(args.features, hidden, latent)
                                                      for _ in range(args.members)],
        f"{args.members} halved networks, vmapped": [network(args.features, halved, latent)
                                                     for _ in range(args.members)],
    }
    print(f"features={args.features} hidden={hidden} latent={latent} rows={args.rows} threads={args.threads}")
    print("| setup | epoch seconds | x one default | scoring rows/s |")
    print("|---|---:|---:|---:|")
    baseline = None
    for name, models in setups.items():
        time_epoch(models, rows[:2048], args.batch_size)
        seconds = min(time_epoch(models, rows, args.batch_size) for _ in range(3))
        baseline = baseline or seconds
        throughput = max(time_scoring(models, score_rows) for _ in range(3))
        print(f"| {name} | {seconds:.2f} | {seconds / baseline:.2f} | {throughput:,.0f} |", flush=True)


if __name__ == "__main__":
    main()

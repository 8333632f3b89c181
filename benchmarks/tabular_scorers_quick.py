"""Quick tabular comparison of AnomalyVAE, AnomalyVAEGAN and AnomalyAdVAE.

Semi-supervised protocol (``anomvae.datasets.semi_supervised_split``): train on
half of the normal rows, test on the other half plus every anomaly; data sets
over ``--max-rows`` rows are subsampled (stratified) first. Every model runs
with its default parameters unless ``--set`` overrides one. A fitted VAE-GAN is
also scored with each of its scoring rules (the same fit, so the columns
compare rules, not training runs).

Example::

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n 10 python benchmarks/tabular_scorers_quick.py \
        --output benchmarks/results/tabular_scorers_quick.md
"""

from __future__ import annotations

import argparse
import ast
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from anomvae import AnomalyAdVAE, AnomalyVAE, AnomalyVAEGAN
from anomvae.datasets import load_npz, semi_supervised_split, shared_data_dir
from anomvae.models.vae_gan.scorer import SCORINGS as VAEGAN_SCORINGS

DEFAULT_DATASETS = (
    "6_cardio", "20_letter", "26_optdigits", "28_pendigits",
    "31_satimage-2", "40_vowels", "42_WBC", "27_PageBlocks",
)
MODELS = {"vae": AnomalyVAE, "vaegan": AnomalyVAEGAN, "advae": AnomalyAdVAE}


def parse_overrides(pairs: list[str]) -> dict[str, dict[str, object]]:
    """``model.param=value`` strings to ``{model: {param: value}}``."""
    overrides: dict[str, dict[str, object]] = {name: {} for name in MODELS}
    for pair in pairs:
        key, _, text = pair.partition("=")
        model, _, param = key.partition(".")
        if model not in MODELS or not param:
            raise SystemExit(f"--set expects model.param=value with model in {sorted(MODELS)}, got {pair!r}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        overrides[model][param] = value
    return overrides


def evaluate(name, X, y, seed, max_rows, models, overrides):
    """ROC-AUC and fit seconds of every model on one data set and seed."""
    train, test = semi_supervised_split(y, random_state=seed, max_rows=max_rows)
    results = {}
    for model in models:
        estimator = MODELS[model](random_state=seed, **overrides[model])
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimator.fit(X[train])
        seconds = time.perf_counter() - started
        results[model] = (roc_auc_score(y[test], estimator.anomaly_score(X[test])), seconds)
        if model == "vaegan":
            chosen = estimator.scorer_.scoring
            for rule in VAEGAN_SCORINGS:
                estimator.scorer_.scoring = rule
                results[f"vaegan[{rule}]"] = (
                    roc_auc_score(y[test], estimator.anomaly_score(X[test])), seconds
                )
            estimator.scorer_.scoring = chosen
        print(f"{name:16s} seed={seed} {model:7s} auc={results[model][0]:.3f} "
              f"fit={seconds:.1f}s epochs={len(estimator.history_['epoch'])}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DEFAULT_DATASETS))
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--max-rows", type=int, default=20_000)
    parser.add_argument("--set", nargs="*", default=[], metavar="MODEL.PARAM=VALUE",
                        help="override a default, e.g. advae.m_z=5.0")
    parser.add_argument("--output", type=Path, help="write a markdown table here")
    args = parser.parse_args()

    folder = shared_data_dir()
    if folder is None:
        raise SystemExit("shared data not found; set ANOMVAE_DATA")
    overrides = parse_overrides(args.set)
    table: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for name in args.datasets:
        X, y = load_npz(folder / "tabular" / f"{name}.npz")
        for seed in args.seeds:
            for column, value in evaluate(name, X, y, seed, args.max_rows, args.models,
                                          overrides).items():
                table.setdefault(name, {}).setdefault(column, []).append(value)

    columns = list(next(iter(table.values())))
    lines = [
        "| dataset | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{np.mean([a for a, _ in row[c]]):.3f}"
                                                  for c in columns) + " |")
    means = [np.mean([np.mean([a for a, _ in row[c]]) for row in table.values()]) for c in columns]
    lines.append("| **mean** | " + " | ".join(f"**{m:.3f}**" for m in means) + " |")
    seconds = [np.mean([np.mean([s for _, s in row[c]]) for row in table.values()]) for c in columns]
    lines.append("| fit s (mean) | " + " | ".join(f"{s:.1f}" for s in seconds) + " |")
    report = "\n".join(lines)
    print(report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        header = (f"# Tabular scorers, quick benchmark\n\nROC-AUC, semi-supervised protocol, "
                  f"seeds {args.seeds}, max_rows {args.max_rows}, overrides {args.set or 'none'}.\n"
                  f"vaegan[rule] columns rescore the same VAE-GAN fit with each scoring rule.\n\n")
        args.output.write_text(header + report + "\n")


if __name__ == "__main__":
    main()

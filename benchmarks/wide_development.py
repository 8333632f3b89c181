"""Wide development set: one-class MNIST as 784-feature tabular rows, to choose wide architectures.

No development table of the shared suite
(:data:`anomvae.benchmark.suites.DEVELOPMENT`) is wider than 100 features,
and the MVTec-AD embeddings (512 features) are a confirmation set (issue 11):
the default network for wide inputs is chosen here instead. Each MNIST image
is flattened to one row of 784 pixel intensities, so the estimators see plain
tabular data and build their dense (not convolutional) networks.

Protocol (one-class, as Ruff et al., ICML 2018): for each digit, train on a
random subsample of that digit's training images (``--train-per-class``,
different per seed) and score the whole test set, where the digit is normal
and the nine others are anomalies. ROC-AUC per digit; the table gives each
candidate's mean over digits per seed and over seeds. Every candidate is a
default ``AnomalyVAE`` with ``hidden_dims`` and ``latent_dim`` (and
optionally ``epochs``) given, written ``"256x128-32"`` or ``"256x128-32-e30"``;
PyOD's AutoEncoder and KNN run beside them with their defaults. Each fit is
appended to a JSON-lines journal as it finishes, so an interrupted run
resumes where it stopped.

Run from the repository root::

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n 10 python benchmarks/wide_development.py \\
        --candidates 512x256-32,384x192-32,256x128-32,256x64-32,256x128-16 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from anomvae import AnomalyVAE
from anomvae.nn import linear_flops
from anomvae.datasets import load_mnist, shared_data_dir

PEERS = ("PyOD AutoEncoder", "PyOD KNN")
RESULTS = Path(__file__).parent / "results" / "wide_development"


def parse_candidate(name: str) -> dict:
    """AnomalyVAE parameters of a candidate written ``"256x128-32"``, ``"256x128-32-e30"`` or ``"512x256-32-bf16"``.

    After the hidden widths and the latent size come optional suffixes:
    ``-eN`` (N epochs), ``-mbN`` (``min_batches_per_epoch=N``) and ``-f32``
    or ``-bf16`` (``precision="float32"`` or ``"bfloat16"``). Without a precision suffix the estimator's default
    (``"auto"``) applies.

    Raises
    ------
    ValueError
        If ``name`` is not hidden widths joined by ``x``, ``-``, a latent size
        and those suffixes.
    """
    parts = name.split("-")
    precisions = {"f32": "float32", "bf16": "bfloat16"}
    try:
        params = {"hidden_dims": tuple(int(w) for w in parts[0].split("x")), "latent_dim": int(parts[1])}
        for suffix in parts[2:]:
            if suffix in precisions and "precision" not in params:
                params["precision"] = precisions[suffix]
            elif suffix.startswith("e") and "epochs" not in params:
                params["epochs"] = int(suffix[1:])
            elif suffix.startswith("mb") and "min_batches_per_epoch" not in params:
                params["min_batches_per_epoch"] = int(suffix[2:])
            else:
                raise ValueError
    except (ValueError, IndexError):
        raise ValueError(f"candidate {name!r} is not of the form 256x128-32, 256x128-32-e30 "
                         "or 512x256-32-e30-mb1-bf16") from None
    return params


def flat_mnist(data_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST images flattened to float32 rows of 784 pixel intensities in [0, 255]."""
    folder = data_dir / "images" / "mnist"
    train, train_labels = load_mnist(folder, "train")
    test, test_labels = load_mnist(folder, "test")
    return (train.reshape(len(train), -1).astype(np.float32), train_labels,
            test.reshape(len(test), -1).astype(np.float32), test_labels)


def detector(method: str, seed: int):
    """A fresh detector for a candidate name or a PyOD peer; and its scoring function (higher = more normal)."""
    if method == "PyOD AutoEncoder":
        from pyod.models.auto_encoder import AutoEncoder

        model = AutoEncoder(random_state=seed, verbose=0)
        return model, lambda X: -model.decision_function(X)
    if method == "PyOD KNN":
        from pyod.models.knn import KNN

        model = KNN()
        return model, lambda X: -model.decision_function(X)
    model = AnomalyVAE(random_state=seed, **parse_candidate(method))
    return model, model.score_samples


def run_one(method: str, digit: int, seed: int, data, train_per_class: int) -> dict:
    """Fit ``method`` on one digit's subsample and score the whole test set."""
    X_train, y_train, X_test, y_test = data
    rng = np.random.default_rng([seed, digit])
    rows = rng.choice(np.flatnonzero(y_train == digit), train_per_class, replace=False)
    model, score = detector(method, seed)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X_train[rows])
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    normality = score(X_test)
    record = {
        "method": method, "digit": digit, "seed": seed, "n_train": len(rows), "n_features": X_train.shape[1],
        "roc_auc": roc_auc_score(y_test != digit, -normality), "fit_seconds": fit_seconds,
        "score_seconds": time.perf_counter() - started, "load": os.getloadavg()[0],
    }
    if isinstance(model, AnomalyVAE):
        record["epochs_run"] = len(model.history_["epoch"])
        record["network_flops_per_row"] = linear_flops(model.scorer_.network)
    return record


def summary(journal: pd.DataFrame) -> pd.DataFrame:
    """Per method: mean ROC-AUC over digits for each seed, their mean and spread, cost."""
    per_seed = journal.pivot_table(index="method", columns="seed", values="roc_auc", aggfunc="mean")
    table = pd.DataFrame({f"seed {seed}": per_seed[seed] for seed in per_seed.columns})
    table["mean"] = per_seed.mean(axis=1)
    table["spread"] = per_seed.max(axis=1) - per_seed.min(axis=1)
    grouped = journal.groupby("method")
    table["fit s (sum)"] = grouped["fit_seconds"].sum()
    table["mean epochs"] = grouped["epochs_run"].mean() if "epochs_run" in journal else np.nan
    table["kFLOP/row"] = grouped["network_flops_per_row"].first() / 1e3 if "network_flops_per_row" in journal else np.nan
    table["runs"] = grouped.size()
    return table.sort_values("mean", ascending=False)


def to_markdown(table: pd.DataFrame, command: str, settings: str) -> str:
    """The summary as a markdown table with the command that produced it."""
    lines = ["# Wide development set: one-class MNIST, 784 features as tabular rows", "",
             f"Command: `{command}`", "", settings, "",
             "| method | " + " | ".join(table.columns) + " |", "|---" * (len(table.columns) + 1) + "|"]
    for method, row in table.iterrows():
        cells = [f"{value:.3f}" if name.startswith(("seed", "mean", "spread")) and name != "mean epochs"
                 else ("" if pd.isna(value) else f"{value:,.0f}" if name != "mean epochs" else f"{value:.1f}")
                 for name, value in row.items()]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the missing fits of the journal, then write the summary table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", default="512x256-32,256x128-32",
                        help="comma-separated AnomalyVAE architectures, e.g. 512x256-32,256x128-16-e30")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated PyOD peers (or empty)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--digits", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--journal", type=Path, default=RESULTS / "journal.jsonl")
    parser.add_argument("--out", type=Path, default=RESULTS / "results.md")
    parser.add_argument("--data", type=Path, default=None, help="shared data folder (default: ../shared/data)")
    args = parser.parse_args(argv)
    methods = [m for m in args.candidates.split(",") + args.peers.split(",") if m]
    for method in methods:
        if method not in PEERS:
            parse_candidate(method)
    args.journal.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.journal.exists():
        done = {(r["method"], r["digit"], r["seed"], r["n_train"])
                for r in map(json.loads, args.journal.read_text().splitlines())}
    data = flat_mnist(args.data or shared_data_dir())
    for seed in args.seeds:
        for digit in args.digits:
            for method in methods:
                if (method, digit, seed, args.train_per_class) in done:
                    continue
                record = run_one(method, digit, seed, data, args.train_per_class)
                print(json.dumps(record), flush=True)
                with args.journal.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
    journal = pd.read_json(args.journal, lines=True)
    journal = journal[journal["method"].isin(methods) & journal["seed"].isin(args.seeds)
                      & journal["digit"].isin(args.digits) & (journal["n_train"] == args.train_per_class)]
    command = ("PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n 10 python benchmarks/wide_development.py "
               f"--candidates {args.candidates} --seeds {' '.join(map(str, args.seeds))} "
               f"--train-per-class {args.train_per_class}"
               + ("" if args.digits == list(range(10)) else f" --digits {' '.join(map(str, args.digits))}"))
    settings = (f"Digits {args.digits[0]}-{args.digits[-1]}, {args.train_per_class} training rows per digit "
                "(subsample per seed), the whole 10,000-row test set scored. Mean ROC-AUC over digits; "
                "spread = best minus worst seed. kFLOP/row: the network's linear layers. Journal: "
                f"[{args.journal.name}]({args.journal.name}). Shared 2-core machine, one thread; load "
                f"{journal['load'].min():.1f}-{journal['load'].max():.1f}.")
    args.out.write_text(to_markdown(summary(journal), command, settings))
    print(args.out.read_text())


if __name__ == "__main__":
    main()

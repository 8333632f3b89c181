"""Why AnomalyVAE trails KNN on some datasets: global reconstruction vs local density.

For each dataset and seed (semi-supervised split, as ``anomvae bench``), one
``AnomalyVAE()`` with default parameters is fitted and its test rows scored
six ways; all but the last reuse that one fit:

- ``reconstruction``: the default score (posterior-mean reconstruction error);
- ``elbo``: the negative ELBO (``scoring="elbo"``);
- ``latent kNN``: distance of the row's posterior mean to its 5th nearest
  training code;
- ``reconstruction + latent kNN``: both, each divided by its median over the
  training rows (kNN distances of training rows leave the row itself out);
- ``scaled kNN``: 5-NN distance on the standardised inputs AnomalyVAE sees;
- ``PyOD KNN``: the benchmark's peer, on raw features.

If the VAE lost because of its training, latent kNN would not help; if KNN
won because of a local-density signal that a global reconstruction error
cannot see, adding a local term to the VAE's score recovers part of the gap.

    nice -n 10 python benchmarks/knn_gap.py --seeds 0 1 --out benchmarks/results/knn_gap.md
"""

from __future__ import annotations

import argparse
import shlex
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from pyod.models.knn import KNN
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from anomvae import AnomalyVAE
from anomvae.datasets import load_npz, semi_supervised_split, shared_data_dir

COLUMNS = ("reconstruction", "elbo", "latent kNN", "reconstruction + latent kNN", "scaled kNN", "PyOD KNN")
NEIGHBOURS = 5


def kth_distance(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance to the k-th nearest training row, for training rows (leave-one-out) and test rows."""
    index = NearestNeighbors(n_neighbors=NEIGHBOURS + 1).fit(train)
    return index.kneighbors(train)[0][:, -1], index.kneighbors(test, n_neighbors=NEIGHBOURS)[0][:, -1]


def relative(train_scores: np.ndarray, test_scores: np.ndarray) -> np.ndarray:
    return test_scores / max(float(np.median(train_scores)), 1e-12)


def scores_of_one_fit(X_train: np.ndarray, X_test: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Anomaly scores (higher = more anomalous) of the test rows, per column of :data:`COLUMNS`."""
    detector = AnomalyVAE(random_state=seed).fit(X_train)
    scaled_train, scaled_test = detector.encoder_.transform(X_train), detector.encoder_.transform(X_test)
    with torch.no_grad():
        codes_train, codes_test = (
            detector.scorer_.network.encode(torch.as_tensor(rows, dtype=detector.scorer_.dtype))[0].numpy()
            for rows in (scaled_train, scaled_test)
        )
    reconstruction_train, reconstruction_test = detector.anomaly_score(X_train), detector.anomaly_score(X_test)
    detector.scorer_.scoring = "elbo"
    elbo_test = detector.anomaly_score(X_test)
    latent_train, latent_test = kth_distance(codes_train, codes_test)
    return {
        "reconstruction": reconstruction_test,
        "elbo": elbo_test,
        "latent kNN": latent_test,
        "reconstruction + latent kNN": relative(reconstruction_train, reconstruction_test)
        + relative(latent_train, latent_test),
        "scaled kNN": kth_distance(scaled_train, scaled_test)[1],
        "PyOD KNN": KNN().fit(X_train).decision_function(X_test),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="folder of .npz datasets (default ../shared/data/tabular)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--out", default="benchmarks/results/knn_gap.md")
    arguments = parser.parse_args()
    torch.set_num_threads(1)
    folder = Path(arguments.data) if arguments.data else shared_data_dir() / "tabular"
    auc: dict[str, dict[str, float]] = {}
    for path in sorted(folder.glob("*.npz"), key=lambda p: int(p.stem.split("_")[0])):
        X, y = load_npz(path)
        per_seed = []
        for seed in arguments.seeds:
            train, test = semi_supervised_split(y, random_state=seed, max_rows=20_000)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scores = scores_of_one_fit(X[train], X[test], seed)
            per_seed.append({name: roc_auc_score(y[test], value) for name, value in scores.items()})
        auc[path.stem] = {name: float(np.mean([row[name] for row in per_seed])) for name in COLUMNS}
        print(path.stem, {name: round(value, 3) for name, value in auc[path.stem].items()}, flush=True)
    lines = [
        "# AnomalyVAE vs KNN: where the gap comes from",
        "",
        f"Semi-supervised split, ROC-AUC, mean over seeds {arguments.seeds}; one `AnomalyVAE()` fit per "
        f"dataset and seed, scored six ways (see `benchmarks/knn_gap.py`). k = {NEIGHBOURS}.",
        "",
        "| dataset | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for name, row in auc.items():
        best = max(row.values())
        lines.append(f"| {name} | " + " | ".join(
            f"**{row[c]:.3f}**" if row[c] == best else f"{row[c]:.3f}" for c in COLUMNS) + " |")
    lines.append("| **mean** | " + " | ".join(f"{np.mean([row[c] for row in auc.values()]):.3f}" for c in COLUMNS) + " |")
    lines += ["", f"Command: `{shlex.join(['python', *sys.argv])}`", ""]
    Path(arguments.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

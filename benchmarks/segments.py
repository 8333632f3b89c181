"""Segmented normal data: AnomalyVaDE beside AnomalyVAE and PyOD KNN.

A generated table whose normal rows come from a few segments (cohorts), each
a Gaussian blob on a curved low-dimensional manifold in ``n_features``
columns. Two kinds of anomaly against held-out normal rows:

``between``
    Rows on the straight line between two segment centres (the midpoint
    region), plus the segments' noise: off every segment but not far from
    the data, the case a mixture prior is built for.
``global``
    Rows drawn uniformly from a box three times as wide as the data.

Also reported: how well ``AnomalyVaDE.predict_cohort`` recovers the segments
(adjusted Rand index on the held-out normal rows).

Example::

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n 10 python benchmarks/segments.py \\
        --output benchmarks/results/vade_segments.md
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import pandas as pd
from pyod.models.knn import KNN
from sklearn.metrics import adjusted_rand_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

from anomvae import AnomalyVAE, AnomalyVaDE


def segmented_table(seed: int, n_segments: int = 4, n_features: int = 8, n_train: int = 2000,
                    n_test: int = 400) -> dict[str, np.ndarray]:
    """Training rows, held-out normal rows with their segments, and both kinds of anomaly."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, size=(n_segments, n_features))
    mixing = rng.normal(size=(n_segments, 2, n_features))

    def normal(n):
        segment = rng.integers(0, n_segments, n)
        latent = rng.normal(size=(n, 2))
        curved = np.einsum("nl,nlf->nf", np.c_[latent[:, 0], latent[:, 1] + 0.3 * latent[:, 0] ** 2],
                           mixing[segment])
        return centres[segment] + curved + 0.1 * rng.normal(size=(n, n_features)), segment

    train, _ = normal(n_train)
    test, segments = normal(n_test)
    pairs = rng.choice(n_segments, size=(n_test // 4, 2), replace=True)
    pairs[:, 1] = (pairs[:, 0] + 1 + rng.integers(0, n_segments - 1, len(pairs))) % n_segments
    between = (0.5 * (centres[pairs[:, 0]] + centres[pairs[:, 1]])
               + 0.5 * rng.normal(size=(len(pairs), n_features)))
    low, high = train.min(axis=0), train.max(axis=0)
    width = high - low
    global_rows = rng.uniform(low - width, high + width, size=(n_test // 4, n_features))
    return {"train": train, "test": test, "segments": segments, "between": between, "global": global_rows}


def detectors(seed: int, epochs: int | None) -> dict:
    deep = {} if epochs is None else {"epochs": epochs}
    return {
        "AnomalyVAE": lambda: AnomalyVAE(random_state=seed, **deep),
        "AnomalyVaDE": lambda: AnomalyVaDE(n_components=4, random_state=seed, **deep),
        "AnomalyVaDE-prior": lambda: AnomalyVaDE(n_components=4, scoring="prior", random_state=seed, **deep),
        "PyOD KNN": lambda: KNNOnScaled(),
    }


class KNNOnScaled:
    """PyOD KNN on standardised columns (its distances need them)."""

    def fit(self, X):
        self.scaler, self.knn = StandardScaler().fit(X), KNN()
        self.knn.fit(self.scaler.transform(X))
        return self

    def anomaly_score(self, X):
        return self.knn.decision_function(self.scaler.transform(X))


def evaluate(seeds, epochs: int | None = None, **table) -> pd.DataFrame:
    """One row per (seed, detector): ROC-AUC per anomaly kind and, for AnomalyVaDE, cohort ARI."""
    records = []
    for seed in seeds:
        data = segmented_table(seed, **table)
        for name, build in detectors(seed, epochs).items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = build().fit(data["train"])
            normal = model.anomaly_score(data["test"])
            record = {"seed": seed, "method": name}
            for kind in ("between", "global"):
                scores = np.r_[normal, model.anomaly_score(data[kind])]
                record[kind] = roc_auc_score(np.r_[np.zeros(len(normal)), np.ones(len(data[kind]))], scores)
            if hasattr(model, "predict_cohort"):
                record["cohort_ari"] = adjusted_rand_score(data["segments"], model.predict_cohort(data["test"]))
            records.append(record)
    return pd.DataFrame(records)


def to_markdown(results: pd.DataFrame, command: str) -> str:
    means = results.groupby("method", sort=False)[["between", "global", "cohort_ari"]].mean()
    lines = [
        "# Segmented normal data: AnomalyVaDE beside AnomalyVAE and PyOD KNN", "",
        f"Command: `{command}`", "",
        f"Mean over seeds {sorted(int(seed) for seed in results['seed'].unique())}: ROC-AUC per anomaly kind, and the "
        "adjusted Rand index of `predict_cohort` against the true segments.", "",
        "| method | between segments | global | cohort ARI |", "|---|---:|---:|---:|",
    ]
    for method, row in means.iterrows():
        ari = "" if np.isnan(row["cohort_ari"]) else f"{row['cohort_ari']:.3f}"
        lines.append(f"| {method} | {row['between']:.3f} | {row['global']:.3f} | {ari} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    results = evaluate(range(args.seeds), args.epochs)
    markdown = to_markdown(results, "python benchmarks/segments.py " + " ".join(argv or sys.argv[1:]))
    print(markdown)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(markdown)


if __name__ == "__main__":
    main()

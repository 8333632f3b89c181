"""MVTec-AD ResNet-18 embeddings: the anomvae scorers beside PyOD KNN and IForest.

The 15 ADBench files ``images/ADBench_CV_by_ResNet18/MVTec-AD_*.npz`` hold
512-dimensional ResNet-18 embeddings of MVTec-AD images (Han et al.,
ADBench, NeurIPS 2022). Protocol: :func:`anomvae.datasets.semi_supervised_split`
(train on a random half of the normal rows, test on the other half plus every
anomaly); ROC-AUC per file and its mean. Every estimator in
``anomvae.registry.estimators()`` runs with its default parameters and a
fixed seed, so scorers added later are included without editing this file.

Run from the repository root::

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n 10 python benchmarks/mvtec_embeddings.py
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from auc_table import markdown_auc_table

from anomvae import BaseDeepDetector
from anomvae.datasets import load_npz, semi_supervised_split, shared_data_dir
from anomvae import registry


def embedding_files(data_dir: Path | None = None) -> list[Path]:
    """The MVTec-AD embedding files, sorted by category."""
    folder = Path(data_dir or shared_data_dir()) / "images" / "ADBench_CV_by_ResNet18"
    return sorted(folder.glob("MVTec-AD_*.npz"))


def detectors(random_state: int, epochs: int | None) -> dict[str, object]:
    """Every registered anomvae estimator, PyOD's KNN and IForest."""
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN

    budget = {} if epochs is None else {"epochs": epochs}
    methods: dict[str, object] = {
        name: estimator_class(random_state=random_state, **budget)
        for name, estimator_class in sorted(registry.estimators().items())
    }
    methods["PyOD KNN"] = KNN()
    methods["PyOD IForest"] = IForest(random_state=random_state)
    return methods


def anomaly_scores(method, train, test):
    """Fit on ``train`` and return anomaly scores of ``test`` (higher = more anomalous)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        method.fit(train)
    if isinstance(method, BaseDeepDetector):
        return method.anomaly_score(test)
    return method.decision_function(test)


def evaluate(files: list[Path], random_state: int = 0, epochs: int | None = None) -> pd.DataFrame:
    """ROC-AUC per (category, method).

    Returns
    -------
    DataFrame with columns category, method, roc_auc, seconds
    """
    rows = []
    for path in files:
        X, y = load_npz(path)
        train_index, test_index = semi_supervised_split(y, random_state=random_state)
        category = path.stem.removeprefix("MVTec-AD_")
        for name, method in detectors(random_state, epochs).items():
            started = time.perf_counter()
            scores = anomaly_scores(method, X[train_index], X[test_index])
            rows.append((category, name, roc_auc_score(y[test_index], scores),
                         time.perf_counter() - started))
    return pd.DataFrame(rows, columns=["category", "method", "roc_auc", "seconds"])


def to_markdown(results: pd.DataFrame, command: str, settings: str) -> str:
    """Per-category AUC table with methods as columns and a mean row."""
    return markdown_auc_table(results, "category", "MVTec-AD ResNet-18 embeddings (ROC-AUC, semi-supervised split)", command, settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs of the anomvae estimators (default: their own)")
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "mvtec_embeddings.md")
    args = parser.parse_args()
    started = time.perf_counter()
    results = evaluate(embedding_files(), args.random_state, args.epochs)
    print(results.to_string())
    command = "PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n 10 python benchmarks/mvtec_embeddings.py" + (
        f" --epochs {args.epochs}" if args.epochs else "")
    settings = (
        f"Split: semi_supervised_split(y, random_state={args.random_state}). anomvae estimators "
        "with default parameters (" + (f"{args.epochs} epochs" if args.epochs else "their default "
        "epochs and early stopping") + f", random_state={args.random_state}); PyOD KNN and IForest "
        f"with defaults. Total wall time {time.perf_counter() - started:.0f} s on a shared 2-core CPU."
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(to_markdown(results, command, settings))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""One-class MNIST: every anomvae estimator beside PyOD's DeepSVDD, in one run.

Protocol (Ruff et al., "Deep One-Class Classification", ICML 2018): for each
digit, train on that digit's training images only and score the whole test
set, where the digit is normal and the nine others are anomalies; report the
ROC-AUC per digit and its mean. To fit in a few minutes on two CPU cores the
training images are a random subsample per digit (``--train-per-class``);
the test set is always complete.

Every estimator in ``anomvae.registry.estimators()`` is run with the same
training budget, so scorers added later are included without editing this
file. PyOD's DeepSVDD sees the flattened pixels scaled to [0, 1].

Use one thread per process (``OMP_NUM_THREADS=1``): on a loaded machine two
OpenMP threads made a training step of the convolutional VAE 20 times slower
(775 ms against 32 ms per batch of 64, measured on the shared 2-core box).

Run from the repository root::

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n 10 python benchmarks/mnist_one_class.py
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from auc_table import markdown_auc_table

from anomvae import BaseDeepDetector
from anomvae.datasets import load_mnist, shared_data_dir
from anomvae import registry

PUBLISHED_DEEP_SVDD = [0.980, 0.997, 0.917, 0.919, 0.949, 0.885, 0.983, 0.946, 0.939, 0.965]
"""One-class Deep SVDD per digit, Ruff et al. (ICML 2018), Table 1."""


def anomvae_detectors(epochs: int, random_state: int, methods: list[str] | None = None,
                      params: dict | None = None) -> dict[str, BaseDeepDetector]:
    """One instance of every registered estimator (or of ``methods``) with the benchmark's budget.

    ``params`` are extra parameters given to every estimator.
    """
    return {
        name: estimator_class(epochs=epochs, batch_size=64, patience=None, random_state=random_state,
                              **(params or {}))
        for name, estimator_class in sorted(registry.estimators().items())
        if methods is None or name in methods
    }


def pyod_deep_svdd_scores(train: np.ndarray, test: np.ndarray, epochs: int, random_state: int):
    """Anomaly scores of PyOD's DeepSVDD on flattened pixels in [0, 1]."""
    from pyod.models.deep_svdd import DeepSVDD

    flat_train = train.reshape(len(train), -1) / 255.0
    detector = DeepSVDD(n_features=flat_train.shape[1], epochs=epochs, batch_size=64, verbose=0,
                        random_state=random_state)
    detector.fit(flat_train)
    return detector.decision_function(test.reshape(len(test), -1) / 255.0)


def evaluate(digits=range(10), train_per_class: int = 2000, epochs: int = 10,
             random_state: int = 0, data_dir: Path | None = None,
             include_pyod: bool = True, max_test: int | None = None,
             methods: list[str] | None = None, params: dict | None = None) -> pd.DataFrame:
    """ROC-AUC per (digit, method).

    ``max_test`` scores a random subsample of the test set instead of all of
    it (for smoke tests only; reported figures use the full test set).

    Returns
    -------
    DataFrame with columns digit, method, roc_auc, seconds
    """
    folder = Path(data_dir or shared_data_dir()) / "images" / "mnist"
    train_images, train_labels = load_mnist(folder, "train")
    test_images, test_labels = load_mnist(folder, "test")
    rng = np.random.default_rng(random_state)
    if max_test is not None and max_test < len(test_labels):
        keep = rng.choice(len(test_labels), size=max_test, replace=False)
        test_images, test_labels = test_images[keep], test_labels[keep]
    rows = []
    for digit in digits:
        members = np.flatnonzero(train_labels == digit)
        subsample = np.random.default_rng([random_state, digit])
        train = train_images[subsample.choice(members, size=min(train_per_class, len(members)),
                                              replace=False)]
        is_anomaly = (test_labels != digit).astype(int)
        for name, detector in anomvae_detectors(epochs, random_state, methods, params).items():
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                detector.fit(train)
            auc = roc_auc_score(is_anomaly, detector.anomaly_score(test_images))
            rows.append((digit, name, auc, time.perf_counter() - started))
        if include_pyod:
            started = time.perf_counter()
            scores = pyod_deep_svdd_scores(train, test_images, epochs, random_state)
            rows.append((digit, "PyOD DeepSVDD", roc_auc_score(is_anomaly, scores),
                         time.perf_counter() - started))
    return pd.DataFrame(rows, columns=["digit", "method", "roc_auc", "seconds"])


def to_markdown(results: pd.DataFrame, command: str, settings: str) -> str:
    """Per-digit AUC table with methods as columns and a mean row."""
    return markdown_auc_table(results, "digit", "One-class MNIST (ROC-AUC)", command, settings, anchors={"Deep SVDD (published)": PUBLISHED_DEEP_SVDD})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digits", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--train-per-class", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--methods", nargs="+", default=None,
                        help="registered estimator names to run (default: all), 'PyOD' for DeepSVDD")
    parser.add_argument("--params", type=json.loads, default=None,
                        help="JSON object of extra parameters for every anomvae estimator")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "mnist_one_class.md")
    parser.add_argument("--report-from", type=Path, nargs="+", default=None,
                        help="only rebuild --out from the CSV files of earlier runs; for a "
                             "(digit, method) in several files the last file wins")
    args = parser.parse_args()
    if args.report_from:
        results = pd.concat([pd.read_csv(path) for path in args.report_from], ignore_index=True)
        results = results.drop_duplicates(["digit", "method"], keep="last")
        sources = ", ".join(f"`{path.name}`" for path in args.report_from)
        command = "python benchmarks/mnist_one_class.py --report-from " + " ".join(
            str(path) for path in args.report_from)
        args.out.write_text(to_markdown(
            results, command,
            f"Merged from the raw results {sources} (each run's command is in its .md file); "
            "later files win where they overlap."))
        print(f"wrote {args.out}")
        return
    started = time.perf_counter()
    command = ("PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n 10 python benchmarks/mnist_one_class.py "
               f"--train-per-class {args.train_per_class} --epochs {args.epochs} "
               f"--digits {' '.join(map(str, args.digits))}"
               + (f" --methods {' '.join(args.methods)} --out {args.out}" if args.methods else "")
               + (f" --params '{json.dumps(args.params)}'" if args.params else ""))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results = pd.DataFrame()
    for digit in args.digits:
        # One digit at a time, rewriting the report, so a long run that is
        # stopped early still leaves the digits it finished.
        methods = [name for name in args.methods or [] if name != "PyOD"] or None
        results = pd.concat([results, evaluate(
            [digit], args.train_per_class, args.epochs, args.random_state,
            include_pyod=args.methods is None or "PyOD" in args.methods, methods=methods,
            params=args.params,
        )], ignore_index=True)
        results.to_csv(args.out.with_suffix(".csv"), index=False)
        settings = (
            f"Training: {args.train_per_class} random training images of the normal digit "
            f"(seed {args.random_state}); test: all 10,000 test images. Every method: "
            f"{args.epochs} epochs, batch 64, no early stopping, otherwise default parameters. "
            f"Wall time so far {time.perf_counter() - started:.0f} s on a shared, heavily loaded "
            "2-core CPU."
        )
        args.out.write_text(to_markdown(results, command, settings))
        print(results.tail(len(results) // len(results["digit"].unique())).to_string(), flush=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

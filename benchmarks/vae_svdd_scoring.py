"""VAE-SVDD's three scoring rules on one-class MNIST, from the same fits.

For each digit and each parameter setting, one AnomalyVAESVDD is trained on
2,000 random training images of the digit (15 epochs, batch 64, no early
stopping) and the full test set is scored with every rule by switching
``scorer_.scoring``: training does not depend on the rule, so the comparison
is between rules on identical networks. This is the measurement behind the
estimator's default ``scoring="reconstruction"``.

Run from the repository root, e.g.::

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 nice -n 10 python benchmarks/vae_svdd_scoring.py \\
        --digits 5 8 --settings '{"warmup_epochs": 5}' '{"warmup_epochs": 5, "beta": 0.1}'

The digits' training subsamples are drawn in order from one generator seeded
with 0, so a digit's subsample depends on the digits listed before it.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
from sklearn.metrics import roc_auc_score

from anomvae import AnomalyVAESVDD
from anomvae.datasets import load_mnist, shared_data_dir
from anomvae.models.vae_svdd.scorer import SCORINGS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--digits", type=int, nargs="+", required=True)
    parser.add_argument("--settings", nargs="+", default=["{}"],
                        help="JSON objects of AnomalyVAESVDD parameters, one fit each")
    args = parser.parse_args()
    folder = shared_data_dir() / "images" / "mnist"
    train_images, train_labels = load_mnist(folder, "train")
    test_images, test_labels = load_mnist(folder, "test")
    rng = np.random.default_rng(0)
    for digit in args.digits:
        members = np.flatnonzero(train_labels == digit)
        train = train_images[rng.choice(members, 2000, replace=False)]
        is_anomaly = (test_labels != digit).astype(int)
        for setting in map(json.loads, args.settings):
            started = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                detector = AnomalyVAESVDD(epochs=15, batch_size=64, patience=None, random_state=0,
                                          **setting).fit(train)
            aucs = {}
            for scoring in SCORINGS:
                detector.scorer_.scoring = scoring
                aucs[scoring] = round(roc_auc_score(is_anomaly, detector.anomaly_score(test_images)), 4)
            print(digit, setting, aucs, f"{time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()

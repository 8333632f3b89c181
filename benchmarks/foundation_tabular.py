"""The foundation measurement: AnomalyVAE() with its defaults against PyOD's VAE
and AutoEncoder with theirs (and KNN as the reference peer), raw features,
semi-supervised protocol, every dataset of the shared tabular folder.

    nice -n 10 python benchmarks/foundation_tabular.py --data ../shared/data/tabular --out benchmarks/results/foundation

The same as ``anomvae bench --suite tabular --detectors AnomalyVAE,PyOD-VAE,PyOD-AutoEncoder,PyOD-KNN``;
``--resume`` continues an interrupted run.
"""

import argparse
import shlex
import sys

import pandas as pd

from anomvae.benchmark import run_benchmark

DETECTORS = "AnomalyVAE,PyOD-VAE,PyOD-AutoEncoder,PyOD-KNN"

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/tabular")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="benchmarks/results/foundation")
    parser.add_argument("--resume", action="store_true")
    arguments = parser.parse_args()
    result = run_benchmark("tabular", arguments.data, detectors=DETECTORS, seeds=arguments.seeds,
                           threads=arguments.threads, out=arguments.out, resume=arguments.resume,
                           command=shlex.join(["python", *sys.argv]))
    runs = pd.DataFrame(result["records"])
    table = runs[runs["status"] == "ok"].pivot_table(index="dataset", columns="detector", values="roc_auc")
    print(table.mean().sort_values(ascending=False).to_string(float_format="{:.4f}".format))

"""AnomalyVAE vs PyOD's VAE at equal architecture, epochs and batch size.

Same as ``anomvae bench --suite speed``, with the data size and repeats as options::

    nice -n 10 python benchmarks/speed.py --rows 10000 --repeats 3 --out benchmarks/results/speed
"""

import argparse
import shlex
import sys

from anomvae.benchmark.speed import markdown, run_speed_benchmark

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000, help="training rows (default 10000)")
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3, help="fits per library (median reported)")
    parser.add_argument("--score-rows", type=int, default=200_000)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--out", default="benchmarks/results/speed")
    arguments = parser.parse_args()
    outcome = run_speed_benchmark(
        out=arguments.out, threads=arguments.threads, command=shlex.join(["python", *sys.argv]),
        n_rows=arguments.rows, n_features=arguments.features, repeats=arguments.repeats,
        score_rows=arguments.score_rows,
    )
    print(markdown(outcome["result"]))

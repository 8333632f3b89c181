"""Benchmark anomvae's estimators against PyOD peers in one command.

>>> from anomvae.benchmark import run_benchmark            # doctest: +SKIP
>>> run_benchmark("tabular", "../shared/data/tabular", seeds=[0], out="results")  # doctest: +SKIP

The command line is ``anomvae bench`` (or ``python -m anomvae.benchmark``);
see :mod:`anomvae.benchmark.command`.
"""

from .command import run_benchmark
from .detectors import available_detectors, select_detectors
from .protocols import PROTOCOLS, split
from .report import write_report
from .runner import execute, make_jobs, run_jobs

__all__ = [
    "PROTOCOLS",
    "available_detectors",
    "execute",
    "make_jobs",
    "run_benchmark",
    "run_jobs",
    "select_detectors",
    "split",
    "write_report",
]

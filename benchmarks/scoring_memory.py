"""Peak memory and throughput of scoring a large input, streamed in batches.

Usage::

    python benchmarks/scoring_memory.py --rows 1000000 --features 30

Prints the resident-set-size growth while scoring (the input array itself is
allocated before the measurement starts) beside the size of one float32 copy of
the input, the figure an implementation that moved the whole input to torch at
once would add at least.
"""

from __future__ import annotations

import argparse
import resource
import threading
import time

import os

import numpy as np

from anomvae import AnomalyVAE


def resident_bytes() -> int:
    """Current resident set size of this process (Linux ``/proc``)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples this process's resident set size every few milliseconds."""

    def __init__(self) -> None:
        self.peak = resident_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, resident_bytes())
            time.sleep(0.002)

    def __enter__(self) -> PeakRSS:
        self.start = resident_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=30)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(args.features, args.features))
    train = rng.normal(size=(5000, args.features)) @ mixing
    detector = AnomalyVAE(epochs=5, random_state=0).fit(train)
    data = rng.normal(size=(args.rows, args.features)) @ mixing
    detector.score_samples(data[:10_000])

    with PeakRSS() as memory:
        started = time.perf_counter()
        scores = detector.score_samples(data)
        seconds = time.perf_counter() - started
    assert np.all(np.isfinite(scores))
    input_mib = data.nbytes / 2**20
    print(f"rows={args.rows} features={args.features} input={input_mib:.0f} MiB (float64)")
    print(f"score_samples: {seconds:.2f} s, {args.rows / seconds:,.0f} rows/s")
    print(f"peak RSS growth while scoring: {(memory.peak - memory.start) / 2**20:.0f} MiB "
          f"(one float32 copy of the input: {input_mib / 2:.0f} MiB)")
    print(f"max RSS of the process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()

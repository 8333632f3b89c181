"""Run every (dataset, seed, detector) combination and record what happened.

Each run executes in a worker process, for three reasons: a run that exceeds
its time limit can be killed without losing the benchmark, a crash of native
code (or the kernel's out-of-memory killer) ends one run rather than all, and
the peak memory of one run can be read from the worker's own resident set.
``tracemalloc`` would miss torch's allocations, so the worker reads the
kernel's counters instead: before each run it resets its peak resident size
(``/proc/self/clear_refs``), and the run's peak memory is the peak resident
size during fit and scoring minus the resident size before fit. Where that
reset is not available the peak of the whole worker process is used, which can
only overstate. One worker is reused for consecutive runs (torch and PyOD are
imported once) and replaced after a timeout or a crash; several workers can
run jobs side by side (``workers``), each fed by its own thread. A run's time
limit starts when its job is sent to a worker that has finished starting, so
a worker's start-up is never charged to a run.

Workers ignore Ctrl-C (SIGINT); the parent receives it, kills the workers and
raises ``KeyboardInterrupt`` without journalling the runs it cut short.

Failures (exceptions, non-finite scores, timeouts, dead workers) are recorded
as runs with a ``status`` other than ``"ok"`` and an ``error`` message, never
dropped.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
import traceback
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from .detectors import Detector, select_detectors
from .journal import append_record
from .protocols import MAX_ROWS

STATUSES = ("ok", "error", "nan", "timeout", "crashed")


@dataclass(frozen=True)
class Job:
    """One fit-and-score run."""

    task: Any
    detector: str
    seed: int
    protocol: str
    max_rows: int | None
    overrides: dict = field(default_factory=dict)


def available_cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _proc_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _max_rss_kib() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def _as_images(detector: Detector, X: np.ndarray) -> np.ndarray:
    """Image batches for detectors that take them; flattened pixels for the others."""
    if X.ndim <= 2 or detector.takes_images:
        return X
    return X.reshape(len(X), -1).astype(np.float64)


def execute(job: Job, detectors: dict[str, Detector] | None = None) -> dict[str, Any]:
    """Fit and score one detector on one split; never raises for the detector's own failures.

    Returns
    -------
    dict
        The run record: identifiers, sizes (with ``n_train_anomalies`` and
        ``anomaly_share_train`` where the task knows its training labels),
        ``status``, ``roc_auc``, ``average_precision``, timings, throughputs
        and ``peak_memory_mb``.
    """
    detector = (detectors or {d.name: d for d in select_detectors([job.detector])})[job.detector]
    record: dict[str, Any] = {
        "dataset": job.task.name, "detector": job.detector, "library": detector.library,
        "seed": job.seed, "protocol": job.protocol, "status": "ok", "error": None,
    }
    data = job.task.run_data(job.protocol, job.seed, job.max_rows)
    X_train, X_test = _as_images(detector, data.X_train), _as_images(detector, data.X_test)
    record.update(n_train=len(X_train), n_test=len(X_test), n_features=data.n_features,
                  anomaly_share_test=float(np.mean(data.y_test)))
    if data.y_train is not None:
        record.update(n_train_anomalies=int(np.sum(data.y_train)),
                      anomaly_share_train=float(np.mean(data.y_train)) if len(data.y_train) else 0.0)
    baseline_kib = _proc_status_kib("VmRSS")
    exact_peak = _reset_peak_rss() and baseline_kib is not None
    baseline_kib = baseline_kib if exact_peak else _max_rss_kib()
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = detector.build(data.n_features, job.seed, job.overrides)
            started = time.perf_counter()
            model.fit(X_train)
            fitted = time.perf_counter()
            scores = np.asarray(detector.anomaly_score(model, X_test), dtype=np.float64)
            scored = time.perf_counter()
    except Exception as error:  # the benchmark records any failure of the detector under test
        record.update(status="error", error=f"{type(error).__name__}: {error}"[:500],
                      traceback=traceback.format_exc(limit=3)[-1500:])
        return record
    peak_kib = _proc_status_kib("VmHWM") if exact_peak else _max_rss_kib()
    record.update(
        fit_seconds=fitted - started,
        score_seconds=scored - fitted,
        fit_rows_per_second=len(X_train) / max(fitted - started, 1e-9),
        score_rows_per_second=len(X_test) / max(scored - fitted, 1e-9),
        peak_memory_mb=max(0, (peak_kib or 0) - baseline_kib) / 1024,
        memory_method="peak-rss-reset" if exact_peak else "process-peak-rss",
        warnings=sorted({str(w.message)[:200] for w in caught})[:3],
    )
    if scores.shape != (len(X_test),) or not np.all(np.isfinite(scores)):
        bad = int(np.sum(~np.isfinite(scores))) if scores.shape == (len(X_test),) else -1
        record.update(status="nan", error=f"{bad} non-finite score(s) of {len(X_test)}"
                      if bad >= 0 else f"scores of shape {scores.shape} for {len(X_test)} rows")
        return record
    record.update(roc_auc=float(roc_auc_score(data.y_test, scores)),
                  average_precision=float(average_precision_score(data.y_test, scores)))
    return record


READY = "ready"
"""What a worker sends once it has imported its detectors and can take a job."""


def _worker_main(connection, threads: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    torch.set_num_threads(threads)
    detectors = {d.name: d for d in select_detectors("all")}
    connection.send(READY)
    while True:
        try:
            job = connection.recv()
        except EOFError:
            return
        try:
            connection.send(execute(job, detectors))
        except Exception as error:  # the data could not be loaded or split: still a recorded failure
            connection.send({"status": "error", "error": f"{type(error).__name__}: {error}"[:500]})


@contextlib.contextmanager
def _sigint_blocked():
    """Block SIGINT in this thread, so that a child started here inherits it blocked until it ignores it."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class Worker:
    """A child process that executes jobs one at a time; replaced when it hangs or dies."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.process = None
        self.connection = None

    def start(self) -> dict[str, Any] | None:
        """Start the process unless it runs, and wait until it can take a job; a failed record if it died."""
        if self.process is not None and self.process.is_alive():
            return None
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        process = context.Process(target=_worker_main, args=(child, self.threads), daemon=True)
        with _sigint_blocked():
            process.start()
        self.process = process
        child.close()
        try:
            if self.connection.recv() == READY:
                return None
        except EOFError:
            pass
        return self._died("while starting")

    def run(self, job: Job, timeout: float | None) -> dict[str, Any]:
        """Run ``job`` in the worker process; a timeout or crash gives a failed record and a fresh worker.

        ``timeout`` counts from when the job is sent to the started worker.
        """
        failed = self.start()
        if failed:
            return failed
        self.connection.send(job)
        try:
            ready = self.connection.poll(timeout)
            if ready:
                return self.connection.recv()
        except EOFError:
            ready = True
        if not ready:
            self.stop()
            return {"status": "timeout", "error": f"no result within {timeout:g} s"}
        return self._died("")

    def _died(self, when: str) -> dict[str, Any]:
        self.process.join(5)
        code = self.process.exitcode
        self.stop()
        return {"status": "crashed", "error": f"worker process died {when + ' ' if when else ''}(exit code {code})"}

    def interrupt(self) -> None:
        """Kill the process at once (on Ctrl-C), so that the thread waiting on it returns."""
        process = self.process
        if process is not None:
            process.kill()

    def stop(self, grace: float = 0.0) -> None:
        """End the worker: closing the pipe makes an idle worker return; a busy one is killed."""
        if self.process is not None:
            self.connection.close()
            self.process.join(grace)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
        self.process = None


def run_jobs(
    jobs: list[Job],
    *,
    timeout: float | None = None,
    threads: int | None = None,
    isolate: bool = True,
    progress: bool = True,
    journal: str | os.PathLike | None = None,
    workers: int = 1,
) -> list[dict[str, Any]]:
    """Execute ``jobs`` and return one record per job, in the order of ``jobs``.

    Parameters
    ----------
    timeout : float or None
        Seconds one run (data loading, fit and scoring) may take, counted from
        when its worker has started; needs ``isolate``.
    threads : int or None
        torch threads in each worker; ``None`` shares the available cores
        among the ``workers``.
    isolate : bool
        Run in worker processes (timeouts, crash isolation, per-run peak
        memory). ``False`` runs in this process, for debugging.
    progress : bool
        Print one line per finished run to stderr.
    journal : path, optional
        JSON-lines file each record is appended to as soon as its run ends,
        so an interrupted benchmark keeps its finished runs (see
        :mod:`anomvae.benchmark.journal`).
    workers : int
        Worker processes running jobs at the same time. Runs then share the
        machine, so their timings are comparable with each other but not
        with those of a one-worker run.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if workers > 1 and not isolate:
        raise ValueError("parallel workers need isolate=True")
    runs = _Runs(len(jobs), timeout, threads or max(1, available_cores() // workers), isolate, progress, journal)
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        return list(pool.map(runs.run_one, jobs))
    except KeyboardInterrupt:
        runs.stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        for worker in runs.workers:
            worker.interrupt()
        raise
    finally:
        pool.shutdown(wait=True)
        for worker in runs.workers:
            worker.stop(grace=10.0)


class _Runs:
    """The state :func:`run_jobs` shares among its threads: one worker per thread, the journal, the count."""

    def __init__(self, total: int, timeout: float | None, threads: int, isolate: bool, progress: bool,
                 journal: str | os.PathLike | None) -> None:
        self.total, self.timeout, self.threads, self.isolate = total, timeout, threads, isolate
        self.progress, self.journal = progress, journal
        self.lock, self.local = threading.Lock(), threading.local()
        self.workers: list[Worker] = []
        self.stopping = threading.Event()
        self.finished = 0

    def run_one(self, job: Job) -> dict[str, Any] | None:
        """Run ``job``, journal and report its record; None once interrupted (nothing journalled)."""
        if self.stopping.is_set():
            return None
        outcome, seconds = self._outcome(job)
        record = {"dataset": job.task.name, "detector": job.detector, "seed": job.seed, "protocol": job.protocol,
                  **outcome, "settings": job_settings(job), "wall_seconds": seconds}
        fingerprint = getattr(job.task, "fingerprint", None)
        if fingerprint is not None:
            record["fingerprint"] = fingerprint
        with self.lock:
            if self.stopping.is_set():
                return None
            self.finished += 1
            if self.journal is not None:
                append_record(self.journal, record)
            if self.progress:
                result = (f"AUC {record['roc_auc']:.3f}" if record["status"] == "ok"
                          else f"{record['status'].upper()}: {record.get('error')}")
                print(f"[{self.finished}/{self.total}] {job.task.name} {job.detector} seed={job.seed} "
                      f"{result} ({record['wall_seconds']:.1f} s)", file=sys.stderr, flush=True)
        return record

    def _outcome(self, job: Job) -> tuple[dict[str, Any], float]:
        """The run's result and its seconds, not counting a worker's start-up."""
        if not self.isolate:
            started = time.perf_counter()
            return execute(job), time.perf_counter() - started
        if not hasattr(self.local, "worker"):
            self.local.worker = Worker(self.threads)
            with self.lock:
                self.workers.append(self.local.worker)
        failed = self.local.worker.start()
        if failed:
            return failed, 0.0
        started = time.perf_counter()
        return self.local.worker.run(job, self.timeout), time.perf_counter() - started


def make_jobs(tasks: list, detectors: list[Detector], seeds: list[int], protocol: str,
              max_rows: int | None = MAX_ROWS, overrides: dict | None = None) -> list[Job]:
    """Every (task, seed, detector) combination, the detectors of one split next to each other."""
    return [
        Job(task, detector.name, seed, protocol, max_rows, dict(overrides or {}))
        for task in tasks for seed in seeds for detector in detectors
    ]


def job_settings(job: Job) -> dict[str, Any]:
    """The options a run was made with besides its key: the row cap and the detectors' overrides."""
    return {"max_rows": job.max_rows, **job.overrides}


def job_key(job_or_record) -> tuple:
    """What identifies a run: dataset, detector, seed and protocol."""
    if isinstance(job_or_record, Job):
        return job_or_record.task.name, job_or_record.detector, job_or_record.seed, job_or_record.protocol
    record = job_or_record
    return record["dataset"], record["detector"], record["seed"], record["protocol"]

"""``anomvae bench``: argument parsing and the one-call entry point.

``anomvae/cli.py`` adds the ``bench`` subcommand with :func:`add_arguments`
and runs it with :func:`run_from_arguments`; ``python -m anomvae.benchmark``
does the same without the rest of the command line.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from .detectors import select_detectors
from .protocols import MAX_ROWS, PROTOCOLS, check_protocol, contaminated_protocol
from .journal import read_journal
from .preflight import MIN_TRAIN_ROWS, NoUsableDataset, check_tasks
from .report import write_report
from .runner import job_key, job_settings, make_jobs, run_jobs
from .speed import run_speed_benchmark
from .suites import SUITES, discover_tasks
from .tables import LABEL_COLUMNS, TABLE_SUFFIXES
from .throughput import ROWS, WIDTHS, run_throughput_benchmark


def run_benchmark(
    suite: str,
    data: str | Path | None = None,
    *,
    detectors: str | list[str] | None = None,
    datasets: str | list[str] | None = None,
    seeds: list[int] | int = 1,
    protocol: str = "semi-supervised",
    max_rows: int | None = MAX_ROWS,
    epochs: int | None = None,
    timeout: float | None = 1800.0,
    threads: int | None = None,
    jobs: int = 1,
    out: str | Path = "benchmark-results",
    plots: bool = True,
    progress: bool = True,
    resume: bool = False,
    command: str = "",
    widths: list[int] | None = None,
    rows: list[int] | None = None,
    label_column: str | None = None,
) -> dict[str, Any]:
    """Run a benchmark suite and write its report.

    Parameters
    ----------
    suite : {"tabular", "images", "speed", "throughput"}
    data : path
        Folder of the suite's data, or one table file for ``"tabular"`` (not
        used by ``"speed"`` and ``"throughput"``). Each table is checked
        once before any run (:mod:`anomvae.benchmark.preflight`); one that
        cannot run is skipped with its reason (``results.md`` lists it) and
        is no detector's failure.
    detectors : comma-separated str or list, optional
        Detector names; all registered anomvae estimators and the PyOD peers by default.
    datasets : comma-separated str or list, optional
        Keep datasets whose name contains one of these strings;
        ``"development"`` or ``"confirmation"`` selects that part of the
        shared tabular suite (:data:`anomvae.benchmark.suites.PARTS`).
    seeds : int or list of int
        A count (seeds ``0..n-1``) or the seeds themselves; each seed gives a
        split and the detectors' ``random_state``.
    protocol : {"semi-supervised", "unsupervised", "contaminated-<rate>"}
        See :func:`anomvae.benchmark.protocols.split`.
    max_rows : int or None
        Stratified subsample size for larger datasets.
    epochs : int, optional
        Override every deep detector's number of epochs (smoke tests).
    timeout : float or None
        Seconds one run may take before it is recorded as a timeout.
    threads : int, optional
        torch threads per run; the available cores shared among ``jobs`` by default.
    jobs : int
        Runs executed at the same time, each in its own worker process. Their
        timings are then taken on a shared machine: compare them within the run.
    out : path
        Folder for ``results.md``, ``results.json``, the plots and
        ``runs.jsonl``, the journal of finished runs.
    resume : bool
        Keep the successful runs already in ``out/runs.jsonl`` and run the
        others again: the missing ones, the failed ones (errors, non-finite
        scores, timeouts, crashes) and those whose dataset file changed since
        (its recorded fingerprint differs; runs journalled without one are
        kept). Otherwise the journal starts empty. Runs execute smallest
        dataset first; the report lists them in dataset order.
    widths, rows : list of int, optional
        Input widths and row counts the ``"throughput"`` suite sweeps
        (:data:`~anomvae.benchmark.throughput.WIDTHS`, :data:`~anomvae.benchmark.throughput.ROWS`
        by default); ``epochs`` caps every detector's epochs there too.
    label_column : str, optional
        Label column of CSV and Parquet tables (:mod:`anomvae.benchmark.tables`).

    Returns
    -------
    dict
        ``{"records": [...], "files": {...}}`` (for ``"speed"`` and ``"throughput"``: their result dict).
    """
    _check_numbers(epochs=epochs, timeout=timeout, threads=threads, jobs=jobs)
    if suite == "speed":
        return run_speed_benchmark(out=out, threads=threads, command=command)
    if suite == "throughput":
        return run_throughput_benchmark(out=out, threads=threads, command=command, epochs=epochs,
                                        widths=widths or WIDTHS, rows=rows or ROWS)
    if data is None:
        raise ValueError(f"the {suite} suite needs --data, a folder of datasets")
    check_protocol(protocol)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError(f"--seeds must be at least 1, got {seeds}")
    if max_rows is not None and max_rows < 2:
        raise ValueError(f"--max-rows must be at least 2, got {max_rows}")
    tasks, skipped = _usable_tasks(suite, data, datasets, label_column, protocol, seed_list, max_rows)
    chosen = select_detectors(detectors)
    planned = make_jobs(tasks, chosen, seed_list, protocol, max_rows, {"epochs": epochs})
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    journal = folder / "runs.jsonl"
    done = _reusable_runs(planned, journal, resume)
    pending = sorted((job for job in planned if job_key(job) not in done), key=lambda job: job.task.cost())
    started = time.time()
    run_jobs(pending, timeout=timeout, threads=threads, progress=progress, journal=journal,
             workers=jobs)
    finished = {job_key(record): record for record in read_journal(journal)}
    records = [finished[job_key(job)] for job in planned if job_key(job) in finished]
    config = {
        "suite": suite, "data": str(data), "protocol": protocol, "seeds": seed_list,
        "detectors": [d.name for d in chosen], "datasets": [t.name for t in tasks],
        "skipped_datasets": skipped, "label_column": label_column,
        "max_rows": max_rows, "epochs_override": epochs, "timeout_seconds": timeout,
        "threads": threads, "jobs": jobs, "command": command, "started_unix": started,
        "wall_seconds": time.time() - started,
    }
    files = write_report(records, config, out, plots=plots)
    return {"records": records, "files": files}


def _check_numbers(*, epochs: int | None, timeout: float | None, threads: int | None, jobs: int) -> None:
    """Refuse counts below 1 and a time limit that is not a positive number of seconds, naming the option."""
    for option, value in (("--epochs", epochs), ("--threads", threads), ("--jobs", jobs)):
        if value is not None and value < 1:
            raise ValueError(f"{option} must be at least 1, got {value}")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"--timeout must be a positive number of seconds, got {timeout:g}")


def _usable_tasks(suite: str, data, datasets, label_column: str | None, protocol: str, seeds: list[int],
                  max_rows: int | None) -> tuple[list, list[dict]]:
    """The suite's tasks that pass :func:`~anomvae.benchmark.preflight.check_tasks`, and those skipped.

    The skipped datasets and the reading notes are printed once to standard error;
    when no dataset is left, the reasons are the error.
    """
    tasks, skipped, notes = check_tasks(discover_tasks(suite, data, datasets, label_column),
                                        protocol, seeds, max_rows)
    if not tasks:
        raise NoUsableDataset("no dataset can be run: " + "; ".join(entry["reason"] for entry in skipped))
    for line in [*notes, *(f"skipping {entry['reason']}" for entry in skipped)]:
        print(f"anomvae bench: {line}", file=sys.stderr)
    return tasks, skipped


def _reusable_runs(planned: list, journal: Path, resume: bool) -> dict:
    """The journalled runs a command keeps, by :func:`job_key`: with ``resume``, its successful
    runs on unchanged data; otherwise none (the journal is deleted)."""
    if not resume:
        journal.unlink(missing_ok=True)
        return {}
    done = {job_key(record): record for record in read_journal(journal)}
    kept, changed = {}, {}
    for job in planned:
        record = done.get(job_key(job))
        if record is None or record.get("status") != "ok":
            continue
        recorded, current = record.get("fingerprint"), getattr(job.task, "fingerprint", None)
        if recorded is not None and current is not None and recorded != current:
            changed[job.task.path] = changed.get(job.task.path, 0) + 1
            continue
        kept[job_key(job)] = record
    for path, count in changed.items():
        print(f"anomvae bench: --resume: {count} journalled run(s) were made on other data than {path} "
              "holds now; running them again", file=sys.stderr)
    _check_resumed_settings(planned, kept, journal)
    return kept


def _check_resumed_settings(planned: list, done: dict, journal: Path) -> None:
    """Refuse to resume from runs made with another row cap or other overrides (their figures would be relabelled).

    Records journalled before settings were recorded carry none and are taken as they are.
    """
    for job in planned:
        record = done.get(job_key(job))
        if record is not None and "settings" in record and record["settings"] != job_settings(job):
            raise ValueError(
                f"--resume: {journal} holds runs made with {record['settings']}, and this command asks for "
                f"{job_settings(job)}; use another --out, or run without --resume to start afresh"
            )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``anomvae bench``."""
    parser.add_argument("--suite", choices=SUITES, default="tabular",
                        help="tabular datasets, image tasks, the AnomalyVAE vs PyOD VAE speed test, or "
                             "fit and scoring throughput across input widths")
    parser.add_argument("--data", help="tabular: a folder of " + "/".join(TABLE_SUFFIXES) + " tables, or one "
                        "such file; images: the image data folder. Tables that cannot run (NaN, non-numeric "
                        f"features, no anomaly, under {MIN_TRAIN_ROWS} training rows...) are skipped and listed")
    parser.add_argument("--label-column", default=None, metavar="NAME",
                        help="label column (1 = anomaly, 0 = normal) of CSV/Parquet tables; default: the first "
                             f"column named {'/'.join(LABEL_COLUMNS)} (any case), else the last column. "
                             "A column 'Unnamed: 0' (a saved pandas index) is dropped")
    parser.add_argument("--detectors", default=None,
                        help="comma-separated detector names (default: every anomvae estimator and PyOD peer)")
    parser.add_argument("--datasets", default=None, help="comma-separated parts of dataset names to keep, or development / confirmation (the two parts of the shared suite)")
    parser.add_argument("--seeds", type=int, default=1, help="number of seeds (0..n-1)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="semi-supervised")
    parser.add_argument("--contamination-rate", type=float, default=None,
                        help="semi-supervised split plus injected anomalies making up this share of the "
                             "training rows (protocol 'contaminated-<rate>'); at most half of a dataset's "
                             "anomalies move, and results.md lists datasets that fall short")
    parser.add_argument("--max-rows", type=int, default=MAX_ROWS,
                        help=f"subsample larger datasets to this many rows (default {MAX_ROWS})")
    parser.add_argument("--epochs", type=int, default=None, help="override deep detectors' epochs")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds per run (from when its worker is ready) before it fails")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads per run (default: the cores shared among --jobs)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at the same time, each in its own worker process (default 1)")
    parser.add_argument("--out", default="benchmark-results", help="results folder")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    parser.add_argument("--widths", type=_integers, default=None,
                        help="throughput suite: comma-separated input widths (default "
                             f"{','.join(map(str, WIDTHS))})")
    parser.add_argument("--rows", type=_integers, default=None,
                        help=f"throughput suite: comma-separated row counts (default {','.join(map(str, ROWS))})")
    parser.add_argument("--resume", action="store_true",
                        help="keep the successful runs journalled in --out and run the rest: missing and "
                             "failed runs, and those whose data file changed since")


def run_from_arguments(arguments: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Run ``anomvae bench`` from parsed arguments; returns the exit status.

    0 when at least one run succeeded (failed runs are listed in the report),
    1 when every run failed or no dataset can be run (every one skipped), 2 on bad arguments,
    130 when interrupted (Ctrl-C; the finished runs stay in the journal).

    ``argv``, the full command line, is recorded in the report (``sys.argv`` by default).
    """
    try:
        _check_suite_options(arguments)
        result = run_benchmark(
            arguments.suite, arguments.data, detectors=arguments.detectors,
            datasets=arguments.datasets, seeds=arguments.seeds, protocol=_protocol(arguments),
            max_rows=arguments.max_rows, epochs=arguments.epochs, timeout=arguments.timeout,
            threads=arguments.threads, jobs=arguments.jobs, out=arguments.out, plots=not arguments.no_plots,
            progress=not arguments.quiet, resume=arguments.resume,
            command=shlex.join(argv) if argv else _command_line(),
            widths=arguments.widths, rows=arguments.rows, label_column=arguments.label_column,
        )
    except NoUsableDataset as error:
        print(f"anomvae bench: every run failed before it started: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"anomvae bench: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        kept = (f"; the finished runs are kept in {Path(arguments.out) / 'runs.jsonl'}, add --resume to continue"
                if arguments.suite in ("tabular", "images") else "")
        print(f"anomvae bench: interrupted{kept}", file=sys.stderr)
        return 130
    for name, path in result["files"].items():
        print(f"{name}: {path}")
    records = result.get("records", [])
    if records and not any(record["status"] == "ok" for record in records):
        first = records[0]
        print(f"anomvae bench: every run failed ({len(records)}); the first: {first['status']}"
              + (f", {first['error']}" if first.get("error") else ""), file=sys.stderr)
        return 1
    return 0


SUITE_OPTIONS = {
    "speed": {"threads", "out", "quiet", "no_plots", "resume", "timeout", "jobs"},
    "throughput": {"threads", "out", "quiet", "no_plots", "resume", "timeout", "jobs", "epochs", "widths", "rows"},
}
"""Options the fixed-protocol suites read; giving them any other is refused rather than ignored."""


def _check_suite_options(arguments: argparse.Namespace) -> None:
    if arguments.suite not in SUITE_OPTIONS:
        if arguments.widths is not None or arguments.rows is not None:
            raise ValueError("--widths and --rows belong to --suite throughput")
        return
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    defaults = vars(parser.parse_args([]))
    given = sorted(
        name for name, value in vars(arguments).items()
        if name not in SUITE_OPTIONS[arguments.suite] and name != "suite"
        and name in defaults and value != defaults[name]
    )
    if given:
        options = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ValueError(f"--suite {arguments.suite} runs a fixed protocol and does not take {options}")


def _integers(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(value < 1 for value in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _protocol(arguments: argparse.Namespace) -> str:
    if arguments.contamination_rate is None:
        return arguments.protocol
    if arguments.protocol != "semi-supervised":
        raise ValueError("--contamination-rate injects anomalies into the semi-supervised split; "
                         "leave --protocol at semi-supervised")
    if not 0 <= arguments.contamination_rate < 0.5:
        raise ValueError(f"--contamination-rate must be in [0, 0.5), got {arguments.contamination_rate:g}")
    return contaminated_protocol(arguments.contamination_rate)


def _command_line() -> str:
    program = Path(sys.argv[0]).name
    prefix = ["python", "-m", "anomvae.benchmark"] if program == "__main__.py" else [program]
    return shlex.join(prefix + sys.argv[1:])


def main(argv: list[str] | None = None) -> int:
    """``python -m anomvae.benchmark [options]``."""
    parser = argparse.ArgumentParser(prog="anomvae bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_from_arguments(parser.parse_args(argv),
                              None if argv is None else ["python", "-m", "anomvae.benchmark", *argv])

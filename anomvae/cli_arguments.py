"""The ``anomvae`` command line's arguments: one parser per subcommand, help in plain text."""

from __future__ import annotations

import argparse
import sys

from .benchmark.command import add_arguments as add_bench_arguments
from .version import __version__

DESCRIPTION = """Variational-autoencoder anomaly detectors: train, score, monitor, promote, report, serve, bench.

Runs are tracked in MLflow: MLFLOW_TRACKING_URI, or mlflow.db in the working directory."""


class NumberArgumentParser(argparse.ArgumentParser):
    """An argument parser that reads ``--threshold -1e3`` as the option's value.

    argparse takes a negative number written with an exponent (``-1e3``,
    ``-2.5E-4``) for an option, so ``--threshold -1e3`` failed with "expected
    one argument" while ``--threshold -1000`` worked. An option of this parser
    that takes a value, followed by a negative number, is joined into
    ``--option=number`` before parsing; nothing after ``--`` is touched.
    """

    def parse_known_args(self, args=None, namespace=None):
        """argparse's ``parse_known_args`` after joining each valued option with a negative number after it."""
        tokens = list(sys.argv[1:] if args is None else args)
        end = tokens.index("--") if "--" in tokens else len(tokens)
        joined: list[str] = []
        for position, token in enumerate(tokens):
            previous = joined[-1] if joined else ""
            if position < end and self._takes_value(previous) and _negative_number(token):
                joined[-1] = f"{previous}={token}"
            else:
                joined.append(token)
        return super().parse_known_args(joined, namespace)

    def _takes_value(self, token: str) -> bool:
        """Whether ``token`` is an option of this parser (groups included) that takes a value."""
        action = self._option_string_actions.get(token)
        return action is not None and action.nargs != 0


def _negative_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return token.startswith("-")


def _column_list(text: str) -> list[str]:
    columns = [column.strip() for column in text.split(",") if column.strip()]
    if not columns:
        raise argparse.ArgumentTypeError("expected comma-separated column names")
    return columns


def _add_train_parser(commands) -> None:
    parser = commands.add_parser("train", help="fit a detector, report and save it")
    parser.add_argument("--config", help="YAML file (see configs/); defaults to the embedded dataset")
    parser.add_argument("--output", help="where to save the model (.safetensors)")
    parser.add_argument("--experiment", help="MLflow experiment (default: anomvae)")
    parser.add_argument("--run-name", help="MLflow run name (default: <model>-<dataset>-<time>)")
    parser.add_argument("--registered-model-name", help="register the model under this name (default: anomvae)")
    parser.add_argument("--alias", help="alias for the new version (default: champion)")
    parser.add_argument("--no-tracking", action="store_true", help="do not log the run to MLflow")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="show a progress bar (default: when standard error is a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def _add_score_parser(commands) -> None:
    parser = commands.add_parser("score", help="score a CSV, Parquet or .npz file with a saved or registered model")
    parser.add_argument("model", help="model file written by train or save(), or an MLflow model URI "
                                      "(models:/name@alias, models:/name/3, runs:/<run id>/model)")
    parser.add_argument("input", help="CSV, Parquet or .npz file with the training columns")
    parser.add_argument("--output", "-o",
                        help="file to write: Parquet for .parquet or .pq, CSV otherwise (default, or '-': "
                             "CSV on standard output)")
    parser.add_argument("--keep", type=_column_list,
                        help="comma-separated columns (ids, timestamps) copied to the output and not scored "
                             "(a model column named here is copied and still scored); the output then holds "
                             "only these columns and the scores")
    parser.add_argument("--top-features", type=int, default=0, metavar="N",
                        help="add the N most contributing columns of each row and their contributions")
    parser.add_argument("--p-values", action="store_true",
                        help="add p_value, the conformal p-value of each row against the reference scores")


def _add_monitor_parser(commands) -> None:
    parser = commands.add_parser(
        "monitor", help="check a batch: alarm rate vs expected, score drift, features driving alarms"
    )
    parser.add_argument("model", help="model file written by train or save(), or an MLflow model URI")
    parser.add_argument("batch", help="CSV, Parquet or .npz file with the training columns")
    parser.add_argument("--keep", type=_column_list,
                        help="comma-separated columns to leave out (ids, timestamps); model columns named here "
                             "are still monitored")
    parser.add_argument("--significance", type=float, default=0.01, help="test level (default 0.01)")
    parser.add_argument("--top", type=int, default=5, help="features to list (default 5)")
    parser.add_argument("--json", help="also write the report as JSON to this file")
    parser.add_argument("--log-to-mlflow", action="store_true",
                        help="append the figures as the next step of the model's monitoring run "
                             "(MLFLOW_TRACKING_URI, else ./mlflow.db)")
    parser.add_argument("--monitoring-run", metavar="NAME",
                        help="MLflow run to append to (default: monitor-<registered model>, "
                             "monitor-<run id>-<artifact> or monitor-<file stem>-<path digest>)")
    parser.add_argument("--fail-on-alarm", action="store_true",
                        help="exit with status 1 when an alarm is raised")


def _add_promote_parser(commands) -> None:
    parser = commands.add_parser(
        "promote", help="point an alias at a registered model version, with a new threshold if given"
    )
    parser.add_argument("model_name", help="registered model name")
    new_threshold = parser.add_mutually_exclusive_group()
    new_threshold.add_argument("--threshold", type=float,
                               help="new anomaly-score threshold (higher = more anomalous); registers a new version")
    new_threshold.add_argument("--false-positive-rate", type=float,
                               help="recalibrate to this false-alarm rate on the model's reference scores")
    new_threshold.add_argument("--contamination", type=float, help="recalibrate to flag this share of reference rows")
    parser.add_argument("--version", help="source version (default: the alias's, else the latest)")
    parser.add_argument("--alias", default="champion", help="alias to move (default: champion)")


def _add_report_parser(commands) -> None:
    parser = commands.add_parser(
        "report", help="write a self-contained HTML report of a model on a table (no MLflow needed)"
    )
    parser.add_argument("model", help="model file written by train or save(), or an MLflow model URI")
    parser.add_argument("data", help="CSV, Parquet or .npz file with the training columns")
    parser.add_argument("--output", "-o", default="report.html", help="HTML file to write (default: report.html)")
    parser.add_argument("--label-column", help="column of labels (1 = anomaly); default: label, when present")
    parser.add_argument("--keep", type=_column_list, help="comma-separated columns to leave out (ids, timestamps)")
    parser.add_argument("--top", type=int, default=20, help="most anomalous rows to list (default 20)")


def _port(text: str) -> int:
    """An argparse type: a TCP port number, 0 to 65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {value}")
    return value


def _add_serve_parser(commands) -> None:
    parser = commands.add_parser(
        "serve", help="serve a logged model over REST: MLflow's scoring server behind a request guard"
    )
    parser.add_argument("model_uri", help="MLflow model URI, e.g. models:/fraud@champion or runs:/ID/model")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=5001, help="port (default 5001)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per worker (default 1; see docs/mlflow.md, serving recipe)")
    parser.add_argument("--max-body-mb", type=float, default=16.0,
                        help="largest request body in MiB; larger ones get 413 (default 16)")


def build_parser() -> argparse.ArgumentParser:
    """The ``anomvae`` argument parser, one subcommand per job; help is plain text."""
    parser = NumberArgumentParser(prog="anomvae", description=DESCRIPTION,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"anomvae {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(commands)
    _add_score_parser(commands)
    _add_monitor_parser(commands)
    _add_promote_parser(commands)
    _add_report_parser(commands)
    _add_serve_parser(commands)
    bench_parser = commands.add_parser(
        "bench", help="benchmark every anomvae estimator against PyOD peers (tables, plots, JSON)"
    )
    add_bench_arguments(bench_parser)
    return parser

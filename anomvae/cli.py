"""The ``anomvae`` command line: ``train``, ``score``, ``monitor``, ``promote`` and ``bench``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sklearn.metrics import roc_auc_score

from . import registry
from .benchmark.command import add_arguments as add_bench_arguments
from .benchmark.command import run_from_arguments as run_bench
from .datasets import embedded_default, load_npz, semi_supervised_split
from .monitoring import monitor
from .persistence import load
from .thresholds import Contamination, FalsePositiveRate, strategy_from_dict

DEFAULT_CONFIG: dict[str, Any] = {
    "model": {"name": "AnomalyVAE", "params": {"random_state": 0}},
    "data": {"source": "embedded", "label_column": None},
    "output": "runs/model.safetensors",
    "tracking": {"enabled": True, "experiment": "anomvae", "registered_model_name": "anomvae", "alias": "champion"},
}


def load_config(path: str | None) -> dict[str, Any]:
    """The default configuration, updated section by section from a YAML file."""
    config = {key: dict(value) if isinstance(value, dict) else value for key, value in DEFAULT_CONFIG.items()}
    if path is None:
        return config
    with open(path) as handle:
        loaded = yaml.safe_load(handle) or {}
    unknown = set(loaded) - set(DEFAULT_CONFIG)
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {sorted(unknown)}; expected {sorted(DEFAULT_CONFIG)}")
    for key, value in loaded.items():
        config[key] = {**config[key], **value} if isinstance(config[key], dict) else value
    return config


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, or the ``X`` array of an ``.npz`` file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return pd.read_csv(path)
    if suffix in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if suffix == ".npz":
        X, y = load_npz(path)
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
        frame["label"] = y
        return frame
    raise ValueError(f"{path}: unsupported file type {suffix!r}; expected .csv, .parquet or .npz")


def training_data(data: dict[str, Any]) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Features and optional labels (1 = anomaly) described by the ``data`` section."""
    if data["source"] == "embedded":
        return embedded_default()
    frame = read_table(data["source"])
    label_column = data.get("label_column") or ("label" if Path(data["source"]).suffix == ".npz" else None)
    if label_column is None:
        return frame, None
    if label_column not in frame.columns:
        raise ValueError(f"label_column {label_column!r} is not a column of {data['source']}")
    return frame.drop(columns=[label_column]), frame[label_column].to_numpy().astype(int)


def train(config: dict[str, Any], output: str | None = None) -> dict[str, Any]:
    """The main job: fit, pick the threshold, report, save.

    With labels, the detector is trained on a random half of the normal rows
    and evaluated on the rest (semi-supervised protocol); without labels it is
    trained on every row.

    Returns
    -------
    dict
        The printed report's figures.
    """
    name = config["model"]["name"]
    if name not in registry.names():
        raise ValueError(f"unknown model {name!r}; choose one of {registry.names()}")
    params = dict(config["model"].get("params") or {})
    if isinstance(params.get("threshold"), dict):
        params["threshold"] = strategy_from_dict(params["threshold"])
    detector = registry.get(name)(**params)
    X, y = training_data(config["data"])
    if y is not None:
        train_index, test_index = semi_supervised_split(y, random_state=0)
        X_train, X_test, y_test = X.iloc[train_index], X.iloc[test_index], y[test_index]
    else:
        X_train, X_test, y_test = X, X, None
    tracked = _fit(detector, X_train, None if y_test is None else (X_test, y_test), config["tracking"])
    anomaly_score = detector.anomaly_score(X_test)
    report = {
        "model": name,
        "rows_train": len(X_train),
        "rows_evaluated": len(X_test),
        "features": detector.n_features_in_,
        "training_seconds": round(detector.training_time_, 2),
        "epochs": detector.history_["epoch"][-1],
        "device": detector.device_,
        "threshold": -detector.offset_,
        "flag_rate": float(np.mean(anomaly_score > -detector.offset_)),
    }
    if hasattr(detector, "threshold_"):
        fitted = detector.threshold_
        report["threshold_expected_rate"] = fitted.expected_rate
        if fitted.rate_interval:
            report["threshold_rate_interval"] = [round(value, 5) for value in fitted.rate_interval]
        report["threshold_calibration"] = f"{fitted.reference.n} {fitted.source} scores"
        if fitted.warnings:
            report["threshold_warnings"] = list(fitted.warnings)
    if y_test is not None:
        report["roc_auc"] = float(roc_auc_score(y_test, anomaly_score))
    path = Path(output or config["output"])
    detector.save(path)
    report["saved_to"] = str(path)
    if tracked is not None:
        import mlflow

        report["mlflow_run_id"] = tracked.run_id
        report["mlflow_model"] = tracked.serving_uri
        report["tracking_uri"] = mlflow.get_tracking_uri()
    return report


def _fit(detector, X_train, validation, tracking_config: dict[str, Any]):
    """Fit ``detector``; with tracking on, in an MLflow run that registers the model.

    Returns the :class:`~anomvae.tracking.TrainingRun`, or None without tracking.
    """
    if not tracking_config.get("enabled", True):
        detector.fit(X_train)
        return None
    from .lifecycle.tracking import fit_and_log

    return fit_and_log(
        detector,
        X_train,
        validation=validation,
        experiment_name=tracking_config.get("experiment"),
        registered_model_name=tracking_config.get("registered_model_name"),
        alias=tracking_config.get("alias"),
    )


def promote_model(model_name: str, threshold, version: str | None, alias: str) -> str:
    """Run :func:`anomvae.tracking.promote`; the lines to print."""
    from mlflow.exceptions import MlflowException

    from .lifecycle.tracking import next_steps, promote

    try:
        promoted = promote(model_name, threshold=threshold, version=version, alias=alias)
    except MlflowException as error:
        raise ValueError(error.message) from error
    lines = [
        f"{model_name} version {promoted.version} is now @{alias}",
        f"threshold  {promoted.tags.get('threshold')}",
        f"origin     {promoted.tags.get('threshold_origin')}",
    ]
    return "\n".join(lines + next_steps(f"models:/{model_name}@{alias}"))


def score(model_path: str, input_path: str, output_path: str | None) -> pd.DataFrame:
    """Score a table with a saved model; rows keep their order.

    The output holds the input columns plus ``score`` (the anomaly score,
    higher = more anomalous: the estimator's ``anomaly_score``) and ``is_anomaly``.
    """
    detector = load(model_path)
    frame = read_table(input_path)
    result = frame.copy()
    result["score"] = detector.anomaly_score(frame)
    result["is_anomaly"] = result["score"].to_numpy() > -detector.offset_
    if output_path:
        result.to_csv(output_path, index=False)
    return result


def monitor_batch(model_path: str, batch_path: str, significance: float, n_top_features: int,
                  log_to_mlflow: bool):
    """Monitor a table with a saved model; returns the :class:`~anomvae.monitoring.MonitoringReport`.

    A ``label`` column that the model was not trained on (as in ``.npz``
    files) is left out.
    """
    detector = load(model_path)
    frame = read_table(batch_path)
    features = set(getattr(detector, "feature_names_in_", []))
    if "label" in frame.columns and "label" not in features:
        frame = frame.drop(columns=["label"])
    return monitor(detector, frame, significance=significance, n_top_features=n_top_features,
                   log_to_mlflow=log_to_mlflow or None)


def _print_report(report: dict[str, Any]) -> None:
    width = max(len(key) for key in report)
    for key, value in report.items():
        shown = f"{value:.4f}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")


def _add_train_parser(commands) -> None:
    parser = commands.add_parser("train", help="fit a detector, report and save it")
    parser.add_argument("--config", help="YAML file (see configs/); defaults to the embedded dataset")
    parser.add_argument("--output", help="where to save the model (.safetensors)")
    parser.add_argument("--registered-model-name", help="register the model under this name (default: anomvae)")
    parser.add_argument("--alias", help="alias for the new version (default: champion)")
    parser.add_argument("--no-tracking", action="store_true", help="do not log the run to MLflow")


def _add_score_parser(commands) -> None:
    parser = commands.add_parser("score", help="score a CSV or Parquet file with a saved model")
    parser.add_argument("model", help="model file written by train or save()")
    parser.add_argument("input", help="CSV or Parquet file with the training columns")
    parser.add_argument("--output", "-o", help="CSV to write (default: standard output)")


def _add_monitor_parser(commands) -> None:
    parser = commands.add_parser(
        "monitor", help="check a batch: alarm rate vs expected, score drift, features driving alarms"
    )
    parser.add_argument("model", help="model file written by train or save()")
    parser.add_argument("batch", help="CSV, Parquet or .npz file with the training columns")
    parser.add_argument("--significance", type=float, default=0.01, help="test level (default 0.01)")
    parser.add_argument("--top", type=int, default=5, help="features to list (default 5)")
    parser.add_argument("--json", help="also write the report as JSON to this file")
    parser.add_argument("--log-to-mlflow", action="store_true",
                        help="log the figures as MLflow metrics (MLFLOW_TRACKING_URI)")
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


def build_parser() -> argparse.ArgumentParser:
    """The ``anomvae`` argument parser, one subcommand per job."""
    parser = argparse.ArgumentParser(prog="anomvae", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(commands)
    _add_score_parser(commands)
    _add_monitor_parser(commands)
    _add_promote_parser(commands)
    bench_parser = commands.add_parser(
        "bench", help="benchmark every anomvae estimator against PyOD peers (tables, plots, JSON)"
    )
    add_bench_arguments(bench_parser)
    return parser


def _run_train(args) -> int:
    started = time.perf_counter()
    config = load_config(args.config)
    config["tracking"]["enabled"] &= not args.no_tracking
    for key in ("registered_model_name", "alias"):
        if getattr(args, key):
            config["tracking"][key] = getattr(args, key)
    report = train(config, args.output)
    report["wall_seconds"] = round(time.perf_counter() - started, 2)
    _print_report(report)
    if "mlflow_model" in report:
        from .lifecycle.tracking import next_steps

        print("\n".join(next_steps(report["mlflow_model"])))
    return 0


def _run_score(args) -> int:
    result = score(args.model, args.input, args.output)
    if not args.output:
        result.to_csv(sys.stdout, index=False)
    return 0


def _run_promote(args) -> int:
    threshold = args.threshold
    if args.false_positive_rate is not None:
        threshold = FalsePositiveRate(args.false_positive_rate)
    elif args.contamination is not None:
        threshold = Contamination(args.contamination)
    print(promote_model(args.model_name, threshold, args.version, args.alias))
    return 0


def _run_monitor(args) -> int:
    report = monitor_batch(args.model, args.batch, args.significance, args.top, args.log_to_mlflow)
    print(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2))
    return 1 if args.fail_on_alarm and report.alarms else 0


COMMANDS = {"train": _run_train, "score": _run_score, "promote": _run_promote, "monitor": _run_monitor}
"""Subcommand name -> function running it on the parsed arguments; returns the exit status."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``anomvae`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        Exit status: 0 on success, 1 when ``monitor --fail-on-alarm`` raised
        an alarm, 2 on bad input (the message is printed to standard error).
    """
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        return run_bench(args, None if argv is None else ["anomvae", *argv])
    try:
        return COMMANDS[args.command](args)
    except (ValueError, TypeError, FileNotFoundError) as error:
        print(f"anomvae {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

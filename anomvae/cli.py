"""The ``anomvae`` command line: ``train``, ``score``, ``monitor``, ``promote``, ``serve``, ``report`` and ``bench``."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from . import registry
from .batch_scoring import keep_hint, load_detector, model_rows, score_table, write_table
from .cli_arguments import build_parser
from .cli_config import load_config
from .benchmark.command import run_from_arguments as run_bench
from .cli_data import check_output_file, read_table, training_data, unscored_label
from .datasets import EMBEDDED_NAME, semi_supervised_split
from .metrics import alarm_rates, check_labels
from .monitoring import monitor
from .report import write_report as write_html_report
from .thresholds import Contamination, FalsePositiveRate, strategy_from_dict

DROP_HINTED = ("looks like an identifier", "derive numeric features")
"""Fit errors about a column that is not a feature (an id, a timestamp), which ``data.drop_columns`` leaves out."""


def train(config: dict[str, Any], output: str | None = None, *, progress: bool = False) -> dict[str, Any]:
    """The main job: fit, pick the threshold, report, save.

    With labels, the detector is trained on a random half of the normal rows
    and evaluated on the rest (semi-supervised protocol); without labels it is
    trained on every row.

    With ``progress``, the fit shows a progress bar unless the model
    parameters set ``verbose`` themselves.

    Returns
    -------
    dict
        The printed report's figures.
    """
    path = check_output_file(output or config["output"], create_folders=True)
    name = config["model"]["name"]
    if name not in registry.names():
        raise ValueError(f"unknown model {name!r}; choose one of {registry.names()}")
    params = dict(config["model"].get("params") or {})
    if isinstance(params.get("threshold"), dict):
        params["threshold"] = strategy_from_dict(params["threshold"])
    if progress:
        params.setdefault("verbose", True)
    detector = registry.get(name)(**params)
    X, y = training_data(config["data"])
    if y is not None and np.count_nonzero(y == 0) < 4:
        raise ValueError(f"the label column marks {np.count_nonzero(y == 0)} of {len(y)} rows normal (0); the "
                         "main job trains on half of them and needs at least 2: label more normal rows")
    if y is not None:
        train_index, test_index = semi_supervised_split(y, random_state=0)
        X_train, X_test, y_test = X.iloc[train_index], X.iloc[test_index], y[test_index]
    else:
        X_train, X_test, y_test = X, X, None
    try:
        tracked = _fit(detector, X_train, None if y_test is None else (X_test, y_test), config["tracking"],
                       dataset_name(config["data"]))
    except (ValueError, TypeError) as error:  # the identifier check raises ValueError, the date checks TypeError
        if any(text in str(error) for text in DROP_HINTED):
            raise type(error)(f"{error} (in the config: data: {{drop_columns: [<column>]}})") from error
        raise
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
    }
    # The names MLflow logs: eval_* on the held-out rows, train_* on the training rows.
    prefix = "train_" if y_test is None else "eval_"
    report[f"{prefix}flag_rate"] = float(np.mean(anomaly_score > -detector.offset_))
    if hasattr(detector, "threshold_"):
        fitted = detector.threshold_
        report["threshold_expected_rate"] = fitted.expected_rate
        if fitted.rate_interval:
            report["threshold_rate_interval"] = [round(value, 5) for value in fitted.rate_interval]
        report["threshold_calibration"] = f"{fitted.reference.n} {fitted.source} scores"
        if fitted.warnings:
            report["threshold_warnings"] = list(fitted.warnings)
    if y_test is not None:
        report.update(_label_figures(anomaly_score, -detector.offset_, y_test))
    detector.save(path)
    report["saved_to"] = str(path)
    if tracked is not None:
        import mlflow

        report["mlflow_run_id"] = tracked.run_id
        report["mlflow_model"] = tracked.serving_uri
        report["tracking_uri"] = mlflow.get_tracking_uri()
    return report


def dataset_name(data: dict[str, Any]) -> str:
    """A short name of the training data: the file's stem, or the embedded dataset's name."""
    if data["source"] == "embedded":
        return EMBEDDED_NAME
    return Path(data["source"]).stem


def _fit(detector, X_train, validation, tracking_config: dict[str, Any], dataset: str):
    """Fit ``detector``; with tracking on, in an MLflow run that registers the model.

    Returns the :class:`~anomvae.lifecycle.tracking.TrainingRun`, or None without tracking.
    """
    if not tracking_config.get("enabled", True):
        detector.fit(X_train)
        return None
    from .lifecycle.tracking import fit_and_log

    return fit_and_log(
        detector,
        X_train,
        validation=validation,
        dataset_name=dataset,
        run_name=tracking_config.get("run_name"),
        experiment_name=tracking_config.get("experiment"),
        registered_model_name=tracking_config.get("registered_model_name"),
        alias=tracking_config.get("alias"),
    )


def promote_model(model_name: str, threshold, version: str | None, alias: str) -> str:
    """Run :func:`anomvae.tracking.promote`; the lines to print."""
    from mlflow.exceptions import MlflowException

    from .lifecycle._mlflow import existing_tracking_uri, registered_version
    from .lifecycle.tracking import next_steps, promote

    store = existing_tracking_uri()
    # None when the alias names no version yet (or there is no such model: promote then says which)
    new_alias = registered_version(f"models:/{model_name}@{alias}") is None
    try:
        promoted = promote(model_name, threshold=threshold, version=version, alias=alias)
    except MlflowException as error:
        raise ValueError(f"{error.message} (tracking store: {store})") from error
    except ValueError as error:
        raise ValueError(f"{error} (tracking store: {store})") from error
    lines = [
        f"tracking store  {store}",
        f"{model_name} version {promoted.version} is now @{alias}"
        + (f" (a new alias: @{alias} named no version before)" if new_alias else ""),
        f"threshold  {promoted.tags.get('threshold')}",
        f"origin     {promoted.tags.get('threshold_origin')}",
        *([f"calibration  {promoted.tags['threshold_calibration']}"] if "threshold_calibration" in promoted.tags else []),
    ]
    return "\n".join(lines + next_steps(f"models:/{model_name}@{alias}"))


def score(model: str, input_path: str, output_path: str | None, *, keep: list[str] | None = None,
          top_features: int = 0, p_values: bool = False) -> pd.DataFrame:
    """Score a table with a saved or logged model; rows keep their order.

    ``model`` is a ``.safetensors`` file or an MLflow model URI
    (``models:/name@alias``, ``runs:/<id>/model``). The output holds the
    input columns (only the ``keep`` columns when given) plus ``score`` (the
    anomaly score, higher = more anomalous, i.e. the estimator's ``anomaly_score``),
    ``is_anomaly`` and, when asked, the top features and p-values; see
    :func:`anomvae.batch_scoring.score_table`. A ``label`` column that is not
    a model feature (as ``.npz`` files give, from ``y``) is not scored, as
    ``monitor`` and ``report`` leave it out, and is copied like any other
    input column. ``.parquet`` outputs are Parquet.
    """
    if output_path:
        check_output_file(output_path)
    detector = load_detector(model)
    frame = read_table(input_path, detector)
    label = unscored_label(detector, frame)
    result = score_table(detector, frame, keep=keep, unscored=[label] if label else [], top_features=top_features,
                         p_values=p_values)
    if output_path:
        write_table(result, output_path)
    return result


def _label_figures(anomaly_score: np.ndarray, threshold: float, y_test: np.ndarray) -> dict[str, Any]:
    """``eval_*`` figures against the labels; recall and ROC-AUC only where the rows hold anomalies."""
    rates = alarm_rates(anomaly_score, threshold, y_test)
    figures = {"eval_anomaly_share": round(rates["anomaly_share"], 4),
               "eval_false_alarm_rate": rates["false_alarm_rate"]}
    if np.any(y_test == 1):
        figures.update(eval_recall=rates["recall"], eval_roc_auc=float(roc_auc_score(y_test, anomaly_score)))
    return figures


def monitor_batch(model: str, batch_path: str, significance: float, n_top_features: int,
                  log_to_mlflow: bool, monitoring_run: str | None = None, keep: list[str] | None = None):
    """Monitor a table with a saved or registered model; returns the :class:`~anomvae.monitoring.MonitoringReport`.

    A ``label`` column that the model was not trained on (as in ``.npz``
    files) and the ``keep`` columns (ids, timestamps) are left out. With
    ``log_to_mlflow`` the figures are appended to the model's monitoring run
    (see :mod:`anomvae.lifecycle.monitoring_runs`), with ``monitor.model_version``
    beside them for a registry URI.
    """
    version = None
    if log_to_mlflow and model.startswith("models:/"):
        from .lifecycle._mlflow import existing_tracking_uri, registered_version

        existing_tracking_uri()
        version = registered_version(model)
    # A registry URI is read at one version, the one logged beside the figures, even if its alias moves meanwhile.
    detector = load_detector(model if version is None else f"models:/{version[0]}/{version[1]}")
    frame = read_table(batch_path, detector)
    label = unscored_label(detector, frame)
    frame = model_rows(detector, frame, [*(keep or ()), *([label] if label else [])])
    if not log_to_mlflow:
        with keep_hint():
            return monitor(detector, frame, significance=significance, n_top_features=n_top_features,
                           log_to_mlflow=False)
    from .lifecycle.monitoring_runs import log_model_version, monitoring_run as resume

    with resume(model, monitoring_run), keep_hint():
        report = monitor(detector, frame, significance=significance, n_top_features=n_top_features,
                         log_to_mlflow=True)
        if version is not None:
            log_model_version(int(version[1]))
        return report


def write_report(model: str, data_path: str, output_path: str, *, label_column: str | None = None,
                 keep: list[str] | None = None, top_rows: int = 20) -> Path:
    """Write the HTML report (:mod:`anomvae.report`) of a model on a table; returns its path.

    Labels come from ``label_column``, or from a ``label`` column that is not
    one of the model's features.
    """
    check_output_file(output_path)
    detector = load_detector(model)
    frame = read_table(data_path, detector)
    label_column = label_column or unscored_label(detector, frame)
    if label_column is not None and label_column not in frame.columns:
        raise ValueError(f"label column {label_column!r} is not a column of {data_path}")
    labels = None if label_column is None else check_labels(frame[label_column], f"{data_path}: {label_column!r}")
    rows = model_rows(detector, frame.drop(columns=[label_column] if label_column else []), keep or ())
    with keep_hint():
        return write_html_report(detector, rows, labels, output_path,
                                 title=f"{Path(model).name} on {Path(data_path).name}", top_rows=top_rows)


def _print_report(report: dict[str, Any]) -> None:
    width = max(len(key) for key in report)
    for key, value in report.items():
        shown = f"{value:.4f}" if isinstance(value, float) else value
        print(f"{key:<{width}}  {shown}")


def _run_train(args) -> int:
    started = time.perf_counter()
    config = load_config(args.config)
    config["tracking"]["enabled"] &= not args.no_tracking
    for key in ("registered_model_name", "alias", "experiment", "run_name"):
        value = getattr(args, key)
        if value is not None and not value.strip():
            raise ValueError(f"--{key.replace('_', '-')} must not be empty")
        if value is not None:
            config["tracking"][key] = value
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    report = train(config, args.output, progress=progress)
    report["wall_seconds"] = round(time.perf_counter() - started, 2)
    _print_report(report)
    if "mlflow_model" in report:
        from .lifecycle.tracking import next_steps

        print("\n".join(next_steps(report["mlflow_model"])))
    return 0


def _run_score(args) -> int:
    to_stdout = args.output in (None, "", "-")
    result = score(args.model, args.input, None if to_stdout else args.output, keep=args.keep,
                   top_features=args.top_features, p_values=args.p_values)
    if to_stdout:
        result.to_csv(sys.stdout, index=False)
        sys.stdout.flush()
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
    if args.json:  # before the work: a pipeline reading the exit status must see the alarm, not a bad path
        check_output_file(args.json)
    report = monitor_batch(args.model, args.batch, args.significance, args.top, args.log_to_mlflow,
                           args.monitoring_run, keep=args.keep)
    print(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2))
    return 1 if args.fail_on_alarm and report.alarms else 0


def _run_serve(args) -> int:
    from mlflow.exceptions import MlflowException

    from .lifecycle.serving_app import serve

    if not 0 < args.max_body_mb < float("inf"):
        raise ValueError(f"--max-body-mb must be a positive finite number, got {args.max_body_mb}")
    print(f"anomvae serve: loading {args.model_uri}; POST http://{args.host}:{args.port}/invocations "
          "once loaded (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        serve(args.model_uri, args.host, args.port, args.workers, int(args.max_body_mb * 1024 * 1024), args.threads)
    except MlflowException as error:
        raise ValueError(f"cannot serve {args.model_uri}: {error.message}") from error
    return 0


def _run_report(args) -> int:
    print(write_report(args.model, args.data, args.output, label_column=args.label_column, keep=args.keep,
                       top_rows=args.top))
    return 0


COMMANDS = {"train": _run_train, "score": _run_score, "promote": _run_promote, "monitor": _run_monitor,
            "serve": _run_serve, "report": _run_report}
"""Subcommand name -> function running it on the parsed arguments; returns the exit status."""


def _quiet_mlflow() -> None:
    """Keep MLflow's INFO lines and artifact download bars off the terminal (MLFLOW_VERBOSE=1 keeps them)."""
    if os.environ.get("MLFLOW_VERBOSE"):
        return
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is first imported
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # for an mlflow imported already


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
        an alarm, 2 on bad input, an unreadable or unwritable path, or a
        request MLflow refused (the message is printed to standard error), 3
        on any other failure (with its traceback), 141 when the reader of
        standard output closed it (``| head``).
    """
    args = build_parser().parse_args(argv)
    if args.command == "bench":
        return run_bench(args, None if argv is None else ["anomvae", *argv])
    _quiet_mlflow()
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:
        # The reader closed the pipe: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except (ValueError, TypeError, OSError) as error:
        print(f"anomvae {args.command}: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # never exit 1, which monitor --fail-on-alarm reserves for an alarm
        if any(cls.__name__ == "MlflowException" for cls in type(error).__mro__):  # a refused URI, name or request
            print(f"anomvae {args.command}: error: {error}", file=sys.stderr)
            return 2
        traceback.print_exc()
        return 3


if __name__ == "__main__":
    raise SystemExit(main())

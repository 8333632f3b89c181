"""Label-based scores for model selection: ``scoring=`` callables with y = 1 for anomalies.

anomvae follows scikit-learn's outlier contract, where ``score_samples`` is
higher for *more normal* rows. scikit-learn's ``scoring="roc_auc"`` ranks by
``decision_function`` against the positive label, so with the usual anomaly
label ``y = 1`` it computes ``1 - AUC`` and :class:`~sklearn.model_selection.GridSearchCV`
picks the worst setting. The scorers here rank rows by anomaly score
(``-score_samples``) against ``y == 1``:

>>> from sklearn.model_selection import GridSearchCV
>>> from anomvae.metrics import outlier_roc_auc
>>> search = GridSearchCV(AnomalyVAE(), {"beta": [0.5, 1.0]}, scoring=outlier_roc_auc)  # doctest: +SKIP
>>> search.fit(X, y)     # y: 1 = anomaly, 0 = normal; fit itself ignores y   # doctest: +SKIP

The rows of ``X`` are training rows too (``fit`` ignores ``y``), so a grid
search trains on the labelled anomalies of each training fold, as a detector
trained on a contaminated feed would.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score


def check_labels(y, where: str | None = None, row_name=None) -> np.ndarray:
    """Labels as ints, 1 for anomalies and 0 for normal rows.

    The one label check of the library, the commands and the benchmark.
    Accepted: 0/1 numbers (``1.0`` too), booleans, and text (or bytes) that
    reads as one of them: ``"1"``, ``" 0.00 "``, ``"True"``, ``"false"``, as a
    CSV delivers labels. Nothing is truncated: 0.5 or 2 is refused, not read
    as 0 or 1.

    Parameters
    ----------
    y : array-like of shape (n,)
        The labels.
    where : str, optional
        What holds them (a file and column), put before every message.
    row_name : callable, optional
        ``row_name(position)`` names a row in messages (a file's line, say);
        ``"row <position>"`` by default.

    Returns
    -------
    ndarray of int of shape (n,)

    Raises
    ------
    ValueError
        For a missing label or any other value (scikit-learn's +1/-1, words
        such as "anomaly"), naming the first such row and saying how to convert.
    """
    prefix = f"{where}: " if where else ""
    row_name = row_name or (lambda position: f"row {position}")
    values, missing, bad = _label_values(y)
    if missing.any():
        raise ValueError(f"{prefix}labels must not be missing: {row_name(int(np.argmax(missing)))} has none "
                         f"({int(missing.sum())} in all); give every row 1 (anomaly) or 0 (normal)")
    if bad.any():
        found = pd.unique(values[bad])
        shown = "[" + ", ".join(_shortened(value) for value in sorted(found.tolist(), key=str)[:4]) + "]"
        shown = f"{len(found)} distinct values such as {shown}" if len(found) > 4 else shown
        hint = ("for scikit-learn's +1/-1 convention pass (y == -1).astype(int)" if -1 in set(found.tolist())
                else "map your labels to 1 for anomalies and 0 for normal rows")
        raise ValueError(f"{prefix}labels must be 1 (anomaly) or 0 (normal), or true/false; got {shown}, "
                         f"first at {row_name(int(np.argmax(bad)))}; {hint}")
    return values.astype(int)


def _shortened(value) -> str:
    text = repr(value)
    return text if len(text) <= 24 else text[:21] + "..."


def _label_values(y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``y`` flattened with its text read as numbers, and masks of its missing and its other values."""
    array = np.asarray(y)
    if array.dtype.kind in "biuf":  # numbers and booleans: no per-row Python work
        values = array.ravel()
        missing = np.isnan(values) if values.dtype.kind == "f" else np.zeros(len(values), dtype=bool)
        return values, missing, ~missing & ~np.isin(values, (0, 1))
    values = np.array([_text_label(value) for value in np.asarray(y, dtype=object).ravel()], dtype=object)
    missing = np.array([value is None or (not isinstance(value, str) and bool(pd.isna(value)))
                        for value in values], dtype=bool)
    bad = np.array([not is_missing and (isinstance(value, str) or value not in (0, 1))
                    for value, is_missing in zip(values, missing)], dtype=bool)
    return values, missing, bad


def _text_label(value):
    """Text (or bytes) read as 0 or 1 where it says so (``"1.00"``, ``"True"``), None where it is blank."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    if not text:
        return None
    if text in ("true", "false"):
        return int(text == "true")
    try:
        number = float(text)
    except ValueError:
        return value
    return int(number) if number in (0.0, 1.0) else value


def _anomaly_labels(y) -> np.ndarray:
    labels = check_labels(y)
    if len(set(labels.tolist())) < 2:
        raise ValueError("ranking needs both anomalies (y = 1) and normal rows (y = 0) in the fold")
    return labels


def alarm_rates(anomaly_scores, threshold: float, y) -> dict[str, float]:
    """How a threshold's alarms split between labelled anomalies and normal rows.

    Parameters
    ----------
    anomaly_scores : array-like of shape (n,)
        Anomaly scores (higher = more anomalous, ``-score_samples``).
    threshold : float
        Scores above it are alarms (``-offset_``).
    y : array-like of shape (n,)
        1 for anomalies, 0 for normal rows.

    Returns
    -------
    dict
        ``recall`` (share of the anomalies flagged), ``false_alarm_rate``
        (share of the normal rows flagged) and ``anomaly_share`` (share of
        anomalies among the rows: what a flag rate is read against); NaN,
        without a warning, for a rate whose class holds no row.
    """
    labels = np.asarray(y).ravel()
    flagged = np.asarray(anomaly_scores) > threshold

    def share(rows: np.ndarray) -> float:
        return float(np.mean(rows)) if rows.size else float("nan")

    return {
        "recall": share(flagged[labels == 1]),
        "false_alarm_rate": share(flagged[labels == 0]),
        "anomaly_share": float(np.mean(labels == 1)),
    }


def outlier_roc_auc(estimator, X, y) -> float:
    """ROC-AUC of the anomaly score ``-estimator.score_samples(X)`` against ``y == 1``.

    Usable as ``scoring=`` in :class:`~sklearn.model_selection.GridSearchCV`
    and :func:`~sklearn.model_selection.cross_val_score`; higher is better.

    Parameters
    ----------
    estimator : fitted outlier detector
        Any estimator with ``score_samples`` higher for more normal rows
        (anomvae's, IsolationForest, LocalOutlierFactor(novelty=True)).
    X : array-like of shape (n_samples, ...)
    y : array-like of shape (n_samples,)
        1 for anomalies, 0 for normal rows.

    Returns
    -------
    float
        ROC-AUC in [0, 1]; 0.5 is chance.

    Raises
    ------
    ValueError
        When ``y`` holds other values than 0 and 1, or only one of them.
    """
    return float(roc_auc_score(_anomaly_labels(y), -estimator.score_samples(X)))


def outlier_average_precision(estimator, X, y) -> float:
    """Average precision of the anomaly score against ``y == 1``; the ``scoring=`` for rare anomalies.

    Parameters and errors as :func:`outlier_roc_auc`. Chance level is the
    anomaly share of ``y``.
    """
    return float(average_precision_score(_anomaly_labels(y), -estimator.score_samples(X)))


SCORERS = {"outlier_roc_auc": outlier_roc_auc, "outlier_average_precision": outlier_average_precision}
"""By name, for ``scoring=SCORERS`` (several metrics at once, with ``refit=`` one of the names)."""

__all__ = ["SCORERS", "alarm_rates", "check_labels", "outlier_average_precision", "outlier_roc_auc"]

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


LABEL_WORDS = {"1": 1, "0": 0, "1.0": 1, "0.0": 0, "true": 1, "false": 0}
"""Text labels read as numbers (as a CSV delivers them), case and surrounding spaces ignored."""


def check_labels(y) -> np.ndarray:
    """Labels as ints, 1 for anomalies and 0 for normal rows.

    Accepted: 0/1 numbers, booleans, and the text of :data:`LABEL_WORDS`.

    Raises
    ------
    ValueError
        For a missing label or any other value (scikit-learn's +1/-1, words
        such as "anomaly"), saying how to convert.
    """
    raw = np.asarray(y, dtype=object).ravel()
    if any(value is None or (not isinstance(value, str) and bool(pd.isna(value))) for value in raw):
        raise ValueError("labels must not be missing: give every row 1 (anomaly) or 0 (normal)")
    labels = np.array([LABEL_WORDS.get(value.strip().lower(), value) if isinstance(value, str) else value
                       for value in raw], dtype=object)
    values = set(labels.tolist())
    if not values <= {0, 1}:
        shown = sorted(values - {0, 1}, key=str)[:10]
        hint = ("for scikit-learn's +1/-1 convention pass (y == -1).astype(int)" if values & {-1}
                else "map your labels to 1 for anomalies and 0 for normal rows")
        raise ValueError(f"labels must be 1 for anomalies and 0 for normal rows (or true/false), got {shown}; {hint}")
    return labels.astype(int)


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

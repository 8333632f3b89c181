"""Train/test splits shared by every detector of a benchmark run.

The split depends only on the dataset's labels, the protocol and the seed, so
every detector of a run is fitted and scored on exactly the same rows.
"""

from __future__ import annotations

import numpy as np

from ..datasets import semi_supervised_split, stratified_subsample

PROTOCOLS = ("semi-supervised", "unsupervised")

CONTAMINATED_PREFIX = "contaminated-"
"""A protocol named ``contaminated-<rate>`` (see :func:`contaminated_protocol`)
trains on clean normal rows plus injected anomalies making up ``rate`` of the
training rows."""


def contaminated_protocol(rate: float) -> str:
    """Name of the protocol that injects anomalies as ``rate`` of the training rows.

    Raises
    ------
    ValueError
        Unless ``0 <= rate < 0.5``.
    """
    if not 0 <= rate < 0.5:
        raise ValueError(f"contamination rate must be in [0, 0.5), got {rate!r}")
    return f"{CONTAMINATED_PREFIX}{rate:g}"


def check_protocol(protocol: str) -> None:
    """Raise ``ValueError`` naming the known protocols unless ``protocol`` is one."""
    if protocol in PROTOCOLS:
        return
    if protocol.startswith(CONTAMINATED_PREFIX):
        try:
            contaminated_protocol(float(protocol[len(CONTAMINATED_PREFIX):]))
            return
        except ValueError:
            pass
    raise ValueError(f"protocol must be one of {PROTOCOLS} or 'contaminated-<rate>', got {protocol!r}")

MAX_ROWS = 20_000
"""Datasets with more rows are subsampled (stratified) to this many first."""


def split(
    y: np.ndarray, protocol: str, seed: int, max_rows: int | None = MAX_ROWS
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train, test)`` of one run.

    Parameters
    ----------
    y : ndarray of int
        Labels, 1 for anomalies.
    protocol : {"semi-supervised", "unsupervised", "contaminated-<rate>"}
        ``"semi-supervised"``: train on a random half of the normal rows, test
        on the other half plus every anomaly
        (:func:`anomvae.datasets.semi_supervised_split`). ``"unsupervised"``:
        a stratified random half of all rows, anomalies included, is the
        (contaminated) training set and the other half the test set, as in
        ADBench's unsupervised setting (Han et al., NeurIPS 2022).
        ``"contaminated-<rate>"``: the semi-supervised split, then randomly
        chosen anomalies move from the test set into training until they are
        ``rate`` of the training rows (at most half of the anomalies move, so
        the test set keeps some; the realised rate is then lower).
    seed : int
    max_rows : int or None
        Stratified subsample size applied before splitting.

    Raises
    ------
    ValueError
        For an unknown protocol, or labels without both classes.
    """
    y = np.asarray(y)
    if set(np.unique(y)) != {0, 1}:
        raise ValueError("benchmark labels must contain both 0 (normal) and 1 (anomaly)")
    check_protocol(protocol)
    if protocol == "semi-supervised":
        return semi_supervised_split(y, random_state=seed, max_rows=max_rows)
    if protocol.startswith(CONTAMINATED_PREFIX):
        return _contaminated_split(y, float(protocol[len(CONTAMINATED_PREFIX):]), seed, max_rows)
    rng = np.random.default_rng(seed)
    rows = stratified_subsample(y, max_rows, rng)
    train, test = [], []
    for label in (0, 1):
        members = rng.permutation(rows[y[rows] == label])
        half = len(members) // 2
        train.append(members[:half])
        test.append(members[half:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _contaminated_split(y: np.ndarray, rate: float, seed: int,
                        max_rows: int | None) -> tuple[np.ndarray, np.ndarray]:
    train, test = semi_supervised_split(y, random_state=seed, max_rows=max_rows)
    anomalies = np.random.default_rng([seed, 1]).permutation(test[y[test] == 1])
    wanted = round(rate / (1 - rate) * len(train))
    moved = anomalies[:min(wanted, len(anomalies) // 2)]
    return np.sort(np.concatenate([train, moved])), np.setdiff1d(test, moved)

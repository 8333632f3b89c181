"""Train/test splits shared by every detector of a benchmark run.

The split depends only on the dataset's labels, the protocol and the seed, so
every detector of a run is fitted and scored on exactly the same rows.
"""

from __future__ import annotations

import numpy as np

from ..datasets import semi_supervised_split, stratified_subsample

PROTOCOLS = ("semi-supervised", "unsupervised")

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
    protocol : {"semi-supervised", "unsupervised"}
        ``"semi-supervised"``: train on a random half of the normal rows, test
        on the other half plus every anomaly
        (:func:`anomvae.datasets.semi_supervised_split`). ``"unsupervised"``:
        a stratified random half of all rows, anomalies included, is the
        (contaminated) training set and the other half the test set, as in
        ADBench's unsupervised setting (Han et al., NeurIPS 2022).
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
    if protocol == "semi-supervised":
        return semi_supervised_split(y, random_state=seed, max_rows=max_rows)
    if protocol != "unsupervised":
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    rng = np.random.default_rng(seed)
    rows = stratified_subsample(y, max_rows, rng)
    train, test = [], []
    for label in (0, 1):
        members = rng.permutation(rows[y[rows] == label])
        half = len(members) // 2
        train.append(members[:half])
        test.append(members[half:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))

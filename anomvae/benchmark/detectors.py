"""The detectors a benchmark run compares, behind one small interface.

Every anomvae estimator registered in :mod:`anomvae.registry`
takes part under its class name with its defaults, plus the non-default
configurations of :data:`CONFIGURATIONS`, next to six PyOD peers (Zhao et al., "PyOD:
A Python Toolbox for Scalable Outlier Detection", JMLR 2019). Each detector
receives the raw features and does its own preprocessing with its own
defaults; nothing is scaled for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import registry

PEERS = ("PyOD-IForest", "PyOD-ECOD", "PyOD-KNN", "PyOD-VAE", "PyOD-AutoEncoder", "PyOD-DeepSVDD")
"""PyOD detectors in the default line-up, by their benchmark names."""

DEEP_PEERS = frozenset({"PyOD-VAE", "PyOD-AutoEncoder", "PyOD-DeepSVDD"})

CONFIGURATIONS = {
    "AnomalyVAE-reconstruction": ("AnomalyVAE", {"scoring": "reconstruction", "trim_fraction": 0.0}),
    "AnomalyVAE-min-batches-15": ("AnomalyVAE", {"min_batches_per_epoch": 15}),
    "AnomalyVaDE-prior": ("AnomalyVaDE", {"scoring": "prior"}),
}
"""Non-default anomvae configurations in the line-up: name -> (estimator, parameters).

``AnomalyVAE-reconstruction`` is the default of anomvae 0.1 (reconstruction
error alone, untrimmed training loss), kept beside the current default.
``AnomalyVAE-min-batches-15`` trains small tables for at least 15 steps an
epoch (measured as a default and not adopted; ``min_batches_per_epoch``).
``AnomalyVaDE-prior`` scores by the mixture prior's density alone."""


@dataclass(frozen=True)
class Detector:
    """How to build, fit and score one detector.

    Attributes
    ----------
    name : str
        Name in the result tables.
    library : str
        ``"anomvae"`` or ``"pyod"``.
    build : callable
        ``build(n_features, random_state, overrides)`` returns an unfitted
        estimator; ``overrides`` maps the benchmark's option names (only
        ``"epochs"`` so far) to values, and each builder translates them into
        its own parameter names.
    anomaly_score : callable
        ``anomaly_score(fitted, X)``: per-row scores, higher = more anomalous.
    takes_images : bool
        Whether the estimator accepts image batches ``(N, C, H, W)``; the
        others get flattened pixels.
    """

    name: str
    library: str
    build: Callable[[int, int, dict[str, Any]], Any]
    anomaly_score: Callable[[Any, np.ndarray], np.ndarray]
    takes_images: bool = False


def _anomvae_detector(name: str, estimator_class: type, fixed: dict[str, Any] | None = None) -> Detector:
    def build(n_features: int, random_state: int, overrides: dict[str, Any]):
        params = {**(fixed or {}), "random_state": random_state}
        if overrides.get("epochs") is not None:
            params["epochs"] = overrides["epochs"]
        params.update(overrides.get("params", {}).get(name, {}))
        return estimator_class(**params)

    return Detector(name, "anomvae", build, lambda model, X: model.anomaly_score(X), takes_images=True)


def _pyod_detector(name: str) -> Detector:
    def build(n_features: int, random_state: int, overrides: dict[str, Any]):
        epochs = overrides.get("epochs")
        params = dict(overrides.get("params", {}).get(name, {}))
        if name == "PyOD-IForest":
            from pyod.models.iforest import IForest

            return IForest(random_state=random_state, **params)
        if name == "PyOD-ECOD":
            from pyod.models.ecod import ECOD

            return ECOD(**params)
        if name == "PyOD-KNN":
            from pyod.models.knn import KNN

            return KNN(**params)
        if name == "PyOD-VAE":
            from pyod.models.vae import VAE

            if epochs is not None:
                params["epoch_num"] = epochs
            return VAE(random_state=random_state, verbose=0, **params)
        if name == "PyOD-AutoEncoder":
            from pyod.models.auto_encoder import AutoEncoder

            if epochs is not None:
                params["epoch_num"] = epochs
            return AutoEncoder(random_state=random_state, verbose=0, **params)
        if name == "PyOD-DeepSVDD":
            from pyod.models.deep_svdd import DeepSVDD

            if epochs is not None:
                params["epochs"] = epochs
            return DeepSVDD(n_features=n_features, random_state=random_state, verbose=0, **params)
        raise KeyError(name)

    return Detector(name, "pyod", build, lambda model, X: model.decision_function(X))


def available_detectors() -> dict[str, Detector]:
    """Every detector a benchmark can run: all registered anomvae estimators, the
    :data:`CONFIGURATIONS`, then the PyOD peers."""
    estimators = registry.estimators()
    detectors = {name: _anomvae_detector(name, cls) for name, cls in estimators.items()}
    detectors.update({
        name: _anomvae_detector(name, estimators[estimator], params)
        for name, (estimator, params) in CONFIGURATIONS.items()
    })
    detectors.update({name: _pyod_detector(name) for name in PEERS})
    return detectors


def select_detectors(names: str | list[str] | None) -> list[Detector]:
    """Detectors named in ``names`` (comma-separated or a list); ``None`` or ``"all"`` gives all.

    Peers may be named without their ``PyOD-`` prefix (``KNN``).

    Raises
    ------
    ValueError
        Naming the unknown detectors and the known ones.
    """
    known = available_detectors()
    if names is None or names == "all":
        return list(known.values())
    if isinstance(names, str):
        names = [name.strip() for name in names.split(",") if name.strip()]
    chosen, unknown = [], []
    for name in names:
        key = name if name in known else f"PyOD-{name}"
        if key in known:
            if known[key] not in chosen:  # named twice: run once
                chosen.append(known[key])
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(f"unknown detector(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if not chosen:
        raise ValueError(f"no detector named; known: {', '.join(known)}")
    return chosen

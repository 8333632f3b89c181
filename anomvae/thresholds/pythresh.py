"""Unsupervised thresholds from PyThresh (Kulik, https://github.com/KulikDM/pythresh).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .strategy import ThresholdStrategy

PYTHRESH_METHODS = (
    "aucp", "boot", "chau", "clf", "clust", "comb", "cpd", "decomp", "dsn", "dummy", "eb",
    "fgd", "filter", "fwfm", "gamgmm", "gesd", "hist", "iqr", "karch", "mad", "mcst", "meta",
    "mixmod", "moll", "mtt", "ocsvm", "qmcd", "regr", "vae", "wind", "yj", "zscore",
)
"""The thresholders of PyThresh 1.x (module names of ``pythresh.thresholds``).
``clust``, ``cpd`` and ``meta`` need PyThresh's optional extras (pyclustering,
ruptures, scikit-lego)."""


@dataclass(frozen=True, repr=False)
class PyThresh(ThresholdStrategy):
    """Unsupervised threshold from a PyThresh thresholder.

    Wraps the thresholders of PyThresh (Kulik, https://github.com/KulikDM/pythresh),
    which estimate, without labels, where the outliers start in a set of
    scores that contains some. In ``fit`` they see all training scores, like
    :class:`Contamination`. The threshold is the highest score the method
    labels normal below its lowest outlier; the expected rate is the share of
    calibration rows it flags (its contamination estimate).

    Parameters
    ----------
    method : str, default="karch"
        A name from :data:`PYTHRESH_METHODS`, e.g. ``"karch"``, ``"iqr"``, ``"mad"``,
        ``"zscore"``, ``"dsn"``, ``"ocsvm"``.
    options : mapping, default={}
        Keyword arguments of the PyThresh class (e.g. ``{"random_state": 0}``).
    n_bootstrap : int, default=20
        Fewer than the other strategies: some thresholders take seconds per call.
    """

    name: str = "karch"
    options: Mapping[str, Any] = field(default_factory=dict)
    n_bootstrap: int = field(default=20, kw_only=True)
    method: ClassVar[str] = "pythresh"

    def __post_init__(self):
        super().__post_init__()
        if self.name not in PYTHRESH_METHODS:
            raise ValueError(f"unknown PyThresh method {self.name!r}; choose one of {PYTHRESH_METHODS}")
        if not isinstance(self.options, Mapping):
            raise TypeError(f"options must be a mapping, got {type(self.options).__name__}")
        object.__setattr__(self, "options", dict(self.options))

    def _thresholder(self):
        try:
            module = importlib.import_module(f"pythresh.thresholds.{self.name}")
        except ImportError as error:
            raise ImportError(_missing_message(self.name, error)) from error
        return getattr(module, self.name.upper())(**self.options)

    def threshold_value(self, scores):
        if scores.min() == scores.max():  # nothing to separate; PyThresh would divide by zero
            return float(scores.max())
        try:
            labels = np.asarray(self._thresholder().eval(scores)).astype(bool)
        except ModuleNotFoundError as error:  # some thresholders import their extras only here
            raise ImportError(_missing_message(self.name, error)) from error
        if not labels.any():
            return float(scores.max())
        lowest_outlier = scores[labels].min()
        below = scores[~labels & (scores < lowest_outlier)]
        return float(below.max()) if below.size else float(np.nextafter(lowest_outlier, -np.inf))

    def expected_rate(self, scores, value):
        return float(np.mean(scores > value))


def _missing_message(name: str, error: ImportError) -> str:
    return (f"PyThresh method {name!r} could not be imported ({error}); install "
            "pythresh, and for 'clust', 'cpd' or 'meta' its extra dependencies")

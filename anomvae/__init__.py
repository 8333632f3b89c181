"""anomvae: variational-autoencoder anomaly detectors with scikit-learn ergonomics.

>>> from anomvae import AnomalyVAE
>>> detector = AnomalyVAE(random_state=0)          # doctest: +SKIP
>>> detector.fit(X).predict(X_new)                 # doctest: +SKIP
"""

import importlib

from . import registry
from .base import BaseDeepDetector
from .calibration import ThresholdWarning
from .engine import NonFiniteLossError
from .health import TrainingHealthWarning
from .models.advae import AnomalyAdVAE
from .models.cvae import AnomalyCVAE
from .models.tcvae import AnomalyTCVAE
from .models.vae import AnomalyVAE
from .models.vae_gan import AnomalyVAEGAN
from .models.vade import AnomalyVaDE
from .models.vae_svdd import AnomalyVAESVDD
from .monitoring import monitor
from .persistence import ModelFormatError, load
from .version import __version__

_MLFLOW_ATTRIBUTES = {
    "log_model": ("lifecycle.pyfunc", "log_model"),
    "autolog": ("lifecycle.autologging", "autolog"),
    "AutologWarning": ("lifecycle.autologging", "AutologWarning"),
    "tracking": ("lifecycle.tracking", None),
}
"""Reached lazily, so that importing anomvae does not import MLflow: name -> (module, attribute)."""


def __getattr__(name):
    """``anomvae.tracking`` and ``anomvae.log_model``, imported on first use (PEP 562)."""
    if name in _MLFLOW_ATTRIBUTES:
        module_name, attribute = _MLFLOW_ATTRIBUTES[name]
        module = importlib.import_module(f".{module_name}", __name__)
        return getattr(module, attribute) if attribute else module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AnomalyAdVAE",
    "AnomalyCVAE",
    "AnomalyTCVAE",
    "AnomalyVAE",
    "AnomalyVAEGAN",
    "AnomalyVAESVDD",
    "AnomalyVaDE",
    "AutologWarning",
    "BaseDeepDetector",
    "NonFiniteLossError",
    "ThresholdWarning",
    "TrainingHealthWarning",
    "ModelFormatError",
    "__version__",
    "autolog",
    "load",
    "log_model",
    "monitor",
    "registry",
    "tracking",
]

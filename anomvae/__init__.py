"""anomvae: variational-autoencoder anomaly detectors with scikit-learn ergonomics.

>>> from anomvae import AnomalyVAE
>>> detector = AnomalyVAE(random_state=0)          # doctest: +SKIP
>>> detector.fit(X).predict(X_new)                 # doctest: +SKIP
"""

from .base import BaseDeepDetector
from .calibration import ThresholdWarning
from .engine import NonFiniteLossError
from .health import TrainingHealthWarning
from .models.advae import AnomalyAdVAE
from .models.vae import AnomalyVAE
from .models.vae_gan import AnomalyVAEGAN
from .models.vae_svdd import AnomalyVAESVDD
from .monitoring import monitor
from .persistence import load

__version__ = "0.1.0"

_MLFLOW_ATTRIBUTES = {"log_model": "pyfunc", "tracking": None}
"""Reached lazily, so that importing anomvae does not import MLflow."""


def __getattr__(name):
    if name in _MLFLOW_ATTRIBUTES:
        import importlib

        module = importlib.import_module(f".{_MLFLOW_ATTRIBUTES[name] or name}", __name__)
        return getattr(module, name) if _MLFLOW_ATTRIBUTES[name] else module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AnomalyAdVAE",
    "AnomalyVAE",
    "AnomalyVAEGAN",
    "AnomalyVAESVDD",
    "BaseDeepDetector",
    "NonFiniteLossError",
    "ThresholdWarning",
    "TrainingHealthWarning",
    "__version__",
    "load",
    "log_model",
    "monitor",
    "tracking",
]

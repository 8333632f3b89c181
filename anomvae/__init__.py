"""anomvae: variational-autoencoder anomaly detectors with scikit-learn ergonomics.

>>> from anomvae import AnomalyVAE
>>> detector = AnomalyVAE(random_state=0)          # doctest: +SKIP
>>> detector.fit(X).predict(X_new)                 # doctest: +SKIP
"""

from .base import BaseDeepDetector
from .engine import NonFiniteLossError
from .health import TrainingHealthWarning
from .models.advae import AnomalyAdVAE
from .models.vae import AnomalyVAE
from .models.vae_gan import AnomalyVAEGAN
from .models.vae_svdd import AnomalyVAESVDD
from .monitoring import monitor
from .persistence import load

__version__ = "0.1.0"

__all__ = [
    "AnomalyAdVAE",
    "AnomalyVAE",
    "AnomalyVAEGAN",
    "AnomalyVAESVDD",
    "BaseDeepDetector",
    "NonFiniteLossError",
    "TrainingHealthWarning",
    "__version__",
    "load",
    "monitor",
]

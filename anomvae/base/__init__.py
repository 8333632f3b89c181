"""The scikit-learn estimator shared by every anomvae scorer, split by job.

- :mod:`~anomvae.base.estimator`: :class:`BaseDeepDetector`, the outlier
  contract, ``fit`` and scoring;
- :mod:`~anomvae.base.parameters`: the parameters every estimator shares,
  their defaults, constraints and documentation, written once;
- :mod:`~anomvae.base.inputs`: input validation and encoding;
- :mod:`~anomvae.base.threshold_state`: the calibrated threshold, the
  reference scores and :meth:`~BaseDeepDetector.p_values`;
- :mod:`~anomvae.base.saving`: the fitted state written to and read from a
  model file.
"""

from ..thresholds import AUTO_FALSE_ALARM_RATE
from .estimator import BaseDeepDetector
from .inputs import is_image_batch
from .threshold_state import FEATURE_BASELINE_ROWS

__all__ = ["AUTO_FALSE_ALARM_RATE", "FEATURE_BASELINE_ROWS", "BaseDeepDetector", "is_image_batch"]

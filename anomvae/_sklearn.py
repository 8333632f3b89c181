"""The one place where anomvae touches private scikit-learn helpers.

Keeping them here means an upgrade of scikit-learn that moves them breaks
exactly one module.
"""

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval as _Interval
from sklearn.utils._param_validation import StrOptions

__all__ = ["Interval", "StrOptions", "fit_context"]

fit_context = _fit_context


class Interval(_Interval):
    """scikit-learn's ``Interval`` constraint, refusing booleans.

    ``True`` is an ``int`` to Python, but never a count, a size or a rate:
    accepted, ``latent_dim=True`` crashed inside torch after validation.
    """

    def is_satisfied_by(self, val) -> bool:
        """Whether ``val`` is a number (not a boolean) inside the interval."""
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)

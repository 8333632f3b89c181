"""The one place where anomvae touches private scikit-learn helpers.

Keeping them here means an upgrade of scikit-learn that moves them breaks
exactly one module.
"""

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

__all__ = ["Interval", "StrOptions", "fit_context"]

fit_context = _fit_context

"""Alias of :mod:`anomvae.lifecycle.pyfunc` for models logged before the lifecycle package.

The model code copied into those models imports
``anomvae.pyfunc.AnomalyDetectorModel``; this alias keeps them loadable.
New code imports :mod:`anomvae.lifecycle.pyfunc`.
"""

from .lifecycle.pyfunc import AnomalyDetectorModel

__all__ = ["AnomalyDetectorModel"]

"""Estimator classes by name, so that :func:`anomvae.load` can rebuild a saved model.

A model file names its estimator class; :func:`get` turns the name back into
the class. The built-in estimators are listed in :data:`BUILT_IN` by module
and imported on first lookup, so a saved model of any of them loads in a fresh
process whatever was imported before. An estimator of your own is added with
:func:`register`; nothing is registered as a side effect of an import.

>>> from anomvae import registry
>>> registry.get("AnomalyVAE").__name__
'AnomalyVAE'
"""

from __future__ import annotations

import importlib

BUILT_IN: dict[str, str] = {
    "AnomalyAdVAE": "anomvae.models.advae",
    "AnomalyCVAE": "anomvae.models.cvae",
    "AnomalyTCVAE": "anomvae.models.tcvae",
    "AnomalyVAE": "anomvae.models.vae",
    "AnomalyVAEGAN": "anomvae.models.vae_gan",
    "AnomalyVAESVDD": "anomvae.models.vae_svdd",
    "AnomalyVaDE": "anomvae.models.vade",
}
"""The built-in estimators: class name -> module that defines it."""

_REGISTERED: dict[str, type] = {}


def register(estimator_class: type) -> type:
    """Make ``estimator_class`` loadable by :func:`anomvae.load` under its class name.

    Parameters
    ----------
    estimator_class : type
        A subclass of :class:`anomvae.BaseDeepDetector`.

    Returns
    -------
    type
        ``estimator_class``, so that ``register`` can decorate a class.

    Raises
    ------
    TypeError
        If ``estimator_class`` is not an anomvae estimator class.
    ValueError
        If another class is already registered under that name, or the name
        is a built-in estimator's.
    """
    if not isinstance(estimator_class, type) or not callable(getattr(estimator_class, "_make_scorer", None)):
        raise TypeError(f"register takes a BaseDeepDetector subclass, got {estimator_class!r}")
    name = estimator_class.__name__
    if name in BUILT_IN or _REGISTERED.get(name, estimator_class) is not estimator_class:
        raise ValueError(f"an estimator named {name!r} is already registered")
    _REGISTERED[name] = estimator_class
    return estimator_class


def unregister(name: str) -> None:
    """Remove a class added by :func:`register`; built-in names cannot be removed.

    Raises
    ------
    KeyError
        If no class was registered under ``name``.
    """
    del _REGISTERED[name]


def names() -> list[str]:
    """Sorted names of every built-in and registered estimator."""
    return sorted({*BUILT_IN, *_REGISTERED})


def get(name: str) -> type:
    """The estimator class registered under ``name``.

    Raises
    ------
    KeyError
        Naming the unknown class and the known ones.
    """
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in BUILT_IN:
        return getattr(importlib.import_module(BUILT_IN[name]), name)
    raise KeyError(f"unknown estimator class {name!r}; known: {', '.join(names())}")


def estimators() -> dict[str, type]:
    """Every built-in and registered estimator class, by name in sorted order."""
    return {name: get(name) for name in names()}

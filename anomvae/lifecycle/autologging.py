"""``anomvae.autolog()``: log every anomvae ``fit`` to MLflow, as ``mlflow.sklearn.autolog`` does for scikit-learn.

``mlflow.sklearn.autolog()`` patches only the estimators scikit-learn itself
ships, so it does not see anomvae's, and ``mlflow.sklearn.log_model`` would
pickle the detector. With ``anomvae.autolog()`` on, each ``fit`` of an anomvae
estimator logs, into the active run or a new one named
``<Estimator>-<time>``: the parameters, per-epoch losses, threshold and
training metrics, figures and HTML report (:func:`anomvae.lifecycle.tracking.log_training`)
and, with ``log_models``, the model in anomvae's safe format
(:func:`anomvae.log_model`: safetensors, no pickle)::

    import anomvae
    anomvae.autolog()
    anomvae.AnomalyVAE().fit(X)        # one MLflow run with params, metrics, report and model
    anomvae.autolog(disable=True)

Fits made by :func:`anomvae.lifecycle.tracking.fit_and_log`, which logs by itself, and
fits nested in another anomvae fit are not logged twice.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools

from ..base import BaseDeepDetector

_LOGGING = contextvars.ContextVar("anomvae_autolog_active", default=False)
_settings: dict = {}


@contextlib.contextmanager
def suspended():
    """No autologging inside the block (for callers that log a fit themselves)."""
    token = _LOGGING.set(True)
    try:
        yield
    finally:
        _LOGGING.reset(token)


def autolog(*, log_models: bool = True, registered_model_name: str | None = None, disable: bool = False) -> None:
    """Log every anomvae ``fit`` to MLflow (see the module docstring).

    Parameters
    ----------
    log_models : bool, default=True
        Also log the fitted model (:func:`anomvae.log_model`).
    registered_model_name : str, optional
        Register each logged model as a new version of this name (the
        ``champion`` alias moves to it).
    disable : bool, default=False
        Turn autologging off again.
    """
    original = _settings.get("original_fit")
    if disable:
        if original is not None:
            BaseDeepDetector.fit = original
        _settings.clear()
        return
    original = original or BaseDeepDetector.fit
    _settings.update(original_fit=original, log_models=log_models, registered_model_name=registered_model_name)

    @functools.wraps(original)
    def fit(self, X, y=None):
        if _LOGGING.get():
            return original(self, X, y)
        with suspended():
            _log_fit(self, original, X, y)
        return self

    BaseDeepDetector.fit = fit


def _log_fit(detector, fit, X, y) -> None:
    import mlflow

    from . import pyfunc, run_metadata, tracking
    from ._mlflow import use_default_tracking_uri

    use_default_tracking_uri()
    with tracking._run(run_metadata.run_name(detector)) as run:
        run_metadata.tag_experiment_for_training(run.info.experiment_id)
        mlflow.set_tag("anomvae.autolog", "true")
        fit(detector, X, y)
        tracking.log_training(detector, X)
        if _settings.get("log_models"):
            pyfunc.log_model(detector, "model", input_example=X[: pyfunc.EXAMPLE_ROWS],
                             registered_model_name=_settings.get("registered_model_name"))

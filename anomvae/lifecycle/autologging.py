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

The first fit inside an active run logs into it; an active run that already
holds an autologged fit gets each further fit as a child run of its own (a
grid search inside ``mlflow.start_run()``: the first fit in that run, every
other in a child run), so that fits with other parameters never clash in
one run. As in MLflow's own autologging, a failure to log (tracking server,
artifact store) warns (:class:`AutologWarning`), marks a run it opened
FAILED, and never fails the fit; an
unreachable tracking server is retried for minutes first, unless
``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` says otherwise. Fits made by
:func:`anomvae.lifecycle.tracking.fit_and_log`, which logs by itself, and fits
nested in another anomvae fit are not logged twice. The patch lives in the
process that called :func:`autolog`: fits in worker processes
(``GridSearchCV(n_jobs=2)``) are not logged. Inside a scikit-learn
``Pipeline`` only the anomvae step's fit is seen, and the model logged is that
step, which expects the rows the earlier steps produce.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import warnings

from ..base import BaseDeepDetector

AUTOLOG_TAG = "anomvae.autolog"
"""Tag of a run that holds an autologged fit."""


class AutologWarning(UserWarning):
    """An autologged fit could not be logged to MLflow; the fit itself went through."""


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
    if registered_model_name is not None:
        from ._mlflow import check_registered_model_name

        check_registered_model_name(registered_model_name)
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
    users_run = mlflow.active_run()
    failed_run = None
    with contextlib.ExitStack() as stack:
        try:
            run = stack.enter_context(_fit_run(run_metadata.run_name(detector)))
            run_metadata.tag_experiment_for_training(run.info.experiment_id)
            mlflow.set_tag(AUTOLOG_TAG, "true")
        except Exception as error:  # as MLflow's autologging: logging never fails the fit
            _warn(detector, "open a run", error)
            fit(detector, X, y)
            return
        fit(detector, X, y)
        try:
            tracking.log_training(detector, X)
            if _settings.get("log_models"):
                pyfunc.log_model(detector, "model", input_example=X[: pyfunc.EXAMPLE_ROWS],
                                 registered_model_name=_settings.get("registered_model_name"))
        except Exception as error:  # an artifact store that refuses writes, a lost server
            _warn(detector, "log the fit", error)
            if users_run is None or run.info.run_id != users_run.info.run_id:  # never end the user's own run
                failed_run = run.info.run_id
    if failed_run is not None:
        with contextlib.suppress(Exception):  # the store may refuse this too; the warning has been given
            mlflow.MlflowClient().set_terminated(failed_run, status="FAILED")


@contextlib.contextmanager
def _fit_run(run_name: str):
    """The active run, a child run of it when it already holds an autologged fit, or a new run."""
    import mlflow

    from . import tracking

    active = mlflow.active_run()
    if active is not None and mlflow.get_run(active.info.run_id).data.tags.get(AUTOLOG_TAG) == "true":
        with mlflow.start_run(run_name=run_name, nested=True) as child:
            yield child
        return
    with tracking._run(run_name) as run:
        yield run


def _warn(detector, action: str, error: Exception) -> None:
    warnings.warn(f"{type(detector).__name__}: anomvae.autolog could not {action} in MLflow, the fit is not "
                  f"logged there: {error}", AutologWarning, stacklevel=4)

"""The one place where anomvae touches private MLflow helpers.

Keeping them here means an MLflow upgrade that moves them breaks exactly
one module.
"""

from pathlib import Path

import mlflow
from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

__all__ = ["use_default_tracking_uri"]


def use_default_tracking_uri() -> str:
    """Point MLflow at ``sqlite:///<cwd>/mlflow.db`` unless a tracking URI is set.

    Returns
    -------
    str
        The tracking URI in force.
    """
    if not is_tracking_uri_set():
        mlflow.set_tracking_uri(f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    return mlflow.get_tracking_uri()

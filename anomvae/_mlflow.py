"""The one place where anomvae touches private MLflow helpers.

Keeping them here means an MLflow upgrade that moves them breaks exactly
one module.
"""

from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

__all__ = ["is_tracking_uri_set"]

"""The one place where anomvae touches private MLflow helpers.

Keeping them here means an MLflow upgrade that moves them breaks exactly
one module.
"""

from pathlib import Path

import mlflow
from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

__all__ = ["check_alias", "check_registered_model_name", "existing_tracking_uri", "use_default_tracking_uri"]


def check_alias(alias: str) -> None:
    """Refuse an alias the model registry would refuse, before anything is trained or registered.

    Raises
    ------
    ValueError
        For an empty alias, characters MLflow does not allow, or a reserved
        name (``latest``, ``v<number>``).
    """
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_model_alias_name, _validate_model_alias_name_reserved

    try:
        _validate_model_alias_name(alias)
        _validate_model_alias_name_reserved(alias)
    except MlflowException as error:
        raise ValueError(f"alias {alias!r} cannot be used: {error.message}") from None


def check_registered_model_name(name: str) -> None:
    """Refuse a registered model name before anything is trained, logged or registered.

    Raises
    ------
    ValueError
        For an empty name, one MLflow's registry refuses (``/``, ``:``, a
        path that is not unique), or one holding ``@``, which ``models:/``
        URIs read as the start of an alias (``models:/card@eu`` is version
        alias ``eu`` of ``card``).
    """
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_model_name

    if not isinstance(name, str):
        raise TypeError(f"registered model name must be a str, not {type(name).__name__}")
    if "@" in name:
        raise ValueError(f"registered model name {name!r} cannot be used: '@' starts an alias in models:/ URIs")
    try:
        _validate_model_name(name)
    except MlflowException as error:
        raise ValueError(f"registered model name {name!r} cannot be used: {error.message}") from None


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


def existing_tracking_uri() -> str:
    """The tracking URI in force, without creating a store that is not there.

    Unlike :func:`use_default_tracking_uri`, a missing ``mlflow.db`` in the
    working directory is an error: reading the registry of a store created
    empty a moment ago can only report that nothing is there.

    Raises
    ------
    ValueError
        When no tracking URI is set and the working directory has no ``mlflow.db``.
    """
    if not is_tracking_uri_set() and not (Path.cwd() / "mlflow.db").is_file():
        raise ValueError(
            f"no MLflow tracking store: MLFLOW_TRACKING_URI is not set and {Path.cwd()} has no mlflow.db "
            "(set MLFLOW_TRACKING_URI, or run from the folder that holds mlflow.db)"
        )
    return use_default_tracking_uri()

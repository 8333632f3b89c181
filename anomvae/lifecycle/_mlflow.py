"""The one place where anomvae touches private MLflow helpers.

Keeping them here means an MLflow upgrade that moves them breaks exactly
one module.
"""

import contextlib
import unicodedata
from pathlib import Path

import mlflow
from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

__all__ = [
    "check_alias",
    "check_registered_model_name",
    "default_experiment_id",
    "existing_tracking_uri",
    "filter_literal",
    "latest_version",
    "registered_version",
    "resumed_run",
    "use_default_tracking_uri",
]


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
        path that is not unique), or one that ``models:/`` URIs cannot carry:
        ``@`` starts an alias (``models:/card@eu`` is alias ``eu`` of
        ``card``), ``?`` a query, and control characters (a newline) are
        dropped.
    TypeError
        For a name that is not a str.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_model_name

    if not isinstance(name, str):
        raise TypeError(f"registered model name must be a str, not {type(name).__name__}")
    for character, role in (("@", "starts an alias"), ("?", "starts a query")):
        if character in name:
            raise ValueError(f"registered model name {name!r} cannot be used: {character!r} {role} in models:/ URIs")
    if any(unicodedata.category(character) == "Cc" for character in name):
        raise ValueError(f"registered model name {name!r} cannot be used: it holds a control character, which "
                         "models:/ URIs drop")
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
    uri = use_default_tracking_uri()
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ValueError(f"no MLflow tracking store: the tracking URI {uri} names a SQLite file that does not exist")
    return uri


def default_experiment_id() -> str:
    """The experiment a new run would go to: the active one, else MLflow's default."""
    from mlflow.tracking.fluent import _get_experiment_id

    return _get_experiment_id()


@contextlib.contextmanager
def resumed_run(run_id: str):
    """Resume run ``run_id`` (nested when a run is active) whatever experiment is active.

    MLflow refuses to resume a run of another experiment than the one set by
    ``mlflow.set_experiment``; the check is lifted for this run only, and the
    active experiment is set back afterwards.
    """
    from mlflow.tracking import fluent

    active_experiment = fluent._active_experiment_id
    fluent._active_experiment_id = None
    try:
        run = mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None)
    finally:
        fluent._active_experiment_id = active_experiment
    with run:
        yield run


def filter_literal(value: str) -> str | None:
    """``value`` as a string literal of an MLflow search filter; None when it holds both kinds of quote."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


def latest_version(client, model_name: str):
    """The highest-numbered version of registered model ``model_name``, or None when it has none."""
    literal = filter_literal(model_name)
    if literal is None:  # both quotes: match them with LIKE's one-character wildcard, keep exact names below
        literal = "'" + "".join("_" if character in "'\"%_" else character for character in model_name) + "'"
        found = client.search_model_versions(f"name LIKE {literal}")
    else:
        found = client.search_model_versions(f"name = {literal}")
    versions = [candidate for candidate in found if candidate.name == model_name]
    return max(versions, key=lambda candidate: int(candidate.version), default=None)


def registered_version(model_uri: str) -> tuple[str, str] | None:
    """The registered model name and version a ``models:/`` URI names now (alias or ``latest`` resolved).

    None for other sources, logged-model ids, stages, and URIs the registry
    cannot resolve (loading the model then reports why).
    """
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.utils.models import _parse_model_uri

    if not model_uri.startswith("models:/"):
        return None
    try:
        parsed = _parse_model_uri(model_uri)
        if parsed.name is None or parsed.stage is not None:
            return None
        if parsed.version is not None:
            return parsed.name, str(parsed.version)
        client = mlflow.MlflowClient()
        if parsed.alias is not None:
            return parsed.name, str(client.get_model_version_by_alias(parsed.name, parsed.alias).version)
        latest = latest_version(client, parsed.name)
        return None if latest is None else (parsed.name, str(latest.version))
    except MlflowException:
        return None

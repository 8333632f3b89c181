"""What a logged model needs to be rebuilt on another machine.

A model logged by :func:`anomvae.log_model` carries the wheel of the anomvae
it was logged with and a ``requirements.txt`` that installs that wheel and
pins every runtime dependency to the version it was logged with, so that
``pip install -r requirements.txt`` (or ``mlflow models serve`` with the
``virtualenv``/``uv`` environment managers, or ``mlflow models
build-docker``) works on a machine that reaches only the package indexes.
This is what :func:`mlflow.models.add_libraries_to_model` does for every
dependency; here only anomvae itself, which no index carries, travels as a
wheel.

The wheel is written from the imported package's files, so the same code
works for editable installs, source checkouts and wheel installs, without a
build backend at logging time.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import re
import zipfile
from pathlib import Path

import anomvae

DISTRIBUTION = "anomvae"
PACKAGE_FILES = ("*.py", "py.typed")
_EXCLUDED_PARTS = {"__pycache__"}


def runtime_dependencies() -> list[str]:
    """Names of anomvae's required (not optional) dependencies, from its metadata."""
    names = []
    for requirement in importlib.metadata.requires(DISTRIBUTION) or []:
        if "extra ==" in requirement:
            continue
        names.append(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0])
    return names


def installed_version(name: str) -> str:
    """The installed version of distribution ``name``, without a local label (``2.13.0+cpu`` -> ``2.13.0``)."""
    return importlib.metadata.version(name).split("+")[0]


def pinned_requirements(extra: tuple[str, ...] = ()) -> list[str]:
    """``name==version`` for anomvae's runtime dependencies and ``extra``, as installed here.

    The local label of a version is dropped, so a CPU build of torch pins the
    public release (``torch==2.13.0``): pip then installs the build that
    fits the target machine.
    """
    return [f"{name}=={installed_version(name)}" for name in (*runtime_dependencies(), *extra)]


def build_wheel(folder: str | Path) -> Path:
    """Write a wheel of the imported anomvae into ``folder``.

    The wheel holds the package's Python files and metadata declaring the
    same dependencies as the installed distribution (PEP 427 layout, with a
    RECORD of SHA-256 digests), so pip installs it like one built by
    setuptools.

    Returns
    -------
    Path
        The wheel file, ``anomvae-<version>-py3-none-any.whl``.
    """
    version = anomvae.__version__
    package = Path(anomvae.__file__).parent
    dist_info = f"{DISTRIBUTION}-{version}.dist-info"
    files = {
        f"{DISTRIBUTION}/{path.relative_to(package).as_posix()}": path.read_bytes()
        for pattern in PACKAGE_FILES
        for path in sorted(package.rglob(pattern))
        if not _EXCLUDED_PARTS & set(path.relative_to(package).parts)
    }
    files[f"{dist_info}/METADATA"] = _metadata(version).encode()
    files[f"{dist_info}/WHEEL"] = (
        "Wheel-Version: 1.0\nGenerator: anomvae.lifecycle.packaging\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    ).encode()
    files[f"{dist_info}/entry_points.txt"] = b"[console_scripts]\nanomvae = anomvae.cli:main\n"
    record = [f"{name},sha256={_digest(data)},{len(data)}" for name, data in files.items()]
    files[f"{dist_info}/RECORD"] = ("\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n").encode()
    path = Path(folder) / f"{DISTRIBUTION}-{version}-py3-none-any.whl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files.items():
            # A fixed date keeps the wheel byte-identical for identical sources.
            wheel.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data,
                           compress_type=zipfile.ZIP_DEFLATED)
    return path


def _metadata(version: str) -> str:
    installed = importlib.metadata.metadata(DISTRIBUTION)
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {DISTRIBUTION}",
        f"Version: {version}",
        f"Summary: {installed.get('Summary', '')}",
        f"Requires-Python: {installed.get('Requires-Python', '>=3.10')}",
    ]
    lines += [f"Requires-Dist: {requirement}" for requirement in importlib.metadata.requires(DISTRIBUTION) or []
              if "extra ==" not in requirement]
    return "\n".join(lines) + "\n"


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

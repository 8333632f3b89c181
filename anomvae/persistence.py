"""Saving and loading fitted estimators without pickle.

A model is one `safetensors <https://github.com/huggingface/safetensors>`_
file: the scorer's ``state_dict`` as tensors, and in the file's metadata a
JSON document with the format version, the estimator class, its parameters,
its fitted attributes and a SHA-256 digest of the tensors. Loading parses
JSON and raw tensor bytes only, so a model file cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from sklearn.utils.validation import check_is_fitted

from . import registry
from .device import resolve_device
from .inference import prepare_for_inference
from .thresholds import ThresholdStrategy, strategy_from_dict
from .version import __version__

FORMAT_VERSION = 2
"""Bumped whenever the layout changes; :func:`load` reads every version up to it.

2: the ``threshold`` parameter (a strategy, marked by :data:`THRESHOLD_KEY`) and
the fitted ``threshold_``, ``reference_scores_`` and ``reference_source_``."""

METADATA_KEY = "anomvae"


class ModelFormatError(ValueError):
    """A model file is not an anomvae model, is damaged, or is of an unknown version."""


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over tensor names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


THRESHOLD_KEY = "anomvae.threshold_strategy"
"""Marks a saved ``threshold`` parameter (a strategy from :mod:`anomvae.thresholds`)."""


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON values; a RandomState instance cannot be saved and becomes None."""
    converted = {}
    for name, value in params.items():
        if isinstance(value, ThresholdStrategy):
            value = {THRESHOLD_KEY: value.to_dict()}
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, torch.device):
            value = str(value)
        elif value is not None and not isinstance(value, (str, int, float, bool, list, dict)):
            value = None
        converted[name] = value
    return converted


def _python_params(params: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`_json_params` for the values it can restore."""
    return {
        name: strategy_from_dict(value[THRESHOLD_KEY])
        if isinstance(value, dict) and THRESHOLD_KEY in value else value
        for name, value in params.items()
    }


def save(estimator, path: str | os.PathLike) -> None:
    """Write a fitted anomvae estimator to ``path``.

    Parameters
    ----------
    estimator : BaseDeepDetector
        A fitted estimator.
    path : str or path-like
        Destination file; by convention it ends in ``.safetensors``.
    """
    check_is_fitted(estimator)
    tensors = {
        name: value.detach().to("cpu", torch.float32).contiguous()
        for name, value in estimator.scorer_.state_dict().items()
    }
    document = {
        "format_version": FORMAT_VERSION,
        "anomvae_version": __version__,
        "estimator": type(estimator).__name__,
        "params": _json_params(estimator.get_params(deep=False)),
        "fitted": estimator._fitted_state(),
        "sha256": tensor_digest(tensors),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(document)})


def read_document(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read and check a model file; return its JSON document and its tensors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ModelFormatError(f"{path} is not a readable anomvae model file: {error}") from error
    if METADATA_KEY not in metadata:
        raise ModelFormatError(f"{path} is a safetensors file but not an anomvae model")
    try:
        document = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as error:
        raise ModelFormatError(f"{path}: the model description is not valid JSON ({error})") from error
    version = document.get("format_version")
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise ModelFormatError(
            f"{path} has model format version {version!r}; this anomvae reads versions 1 to "
            f"{FORMAT_VERSION}: upgrade anomvae to load it"
        )
    if tensor_digest(tensors) != document.get("sha256"):
        raise ModelFormatError(
            f"{path}: the weights do not match the checksum recorded at save time; "
            "the file was modified or damaged"
        )
    return document, tensors


def load(path: str | os.PathLike, device: str = "auto"):
    """Load a model written by :meth:`BaseDeepDetector.save`.

    Parameters
    ----------
    path : str or path-like
    device : str, default="auto"
        Where to put the weights: ``"auto"`` uses CUDA when available, else the
        CPU, whatever device the model was trained on.

    Returns
    -------
    BaseDeepDetector
        The fitted estimator.

    Raises
    ------
    ModelFormatError
        For a damaged, tampered, foreign or too-new file.
    """
    document, tensors = read_document(path)
    try:
        estimator_class = registry.get(document.get("estimator"))
    except KeyError as error:
        raise ModelFormatError(
            f"{path}: {error.args[0]}; register a class of your own with anomvae.registry.register "
            "before loading"
        ) from error
    try:
        estimator = estimator_class(**_python_params(document["params"]))
        state = document["fitted"]
        scorer = estimator._make_scorer(tuple(state["input_shape_"]), state["is_image_"])
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ModelFormatError(
            f"{path}: the model description is incomplete or invalid ({type(error).__name__}: {error})"
        ) from error
    try:
        scorer.load_state_dict(tensors)
    except RuntimeError as error:
        raise ModelFormatError(f"{path}: the weights do not fit the model described: {error}") from error
    try:
        estimator._restore_fitted_state(state, prepare_for_inference(scorer, resolve_device(device)))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ModelFormatError(
            f"{path}: the fitted state in the model description is incomplete or invalid "
            f"({type(error).__name__}: {error})"
        ) from error
    return estimator

"""Saving and loading fitted estimators without pickle.

A model is one `safetensors <https://github.com/huggingface/safetensors>`_
file: the scorer's ``state_dict`` as tensors, and in the file's metadata a
JSON document with the format version, the estimator class, its parameters,
its fitted attributes, a SHA-256 digest of the tensors and one of the
description itself. Loading parses JSON and raw tensor bytes only, so a model
file cannot run code.

Loading checks before it allocates: the network the description asks for is
first built on PyTorch's ``meta`` device (shapes only, no memory), and only
when every weight shape equals a tensor stored in the file is it built for
real. So what a file can make :func:`load` allocate is bounded by what the
file holds: its tensors, its JSON, and one network of at most twice the size
of its tensors (see :func:`_check_shapes`). Anything wrong in the description, however crafted, is a
:class:`ModelFormatError`.

The digests are checksums against damage and casual edits, not signatures:
whoever can write the file can recompute them. Load models from sources you
trust.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from sklearn.utils.validation import check_is_fitted

from . import registry
from .device import resolve_device
from .inference import prepare_for_inference
from .python_values import python_scalars
from .rng import untouched_global_rng
from .thresholds import ThresholdStrategy, strategy_from_dict
from .version import __version__

FORMAT_VERSION = 3
"""Bumped whenever the layout changes; :func:`load` reads every version up to it.

2: the ``threshold`` parameter (a strategy, marked by :data:`THRESHOLD_KEY`) and
the fitted ``threshold_``, ``reference_scores_`` and ``reference_source_``.
3: ``description_sha256``, a digest of the description (see
:func:`description_digest`), checked at load."""

DESCRIPTION_DIGEST_KEY = "description_sha256"

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


def description_digest(document: dict[str, Any]) -> str:
    """SHA-256 of the description's canonical JSON, its own digest left out.

    The description holds the tensors' digest, so this one covers the whole file.
    """
    body = {key: value for key, value in document.items() if key != DESCRIPTION_DIGEST_KEY}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


THRESHOLD_KEY = "anomvae.threshold_strategy"
"""Marks a saved ``threshold`` parameter (a strategy from :mod:`anomvae.thresholds`)."""

DICT_ITEMS_KEY = "anomvae.dict_items"
"""Marks a saved dict parameter with keys JSON cannot keep (``cyclic={0: 24}``), written as key-value pairs."""


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON values; a RandomState instance cannot be saved and becomes None."""
    return {name: _json_value(value) for name, value in params.items()}


def _json_value(value: Any) -> Any:
    """``value`` as JSON: numpy scalars as Python numbers at any depth (:func:`python_scalars`), tuples as lists."""
    if isinstance(value, ThresholdStrategy):
        return {THRESHOLD_KEY: value.to_dict()}
    if isinstance(value, np.generic):
        return python_scalars(value)
    if isinstance(value, (tuple, list)):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        if all(isinstance(key, str) for key in value):
            return {key: _json_value(item) for key, item in value.items()}
        return {DICT_ITEMS_KEY: [[_json_value(key), _json_value(item)] for key, item in value.items()]}
    if isinstance(value, torch.device):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return None


def _python_params(params: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`_json_params` for the values it can restore."""
    return {name: _python_value(value) for name, value in params.items()}


def _python_value(value: Any) -> Any:
    """Inverse of :func:`_json_value` for a threshold strategy and a dict with non-text keys."""
    if isinstance(value, dict) and THRESHOLD_KEY in value:
        return strategy_from_dict(value[THRESHOLD_KEY])
    if isinstance(value, dict) and DICT_ITEMS_KEY in value:
        return {key: item for key, item in value[DICT_ITEMS_KEY]}
    return value


def save(estimator, path: str | os.PathLike) -> None:
    """Write a fitted anomvae estimator to ``path``.

    Parameters
    ----------
    estimator : BaseDeepDetector
        A fitted estimator.
    path : str or path-like
        Destination file; by convention it ends in ``.safetensors``. Missing
        parent folders are created; an existing file is replaced.

    Raises
    ------
    IsADirectoryError
        When ``path`` is an existing folder.
    """
    check_is_fitted(estimator)
    if Path(path).is_dir():
        raise IsADirectoryError(f"cannot save to {path}: it is a folder; name a file, e.g. {Path(path) / 'model.safetensors'}")
    # Floating-point weights as float32; integer buffers (AnomalyCVAE's context keys) keep their type:
    # as float32, keys beyond 2**24 were rounded and their contexts lost their score factor on load.
    tensors = {
        name: (value.detach().to("cpu", torch.float32) if value.is_floating_point() else value.detach().cpu())
        .contiguous()
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
    document[DESCRIPTION_DIGEST_KEY] = description_digest(document)
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
    except (json.JSONDecodeError, RecursionError, ValueError) as error:
        raise ModelFormatError(
            f"{path}: the model description is not valid JSON ({type(error).__name__}: {str(error)[:200]})"
        ) from error
    if not isinstance(document, dict):
        raise ModelFormatError(f"{path}: the model description is not a JSON object")
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
    if version >= 3 and description_digest(document) != document.get(DESCRIPTION_DIGEST_KEY):
        raise ModelFormatError(
            f"{path}: the model description does not match the checksum recorded at save time; "
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
    target = resolve_device(device)
    name = document.get("estimator")
    try:
        if not isinstance(name, str):
            raise KeyError(f"the estimator name {str(name)[:100]!r} is not a string")
        estimator_class = registry.get(name)
    except KeyError as error:
        raise ModelFormatError(
            f"{path}: {error.args[0]}; register a class of your own with anomvae.registry.register "
            "before loading"
        ) from error
    try:
        estimator = estimator_class(**_python_params(document["params"]))
        state = document["fitted"]
        build = _scorer_builder(estimator, state)
        with torch.device("meta"):
            _check_shapes(build(), tensors)
        with untouched_global_rng():
            scorer = build()
        scorer.load_state_dict(tensors)
        estimator._restore_fitted_state(state, prepare_for_inference(scorer, target))
        estimator._note_built_parameters()
    except ModelFormatError as error:
        raise ModelFormatError(f"{path}: {error}") from error
    except Exception as error:  # anything a crafted description provokes is a format error
        raise ModelFormatError(
            f"{path}: the model description is incomplete or invalid "
            f"({type(error).__name__}: {str(error)[:300]})"
        ) from error
    return estimator


def _scorer_builder(estimator, state: dict[str, Any]):
    """A function building the untrained scorer the description asks for."""
    input_shape = tuple(int(size) for size in state["input_shape_"])
    image = state["is_image_"]
    if not isinstance(image, bool) or not 1 <= len(input_shape) <= 3:
        raise ModelFormatError(f"the fitted input shape {input_shape} or is_image_ {image!r} is invalid")
    return lambda: estimator._make_scorer(input_shape, image)


def _check_shapes(scorer: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Refuse a description whose network's weights differ from the file's tensors.

    Every tensor of the file must have the shape the description gives it. A
    buffer built empty (a dimension of 0, e.g. the reference codes of the
    ``"reconstruction+knn"`` rule, sized by the training data) takes its size
    from the file. Older files lack a few small buffers that the scorers fill
    in when loading; the described tensors absent from the file may hold at
    most as many values as the file's tensors, so building the described
    network allocates at most twice what the file holds.
    """
    expected = {name: tuple(value.shape) for name, value in scorer.state_dict().items()}
    stored = {name: tuple(value.shape) for name, value in tensors.items()}
    different = sorted(name for name in stored if not _fits(expected.get(name), stored[name]))
    absent = sum(math.prod(shape) for name, shape in expected.items() if name not in stored)
    if different or absent > sum(math.prod(shape) for shape in stored.values()):
        shown = different[:3] or sorted(set(expected) - set(stored))[:3]
        raise ModelFormatError(
            "the weights do not fit the model described (e.g. "
            + ", ".join(f"{name}: {expected.get(name)} described, {stored.get(name)} stored" for name in shown)
            + ")"
        )


def _fits(described: tuple[int, ...] | None, stored: tuple[int, ...]) -> bool:
    if described is None or described == stored:
        return described == stored
    return len(described) == len(stored) and 0 in described and all(
        d in (0, s) for d, s in zip(described, stored)
    )

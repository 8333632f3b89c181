"""The YAML configuration of ``anomvae train``: its sections, their defaults, and its validation."""

from __future__ import annotations

from typing import Any

import yaml

DEFAULT_CONFIG: dict[str, Any] = {
    "model": {"name": "AnomalyVAE", "params": {"random_state": 0}},
    "data": {"source": "embedded", "label_column": None, "drop_columns": []},
    "output": "runs/model.safetensors",
    "tracking": {"enabled": True, "experiment": "anomvae", "registered_model_name": "anomvae", "alias": "champion",
                 "run_name": None},
}


def load_config(path: str | None) -> dict[str, Any]:
    """The default configuration, updated section by section from a YAML file."""
    config = {key: dict(value) if isinstance(value, dict) else value for key, value in DEFAULT_CONFIG.items()}
    if path is None:
        return config
    with open(path) as handle:
        try:
            loaded = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            raise ValueError(f"{path}: not valid YAML: {error}") from None
    if loaded is None:  # an empty file: the defaults
        loaded = {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: the configuration must be a mapping of sections {sorted(DEFAULT_CONFIG)}, "
                         f"got a {type(loaded).__name__}")
    unknown = set(loaded) - set(DEFAULT_CONFIG)
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {sorted(unknown)}; expected {sorted(DEFAULT_CONFIG)}")
    for key, value in loaded.items():
        if isinstance(config[key], dict):
            if not isinstance(value, dict):
                raise ValueError(f"{path}: section {key!r} must be a mapping, got {type(value).__name__}")
            misspelt = set(value) - set(config[key])
            if misspelt:
                raise ValueError(f"{path}: unknown key(s) {sorted(misspelt)} in section {key!r}; "
                                 f"expected {sorted(config[key])}")
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config

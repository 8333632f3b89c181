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
            mark = getattr(error, "problem_mark", None)
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            problem = getattr(error, "problem", None) or " ".join(str(error).split())
            raise ValueError(f"{path}: not valid YAML: {problem}{where}") from None
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
            if key == "model" and "params" in value and not isinstance(value["params"], dict):
                raise ValueError(f"{path}: model.params must be a mapping of parameter names to values, got "
                                 f"{value['params']!r}")
            merged = {**config[key], **value}
            if key == "model":  # given params add to the defaults (the seed among them), not replace them
                merged["params"] = {**config[key]["params"], **(value.get("params") or {})}
            config[key] = merged
        else:
            config[key] = value
    _check_types(config, path)
    return config


def _check_types(config: dict[str, Any], path: str) -> None:
    """Refuse values of the wrong type, naming the key, before they fail deep inside a command."""
    expected = [("output", config["output"], str), ("data.source", config["data"]["source"], str),
                ("tracking.enabled", config["tracking"]["enabled"], bool)]
    for key, value, kind in expected:
        if not isinstance(value, kind):
            shown = "true or false" if kind is bool else "a path"
            raise ValueError(f"{path}: {key} must be {shown}, got {value!r}")

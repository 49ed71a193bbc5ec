"""YAML configs validated with pydantic, ``--set a.b=value`` overrides, clear errors."""
from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from autonba.errors import AutonbaError

M = TypeVar("M", bound=BaseModel)


def format_validation_error(e: ValidationError) -> str:
    """One line per problem: the dotted field name and pydantic's message (which lists allowed values)."""
    parts = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"field '{loc}': {msg}")
    return "; ".join(parts)


def load_yaml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """A YAML file holding a mapping (empty file: {}), with clear errors."""
    p = Path(path)
    if not p.is_file():
        raise AutonbaError(f"{what} file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise AutonbaError(f"{what} file {p} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AutonbaError(f"{what} file {p} must hold a mapping at the top level, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (value parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise AutonbaError(f"--set expects KEY=VALUE with a dotted key (e.g. engine_options.steps=500), got '{item}'")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise AutonbaError(f"--set {key}: '{p}' is not a section")
            node = nxt
        node[parts[-1]] = value
    return data


def validate(model: type[M], data: Any, where: str = "config") -> M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise AutonbaError(f"{where}: {format_validation_error(e)}") from None


def dump_yaml(model: BaseModel, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False))


def shipped_names(folder: Path) -> list[str]:
    """Names of the YAML files shipped in a folder (without the suffix)."""
    return sorted(p.stem for p in folder.glob("*.yaml"))


def load_model_yaml(name_or_path: str | Path, shipped: Path, model: type[M], what: str) -> M:
    """A shipped YAML by name (``shipped/<name>.yaml``) or any YAML file by path, validated as ``model``."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") or path.exists()):
        path = shipped / f"{name_or_path}.yaml"
        if not path.exists():
            names = ", ".join(shipped_names(shipped))
            raise AutonbaError(f"unknown {what} '{name_or_path}'; allowed: {names} or a path to a {what} YAML file")
    return validate(model, load_yaml(path, what), f"{what} file {path}")

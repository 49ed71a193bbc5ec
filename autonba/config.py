"""YAML configs validated with pydantic, ``--set a.b=value`` overrides, clear errors."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from autonba.errors import AutonbaError

M = TypeVar("M", bound=BaseModel)


def format_validation_error(e: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One line per problem: the dotted field name and pydantic's message (which lists allowed values);
    an unknown field lists the allowed ones where ``model`` tells them."""
    parts = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            allowed = _fields_at(model, err["loc"][:-1]) if model else None
            msg = "unknown field" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        parts.append(f"field '{loc}': {msg}")
    return "; ".join(parts)


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """The field names of the (sub)model at ``loc`` inside ``model`` (None if not a model)."""
    for key in loc:
        field = model.model_fields.get(str(key))
        sub = field.annotation if field else None
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            return None
        model = sub
    return list(model.model_fields)


def non_finite(data: Any, where: str = "") -> str | None:
    """The dotted path of the first NaN or infinite number inside nested mappings and lists (None if none)."""
    if isinstance(data, float) and not math.isfinite(data):
        return where or "(top level)"
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, (list, tuple)) else ()
    for k, v in items:
        found = non_finite(v, f"{where}.{k}" if where else str(k))
        if found:
            return found
    return None


def check_finite(data: Any, where: str) -> None:
    """An error naming the field if ``data`` holds a NaN or infinite number."""
    bad = non_finite(data)
    if bad:
        raise AutonbaError(f"{where}: field '{bad}' must be a finite number")


def load_yaml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """A YAML file holding a mapping (empty file: {}), with clear errors."""
    p = Path(path)
    if not p.is_file():
        raise AutonbaError(f"{what} file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise AutonbaError(f"{what} file {p} is not valid YAML: {_yaml_problem(e)}") from None
    except UnicodeDecodeError:
        raise AutonbaError(f"{what} file {p} is not UTF-8 text") from None
    except RecursionError:
        raise AutonbaError(f"{what} file {p} is nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise AutonbaError(f"{what} file {p} must hold a mapping at the top level, got {type(data).__name__}")
    return data


def _yaml_problem(e: yaml.YAMLError) -> str:
    """PyYAML's error in one line: what is wrong, at which line and column."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def parse_value(raw: str) -> Any:
    """A command-line value read as YAML (``8``, ``.inf``, ``[2, 3]``), or the text itself if it is not YAML."""
    try:
        return yaml.safe_load(raw)
    except (yaml.YAMLError, RecursionError):
        return raw


def set_dotted(data: dict[str, Any], key: str, value: Any, where: str = "--set") -> None:
    """``data[a][b] = value`` for the dotted key ``a.b``, sections created as needed, in place."""
    node = data
    parts = key.strip().split(".")
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise AutonbaError(f"{where} {key}: '{p}' is not a section")
        node = nxt
    node[parts[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` overrides (value parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise AutonbaError("--set expects KEY=VALUE with a dotted key (e.g. engine_options.steps=500), "
                               f"got '{item}'")
        set_dotted(data, key, parse_value(raw))
    return data


def validate(model: type[M], data: Any, where: str = "config") -> M:
    """``data`` as ``model``; any problem (a NaN or infinite number included) is one clear error."""
    check_finite(data, where)
    try:
        out = model.model_validate(data)
    except ValidationError as e:
        raise AutonbaError(f"{where}: {format_validation_error(e, model)}") from None
    check_finite(out.model_dump(), where)  # e.g. the string 'inf' read as a float
    return out


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

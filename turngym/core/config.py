"""Config loading: pydantic models from YAML files, every field overridable as ``--set a.b=1``.

    cfg = load_config(EvalConfig, "eval.yaml", overrides=["agent.temperature=0.7", "concurrency=4"])

An override's value is read as YAML (``1`` is an int, ``0.7`` a float, ``true`` a bool, ``[1, 2]``
a list, ``null`` None; anything else a string). The model validates once, after every override is
applied; a field that does not validate raises ``ConfigError`` naming the field, the value and the
fix. ``dump_config`` writes the resolved config back as YAML (what a run directory keeps).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from turngym.core.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

__all__ = ["apply_overrides", "dump_config", "load_config", "parse_override", "read_yaml", "validate_config"]


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=1"`` -> ``(["a", "b"], 1)``."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {text!r} is not KEY=VALUE: write it as a.b=1 (dotted key, '=', a YAML value)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not YAML: keep the text as it was typed
    return key.split("."), value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A deep copy of ``data`` with each ``a.b=value`` override set (missing levels are created).
    A number indexes a list: ``suite.envs.0.max_turns=5``."""
    out = copy.deepcopy(dict(data))
    for text in overrides:
        path, value = parse_override(text)
        node: Any = out
        for i, part in enumerate(path):
            last = i == len(path) - 1
            where = ".".join(path[:i]) or "the config"
            if isinstance(node, dict):
                if last:
                    node[part] = value
                    continue
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            else:
                kind = f"a list of {len(node)}" if isinstance(node, list) else repr(node)
                raise ConfigError(f"override {text!r}: {where} is {kind}, so it has no key {part!r}")
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file holding a mapping."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {str(p)!r} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(p)!r} must hold a mapping (key: value lines), got {type(data).__name__}")
    return data


def load_config(
    model: type[M],
    path: str | Path | None = None,
    *,
    base: Mapping[str, Any] | None = None,
    overrides: Iterable[str] = (),
) -> M:
    """Validate ``model`` from ``base``, updated by the YAML file at ``path``, then by ``overrides``."""
    data: dict[str, Any] = copy.deepcopy(dict(base or {}))
    if path is not None:
        data = _deep_merge(data, read_yaml(path))
    data = apply_overrides(data, overrides)
    return validate_config(model, data, source=str(path) if path is not None else "the command line")


def validate_config(model: type[M], data: Mapping[str, Any], *, source: str = "the config") -> M:
    """``model.model_validate(data)``, with a ``ConfigError`` that names each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(_problem(err) for err in e.errors())
        raise ConfigError(
            f"{model.__name__} from {source} does not validate: {problems}. "
            "Fix the value in the YAML file or with --set KEY=VALUE."
        ) from None


def _problem(err: Any) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{where}: no such setting (check the spelling)"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{where}: {msg} (got {_short(err.get('input'))})"


def dump_config(cfg: BaseModel) -> str:
    """The resolved config as YAML (JSON-mode values, keys in declaration order)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def _deep_merge(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

"""Config loading: pydantic models from YAML files, every field overridable as ``--set a.b=1``.

    cfg = load_config(EvalConfig, "eval.yaml", overrides=["agent.temperature=0.7", "concurrency=4"])

An override's value is read as YAML (``1`` is an int, ``0.7`` a float, ``true`` a bool, ``[1, 2]``
a list, ``null`` None; anything else a string). The model validates once, after every override is
applied; a field that does not validate raises ``ConfigError`` naming the field, the value and the
fix. ``dump_config`` writes the resolved config back as YAML (what a run directory keeps).
"""

from __future__ import annotations

import collections.abc
import copy
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from turngym.core.errors import ConfigError, did_you_mean

M = TypeVar("M", bound=BaseModel)

__all__ = [
    "MISSING",
    "apply_overrides",
    "config_diff",
    "describe_change",
    "dump_config",
    "load_config",
    "parse_override",
    "read_yaml",
    "validate_config",
]


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


def validate_config(
    model: type[M],
    data: Mapping[str, Any],
    *,
    source: str = "the config",
    fix: str | None = None,
    origin: Callable[[str], str | None] | None = None,
) -> M:
    """``model.model_validate(data)``, with a ``ConfigError`` that names each bad field.

    ``source`` names where ``data`` came from (``suite file 'x.yaml'``); ``fix`` replaces the closing advice
    (default: fix it in the YAML file or with ``--set``); ``origin(dotted key)`` may name where one value came
    from (``--episodes``), shown after the key."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(_problem(err, model, origin) for err in e.errors())
        if fix is None:
            raise ConfigError(
                f"{model.__name__} from {source} does not validate: {problems}. "
                "Fix the value in the YAML file or with --set KEY=VALUE."
            ) from None
        raise ConfigError(f"{source} does not validate: {problems}. {fix}") from None


def _problem(err: Any, model: type[BaseModel], origin: Callable[[str], str | None] | None = None) -> str:
    loc, owner = _readable_loc(model, err["loc"])
    where = ".".join(loc) or "(top level)"
    came = origin(where) if origin is not None and loc else None
    if came:
        where = f"{where} (from {came})"
    if err["type"] == "missing":
        return f"{where}: missing (a required key)"
    if err["type"] == "extra_forbidden":
        if owner is None:
            return f"{where}: no such setting (check the spelling)"
        known = list(owner.model_fields)
        section = ".".join(loc[:-1]) or "the top level"
        return (
            f"{where}: no such setting (check the spelling).{did_you_mean(loc[-1], known)} "
            f"The settings of {section} are {', '.join(known)}"
        )
    msg = err["msg"].removeprefix("Value error, ")
    if not loc:  # a check of the whole config: its message names what is wrong
        return msg
    return f"{where}: {msg} (got {_short(err.get('input'))})"


def _readable_loc(model: type[BaseModel], loc: Sequence[int | str]) -> tuple[list[str], type[BaseModel] | None]:
    """An error's location as the user writes the key (``algorithm.omega``, without the union tag that
    pydantic inserts: ``algorithm.gigpo.omega``), and the model holding its last key (None if unknown)."""
    out: list[str] = []
    candidates: list[type[BaseModel]] = [model]
    owner: type[BaseModel] | None = None
    for part in loc:
        if isinstance(part, str) and len(candidates) > 1:
            tagged = [c for c in candidates if part in (c.__name__, _tag(c))]
            if len(tagged) == 1:
                candidates = tagged  # the union member pydantic tried: not a key the user wrote
                continue
        out.append(str(part))
        if isinstance(part, int):
            continue  # an item of a list of models: the same candidates
        owner = candidates[0] if len(candidates) == 1 else None
        field = owner.model_fields.get(part) if owner is not None else None
        candidates = _models_in(field.annotation) if field is not None else []
    return out, owner


def _tag(model: type[BaseModel]) -> Any:
    field = model.model_fields.get("name")
    return field.default if field is not None else None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field holds: itself, the members of a union, the items of a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, collections.abc.Sequence):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def dump_config(cfg: BaseModel) -> str:
    """The resolved config as YAML (JSON-mode values, keys in declaration order)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


#: what ``config_diff`` gives for a key present on one side only
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "<not set>", "__bool__": lambda self: False})()


def config_diff(a: Any, b: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """The leaves where two configs (nested dicts) differ: ``[(dotted key, a's value, b's value)]``. Lists of
    the same length are compared item by item (``suite.envs.0.kwargs.high``); a key present on one side only
    counts, with :data:`MISSING` on the other."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            out += config_diff(a.get(k, MISSING), b.get(k, MISSING), f"{prefix}{k}.")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) and any(isinstance(x, dict) for x in a):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in config_diff(x, y, f"{prefix}{i}.")]
    return [] if a == b else [(prefix.rstrip("."), a, b)]


def describe_change(key: str, old: Any, new: Any) -> str:
    """One ``config_diff`` entry as a reader wants it: ``episodes: not set before, now 6``."""
    if old is MISSING or old is None:
        return f"{key}: not set before, now {new!r}"
    if new is MISSING or new is None:
        return f"{key}: was {old!r}, now not set"
    return f"{key}: stored {old!r}, now {new!r}"


def _deep_merge(a: dict[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

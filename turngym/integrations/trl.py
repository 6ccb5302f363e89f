"""TRL's ``GRPOTrainer(environment_factory=...)`` over any turngym env id.

    from trl import GRPOConfig, GRPOTrainer
    from turngym.integrations.trl import environment_factory

    trainer = GRPOTrainer(
        model=model,
        train_dataset=dataset,  # a "prompt" column, and a "seed" column to fix each row's task instance
        environment_factory=environment_factory("turngym/GuessNumber-v0", high=16),
        args=GRPOConfig(max_tool_calling_iterations=8),
    )

``environment_factory(env_id, **env_kwargs)`` returns a class that follows the contract of TRL 1.16
(``docs/source/openenv.md`` and ``GRPOTrainer.__init__`` in ``trl/trainer/grpo_trainer.py``):

- ``Cls()`` takes no arguments: each instance holds one env, ``turngym.make(env_id, **env_kwargs)``. TRL
  makes one instance per rollout in flight and resets it for the next one.
- ``reset(**row)`` receives the dataset row's columns. A ``seed`` column seeds the env (equal seeds, equal
  task instances: a GRPO group shares one); without it the episode is unseeded. It returns the first
  observation's text, which TRL appends to the row's last user message (as is: end that message with a
  blank line or a space).
- One tool method per action of the env. TRL exposes every public function of the class but ``reset``
  and ``get_reward`` as a tool, its schema read from the type hints and the Google-style ``Args:``
  docstring (transformers' ``get_json_schema``). A **tool env** (native or JSON tool calls, e.g.
  ``turngym/Terminal-v0``) gets one method per tool, with the tool's parameters (required ones first,
  optional ones defaulting to None, a JSON ``enum`` as a ``Literal``); a **text env** (free text, a
  bracketed move, a tagged block, e.g. ``turngym/GuessNumber-v0``) gets ``act(move: str)``, which sends
  ``move`` as the assistant's reply, its docstring saying how the env reads it. Calling a method is one
  ``env.step``; it returns the env's answer as text (``The episode is over.`` added at the end). The env
  judges the arguments as it judges any agent's (a bad call is an invalid action: error text, the env's
  penalty). A call after the end raises ``ValueError``, which TRL hands back to the model as the tool's
  error.
- ``get_reward()`` is the episode's return (the sum of its step rewards). TRL 1.16 scores every rollout
  with it (weight 1, logged as ``rewards/<class name>/mean``), added to any ``reward_funcs``; those can
  read the instances through their ``environments`` keyword: ``reward``, ``done``, ``success``
  (``info["success"]`` at the end, else None), ``turns`` and ``info`` (the last reset's or step's).

Where the tools come from: the env's action format when it lists them (``NativeToolCalls``,
``JsonToolCall``: no reset needed, so a Docker env starts no container here); for an action format that
is neither a tool format nor a text format (a ``remote/...`` env), one reset with seed 0 shows the tools
of its first observation; ``tools=[ToolSpec, ...]`` gives them outright. ``tool_names={"tool": "method"}``
renames methods whose tool name is not a usable method name (``reset``, ``get_reward``, ``_x``, a Python
keyword); characters other than letters, digits and ``_`` become ``_`` on their own.

Limits: the tools run synchronously (TRL calls them one after another); images in observations are left
out of the text; a final answer written without a tool call is not sent to the env (TRL ends the rollout
there), so an env that rewards a plain-text final answer needs its answer as a tool. The env is closed
when the instance is garbage-collected (TRL never closes it); at exit the sandboxes' own clean-up removes
this process's containers, and ``turngym sandbox gc`` those whose process is gone.
"""

from __future__ import annotations

import functools
import inspect
import json
import keyword
import math
import operator
import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, Literal

import turngym
from turngym.core.actions import (
    BracketedMove,
    FreeText,
    JsonToolCall,
    NativeToolCalls,
    TaggedBlock,
)
from turngym.core.errors import ConfigError, EnvUnavailable, RegistryError
from turngym.core.types import Action, Message, Observation, ToolCall, ToolSpec

__all__ = ["TurngymEnvironment", "environment_factory"]

#: action formats whose replies are text: such envs get the one method ``act(move)``
TEXT_FORMATS = (FreeText, BracketedMove, TaggedBlock)
#: names TRL treats specially, and the attributes of an instance: no tool method may take them
_RESERVED = frozenset(
    [
        "reset",
        "get_reward",
        "env",
        "env_id",
        "env_kwargs",
        "tool_specs",
        "reward",
        "done",
        "success",
        "turns",
        "info",
    ]
)
#: JSON schema types and the Python types transformers' get_json_schema maps back to them
_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "null": type(None),
}
_ENDED = "The episode is over."
_RETURNS = "The environment's answer: its new messages, as text."


class TurngymEnvironment:
    """The base of the classes ``environment_factory`` makes (see the module docstring). Public members are
    the TRL contract: ``reset``, ``get_reward``, the tool methods and the state attributes; everything else
    is private, since TRL would expose any public function as a tool."""

    env_id: ClassVar[str]
    env_kwargs: ClassVar[Mapping[str, Any]]
    #: the tools the methods call, empty for a text env (whose one method is ``act``)
    tool_specs: ClassVar[tuple[ToolSpec, ...]]
    #: how a tool call is sent: structured ``tool_calls`` ("native") or ``<tool_call>`` JSON text ("json")
    _send: ClassVar[Literal["native", "json"]] = "native"

    def __init__(self) -> None:
        self.env = turngym.make(self.env_id, **self.env_kwargs)
        # closed when the instance is collected; at exit the sandboxes' own clean-up runs instead (the
        # thread pools an async env closes through are gone by the time a finalizer would run)
        self._closer = weakref.finalize(self, self.env.close)
        self._closer.atexit = False
        self.reward = 0.0
        self.done = False
        self.success: bool | None = None
        self.turns = 0
        self.info: dict[str, Any] = {}

    def reset(self, **row: Any) -> str:
        """Start an episode: seeded by the dataset row's ``seed`` column when it has one. Returns the first
        observation's text."""
        obs, info = self.env.reset(seed=_seed_of(row, self.env_id))
        self.reward, self.done, self.success, self.turns = 0.0, False, None, 0
        self.info = info
        return _text(obs)

    def get_reward(self) -> float:
        """The episode's return: the sum of its step rewards."""
        return float(self.reward)

    def _step(self, action: Action) -> str:
        if self.done:
            raise ValueError(
                f"the {self.env_id} episode is over (after {self.turns} turns, return {self.reward:g}): "
                "call no more tools, reply without a tool call to finish"
            )
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.reward += float(reward)
        self.turns += 1
        self.done = bool(terminated or truncated)
        self.info = info
        if "success" in info:
            self.success = bool(info["success"])
        text = _text(obs)
        return (
            f"{text}\n\n{_ENDED}"
            if self.done and text
            else (_ENDED if self.done else text)
        )

    def _call(self, name: str, arguments: dict[str, Any]) -> Action:
        """The action calling tool ``name``, in the form the env reads."""
        if self._send == "json":
            return (
                "<tool_call>"
                + json.dumps({"name": name, "arguments": arguments})
                + "</tool_call>"
            )
        call = ToolCall(id=f"call_{self.turns}", name=name, arguments=arguments)
        return Message(role="assistant", content="", tool_calls=[call])

    def __repr__(self) -> str:
        state = "over" if self.done else f"turn {self.turns}"
        return f"<{type(self).__name__} {self.env_id} {state}, reward {self.reward:g}>"


def environment_factory(
    env_id: str,
    /,
    *,
    tools: Sequence[ToolSpec] | None = None,
    tool_names: Mapping[str, str] | None = None,
    **env_kwargs: Any,
) -> type[TurngymEnvironment]:
    """A class for ``GRPOTrainer(environment_factory=...)`` playing ``env_id`` (see the module docstring).

    ``env_kwargs`` go to ``turngym.make`` for every instance (``max_turns=N`` sets the turn limit). The env
    is made once here, so an unknown id, an env that cannot run on this machine or a bad keyword fails now.
    ``tools`` gives the tool methods outright; ``tool_names`` maps a tool's name to its method's name.
    """
    probe = _make(env_id, env_kwargs)
    try:
        fmt = probe.unwrapped.action_format
        if tools is not None:
            specs = tuple(tools)
        elif isinstance(fmt, (NativeToolCalls, JsonToolCall)):
            specs = tuple(fmt.tools.values())
        elif isinstance(fmt, TEXT_FORMATS):
            specs = ()
        else:  # a format that does not say (a served env): its first observation shows the tools
            specs = tuple(probe.reset(seed=0)[0].tools)
        text_doc = _act_doc(probe.unwrapped) if not specs else ""
    finally:
        probe.close()
    name = _class_name(env_id)
    namespace: dict[str, Any] = {
        "env_id": env_id,
        "env_kwargs": MappingProxyType(dict(env_kwargs)),
        "tool_specs": specs,
        "_send": "json" if isinstance(fmt, JsonToolCall) else "native",
        "__module__": __name__,
        "__doc__": f"{env_id} for TRL's environment_factory: "
        + (
            f"tools {', '.join(s.name for s in specs)}."
            if specs
            else "one method, act(move)."
        ),
    }
    methods = (
        _tool_methods(env_id, specs, dict(tool_names or {}))
        if specs
        else {"act": _act_method(text_doc)}
    )
    for method in methods.values():
        method.__qualname__ = f"{name}.{method.__name__}"
    namespace.update(methods)
    return type(name, (TurngymEnvironment,), namespace)


# -- the env ---------------------------------------------------------------------------------------
def _make(env_id: str, env_kwargs: Mapping[str, Any]) -> Any:
    try:
        return turngym.make(env_id, **env_kwargs)
    except (RegistryError, EnvUnavailable):
        raise
    except TypeError as e:  # a keyword the env's constructor does not take
        raise ConfigError(
            f"turngym.make({env_id!r}, **{dict(env_kwargs)!r}) failed: {e}. Pass only the env's own options "
            f"(`turngym envs info {env_id}` lists them)."
        ) from e


def _seed_of(row: Mapping[str, Any], env_id: str) -> int | None:
    """The row's ``seed`` as an int (datasets hand back numpy integers, or floats from a mixed column)."""
    seed = row.get("seed")
    if seed is None:
        return None
    if not isinstance(seed, bool):
        try:
            as_float = float(seed)
        except (TypeError, ValueError):
            as_float = math.nan
        if as_float.is_integer():
            return int(as_float)
    raise ValueError(
        f"the dataset row's seed {seed!r} ({type(seed).__name__}) cannot seed {env_id}: it is not a whole "
        "number. Give the 'seed' column integers, or leave the column out for unseeded episodes."
    )


def _text(obs: Observation) -> str:
    return "\n".join(m.text for m in obs.messages)


def _class_name(env_id: str) -> str:
    name = re.sub(r"\W+", "_", env_id.rpartition("/")[2]).strip("_") or "Env"
    return name if name[0].isalpha() else f"Env_{name}"


# -- the methods -----------------------------------------------------------------------------------
def _act_doc(env: Any) -> str:
    what = " ".join(
        part
        for part in (env.description.strip(), env.action_format.describe().strip())
        if part
    )
    return _docstring(
        what or "Send your reply to the environment.",
        {
            "move": "Your reply to the environment, the whole of it, written as the environment asks."
        },
    )


def _act_method(doc: str) -> Callable[..., str]:
    def act(self: TurngymEnvironment, move: str) -> str:
        return self._step(move)

    act.__doc__ = doc
    return act


def _tool_methods(
    env_id: str, specs: Sequence[ToolSpec], renames: dict[str, str]
) -> dict[str, Callable[..., str]]:
    unknown = sorted(set(renames) - {s.name for s in specs})
    if unknown:
        raise ConfigError(
            f"tool_names renames {unknown}, which {env_id} does not have: its tools are "
            f"{', '.join(s.name for s in specs)}"
        )
    methods: dict[str, Callable[..., str]] = {}
    for spec in specs:
        name = renames.get(spec.name) or re.sub(r"\W", "_", spec.name)
        problem = _bad_method_name(name)
        if problem is None and name in methods:
            problem = f"the tool {methods[name]._tool!r} has that method name already"  # type: ignore[attr-defined]
        if problem:
            raise ConfigError(
                f"{env_id}'s tool {spec.name!r} cannot be the method {name!r}: {problem}. Name its method with "
                f"tool_names={{{spec.name!r}: '{_suggest(name)}'}}"
            )
        methods[name] = _tool_method(env_id, spec, name)
    return methods


def _bad_method_name(name: str) -> str | None:
    if not name.isidentifier() or keyword.iskeyword(name):
        return "not a Python identifier"
    if name.startswith("_"):
        return "TRL exposes no method whose name starts with '_'"
    if name in _RESERVED or hasattr(TurngymEnvironment, name):
        return "the class uses that name itself"
    return None


def _suggest(name: str) -> str:
    base = re.sub(r"\W", "_", name).strip("_") or "tool"
    base = base if base[0].isalpha() else f"tool_{base}"
    return f"{base}_tool" if _bad_method_name(base) else base


def _tool_method(env_id: str, spec: ToolSpec, name: str) -> Callable[..., str]:
    params, docs = _parameters(env_id, spec)
    order = [p.name for p in params]
    tool = spec.name

    def method(self: TurngymEnvironment, *args: Any, **kwargs: Any) -> str:
        if len(args) > len(order):
            raise TypeError(
                f"{name}() takes {len(order)} arguments ({', '.join(order)}), {len(args)} were given"
            )
        arguments = dict(zip(order, args))
        twice = sorted(arguments.keys() & kwargs.keys())
        if twice:
            raise TypeError(
                f"{name}() got {', '.join(twice)} both by position and by keyword"
            )
        arguments.update(kwargs)
        # an optional argument left at None is left out; anything else goes to the env, which judges it
        return self._step(
            self._call(tool, {k: v for k, v in arguments.items() if v is not None})
        )

    method.__name__ = name
    method._tool = tool  # type: ignore[attr-defined]
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    method.__signature__ = inspect.Signature(
        [self_param, *params], return_annotation=str
    )  # type: ignore[attr-defined]
    method.__annotations__ = {**{p.name: p.annotation for p in params}, "return": str}
    description = spec.description.strip() or f"Call the tool {tool!r} of {env_id}."
    method.__doc__ = _docstring(description, docs)
    return method


def _parameters(
    env_id: str, spec: ToolSpec
) -> tuple[list[inspect.Parameter], dict[str, str]]:
    """The method's parameters (required first, in the schema's order) and their docstring lines."""
    props = spec.parameters.get("properties") or {}
    required = [n for n in spec.parameters.get("required") or [] if n in props]
    params, docs = [], {}
    for pname in [*required, *(n for n in props if n not in required)]:
        if not pname.isidentifier() or keyword.iskeyword(pname) or pname == "self":
            raise ConfigError(
                f"{env_id}'s tool {spec.name!r} has the parameter {pname!r}, which cannot be a Python argument "
                "name: rename it in the env's ToolSpec, or pass tools=[...] with the parameter renamed"
            )
        schema = props[pname] if isinstance(props[pname], dict) else {}
        ann = _annotation(schema)
        if pname in required:
            params.append(
                inspect.Parameter(
                    pname, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=ann
                )
            )
        else:
            params.append(
                inspect.Parameter(
                    pname,
                    inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    default=None,
                    annotation=ann | None,
                )
            )
        desc = str(schema.get("description") or f"The {pname} argument")
        docs[pname] = desc if pname in required else f"{desc} (optional)"
    return params, docs


def _annotation(schema: Mapping[str, Any]) -> Any:
    """The Python type whose JSON schema (transformers' ``get_json_schema``) is ``schema``, near enough."""
    enum = schema.get("enum")
    if (
        isinstance(enum, list)
        and enum
        and all(isinstance(v, (str, int, float, bool, type(None))) for v in enum)
    ):
        return Literal[tuple(enum)]
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(alternatives, list) and alternatives:
        return functools.reduce(
            operator.or_,
            (_annotation(a if isinstance(a, dict) else {}) for a in alternatives),
        )
    kind = schema.get("type")
    if isinstance(kind, list) and kind:
        return functools.reduce(
            operator.or_, (_annotation({**schema, "type": k}) for k in kind)
        )
    if kind == "array":
        items = schema.get("items")
        return list[_annotation(items)] if isinstance(items, dict) and items else list
    if kind == "object":
        return dict
    return _JSON_TYPES.get(kind, Any) if isinstance(kind, str) else Any


def _docstring(description: str, args: Mapping[str, str]) -> str:
    """A Google-style docstring that transformers' ``parse_google_format_docstring`` reads back as given."""
    # a line of the description that looks like a section header would end the description there
    description = re.sub(
        r"^(\s*)(Args|Returns|Raises):",
        r"\1\2 -",
        description.strip(),
        flags=re.MULTILINE,
    )
    lines = [description, ""]
    if args:
        lines.append("Args:")
        lines += [
            f"    {name}: {' '.join(text.split())}" for name, text in args.items()
        ]
    lines += ["", "Returns:", f"    {_RETURNS}"]
    return "\n".join(lines)

"""The env registry: namespaced Gymnasium ids with turngym metadata.

``register`` records an env with Gymnasium (so ``gymnasium.make`` works) and keeps its metadata
(modality, sandbox, max turns, reward range, tags, description, scripted expert, requirements).
Third-party packages add envs through the entry-point group ``turngym.envs``: each entry point is a
callable that calls ``turngym.register``; they are loaded lazily on the first ``make`` or listing, by
``turngym`` and by ``gymnasium.make``/``gymnasium.spec`` alike (an id gymnasium does not know loads them once).
An id written ``"module:namespace/Env-v0"`` imports ``module`` first (whose import registers the env), as
``gymnasium.make("module:Env-v0")`` does, so envs registered by a module of one's own work from the CLI too;
a module not found on ``sys.path`` is looked for in the current directory, as ``python -m`` would.
``remote/<url>`` ids (``remote/ws://host:8000``) are never read that way.

Each env's ``source`` says where it came from: ``turngym``, the distribution whose ``turngym.envs``
entry point registered it, or the top-level package of the module that holds it.

Gymnasium's habits hold for turngym ids: ``gymnasium.make(id, max_episode_steps=N)`` and
``gymnasium.make(id, max_turns=N)`` both set the turn limit (the ``TurnLimit`` wrapper, never
Gymnasium's ``TimeLimit``, which has no async API), as ``turngym.make`` does; registering an id again
replaces it with a ``UserWarning`` naming the entry point it replaces (the very same registration again,
as a re-imported module makes, is silent).

Nothing here imports an env's module: entry points are strings, imported at ``make``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
import shutil
import sys
import warnings
from collections.abc import Callable
from functools import cache
from typing import Any, Literal

import gymnasium
from gymnasium.envs.registration import WrapperSpec
from pydantic import BaseModel, ConfigDict, Field

from turngym.core.errors import EnvUnavailable, RegistryError, did_you_mean

Modality = Literal["text", "tool", "gui"]
SandboxKind = Literal["none", "docker", "browser"]

ENTRY_POINT_GROUP = "turngym.envs"


class EnvInfo(BaseModel):
    """What ``turngym envs info`` shows about one env."""

    model_config = ConfigDict(frozen=True)
    id: str
    entry_point: str
    description: str = ""
    modality: Modality = "text"
    sandbox: SandboxKind = "none"
    max_turns: int | None = None
    reward_range: tuple[float, float] = (float("-inf"), float("inf"))
    tags: tuple[str, ...] = ()
    #: "module:function" taking the unwrapped env and returning a policy Observation -> Action
    expert: str | None = None
    #: what must be present: "module:NAME" (importable), "bin:NAME" (on PATH), "docker", "browser"
    requires: tuple[str, ...] = ()
    #: a fixed reason why the env cannot run here (e.g. it needs an online service)
    unavailable: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    #: where the env comes from: "turngym", "DIST VERSION (turngym.envs entry point NAME)" or a package name
    source: str = "turngym"

    def unavailable_reason(self) -> str | None:
        """None if the env can run on this machine, else why not and how to fix it."""
        if self.unavailable:
            return self.unavailable
        for req in self.requires:
            reason = _requirement_missing(req)
            if reason:
                return reason
        return None


_REGISTRY: dict[str, EnvInfo] = {}


def register(
    id: str,
    entry_point: str | Callable[..., Any],
    *,
    description: str = "",
    modality: Modality = "text",
    sandbox: SandboxKind = "none",
    max_turns: int | None = None,
    reward_range: tuple[float, float] = (float("-inf"), float("inf")),
    tags: tuple[str, ...] | list[str] = (),
    expert: str | None = None,
    requires: tuple[str, ...] | list[str] = (),
    unavailable: str | None = None,
    kwargs: dict[str, Any] | None = None,
    source: str | None = None,
) -> EnvInfo:
    """Register an env under a namespaced id such as ``"mypkg/Maze-v0"``.

    ``entry_point`` is ``"package.module:Class"`` (imported at ``make``) or a callable. ``max_turns``
    adds a ``TurnLimit`` wrapper at ``make``, for ``turngym.make`` and ``gymnasium.make`` alike.
    ``expert`` is ``"module:function"``: ``function(env)`` gets the unwrapped env after ``reset`` and
    returns a policy ``Observation -> action`` (``--agent scripted`` plays it). ``source`` defaults to
    where the registration comes from (see the module docstring).
    """
    if "/" not in id:
        raise RegistryError(f"env id {id!r} has no namespace: use 'namespace/{id}', e.g. 'mypkg/{id}'")
    ep = entry_point if isinstance(entry_point, str) else f"{entry_point.__module__}:{entry_point.__qualname__}"
    if source is None:
        source = _source_of(ep)
    info = EnvInfo(
        id=id,
        entry_point=ep,
        description=description,
        modality=modality,
        sandbox=sandbox,
        max_turns=max_turns,
        reward_range=reward_range,
        tags=tuple(tags),
        expert=expert,
        requires=tuple(requires),
        unavailable=unavailable,
        kwargs=dict(kwargs or {}),
        source=source,
    )
    creator = _EnvCreator(entry_point)
    old_info, old_spec = _REGISTRY.get(id), gymnasium.registry.get(id)
    # the same registration again (a module imported by ``module:id`` whose entry point runs later) is silent
    same = old_info is not None and old_info.model_copy(update={"source": source}) == info
    same = same and old_spec is not None and old_spec.entry_point == creator
    if (old_info is not None or old_spec is not None) and not same:  # the same registration again is silent
        before = old_info.entry_point if old_info is not None else _entry_point_name(old_spec.entry_point)
        warnings.warn(
            f"{id!r} is registered again: {ep!r} replaces {before!r}. Use a new id (e.g. a higher version) "
            "to keep both.",
            UserWarning,
            stacklevel=2,
        )
    gymnasium.registry.pop(id, None)  # gymnasium would log its own "Overriding" warning
    gymnasium.register(
        id=id,
        entry_point=creator,
        kwargs=dict(kwargs or {}),
        order_enforce=False,
        disable_env_checker=True,
        # always there: it maps gymnasium.make's max_episode_steps onto the turn limit (wrappers.apply_turn_limit)
        additional_wrappers=(
            WrapperSpec("TurnLimit", "turngym.core.wrappers:apply_turn_limit", {"max_turns": max_turns}),
        ),
    )
    _REGISTRY[id] = info
    return info


#: the entry point ``load_plugins`` is running, so ``register`` can name its distribution as the source
_plugin_source: str | None = None


def _source_of(entry_point: str) -> str:
    """Where a registration comes from: the plugin being loaded, else the entry point's top-level package."""
    if _plugin_source is not None:
        return _plugin_source
    top = entry_point.partition(":")[0].partition(".")[0]
    return "__main__ (a script)" if top == "__main__" else top


def _entry_point_name(entry_point: Any) -> str:
    if isinstance(entry_point, _EnvCreator):
        entry_point = entry_point.entry_point
    if isinstance(entry_point, str):
        return entry_point
    return f"{entry_point.__module__}:{entry_point.__qualname__}"


class _EnvCreator:
    """What gymnasium calls to build a turngym env: the registered entry point, minus ``max_turns``.

    ``max_turns`` is not a constructor argument: gymnasium records it in ``env.spec.kwargs``, where the
    ``TurnLimit`` wrapper that ``make`` adds next (``apply_turn_limit``) reads it.
    """

    def __init__(self, entry_point: str | Callable[..., Any]) -> None:
        self.entry_point = entry_point

    def load(self) -> Callable[..., Any]:
        return load_object(self.entry_point) if isinstance(self.entry_point, str) else self.entry_point

    @property
    def metadata(self) -> dict[str, Any]:  # gymnasium.make reads the env class's render modes here
        return getattr(self.load(), "metadata", {})

    def __call__(self, **kwargs: Any) -> gymnasium.Env:
        kwargs.pop("max_turns", None)
        return self.load()(**kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _EnvCreator) and other.entry_point == self.entry_point

    def __hash__(self) -> int:
        return hash(_entry_point_name(self.entry_point))

    def __repr__(self) -> str:
        return _entry_point_name(self.entry_point)


def make(id: str, **kwargs: Any) -> gymnasium.Env:
    """Create a registered env: ``turngym.make("turngym/Wordle-v0", max_invalid_actions=2)``.

    Keyword arguments go to the env's constructor; ``max_turns=N`` (or Gymnasium's
    ``max_episode_steps=N``) overrides the turn limit, ``max_turns=None`` removes it. The same
    arguments work in ``gymnasium.make``; this adds the check that the env can run here.
    """
    info = env_info(id)
    reason = info.unavailable_reason()
    if reason:
        raise EnvUnavailable(f"{id} cannot run here: {reason}")
    if id.startswith(REMOTE):
        return _make_remote(id, **kwargs)
    return gymnasium.make(info.id, **kwargs)  # info.id: a "module:" prefix is imported by now


#: ``remote/<url>`` ids are envs served by ``turngym serve`` (turngym.serve.remote), made by ``make`` only:
#: a URL is no Gymnasium id, so ``gymnasium.make`` does not know them
REMOTE = "remote/"


def _make_remote(id: str, *, max_turns: int | None = None, **kwargs: Any) -> gymnasium.Env:
    from turngym.core.wrappers import TurnLimit
    from turngym.serve.remote import make_remote

    env = make_remote(id, **kwargs)
    return TurnLimit(env, max_turns) if max_turns else env


def env_info(id: str) -> EnvInfo:
    """The metadata of ``id``; a ``RegistryError`` with close matches if it is unknown."""
    if id.startswith(REMOTE):
        return EnvInfo(
            id=id,
            entry_point="turngym.serve.remote:make_remote",
            description=f"the env served at {id[len(REMOTE) :]} (turngym serve)",
            requires=("module:websockets", "module:httpx"),
            source="remote",
        )
    module, id = split_module_id(id)
    if module is not None:
        _import_env_module(module, id)
    load_plugins()
    info = _REGISTRY.get(id)
    if info is None:
        hint = did_you_mean(id, _REGISTRY, cutoff=0.5)
        if module is not None:
            raise RegistryError(
                f"no env registered as {id!r}: importing {module!r} registered none.{hint} Call "
                f"turngym.register({id!r}, ...) at the top level of {module!r}, or fix the id."
            )
        raise RegistryError(
            f"no env registered as {id!r}.{hint} `turngym envs list --all` lists them all; an env that a module "
            "of your own registers is reached as 'module:namespace/Env-v0'."
        )
    return info


_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_ID = re.compile(r"[\w.\-]+/[\w.\-]+")


def split_module_id(id: str) -> tuple[str | None, str]:
    """``"mypkg.envs:mypkg/Maze-v0"`` -> ``("mypkg.envs", "mypkg/Maze-v0")``; any other id -> ``(None, id)``.

    Only a dotted module path before the ``:`` and a namespaced id after it count, so ``remote/ws://host:8000``
    and other ids with a colon are left alone."""
    module, colon, rest = id.partition(":")
    if colon and _MODULE.fullmatch(module) and _ID.fullmatch(rest):
        return module, rest
    return None, id


def _import_env_module(module: str, id: str) -> None:
    """Import the module of a ``module:id``, looking in the current directory if it is not on ``sys.path``."""
    try:
        found = importlib.util.find_spec(module)
    except ImportError:  # a parent package that is missing
        found = None
    cwd = os.getcwd()
    if found is None and cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)  # as `python -m` and uvicorn find a module of the current directory
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and (module == e.name or module.startswith(e.name + ".")):
            raise RegistryError(
                f"{module!r} in {module + ':' + id!r} is no importable module (no module named {e.name!r} on sys.path "
                f"or in {cwd}): install the package that holds it, run from its directory, or fix the module path"
            ) from None
        raise RegistryError(
            f"importing {module!r} for {id!r} failed: {e}; install the package it imports, or fix that import"
        ) from None
    except ImportError as e:
        raise RegistryError(f"importing {module!r} for {id!r} failed: {e}; fix that import in {module!r}") from None


def list_envs(*, include_unavailable: bool = False, namespace: str | None = None) -> list[EnvInfo]:
    """The registered envs, sorted by id; by default only those that can run here."""
    load_plugins()
    out = []
    for info in sorted(_REGISTRY.values(), key=lambda i: i.id):
        if namespace is not None and not info.id.startswith(namespace + "/"):
            continue
        if include_unavailable or info.unavailable_reason() is None:
            out.append(info)
    return out


_plugins_loaded = False


def load_plugins() -> None:
    """Run every ``turngym.envs`` entry point once. A broken plugin warns and is skipped."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    global _plugin_source
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        _plugin_source = (
            f"{dist.name} {dist.version} ({ENTRY_POINT_GROUP} entry point {ep.name!r})"
            if dist is not None
            else f"{ENTRY_POINT_GROUP} entry point {ep.name!r} ({ep.value})"
        )
        try:
            ep.load()()
        except Exception as e:  # a third party's bug must not break listing turngym's own envs
            warnings.warn(
                f"the turngym.envs entry point {ep.name!r} ({ep.value}) failed: {type(e).__name__}: {e}; "
                "its envs are not registered. Fix or uninstall that package.",
                stacklevel=2,
            )
        finally:
            _plugin_source = None


def _find_spec_loading_plugins(env_id: str) -> Any:
    """gymnasium's id lookup, which first loads the ``turngym.envs`` entry points if ``env_id`` is unknown,
    so ``gymnasium.make("plugin/Env-v0")`` works right after ``import turngym``."""
    if not _plugins_loaded and env_id.rpartition(":")[2] not in gymnasium.registry:
        load_plugins()
    return _gymnasium_find_spec(env_id)


def _hook_gymnasium_lookup() -> None:
    """Route gymnasium's id lookup (``make``, ``make_vec``, ``spec``) through the plugin loading.
    Costs nothing at import; where a gymnasium release lacks the hook point, the plugins load now."""
    global _gymnasium_find_spec
    from gymnasium.envs import registration

    found = getattr(registration, "_find_spec", None)
    if found is None:
        load_plugins()
    elif found is not _find_spec_loading_plugins:
        _gymnasium_find_spec = found
        registration._find_spec = _find_spec_loading_plugins


_gymnasium_find_spec: Callable[[str], Any]


def load_object(path: str) -> Any:
    """Import ``"package.module:name"``."""
    module, _, name = path.partition(":")
    if not name:
        raise RegistryError(f"{path!r} is not 'package.module:name'")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


#: the Debian package of a program whose package is named otherwise
_DEBIAN_PACKAGE = {"java": "openjdk-17-jre-headless"}


def _requirement_missing(req: str) -> str | None:
    kind, _, name = req.partition(":")
    if kind == "module":
        return None if _module_present(name) else f"the Python package providing {name!r} is not installed (make setup)"
    if kind == "bin":
        package = _DEBIAN_PACKAGE.get(name, name)
        return None if find_program(name) else f"the program {name!r} is not on PATH (apt-get install {package})"
    if kind == "docker":  # TURNGYM_SANDBOX=local (sandboxes/local.py): commands run in this place, no engine needed
        return None if os.environ.get("TURNGYM_SANDBOX", "").strip().lower() == "local" else _docker_missing()
    if kind == "browser":
        return _browser_missing()
    return f"unknown requirement {req!r}"


def find_program(name: str) -> str | None:
    """The path of program ``name`` on PATH, or in /usr/games where Debian puts games such as stockfish."""
    return shutil.which(name) or shutil.which(name, path="/usr/games:/usr/local/games")


@cache
def _module_present(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


@cache
def _docker_missing() -> str | None:
    if not _module_present("docker"):
        return "the docker Python package is not installed (make setup)"
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as e:
        return f"no Docker engine answers ({type(e).__name__}); start dockerd (make setup does)"
    return None


@cache
def _browser_missing() -> str | None:
    if not _module_present("playwright"):
        return "the playwright Python package is not installed (make setup)"
    if not (shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")):
        return "no Chromium on PATH (apt-get install chromium)"
    return None


_hook_gymnasium_lookup()

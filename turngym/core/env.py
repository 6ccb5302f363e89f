"""``TurnEnv``: the base class of every turngym environment.

A ``gymnasium.Env`` whose observations are chat messages and whose actions are the assistant's
replies. Subclasses implement either the sync pair ``reset``/``step`` (pure-Python envs; the async
pair comes for free) or the async pair ``areset``/``astep`` (envs that wait on I/O; the sync pair
runs them on a private event loop).

Invalid actions: inside ``step`` raise ``ActionError`` (``self.action_format.parse`` does so for
replies that do not parse). The base class catches it and answers with an error observation, the
env's ``invalid_penalty`` and ``info["action_error"]``; the episode ends after
``max_invalid_actions`` invalid actions. ``step`` never raises for a bad reply.

Every ``reset`` returns ``info["task_id"]`` and ``info["instance_hash"]``: equal seeds give equal
hashes, so a group of episodes can prove it shares one task instance.

Snapshots: ``snapshot()`` returns the episode's state as bytes and ``restore(data)`` puts it back, into
the same env or a fresh one made with the same arguments, in any process. Envs whose whole state is
picklable Python opt in with ``snapshot_unsupported = None``; the rest raise ``SnapshotUnsupported``.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import pickle
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, SupportsFloat

import gymnasium

from turngym.core.actions import ActionFormat, FreeText
from turngym.core.errors import ActionError, EpisodeOver, SnapshotError, SnapshotUnsupported
from turngym.core.spaces import ActionSpace, ObservationSpace
from turngym.core.types import Action, Observation, ToolSpec

StepResult = tuple[Observation, SupportsFloat, bool, bool, dict[str, Any]]
ResetResult = tuple[Observation, dict[str, Any]]


class TurnEnv(gymnasium.Env[Observation, Action]):
    """Base class of multi-turn chat environments: observations are chat messages, actions are replies.

    Subclass it and implement ``reset`` and ``step`` (or ``areset`` and ``astep``)::

        class AddUp(turngym.TurnEnv):
            action_format = BracketedMove(choices=["1", "2", "3"], example="[2]", what="step")

            def reset(self, *, seed=None, options=None):
                super().reset(seed=seed)                    # seeds self.np_random
                self.target, self.total = int(self.np_random.integers(10, 31)), 0
                return Observation.text(f"Reach {self.target}, adding 1, 2 or 3 a turn."), {}

            def step(self, action):
                self.total += int(self.action_format.parse(action))   # ActionError if it does not parse
                done = self.total >= self.target
                won = self.total == self.target
                return Observation.text(f"Total {self.total}"), float(won), done, False, (
                    {"success": won} if done else {})

            def instance_state(self):
                return {"target": self.target}

        def expert(env):                                    # register(..., expert="mypkg.envs:expert")
            return lambda obs: f"[{min(3, env.target - env.total)}]"

    The contract:

    - ``reset(*, seed=None, options=None) -> (Observation, info)``; the base class adds
      ``info["task_id"]`` and ``info["instance_hash"]``, a hash of ``instance_state()`` (of the first
      observation if it returns None): equal seeds must give equal instances, so draw them from
      ``self.np_random`` after ``super().reset(seed=seed)``.
    - ``step(action) -> (Observation, reward, terminated, truncated, info)``; ``action`` is the reply text
      or a ``Message`` with ``tool_calls``. When the episode ends set ``info["success"]`` (a bool). Never
      truncate: ``register(..., max_turns=N)`` adds the ``TurnLimit`` wrapper (which sets success False).
    - Invalid replies: raise ``ActionError`` in ``step`` (``action_format.parse`` does). ``step`` then
      returns the error as the observation, reward ``invalid_penalty`` (0.0) and ``info["action_error"]``;
      the ``max_invalid_actions``-th (3) invalid reply of an episode ends it. Each uses up a turn.
    - ``action_format``: ``FreeText``, ``BracketedMove``, ``TaggedBlock``, ``JsonToolCall(tools)`` or
      ``NativeToolCalls(tools)`` (``turngym.core.actions``); tool envs put their ``ToolSpec`` list in
      ``Observation.text(..., tools=...)`` and answer calls with ``Message(role="tool", tool_call_id=...)``.
    - ``legal_actions()`` (optional) lists the valid replies for random agents and ``turngym envs check``.
    - Async: envs that wait on I/O implement ``areset``/``astep``/``aclose``; a sync env whose ``step``
      blocks sets ``blocking = True`` so async callers run it in a thread.
    - Register with ``turngym.register(id, "module:Class", expert=..., max_turns=...)``, from a
      ``turngym.envs`` entry point or a module reached as ``"module:namespace/Env-v0"``; then run
      ``turngym envs check ID``. README.md, "Write your own env", has the whole guide; ``turngym init``
      writes a package to start from.
    - Snapshots (optional): ``snapshot() -> bytes`` saves the episode and ``restore(data)`` puts it back,
      into this env or a fresh one of the same id and arguments, in this process or another; replaying
      the same actions then gives the same observations and rewards. An env whose whole state is its
      picklable attributes sets ``snapshot_unsupported = None`` and the base class pickles them (with
      ``np_random`` and the invalid-action count), less the per-process ones named in ``snapshot_exclude``
      (an engine process); ``make``'s ``TurnLimit`` adds its turn count. Every other env raises
      ``SnapshotUnsupported`` with ``snapshot_unsupported``'s reason (its state lives in a sandbox, a
      browser, another engine). ``turngym envs check`` replays a restored snapshot where it is supported.
      Snapshots are pickles: restore only bytes that you made.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}
    #: how replies are parsed; set per class or per instance
    action_format: ActionFormat = FreeText()
    #: one paragraph for system prompts: what the task is and how it is won
    description: str = ""
    #: reward of an invalid action, and how many end the episode
    invalid_penalty: float = 0.0
    max_invalid_actions: int = 3
    #: a sync env whose steps block (subprocess, network): async callers run it in a thread
    blocking: bool = False
    #: why ``snapshot()``/``restore()`` cannot save this env (``SnapshotUnsupported`` says it); None where
    #: they can: the env's state is its picklable attributes, less ``snapshot_exclude``
    snapshot_unsupported: ClassVar[str | None] = (
        "it does not declare snapshot support (an env whose whole state is its picklable attributes sets "
        "snapshot_unsupported = None, and names per-process ones such as an engine process in snapshot_exclude)"
    )
    #: attributes that ``snapshot()`` leaves out and ``restore()`` keeps: per-process resources
    snapshot_exclude: ClassVar[tuple[str, ...]] = ()

    observation_space = ObservationSpace()
    render_mode: str | None = None

    _invalid_count: int = 0
    _last_tools: list[ToolSpec] = []  # noqa: RUF012 - replaced per instance, never mutated
    _last_obs: Observation | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _ended: str | None = None  # how the episode ended ("terminated", "truncated"), until the next reset

    def __init__(
        self,
        *,
        render_mode: str | None = None,
        invalid_penalty: float | None = None,
        max_invalid_actions: int | None = None,
    ) -> None:
        """The options every env takes; subclasses pass ``**kwargs`` through to here."""
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} is not one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        if invalid_penalty is not None:
            self.invalid_penalty = float(invalid_penalty)
        if max_invalid_actions is not None:
            if max_invalid_actions < 1:
                raise ValueError(f"max_invalid_actions must be >= 1, got {max_invalid_actions}")
            self.max_invalid_actions = int(max_invalid_actions)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, guard in _GUARDS.items():
            fn = cls.__dict__.get(name)
            if fn is not None and not getattr(fn, "_turngym_guard", False):
                setattr(cls, name, guard(fn))

    # -- spaces ---------------------------------------------------------------------------------
    @property
    def action_space(self) -> ActionSpace:  # type: ignore[override]
        space = self.__dict__.get("_action_space")
        if space is None or space.action_format is not self.action_format:
            space = self.__dict__["_action_space"] = ActionSpace(self.action_format)
        return space

    # -- the four entry points; subclasses override one pair -----------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        if not _overrides(self, "areset"):
            # called as super().reset(seed=seed) from a subclass: seed self.np_random, as Gymnasium does
            return super().reset(seed=seed, options=options)  # type: ignore[return-value]
        return self._run(self.areset(seed=seed, options=options))

    def step(self, action: Action) -> StepResult:
        if not _overrides(self, "astep"):
            raise NotImplementedError(f"{type(self).__name__} must implement step() or astep()")
        return self._run(self.astep(action))

    async def areset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        if not _overrides(self, "reset"):
            # called as await super().areset(seed=seed) from a subclass: seed self.np_random
            return gymnasium.Env.reset(self, seed=seed, options=options)  # type: ignore[return-value]
        if self.blocking:
            return await asyncio.to_thread(self.reset, seed=seed, options=options)
        return self.reset(seed=seed, options=options)

    async def astep(self, action: Action) -> StepResult:
        if not _overrides(self, "step"):
            raise NotImplementedError(f"{type(self).__name__} must implement step() or astep()")
        if self.blocking:
            return await asyncio.to_thread(self.step, action)
        return self.step(action)

    # -- optional hooks -------------------------------------------------------------------------
    def instance_state(self) -> Any:
        """What fixes the task instance (the secret, the board...), JSON-able. Hashed into
        ``info["instance_hash"]``; by default the first observation is hashed instead."""
        return None

    def legal_actions(self) -> list[str] | None:
        """The valid replies now, where the env can list them (random agents pick among them)."""
        return None

    def render(self) -> str | None:  # type: ignore[override]
        if self.render_mode == "ansi" and self._last_obs is not None:
            return str(self._last_obs)
        return None

    # -- snapshots ------------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The state of the episode now, as bytes for ``restore`` (in this env or a fresh one made with the
        same id and arguments, in any process). ``SnapshotUnsupported`` where the env cannot save it."""
        return pack_snapshot(self, ())

    def restore(self, data: bytes) -> None:
        """Put back the episode that ``snapshot()`` saved: the next ``step`` goes on from there.
        ``SnapshotError`` for bytes that are no snapshot of this env."""
        restore_snapshot(self, (), data)

    def _snapshot_state(self) -> dict[str, Any]:
        skip = _NOT_SAVED.union(self.snapshot_exclude)
        return {k: v for k, v in vars(self).items() if k not in skip}

    def _restore_state(self, state: dict[str, Any]) -> None:
        skip = _NOT_SAVED.union(self.snapshot_exclude)
        for name in [k for k in vars(self) if k not in state and k not in skip]:
            delattr(self, name)  # set by an episode the snapshot did not see: back to the class default
        vars(self).update(state)

    async def aclose(self) -> None:
        """Release resources; async envs override this (``close`` then calls it). For a sync env
        that overrides only ``close``, this calls that ``close``, so async callers close every env."""
        if _overrides(self, "close"):
            self.close()

    def close(self) -> None:
        if _overrides(self, "aclose"):
            self._run(self.aclose())
        if self._loop is not None:
            self._loop.close()
            self._loop = None

    # -- internals ------------------------------------------------------------------------------
    def _run(self, coro: Any) -> Any:
        refuse_in_running_loop(coro, type(self).__name__)
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(coro)

    def _task_id(self) -> str:
        return self.spec.id if self.spec is not None else type(self).__name__

    def _after_reset(self, result: ResetResult) -> ResetResult:
        obs, info = result
        self._invalid_count = 0
        self._ended = None
        self._last_tools = obs.tools
        self._last_obs = obs
        info.setdefault("task_id", self._task_id())
        if "instance_hash" not in info:
            state = self.instance_state()
            if state is None:
                state = obs.model_dump(mode="json")
            info["instance_hash"] = instance_hash(info["task_id"], state)
        return obs, info

    def _after_step(self, result: StepResult) -> StepResult:
        self._last_tools = result[0].tools
        self._last_obs = result[0]
        self._ended = "terminated" if result[2] else ("truncated" if result[3] else None)
        return result

    def _before_step(self) -> None:
        """Refuse a step of a finished episode: it would be paid a reward the episode never earned."""
        if self._ended is not None:
            raise EpisodeOver(
                f"{type(self).__name__}.step() was called after the episode ended ({self._ended}): a finished "
                "episode takes no more actions and pays no reward; call reset() to start the next episode"
            )

    def _invalid(self, error: ActionError) -> StepResult:
        self._invalid_count += 1
        done = self._invalid_count >= self.max_invalid_actions
        text = f"Invalid action: {error}"
        if done:
            text += f"\nThat was invalid action {self._invalid_count} of {self.max_invalid_actions}: the episode is over."
        obs = Observation.text(text, tools=self._last_tools)
        self._last_obs = obs
        info: dict[str, Any] = {"action_error": str(error), "invalid_actions": self._invalid_count}
        if done:
            info["success"] = False
            self._ended = "terminated"
        return obs, float(self.invalid_penalty), done, False, info


#: a snapshot is these bytes, one JSON header line, then the pickled state
SNAPSHOT_MAGIC = b"turngym-snapshot\n"
SNAPSHOT_VERSION = 1
#: attributes never saved: per process (the event loop) or set by ``make`` rather than by the episode
_NOT_SAVED = frozenset({"_loop", "spec", "render_mode", "_action_space"})


def pack_snapshot(env: TurnEnv, wrappers: Sequence[Any]) -> bytes:
    """``env``'s snapshot, with the ``snapshot_state()`` of its turngym ``wrappers`` (outermost first)."""
    _require_snapshots(env)
    header = {
        "version": SNAPSHOT_VERSION,
        "env": env._task_id(),
        "kwargs": _kwargs_key(env),
        "wrappers": [type(w).__name__ for w in wrappers],
    }
    try:
        payload = pickle.dumps(([w.snapshot_state() for w in wrappers], env._snapshot_state()), protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError) as e:
        raise SnapshotUnsupported(
            f"{env._task_id()} cannot be snapshotted: one of its attributes does not pickle ({e}); name a "
            f"per-process attribute in {type(env).__name__}.snapshot_exclude, or set snapshot_unsupported to why not"
        ) from None
    return SNAPSHOT_MAGIC + json.dumps(header).encode() + b"\n" + payload


def restore_snapshot(env: TurnEnv, wrappers: Sequence[Any], data: bytes) -> None:
    """Put ``data`` (from ``pack_snapshot``) back into ``env`` and its turngym ``wrappers``."""
    _require_snapshots(env)
    name = env._task_id()
    fix = f"pass restore() the bytes that snapshot() of a {name} env returned, unchanged"
    raw = bytes(data) if isinstance(data, bytes | bytearray | memoryview) else b""
    if not raw.startswith(SNAPSHOT_MAGIC):
        raise SnapshotError(f"{name}.restore() got {_preview(data)}, which is not a turngym snapshot: {fix}")
    head, _, payload = raw[len(SNAPSHOT_MAGIC) :].partition(b"\n")
    try:
        header = json.loads(head)
        version, taken = header["version"], header["env"]
    except (ValueError, KeyError, TypeError):
        raise SnapshotError(
            f"{name}.restore() got a snapshot whose header is corrupt ({_preview(head)}): {fix}"
        ) from None
    if version != SNAPSHOT_VERSION:
        raise SnapshotError(
            f"{name}.restore() got a snapshot of format version {version!r}; this turngym reads version "
            f"{SNAPSHOT_VERSION}: take the snapshot again with this turngym"
        )
    if taken != name:
        raise SnapshotError(f"the snapshot is of {taken}, not {name}: restore it into an env made by make({taken!r})")
    if header.get("kwargs") != _kwargs_key(env):
        raise SnapshotError(
            f"the snapshot is of {name} made with arguments {header.get('kwargs')}, this env was made with "
            f"{_kwargs_key(env)}: restore it into an env made with the snapshot's arguments"
        )
    mine = [type(w).__name__ for w in wrappers]
    if header.get("wrappers") != mine:
        raise SnapshotError(
            f"the snapshot of {name} was taken through the wrappers {header.get('wrappers')}, this env has {mine}: "
            "restore it into an env wrapped the same way (make() with the same max_turns)"
        )
    try:
        wrapper_states, state = pickle.loads(payload)
    except Exception as e:  # noqa: BLE001 - a pickle that does not load can raise almost anything
        raise SnapshotError(f"{name}.restore() got a corrupt snapshot ({type(e).__name__}: {e}): {fix}") from None
    for wrapper, wrapper_state in zip(wrappers, wrapper_states, strict=True):
        wrapper.restore_state(wrapper_state)
    env._restore_state(state)


def _require_snapshots(env: TurnEnv) -> None:
    if env.snapshot_unsupported is not None:
        raise SnapshotUnsupported(
            f"{env._task_id()} ({type(env).__name__}) cannot be snapshotted: {env.snapshot_unsupported}. To go "
            "back to a turn of an episode, reset with its seed and replay its actions"
        )


def _kwargs_key(env: TurnEnv) -> str:
    """The arguments ``make`` built ``env`` with (but the render mode), as restore compares them."""
    kwargs = {k: v for k, v in (env.spec.kwargs if env.spec is not None else {}).items() if k != "render_mode"}
    return json.dumps(kwargs, sort_keys=True, default=repr)


def _preview(data: object) -> str:
    text = repr(data)
    return f"{type(data).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


_HASH_ENCODER = json.JSONEncoder(sort_keys=True, default=str, separators=(",", ":"))


def instance_hash(task_id: str, state: Any) -> str:
    """A short stable hash of a task instance."""
    blob = _HASH_ENCODER.encode([task_id, state])  # json.dumps with these options, without its set-up
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _overrides(env: TurnEnv, name: str) -> bool:
    return getattr(type(env), name) is not getattr(TurnEnv, name)


def _guard_reset(fn: Callable[..., ResetResult]) -> Callable[..., ResetResult]:
    @functools.wraps(fn)
    def reset(self: TurnEnv, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        return self._after_reset(fn(self, seed=seed, options=options))

    reset._turngym_guard = True  # type: ignore[attr-defined]
    return reset


def _guard_areset(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def areset(self: TurnEnv, *, seed: int | None = None, options: dict[str, Any] | None = None) -> ResetResult:
        return self._after_reset(await fn(self, seed=seed, options=options))

    areset._turngym_guard = True  # type: ignore[attr-defined]
    return areset


def _guard_step(fn: Callable[..., StepResult]) -> Callable[..., StepResult]:
    @functools.wraps(fn)
    def step(self: TurnEnv, action: Action) -> StepResult:
        self._before_step()
        try:
            return self._after_step(fn(self, action))
        except ActionError as e:
            return self._invalid(e)

    step._turngym_guard = True  # type: ignore[attr-defined]
    return step


def _guard_astep(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def astep(self: TurnEnv, action: Action) -> StepResult:
        self._before_step()
        try:
            return self._after_step(await fn(self, action))
        except ActionError as e:
            return self._invalid(e)

    astep._turngym_guard = True  # type: ignore[attr-defined]
    return astep


_GUARDS = {"reset": _guard_reset, "areset": _guard_areset, "step": _guard_step, "astep": _guard_astep}


def refuse_in_running_loop(coro: Any, what: str) -> None:
    """RuntimeError (``coro`` closed unawaited) where a sync env method is called inside a running event loop,
    which it would block or deadlock: the async twin is the one to await there."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    coro.close()
    raise RuntimeError(
        f"{what}: a sync method was called inside a running event loop; "
        "await the async twin (areset/astep/aclose) there instead"
    )

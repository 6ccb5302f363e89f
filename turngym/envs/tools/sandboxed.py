"""``SandboxEnv``: the base of the tool envs, an env that holds one Docker sandbox per episode.

At every ``areset`` the env gives its sandbox back to the warm pool (cleaned there in the
background) and takes a clean one: the episode sees a lease, not a container start. Envs with the
same sandbox config on one event loop share a pool; ``aclose`` returns the sandbox and leaves the
pool (the last env out closes it). A sandbox that broke mid-episode is replaced by the pool.
With ``TURNGYM_SANDBOX=local`` (set inside a ``turngym serve --docker`` container, which has no
Docker engine to reach) the sandboxes are ``LocalSandbox`` es from a ``LocalPool`` instead: the
commands run in that container.

Subclasses implement ``areset``/``astep`` and call ``await self.fresh_sandbox()`` in ``areset``.
Tool actions come as native ``tool_calls`` or as tagged blocks: ``tool_format(...)`` builds either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Literal

from turngym.core.actions import ActionFormat, NativeToolCalls, Tagged, TaggedBlock
from turngym.core.env import TurnEnv
from turngym.core.errors import SandboxError
from turngym.core.types import Action, Message, Observation, ToolCall, ToolSpec
from turngym.sandboxes.docker import DockerSandbox, SandboxConfig
from turngym.sandboxes.local import LocalPool, local_mode
from turngym.sandboxes.pool import SandboxPool

ActionStyle = Literal["native", "tagged"]
OUTPUT_CLIP = 4000


class SandboxEnv(TurnEnv):
    """A TurnEnv with a sandbox from a shared warm pool. See the module docstring."""

    snapshot_unsupported = "its state lives in a Docker sandbox (files, processes), which cannot be saved as bytes"

    def __init__(
        self,
        *,
        sandbox: SandboxConfig | dict[str, Any] | None = None,
        pool: SandboxPool | None = None,
        pool_spare: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(sandbox, dict):
            sandbox = SandboxConfig(**sandbox)
        self.sandbox_config = sandbox or SandboxConfig()
        self.sandbox: DockerSandbox | None = None
        self._given_pool = pool
        self._pool_spare = pool_spare
        self._pool: SandboxPool | None = None
        self._pool_loop: int | None = None

    async def fresh_sandbox(self, config: SandboxConfig | None = None) -> DockerSandbox:
        """Return the current sandbox to its pool and lease a clean one (of ``config``, if given)."""
        config = config or self.sandbox_config
        await self._drop_sandbox()
        loop = id(asyncio.get_running_loop())
        if self._pool is not None and (self._pool.config != config or self._pool_loop != loop):
            await self._leave_pool()
        if self._pool is None:
            if local_mode():  # inside a `turngym serve --docker` container: commands run right here
                self._pool = await LocalPool.shared(config)  # type: ignore[assignment]
            elif self._given_pool is not None and self._given_pool.config == config:
                self._pool = self._given_pool
                await self._pool.start()
            else:
                self._pool = await SandboxPool.shared(config, spare=self._pool_spare)
            self._pool_loop = loop
        self.sandbox = await self._pool.acquire()
        return self.sandbox

    def end_episode(self) -> None:
        """Give the sandbox back as soon as the episode ends (called where an env terminates), so a
        finished env holds no container while it waits for its next reset."""
        if self.sandbox is not None and self._pool is not None:
            self._pool.release(self.sandbox)
        self.sandbox = None

    def require_sandbox(self) -> DockerSandbox:
        if self.sandbox is None:
            raise SandboxError(f"{type(self).__name__}: the episode is over (or never began): call reset() first")
        return self.sandbox

    async def aclose(self) -> None:
        await self._drop_sandbox()
        await self._leave_pool()

    async def _drop_sandbox(self) -> None:
        self.end_episode()

    async def _leave_pool(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None and pool is not self._given_pool:
            await pool.unshare()


def tool_format(style: ActionStyle, tools: Sequence[ToolSpec], tags: Sequence[str]) -> ActionFormat:
    """Native ``tool_calls`` over ``tools``, or tagged blocks ``<tag>...</tag>`` (one per tool)."""
    if style == "native":
        return NativeToolCalls(tools)
    if style == "tagged":
        return TaggedBlock(tags)
    raise ValueError(f"action_format must be 'native' or 'tagged', got {style!r}")


def as_calls(parsed: Any, tool_of_tag: dict[str, tuple[str, str]]) -> list[ToolCall]:
    """Tool calls from either format: a tagged block ``<tag>x</tag>`` becomes the call of the tool
    ``tool_of_tag[tag] = (tool name, argument name)`` with that argument set to ``x``."""
    if isinstance(parsed, Tagged):
        name, arg = tool_of_tag[parsed.tag]
        return [ToolCall(id="", name=name, arguments={arg: parsed.content} if arg else {})]
    return list(parsed)


def tool_reply(call: ToolCall, text: str) -> Message:
    """The message answering one call: a ``tool`` message for native calls, ``user`` for tagged ones."""
    if call.id:
        return Message(role="tool", content=text, tool_call_id=call.id, name=call.name)
    return Message(role="user", content=text)


def clip(text: str, limit: int = OUTPUT_CLIP) -> str:
    """At most ``limit`` characters: the head and the tail, the middle cut out and counted."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - limit} characters cut ...]\n{text[-half:]}"


def call_action(style: ActionStyle, name: str, arg: str | None, value: str, tag: str) -> Action:
    """An action calling one tool, in the env's format (for experts)."""
    if style == "native":
        args = {arg: value} if arg else {}
        return Message(role="assistant", content="", tool_calls=[ToolCall(id="call_0", name=name, arguments=args)])
    return f"<{tag}>\n{value}\n</{tag}>"


def call_then(
    first: Callable[[Observation], Action], then: Callable[[Observation], Action]
) -> Callable[[Observation], Action]:
    """An expert's policy of two turns: ``first(observation)`` on the first turn, ``then(observation)`` on
    every later one (each computed when its turn comes, from the env as it is then)."""
    step = 0

    def policy(obs: Observation) -> Action:
        nonlocal step
        step += 1
        return first(obs) if step == 1 else then(obs)

    return policy

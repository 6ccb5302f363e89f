"""Speed measurements of an env, a Docker sandbox, the browser and the rollout runner on this machine.

    bench_env("turngym/Wordle-v0", episodes=20)       reset and step latency (p50, p95), steps/s
    bench_sandbox(samples=20)                          Docker sandbox create, exec and reset latency
    bench_browser(episodes=3)                          Chromium page (reset) and step latency on MiniWoB++
    bench_rollout("scripted", "turngym/Wordle-v0")     episodes/s, turns/s and tokens/s through the runner

Each returns a :class:`BenchResult` (what was measured, with which parameters, and the figures) that
``turngym bench ...`` prints as a table or as JSON. The loops that time things (:func:`time_episodes`,
:func:`time_calls`, :func:`time_cold_starts`, :func:`rollout_throughput`) are the ones the scripts in
``perf/`` time too, so a user's figure and PERFORMANCE.md's are measured alike.

Errors: a missing Docker engine or Chromium raises :class:`~turngym.core.errors.EnvUnavailable` naming
what is missing and how to install it; an unknown env id a :class:`~turngym.core.errors.RegistryError`.
Nothing heavy is imported at module level (models, Docker, Playwright load inside the functions).
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from turngym.agents.base import Agent, Policy
from turngym.core.errors import EnvUnavailable, TurngymError

#: MiniWoB++ tasks whose first text box can be clicked at every step without ending the episode
BROWSER_TASKS = ("enter-text", "login-user", "enter-password")


class BenchResult(BaseModel):
    """One benchmark's outcome: ``metrics`` keys end in their unit (``_ms``, ``_per_s``) or are counts."""

    model_config = ConfigDict(frozen=True)
    bench: str
    params: dict[str, Any]
    metrics: dict[str, float]
    #: what the figures do not say on their own (e.g. episodes that failed, and the first error)
    notes: list[str] = []


def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100) of ``samples``; nan when there are none."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latency_ms(name: str, samples_s: Sequence[float]) -> dict[str, float]:
    """``{name}_p50_ms`` and ``{name}_p95_ms`` of durations given in seconds."""
    return {f"{name}_p50_ms": percentile(samples_s, 50) * 1000, f"{name}_p95_ms": percentile(samples_s, 95) * 1000}


# -- throughput of a loop, per CPU second and per wall second ------------------------------------
@dataclass
class Rate:
    """``steps`` done in ``cpu`` seconds of this process's CPU time and ``wall`` seconds."""

    steps: int
    cpu: float
    wall: float

    @property
    def per_cpu(self) -> float:
        return self.steps / self.cpu if self.cpu > 0 else float("nan")

    @property
    def per_wall(self) -> float:
        return self.steps / self.wall if self.wall > 0 else float("nan")


def timed(fn: Callable[[], int]) -> Rate:
    """Run ``fn`` (which returns how many steps it did) and time it."""
    c0, w0 = time.process_time(), time.perf_counter()
    steps = fn()
    return Rate(steps, time.process_time() - c0, time.perf_counter() - w0)


def median_rate(runs: list[Rate]) -> tuple[float, float]:
    """The median steps per CPU second and per wall second of ``runs``."""
    return statistics.median(r.per_cpu for r in runs), statistics.median(r.per_wall for r in runs)


async def time_calls(fn: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    """The duration in seconds of each of ``n`` sequential awaits of ``fn()``."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t)
    return out


# -- an env: reset and step latency ---------------------------------------------------------------
@dataclass
class EpisodeTimes:
    """What :func:`time_episodes` measured: the latency of every reset and every step, in seconds."""

    resets: list[float] = field(default_factory=list)
    steps: list[float] = field(default_factory=list)
    episodes: int = 0
    wall: float = 0.0  # the whole loop, the agent's time included
    successes: int = 0


async def time_episodes(
    env: Any, agent: Any, *, episodes: int, seed: int = 0, max_steps: int | None = None, warmup: int | None = None
) -> EpisodeTimes:
    """Play ``episodes`` sequential episodes of ``env`` (seeds ``seed``, ``seed + 1``, ...) with ``agent``,
    timing each ``areset`` and ``astep`` (the agent's thinking is outside both). ``max_steps`` ends an
    episode after that many steps; ``warmup`` is a seed reset once first, outside the figures (starts a
    browser or fills a pool)."""
    from turngym.core.wrappers import areset, astep

    if warmup is not None:
        await areset(env, seed=warmup)
    out = EpisodeTimes()
    start = time.perf_counter()
    for k in range(episodes):
        t = time.perf_counter()
        obs, _ = await areset(env, seed=seed + k)
        out.resets.append(time.perf_counter() - t)
        policy = await agent.start(env, seed=seed + k)
        n, done, info = 0, False, {}
        while not done and (max_steps is None or n < max_steps):
            action = await policy.act(obs)
            t = time.perf_counter()
            obs, _, terminated, truncated, info = await astep(env, action)
            out.steps.append(time.perf_counter() - t)
            n, done = n + 1, terminated or truncated
        out.successes += bool(info.get("success"))
        out.episodes += 1
    out.wall = time.perf_counter() - start
    return out


def _agent_for(env_id: str, spec: str) -> Any:
    from turngym.agents.base import make_agent
    from turngym.core.registry import env_info

    if spec == "auto":
        spec = "scripted" if env_info(env_id).expert else "random"
    return make_agent(spec)


def bench_env(env_id: str, *, episodes: int = 20, seed: int = 0, agent: str = "auto") -> BenchResult:
    """Reset and step latency of ``env_id`` and its steps per second, with ``agent`` (``auto``: the env's
    scripted expert where it has one, else the random agent; any agent spec works)."""
    from turngym.core.registry import make
    from turngym.core.wrappers import aclose

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    chosen = _agent_for(env_id, agent)

    async def run() -> EpisodeTimes:
        env = make(env_id)
        try:
            return await time_episodes(env, chosen, episodes=episodes, seed=seed)
        finally:
            await aclose(env)
            await chosen.aclose()

    times = asyncio.run(run())
    busy = sum(times.resets) + sum(times.steps)
    return BenchResult(
        bench="env",
        params={"env": env_id, "episodes": episodes, "seed": seed, "agent": chosen.name},
        metrics={
            **latency_ms("reset", times.resets),
            **latency_ms("step", times.steps),
            "steps": len(times.steps),
            "steps_per_s": len(times.steps) / busy if busy > 0 else float("nan"),
            "episodes_per_s": times.episodes / times.wall if times.wall > 0 else float("nan"),
            "success_rate": times.successes / times.episodes,
        },
    )


# -- a Docker sandbox: create, exec, reset ---------------------------------------------------------
def require_docker() -> None:
    """An :class:`EnvUnavailable` saying what to do when no Docker engine answers here."""
    from turngym.core.registry import _docker_missing

    reason = _docker_missing()
    if reason:
        raise EnvUnavailable(
            f"`turngym bench sandbox` needs a Docker engine: {reason}. Install Docker and start dockerd "
            "(scripts/setup.sh does both and builds the turngym/sandbox image), then run the bench again."
        )


async def time_cold_starts(n: int, config: Any = None) -> list[float]:
    """The time of each of ``n`` ``DockerSandbox.create`` calls: a new container until its helper answers."""
    from turngym.sandboxes.docker import DockerSandbox, SandboxConfig

    out = []
    for _ in range(n):
        t = time.perf_counter()
        box = await DockerSandbox.create(config=config or SandboxConfig())
        out.append(time.perf_counter() - t)
        await box.close()
    return out


async def time_resets(sandbox: Any, n: int, dirty: str = "echo x > junk; echo y > /tmp/junk; sleep 600 &") -> list[float]:
    """The time of each of ``n`` in-place cleans (``sandbox.reset()``), each after ``dirty`` ran."""
    out = []
    for _ in range(n):
        await sandbox.exec(dirty)
        t = time.perf_counter()
        await sandbox.reset()
        out.append(time.perf_counter() - t)
    return out


def bench_sandbox(*, samples: int = 20, creates: int = 3, image: str | None = None) -> BenchResult:
    """Create (a new container until it answers), exec (a ``true`` round trip) and reset (clean in place
    after a command left files and a process behind) latencies of a Docker sandbox."""
    require_docker()
    from turngym.sandboxes.docker import DockerSandbox, SandboxConfig

    config = SandboxConfig(image=image) if image else SandboxConfig()

    async def run() -> dict[str, list[float]]:
        created = await time_cold_starts(creates, config)
        box = await DockerSandbox.create(config=config)
        try:
            await box.exec(["true"])  # warm-up: the first call also pays the helper's start-up
            execs = await time_calls(lambda: box.exec(["true"]), samples)
            resets = await time_resets(box, samples)
        finally:
            await box.close()
        return {"create": created, "exec": execs, "reset": resets}

    times = asyncio.run(run())
    metrics: dict[str, float] = {}
    for name, samples_s in times.items():
        metrics.update(latency_ms(name, samples_s))
    metrics["exec_per_s"] = len(times["exec"]) / sum(times["exec"])
    return BenchResult(
        bench="sandbox", params={"samples": samples, "creates": creates, "image": config.image}, metrics=metrics
    )


# -- the browser: a page per episode, a step ------------------------------------------------------
def require_browser() -> None:
    """An :class:`EnvUnavailable` saying what to do when Playwright, Chromium or MiniWoB++ is missing."""
    from turngym.core.registry import _browser_missing, _module_present

    reason = _browser_missing() or (None if _module_present("miniwob") else "the miniwob Python package is not installed")
    if reason:
        raise EnvUnavailable(
            f"`turngym bench browser` needs Chromium, Playwright and MiniWoB++: {reason}. Install them "
            "(scripts/setup.sh does: apt-get install chromium, pip install playwright miniwob), then run the bench again."
        )


class ClickFirstTextBox(Agent):
    """An agent for MiniWoB++ pages: it clicks the page's first text box at every step (which never
    ends the episode), so every step costs an action and a fresh observation, nothing else."""

    name = "click-first-text-box"

    async def start(self, env: Any, *, seed: int | None) -> Policy:
        return _ClickFirstTextBoxPolicy(env.unwrapped)


class _ClickFirstTextBoxPolicy(Policy):
    def __init__(self, env: Any) -> None:
        self.env = env

    async def act(self, observation: Any) -> str:
        box = next(e for e in self.env.session.last.elements.values() if e.role == "textbox")
        return f"click({box.id})"


def bench_browser(
    *, episodes: int = 3, steps: int = 3, tasks: Sequence[str] = BROWSER_TASKS, screenshot: bool = False
) -> BenchResult:
    """Reset (a new page with the task) and step (a click plus the observation the agent gets back)
    latency on MiniWoB++ tasks in Chromium: ``episodes`` episodes of ``steps`` steps per task."""
    require_browser()
    from turngym.core.registry import make
    from turngym.core.wrappers import aclose

    agent = ClickFirstTextBox()

    async def run() -> EpisodeTimes:
        total = EpisodeTimes()
        for task in tasks:
            env = make(f"miniwob/{task}-v1", screenshot=screenshot)
            try:
                t = await time_episodes(env, agent, episodes=episodes, max_steps=steps, warmup=10_000)
            finally:
                await aclose(env)
            total.resets += t.resets
            total.steps += t.steps
            total.episodes += t.episodes
            total.wall += t.wall
        return total

    times = asyncio.run(run())
    return BenchResult(
        bench="browser",
        params={"tasks": list(tasks), "episodes_per_task": episodes, "steps": steps, "screenshot": screenshot},
        metrics={
            **latency_ms("reset", times.resets),
            **latency_ms("step", times.steps),
            "episodes_per_s": times.episodes / times.wall if times.wall > 0 else float("nan"),
        },
    )


# -- the rollout runner: episodes/s and tokens/s ----------------------------------------------------
@dataclass
class Throughput:
    """What :func:`rollout_throughput` measured."""

    wall: float
    episodes: int
    turns: int
    tokens: int  # sampled by the policy (mask 1)
    errors: list[str]
    played: list[Any] = field(repr=False, default_factory=list)


async def rollout_throughput(tasks: Sequence[Any], agent: Any, *, concurrency: int) -> Throughput:
    """Play ``tasks`` through ``run_episodes`` with ``agent`` and time the whole run (wall clock)."""
    from turngym.agents.runner import run_episodes

    t0 = time.perf_counter()
    played = await run_episodes(tasks, agent, concurrency=concurrency)
    wall = time.perf_counter() - t0
    return Throughput(
        wall=wall,
        episodes=len(played),
        turns=sum(e.num_turns for e in played),
        tokens=sum(sum(e.mask) for e in played),
        errors=[e.error for e in played if e.error],
        played=played,
    )


def bench_rollout(
    agent: str,
    env_id: str,
    *,
    episodes: int = 32,
    concurrency: int = 8,
    seed: int = 0,
    max_turns: int | None = None,
    agent_options: dict[str, Any] | None = None,
) -> BenchResult:
    """Episodes, turns and sampled tokens per second of ``agent`` (any agent spec) playing ``env_id``
    through the rollout runner, after a warm-up of ``min(concurrency, episodes)`` episodes (model load,
    caches) that the figures leave out. Tokens are those the policy sampled (0 for model-free agents)."""
    from turngym.agents.base import make_agent
    from turngym.agents.runner import group_tasks
    from turngym.core.registry import env_info

    if episodes < 1 or concurrency < 1:
        raise ValueError(f"episodes and concurrency must be >= 1, got {episodes} and {concurrency}")
    reason = env_info(env_id).unavailable_reason()  # an unknown id is a RegistryError before a model loads
    if reason:
        raise EnvUnavailable(f"{env_id} cannot run here: {reason}")
    chosen = make_agent(agent, **(agent_options or {}))
    warm = group_tasks(env_id, range(seed + 1_000_000, seed + 1_000_000 + min(concurrency, episodes)), max_turns=max_turns)
    tasks = group_tasks(env_id, range(seed, seed + episodes), max_turns=max_turns)

    async def run() -> Throughput:
        try:
            await rollout_throughput(warm, chosen, concurrency=concurrency)
            return await rollout_throughput(tasks, chosen, concurrency=concurrency)
        finally:
            await chosen.aclose()

    t = asyncio.run(run())
    if len(t.errors) == t.episodes:
        raise TurngymError(f"every episode of {agent} on {env_id} failed, the first with: {t.errors[0]}")
    return BenchResult(
        bench="rollout",
        params={"agent": agent, "env": env_id, "episodes": episodes, "concurrency": concurrency, "seed": seed,
                "max_turns": max_turns},
        metrics={
            "episodes_per_s": t.episodes / t.wall,
            "turns_per_s": t.turns / t.wall,
            "tokens_per_s": t.tokens / t.wall,
            "tokens": t.tokens,
            "turns": t.turns,
            "errors": len(t.errors),
            "wall_s": t.wall,
        },
        notes=[f"{len(t.errors)} of {t.episodes} episodes failed, the first with: {t.errors[0]}"] if t.errors else [],
    )

"""The async rollout runner: many episodes in flight, each one an env driven by an agent's policy.

    tasks = group_tasks("turngym/GuessNumber-v0", seeds=range(8), group_size=4)
    episodes = await run_episodes(tasks, make_agent("scripted"), concurrency=8, turn_timeout=30)

``concurrency`` workers pull tasks from one queue. Each worker keeps one env per (env id, kwargs,
max turns) and reuses it across episodes (``areset``), so an env is created once per worker, not
once per episode; it is recreated after an env error or a timeout. A failure (env exception, agent
exception, turn or episode timeout) ends that episode with ``Episode.error`` set ("<Type>: <text>")
and never the run. The envs are closed at the end, also when the run is cancelled.

Timeouts interrupt what awaits: async envs and agents, and sync envs that declare ``blocking = True``
(their steps run in a thread). A sync step that blocks the event loop cannot be interrupted.

Episodes come back in the order of ``tasks``; ``on_episode`` is called as each one finishes (the
eval layer appends it to the episode store there).

Dialogue partners (``turngym.core.partner``): an env kwarg ``partner=``/``oracle=`` that holds an agent spec
(``"hf:PATH"``, ``{"spec": "hf:PATH", "temperature": 0}``) is built into a partner here, once per spec, before
the first episode (``turngym.agents.partner.PartnerPool``), and closed at the end of the call; a caller that
calls again and again (a training loop) passes ``partners=PartnerPool()`` of its own, which it closes, so each
partner is built once. The episodes record the spec as given (``Episode.env_kwargs``) and the partner's name
on its messages.

A group (``group_id``) is G tasks with the same env, kwargs and seed: G episodes of one task
instance, which ``Episode.instance_hash`` proves.

Tree rollouts (TreePO-style branching, for per-state baselines): a task with ``branch_points=True``
records, before each of its turns, the env's snapshot and the observation the agent answered; then
``branch_tasks(parent, turn, k)`` makes K tasks that each restore the snapshot of turn ``turn`` into an
env of their own and continue the parent's episode from there with ``agent.branch`` (an LLM policy
takes the parent's conversation up to that turn: its tokens are copied, not sampled again). A branch
episode starts with copies of the parent's first ``turn`` turns and names it (``parent_id``,
``branch_turn``)::

    roots = await run_episodes([t.model_copy(update={"branch_points": True}) for t in tasks], agent)
    branches = await run_episodes(branch_tasks(roots[0], turn=2, k=3), agent)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium
from pydantic import BaseModel, ConfigDict, Field

from turngym.agents.base import Agent
from turngym.agents.partner import PartnerPool
from turngym.core.registry import make
from turngym.core.types import Episode, Message, Observation, Turn, _trusted
from turngym.core.wrappers import aclose as _aclose
from turngym.core.wrappers import areset, astep

__all__ = ["BranchPoint", "EpisodeTask", "branch_tasks", "group_tasks", "run_episodes"]


class EpisodeTask(BaseModel):
    """One episode to play. Episodes of one group share env_id, env_kwargs and seed."""

    model_config = ConfigDict(frozen=True)
    env_id: str
    env_kwargs: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    group_id: str = ""
    episode_id: str
    #: overrides the registered turn limit
    max_turns: int | None = None
    #: record a branch point (the env's snapshot, the observation) before every turn, for ``branch_tasks``
    branch_points: bool = False
    #: a branch: continue this episode (played with ``branch_points``) from turn ``branch_turn``
    parent: Episode | None = None
    branch_turn: int | None = None


@dataclass(frozen=True)
class BranchPoint:
    """An episode just before one turn's action (the turn is its index in the episode's list of branch points):
    the env's snapshot and the observation answered."""

    snapshot: bytes
    observation: Observation


def branch_tasks(parent: Episode, turn: int, k: int) -> list[EpisodeTask]:
    """``k`` continuations of ``parent`` (played with ``branch_points=True``) from its turn ``turn``: ids
    ``<parent id>/b<turn>.<j>``, the parent's group, env, seed and turn limit (a branch counts as one episode)."""
    recorded = parent._branch_points
    if recorded is None:
        raise ValueError(
            f"episode {parent.episode_id!r} recorded no branch points: play it with EpisodeTask(branch_points=True)"
        )
    points, _, max_turns = recorded
    if not 0 <= turn < len(points):
        raise ValueError(
            f"cannot branch episode {parent.episode_id!r} at turn {turn}: it has branch points for turns "
            f"0..{len(points) - 1}"
        )
    return [
        EpisodeTask(
            env_id=parent.env_id, env_kwargs=dict(parent.env_kwargs), seed=parent.seed, group_id=parent.group_id,
            episode_id=f"{parent.episode_id}/b{turn}.{j}", max_turns=max_turns, parent=parent, branch_turn=turn,
        )
        for j in range(k)
    ]


def group_tasks(
    env_id: str,
    seeds: Iterable[int],
    *,
    group_size: int = 1,
    env_kwargs: dict[str, Any] | None = None,
    max_turns: int | None = None,
    prefix: str | None = None,
) -> list[EpisodeTask]:
    """``group_size`` tasks per seed; ids ``<prefix>/s<seed>/g<k>`` (group id ``<prefix>/s<seed>``)."""
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    prefix = env_id if prefix is None else prefix
    kwargs = dict(env_kwargs or {})
    return [
        EpisodeTask(
            env_id=env_id,
            env_kwargs=kwargs,
            seed=seed,
            group_id=f"{prefix}/s{seed}",
            episode_id=f"{prefix}/s{seed}/g{k}",
            max_turns=max_turns,
        )
        for seed in seeds
        for k in range(group_size)
    ]


async def run_episodes(
    tasks: Sequence[EpisodeTask],
    agent: Agent,
    *,
    concurrency: int = 8,
    turn_timeout: float | None = None,
    episode_timeout: float | None = None,
    run_id: str = "",
    on_episode: Callable[[Episode], None] | None = None,
    partners: PartnerPool | None = None,
) -> list[Episode]:
    """Play every task with ``agent``; the episodes in the order of ``tasks``. See the module docstring."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    for name, value in (("turn_timeout", turn_timeout), ("episode_timeout", episode_timeout)):
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be > 0 seconds or None, got {value}")
    results: list[Episode | None] = [None] * len(tasks)
    queue = iter(range(len(tasks)))  # shared by the workers; the event loop is single-threaded
    own_partners = partners is None
    partners = PartnerPool() if partners is None else partners
    try:
        for task in tasks:  # a partner spec that does not build stops the run before any episode
            partners.resolve(task.env_kwargs)
    except BaseException:
        if own_partners:
            await partners.aclose()
        raise
    workers = [
        _Worker(
            agent=agent, turn_timeout=turn_timeout, episode_timeout=episode_timeout, run_id=run_id, partners=partners
        )
        for _ in range(min(concurrency, len(tasks)))
    ]

    async def work(worker: _Worker) -> None:
        try:
            for i in queue:
                episode = await worker.run(tasks[i])
                results[i] = episode
                if on_episode is not None:
                    on_episode(episode)
                # let the other workers and Ctrl-C in, even when nothing in the episode awaited
                await asyncio.sleep(0)
        finally:
            await worker.aclose()

    jobs = [asyncio.ensure_future(work(w)) for w in workers]
    try:
        await asyncio.gather(*jobs)
    except BaseException:
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)  # lets every worker close its envs
        raise
    finally:
        if own_partners:
            await partners.aclose()
    return results  # type: ignore[return-value]  # every slot is filled once gather returns


def _env_key(task: EpisodeTask) -> str:
    if not task.env_kwargs and task.max_turns is None:
        return task.env_id
    return json.dumps([task.env_id, task.env_kwargs, task.max_turns], sort_keys=True, default=str)


class _Worker:
    """One slot of concurrency: plays episodes one after another, keeping its envs warm."""

    def __init__(
        self, *, agent: Agent, turn_timeout: float | None, episode_timeout: float | None, run_id: str,
        partners: PartnerPool,
    ):
        self.agent = agent
        self.partners = partners
        self.turn_timeout = turn_timeout
        self.episode_timeout = episode_timeout
        self.run_id = run_id
        self.envs: dict[str, gymnasium.Env] = {}
        self.watchdog: _TurnWatchdog | None = None  # made in the worker's own task, on its first episode

    async def aclose(self) -> None:
        if self.watchdog is not None:
            self.watchdog.close()
        envs, self.envs = list(self.envs.values()), {}
        errors = []
        for env in envs:  # every env gets its close, even when one of them fails
            try:
                await _aclose(env)
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def _env(self, task: EpisodeTask) -> gymnasium.Env:
        key = _env_key(task)
        env = self.envs.get(key)
        if env is None:
            kwargs = self.partners.resolve(task.env_kwargs)
            if task.max_turns is not None:
                kwargs["max_turns"] = task.max_turns
            env = self.envs[key] = make(task.env_id, **kwargs)
        return env

    async def _drop_env(self, task: EpisodeTask) -> None:
        env = self.envs.pop(_env_key(task), None)
        if env is not None:
            try:
                await _aclose(env)
            except Exception:  # a broken env may fail to close too; it is dropped either way
                pass

    async def run(self, task: EpisodeTask) -> Episode:
        ep = Episode(
            run_id=self.run_id,
            episode_id=task.episode_id,
            group_id=task.group_id,
            env_id=task.env_id,
            env_kwargs=dict(task.env_kwargs),
            seed=task.seed,
            agent=self.agent.name,
            trainable=self.agent.trainable,
        )
        state = _State()
        start = time.perf_counter()
        episode_cm = asyncio.timeout(self.episode_timeout) if self.episode_timeout is not None else None
        if self.turn_timeout is not None and self.watchdog is None:
            self.watchdog = _TurnWatchdog(self.turn_timeout)
        try:
            if episode_cm is not None:
                async with episode_cm:
                    await self._play(task, ep, state)
            else:
                await self._play(task, ep, state)
        except asyncio.CancelledError:
            if self.watchdog is None or not self.watchdog.fired() or _cancelling():
                raise  # the run itself is being cancelled
            ep.error = (
                f"TimeoutError: turn {len(state.turns)} exceeded turn_timeout={self.turn_timeout}s (in {state.phase})"
            )
            await self._drop_env(task)  # it may still be busy with the step that timed out
        except TimeoutError as e:
            if episode_cm is not None and episode_cm.expired():
                ep.error = f"TimeoutError: the episode exceeded episode_timeout={self.episode_timeout}s"
            else:
                ep.error = f"TimeoutError: {e} (in {state.phase})"
            await self._drop_env(task)
        except Exception as e:
            ep.error = f"{type(e).__name__}: {e} (in {state.phase})"
            if state.phase.startswith("env"):
                await self._drop_env(task)
        finally:
            if self.watchdog is not None:
                self.watchdog.deadline = _NEVER
        ep.turns = state.turns
        if state.policy is not None:
            try:
                state.policy.finish(ep)
            except Exception as e:
                ep.error = ep.error or f"{type(e).__name__}: {e} (in agent finish)"
        ep.wall_time = time.perf_counter() - start
        ep.timings = {"env": state.env, "agent": state.agent}
        return ep

    async def _play(self, task: EpisodeTask, ep: Episode, state: _State) -> None:
        """The episode loop. Turns go to ``state.turns`` as they are played, so a failure keeps them."""
        perf = time.perf_counter
        state.phase = "env make"
        t0 = perf()
        env = self._env(task)
        parent = task.parent
        if parent is None:
            state.phase = "env reset"
            obs, info = await areset(env, seed=task.seed)
            ep.task_id = str(info.get("task_id", ""))
            ep.instance_hash = str(info.get("instance_hash", ""))
            ep.prompt = list(obs.messages)
            ep.info = {k: v for k, v in info.items() if k not in ("task_id", "instance_hash")}
        else:  # a branch: the parent's state before turn t, restored; its first t turns copied
            state.phase = "env restore"
            points, parent_policy, _ = parent._branch_points
            t = int(task.branch_turn or 0)
            env.restore(points[t].snapshot)
            obs = points[t].observation
            ep.task_id, ep.instance_hash, ep.prompt = parent.task_id, parent.instance_hash, list(parent.prompt)
            ep.info = dict(parent.info)
            ep.parent_id, ep.branch_turn = parent.episode_id, t
            state.turns.extend(turn.model_copy(deep=True) for turn in parent.turns[:t])
        t1 = perf()
        state.env += t1 - t0
        state.phase = "agent start"
        if parent is None:
            policy = state.policy = await self.agent.start(env, seed=task.seed)
        else:
            policy = state.policy = await self.agent.branch(env, seed=task.seed, parent=parent_policy, turn=t)
        state.agent += perf() - t1
        turns = state.turns
        points_out: list[BranchPoint] | None = [] if task.branch_points else None
        if points_out is not None:
            ep._branch_points = (points_out, policy, task.max_turns)
        watchdog = self.watchdog
        done = False
        while not done:
            if watchdog is not None:
                watchdog.start_turn()
            if points_out is not None:
                state.phase = "env snapshot"
                points_out.append(BranchPoint(snapshot=env.snapshot(), observation=obs))
            state.phase = "agent act"
            t0 = perf()
            action = await policy.act(obs)
            t1 = perf()
            state.phase = "env step"
            obs, reward, terminated, truncated, info = await astep(env, action)
            t2 = perf()
            state.agent += t1 - t0
            state.env += t2 - t1
            is_msg = isinstance(action, Message)
            turns.append(
                _turn_record(
                    {
                        "index": len(turns),
                        "action": action.text if is_msg else action,
                        "tool_calls": action.tool_calls if is_msg else None,
                        "observation": obs.messages,
                        "reward": float(reward),
                        "terminated": bool(terminated),
                        "truncated": bool(truncated),
                        "action_error": info.get("action_error"),
                        "info": info,
                        "action_span": None,
                        "observation_span": None,
                        "duration": t2 - t0,
                    }
                )
            )
            done = terminated or truncated
        ep.truncated = bool(truncated) and not terminated
        success = info.get("success")
        ep.success = None if success is None else bool(success)


_NEVER = float("inf")


def _cancelling() -> int:
    task = asyncio.current_task()
    return task.cancelling() if task is not None else 0


class _TurnWatchdog:
    """The per-turn timeout of one worker, at the cost of a float assignment per turn.

    ``asyncio.timeout`` per turn schedules and cancels a timer every turn; here one timer per worker
    wakes up at the current deadline, re-arms itself if the turn under way started later, and
    cancels the worker's task if that turn has outlived ``timeout``. ``fired()`` tells that
    cancellation apart from a cancellation of the run (and takes it back).
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.deadline = _NEVER
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._handle: asyncio.TimerHandle | None = None
        self._fired = False

    def start_turn(self) -> None:
        self.deadline = self._loop.time() + self.timeout
        if self._handle is None:
            self._handle = self._loop.call_at(self.deadline, self._wake)

    def fired(self) -> bool:
        """True (once) if the last cancellation of the task came from this watchdog."""
        if not self._fired:
            return False
        self._fired = False
        if self._task is not None:
            self._task.uncancel()
        return True

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _wake(self) -> None:
        self._handle = None
        if self.deadline == _NEVER:
            return  # between turns; the next turn re-arms the timer
        if self._loop.time() < self.deadline:
            self._handle = self._loop.call_at(self.deadline, self._wake)
        elif self._task is not None and not self._task.done():
            self._fired = True
            self.deadline = _NEVER
            self._task.cancel()


def _turn_record(fields: dict[str, Any]) -> Turn:
    """A ``Turn`` from the values of one step: built without re-validation where the types are the
    ones the contracts promise (the hot path: the runner adds little to a fast env's step), else
    validated, so an odd value still fails loudly or gets coerced."""
    error = fields["action_error"]
    if (
        type(fields["action"]) is str
        and type(fields["info"]) is dict
        and type(fields["observation"]) is list
        and (error is None or type(error) is str)
    ):
        return _trusted(Turn, fields, set(fields))
    return Turn.model_validate(fields)


class _State:
    """One episode in progress: its turns so far, its policy, the time split, and the phase under
    way (named in error messages)."""

    __slots__ = ("agent", "env", "phase", "policy", "turns")

    def __init__(self) -> None:
        self.env = 0.0
        self.agent = 0.0
        self.phase = "env make"
        self.policy: Any = None
        self.turns: list[Turn] = []

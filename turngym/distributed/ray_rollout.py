"""Rollouts on a Ray cluster: rollout workers are Ray actors, each playing its share of the tasks with the local
runner (``turngym.agents.runner.run_episodes``) on its own node, where its envs, their Docker sandboxes, browsers
and JVMs live; the episodes stream back to the driver as they finish.

    result = await run_episodes_ray(tasks, "scripted", ray=RayOptions(address="auto", workers=4),
                                    on_episode=store.append)

- **Connection.** ``address="local"`` starts a Ray instance for the call and stops it after (dashboard and usage
  stats off, the object store bounded to 256 MiB, traffic on loopback); ``"auto"`` or ``"HOST:PORT"`` joins a
  running cluster (``ray start --head``), which must run the same Ray version. A process that has already called
  ``ray.init`` keeps its connection.
- **Placement.** One bundle per worker (``{"CPU": cpus_per_worker}``) in a SPREAD placement group, so the workers
  land on as many nodes as have room. When the tasks' envs need Docker or a browser (their ``requires``) and the
  cluster offers a ``docker`` / ``chromium`` resource (nodes started with ``--resources '{"docker": 1}'``), each
  bundle takes a sliver of it, so the workers land only on nodes that have one; a cluster that names no such
  resource places them anywhere.
- **Groups stay on one worker** (a group's episodes share one task instance): each group goes to the worker
  with the fewest tasks so far, in task order, so a run deals the same way every time. ``concurrency`` is the
  episodes in flight on each worker.
- **The agent** is built on each worker from a recipe (``AgentRecipe``): for eval its spec (``SpecRecipe``:
  ``make_agent(spec, **options)``; a model directory must be readable on every node, and ``openai:URL#MODEL`` has
  every worker ask one server), for training the run's engine (``turngym.trainers.rollout.PolicyRecipe``), which
  ``RolloutPool.load_weights`` and ``prompt_logprobs`` keep in step with the trainer. With ``RayOptions.engines``
  > 0 the recipe's engine runs instead in that many engine actors, which every worker's requests go to, each to
  the least loaded (``turngym.distributed.ray_engines``); the workers then hold no model.
- **Faults.** A worker that dies (SIGKILL, out of memory, its node lost) has the tasks whose episodes had not
  reached the driver replayed (same tasks, same seeds), dealt the same way over the workers left and its
  replacement: a new actor in its place (``RayOptions.restarts`` times), which builds its agent and, in training,
  loads the last synced weights and passes their probe first. An episode counts once, when it reaches the driver, so
  none is lost or stored twice. The run stops with ``RolloutError`` only when no worker is left, or when a worker
  raises (an agent that does not build, a bad task). The dead worker's containers stop when their owner does
  (turngym.sandboxes.docker), its JVMs and browsers likewise.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field

from turngym.agents.runner import EpisodeTask, run_episodes
from turngym.core.errors import ConfigError, RolloutError, StaleWeightsError
from turngym.core.types import Episode

__all__ = [
    "AgentRecipe",
    "RayOptions",
    "RayRollout",
    "RolloutPool",
    "RolloutWorker",
    "SpecRecipe",
    "deal",
    "run_episodes_ray",
]

#: the object store of a Ray instance started here: episodes are small, and the machine's memory is the envs'
OBJECT_STORE_BYTES = 256 * 2**20
#: seconds to wait for the cluster to place the workers before saying it cannot
PLACE_TIMEOUT = 60.0
#: seconds a worker gets to close its agent at the end before it is killed
CLOSE_TIMEOUT = 30.0
#: the cluster resource that stands for each env requirement (``EnvInfo.requires``)
NODE_RESOURCES = {"docker": "docker", "browser": "chromium"}
#: how much of that resource one worker takes (so a node offering 1 holds up to 1,000 workers)
RESOURCE_SLIVER = 0.001


class RayOptions(BaseModel):
    """Where and how wide the Ray rollouts run (``turngym eval --ray [ADDRESS] --workers N``, ``ray:`` in configs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    #: "local" starts a Ray instance for the run; "auto" or "HOST:PORT" joins a running cluster
    address: str = "local"
    workers: int = Field(default=2, ge=1)
    cpus_per_worker: float = Field(default=1.0, gt=0)
    #: times each worker (and each engine) is replaced after it dies (a new actor in its place, its agent built, the
    #: weights of the last sync loaded and probed); 0: a dead worker's work moves to the others and it stays gone
    restarts: int = Field(default=3, ge=0)
    #: 0: each worker runs its own copy of the agent's engine; N: N inference engine actors serve every worker's
    #: requests, each request to the least loaded (turngym.distributed.ray_engines; hf: and vllm: agents)
    engines: int = Field(default=0, ge=0)
    cpus_per_engine: float = Field(default=1.0, ge=0)
    gpus_per_engine: float = Field(default=0.0, ge=0)
    #: the Python the engine actors run in (Ray's ``py_executable``; the same Ray version there, and turngym): e.g.
    #: a virtualenv that has vLLM (.venv-vllm/bin/python on CPU) while the workers run in this one; None: this one
    engine_python: str | None = None


@dataclass
class RayRollout:
    """What ``run_episodes_ray`` played, and where."""

    #: the episodes, in the order of the tasks
    episodes: list[Episode]
    #: each worker: index, pid, host, node (Ray's node id)
    workers: list[dict[str, Any]] = field(default_factory=list)
    #: episode id -> index of the worker whose episode reached the driver
    played_on: dict[str, int] = field(default_factory=dict)
    #: episode id -> pid of the worker process that played it (a restarted worker keeps its index, not its pid)
    played_by: dict[str, int] = field(default_factory=dict)
    #: episode id -> pid of the worker that died before its episode reached the driver (it was played again)
    replayed: dict[str, int] = field(default_factory=dict)
    #: worker index -> why it is gone
    lost: dict[int, str] = field(default_factory=dict)
    #: with engine actors: each engine's index, pid, host, node, Python and requests served so far
    engines: list[dict[str, Any]] = field(default_factory=list)


class AgentRecipe(Protocol):
    """How a rollout worker makes its agent (the recipe is pickled to the worker): ``build()`` once per worker (a
    model loaded, an engine started), ``agent(built, seed)`` for each ``play`` (``seed``: the driver's, e.g. a
    training iteration's sampling seed), ``close(built)`` at the end. A recipe for training also has
    ``load_weights(built, weights)`` and ``prompt_logprobs(built, ids)`` (the engine's weight sync and probe)."""

    def build(self) -> Any: ...

    def agent(self, built: Any, seed: int | None) -> Any: ...

    async def close(self, built: Any) -> None: ...


@dataclass(frozen=True)
class SpecRecipe:
    """An agent spec (``make_agent(spec, **options)``), built once per worker and played as it is."""

    spec: str
    options: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Any:
        from turngym.agents.base import make_agent

        return make_agent(self.spec, **self.options)

    def agent(self, built: Any, seed: int | None) -> Any:
        return built

    async def close(self, built: Any) -> None:
        await built.aclose()


class RolloutWorker:
    """The Ray actor (``ray.remote(RolloutWorker)``): builds its agent's parts once from the recipe, then plays the
    shares it is given with the local runner, streaming each episode back as it finishes; its envs are made and
    closed per share. For training it also takes new weights and answers the probe."""

    def __init__(self, index: int, recipe: AgentRecipe) -> None:
        self.index = index
        self.recipe = recipe
        self._built: Any = None
        self._partners: Any = None

    def where(self) -> dict[str, Any]:
        import ray

        node = ray.get_runtime_context().get_node_id()
        return {"index": self.index, "pid": os.getpid(), "host": socket.gethostname(), "node": node}

    async def build(self) -> None:
        if self._built is None:
            from turngym.agents.partner import PartnerPool

            built = self.recipe.build()
            self._built = await built if inspect.isawaitable(built) else built
            self._partners = PartnerPool()

    async def play(self, tasks: list[EpisodeTask], options: dict[str, Any], seed: int | None = None):
        """An async generator of the episodes of ``tasks``, as they finish."""
        await self.build()
        agent = self.recipe.agent(self._built, seed)
        finished: asyncio.Queue[Episode | None] = asyncio.Queue()
        job = asyncio.ensure_future(
            run_episodes(tasks, agent, partners=self._partners, on_episode=finished.put_nowait, **options)
        )
        job.add_done_callback(lambda _: finished.put_nowait(None))
        try:
            while (episode := await finished.get()) is not None:
                yield episode
            await job  # what the runner raised, if it did
        finally:
            if not job.done():  # the driver went away or cancelled: the runner closes its envs
                job.cancel()
                await asyncio.gather(job, return_exceptions=True)

    async def load_weights(self, weights: list[tuple[str, Any]]) -> None:
        await self.build()
        await self.recipe.load_weights(self._built, weights)  # type: ignore[attr-defined]

    async def prompt_logprobs(self, ids: list[int]) -> list[float]:
        await self.build()
        return await self.recipe.prompt_logprobs(self._built, ids)  # type: ignore[attr-defined]

    async def close(self) -> None:
        if self._built is not None:
            await self.recipe.close(self._built)
        if self._partners is not None:
            await self._partners.aclose()


def deal(tasks: Sequence[EpisodeTask], workers: int) -> list[list[EpisodeTask]]:
    """``tasks`` split into ``workers`` shares, each group (``group_id``) whole in one share: a group goes to the
    share with the fewest tasks so far (the lowest index on a tie), in task order."""
    groups: dict[str, list[EpisodeTask]] = {}
    for task in tasks:
        groups.setdefault(task.group_id or task.episode_id, []).append(task)
    shares: list[list[EpisodeTask]] = [[] for _ in range(workers)]
    for group in groups.values():
        min(shares, key=len).extend(group)
    return shares


async def run_episodes_ray(
    tasks: Sequence[EpisodeTask],
    agent: str,
    *,
    agent_options: dict[str, Any] | None = None,
    ray: RayOptions | None = None,
    concurrency: int = 8,
    turn_timeout: float | None = None,
    episode_timeout: float | None = None,
    run_id: str = "",
    on_episode: Callable[[Episode], None] | None = None,
    on_event: Callable[[str], None] | None = None,
) -> RayRollout:
    """Play ``tasks`` with the agent of spec ``agent`` on Ray rollout workers started for the call (no more than
    the tasks have groups); see the module docstring. ``on_episode`` sees each episode as it reaches the driver,
    ``on_event`` a line for the placement and for each worker lost."""
    if not tasks:
        return RayRollout(episodes=[])
    options = ray or RayOptions()
    options = options.model_copy(
        update={"workers": min(options.workers, len({t.group_id or t.episode_id for t in tasks}))}
    )
    if options.engines and agent.partition(":")[0] not in ("hf", "vllm"):
        raise ConfigError(
            f"engine actors serve a model, and the agent {agent!r} has none: use an hf:PATH or vllm:PATH agent, or "
            "drop engines (--engines) to run the agent on each worker"
        )
    recipe = SpecRecipe(agent, dict(agent_options or {}))
    async with RolloutPool(recipe, options, env_ids={t.env_id for t in tasks}, on_event=on_event) as pool:
        return await pool.play(
            tasks,
            concurrency=concurrency,
            turn_timeout=turn_timeout,
            episode_timeout=episode_timeout,
            run_id=run_id,
            on_episode=on_episode,
        )


class RolloutPool:
    """Ray rollout workers for as long as the pool is open (a training run keeps them across its iterations):

        async with RolloutPool(recipe, RayOptions(workers=4), env_ids=["turngym/Terminal-v0"]) as pool:
            result = await pool.play(tasks, concurrency=8)
            await pool.load_weights(weights)          # training: every worker serves them (then probe it)

    Opening connects to Ray (``connected``), places the workers (``env_ids`` decide the docker / chromium
    resources) and has each build its agent, so a model that does not load stops here with ``RolloutError``
    naming the worker. A worker that dies is replaced at once (``RayOptions.restarts`` times) by a new actor in its
    place, which builds its agent and, in training, loads the weights of the last sync and must pass the same probe
    (``expect``) before it plays; meanwhile and otherwise its unfinished work goes to the others."""

    def __init__(
        self,
        recipe: AgentRecipe,
        options: RayOptions,
        *,
        env_ids: Iterable[str] = (),
        on_event: Callable[[str], None] | None = None,
    ) -> None:
        self.recipe, self.options = recipe, options
        self.env_ids = sorted(set(env_ids))
        self.say = on_event or (lambda _line: None)
        self.workers: list[dict[str, Any]] = []
        self.lost: dict[int, str] = {}
        self._ray: Any = None
        self._handles: list[Any] = []
        self._group: Any = None
        self._exit = contextlib.ExitStack()
        self._restarts: dict[int, int] = {}
        self._needs: dict[str, float] = {}
        self._restarting = asyncio.Lock()
        #: the last weights pushed (an object ref) and the probe they passed: its ids and the trainer's check of an
        #: engine's logprobs of them (``expect``)
        self._weights: Any = None
        self._probe: tuple[list[int], Callable[[list[float], str], float]] | None = None
        #: with ``options.engines``: the engine actors, their board (turngym.distributed.ray_engines), where they run
        self._engines: list[Any] = []
        self._board: Any = None
        self.engines: list[dict[str, Any]] = []
        #: what each worker builds: the recipe, or with engine actors the recipe routed to them
        self._worker_recipe: AgentRecipe = recipe

    async def __aenter__(self) -> Self:
        self._ray = import_ray()
        self._exit.enter_context(connected(self._ray, self.options))
        try:
            recipe = self.recipe
            if self.options.engines:
                recipe = await self._start_engines()
            self._handles, self._group, self._needs = await _start_workers(
                self._ray, self.env_ids, recipe, self.options, self.options.workers
            )
            self._worker_recipe = recipe
            self._restarts = dict.fromkeys(range(len(self._handles)), self.options.restarts)
            self.workers = await _gather(self._ray, [h.where.remote() for h in self._handles], "starting")
            await self._each(lambda h: h.build.remote(), "building its agent")
        except BaseException:
            await self.aclose()
            raise
        nodes = {w["node"] for w in self.workers}
        placed = ", ".join(f"{w['index']}: pid {w['pid']} on {w['host']}" for w in self.workers)
        self.say(f"rollout workers: {len(self.workers)} on {len(nodes)} node(s) ({placed})")
        return self

    async def _start_engines(self) -> Any:
        """The engine actors, each built (a model that does not load stops here, naming the engine); the workers'
        recipe that routes to them."""
        from turngym.distributed.ray_engines import RoutedRecipe, start_engines

        self._board, self._engines = start_engines(self._ray, self.recipe, self.options)
        try:
            self.engines = list(await asyncio.wait_for(
                asyncio.gather(*[e.where.remote() for e in self._engines]), PLACE_TIMEOUT
            ))
        except TimeoutError:
            free = {k: v for k, v in self._ray.available_resources().items() if k in ("CPU", "GPU")}
            raise ConfigError(
                f"the Ray cluster cannot place {self.options.engines} engine(s) of {self.options.cpus_per_engine} CPU "
                f"and {self.options.gpus_per_engine} GPU each within {PLACE_TIMEOUT:.0f} s (free now: {free}): ask "
                "for fewer engines or less each (cpus_per_engine, gpus_per_engine), or add nodes"
            ) from None
        for info, engine in zip(self.engines, self._engines, strict=True):
            try:
                await engine.describe.remote()
            except Exception as e:  # noqa: BLE001 - the engine's own error, named
                cause = getattr(e, "cause", None) or e
                raise RolloutError(
                    f"engine {info['index']} (pid {info['pid']} on {info['host']}) could not start: "
                    f"{type(cause).__name__}: {cause}"
                ) from None
        placed = ", ".join(f"{e['index']}: pid {e['pid']} on {e['host']}" for e in self.engines)
        self.say(f"engines: {len(self.engines)} on {len({e['node'] for e in self.engines})} node(s) ({placed})")
        return RoutedRecipe(self.recipe, tuple(self._engines))

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Each worker closes its agent (``CLOSE_TIMEOUT``), then every worker is killed and Ray left (safe twice)."""
        handles, self._handles = self._handles, []
        engines, self._engines = self._engines, []
        try:
            if handles:
                await _stop_workers(self._ray, handles, self._group)
            if engines:
                from turngym.distributed.ray_engines import stop_engines

                await stop_engines(self._ray, self._board, engines, CLOSE_TIMEOUT)
        finally:
            self._exit.close()

    @property
    def alive(self) -> list[int]:
        return [w for w in range(len(self._handles)) if w not in self.lost]

    def where(self, w: int) -> str:
        info = self.workers[w]
        return f"rollout worker {w} (pid {info['pid']} on {info['host']}, node {info['node'][:8]})"

    def _lose(self, w: int, error: BaseException, handle: Any = None) -> bool:
        """Mark worker ``w`` gone (False if ``handle``, the actor that failed, was already replaced)."""
        if handle is not None and handle is not self._handles[w]:
            return False
        text = str(error).strip()
        reason = text.splitlines()[0] if text else type(error).__name__
        with contextlib.suppress(Exception):
            self._ray.kill(self._handles[w])  # a worker that was only unreachable must not come back and play on
        self.lost.setdefault(w, reason)
        return True

    def _none_left(self, w: int) -> RolloutError:
        return RolloutError(f"every rollout worker is gone, the last {self.where(w)}: {self.lost[w]}")

    async def restart(self, w: int) -> bool:
        """Replace lost worker ``w`` by a new actor in its place (if it has restarts left): its agent built, the
        last sync's weights loaded and probed. True if worker ``w`` plays again."""
        from ray.exceptions import RayError

        async with self._restarting:
            if w not in self.lost:
                return True
            if self._restarts.get(w, 0) <= 0:
                return False
            self._restarts[w] -= 1
            handle = _new_worker(self._ray, self._group, self._worker_recipe, self.options, self._needs, w)
            try:
                info = await asyncio.wait_for(handle.where.remote(), PLACE_TIMEOUT)
                await handle.build.remote()
                if self._weights is not None:
                    await handle.load_weights.remote(self._weights)
                if self._probe is not None:
                    ids, check = self._probe
                    check(await handle.prompt_logprobs.remote(ids), f"the engine of the new pid {info['pid']}")
            except (RayError, TimeoutError, StaleWeightsError) as e:
                with contextlib.suppress(Exception):
                    self._ray.kill(handle)
                self.say(f"rollout worker {w} could not be restarted: {type(e).__name__}: {e}")
                return False
            self._handles[w], self.workers[w] = handle, info
            self.lost.pop(w)
            synced = " (the last weights loaded and probed)" if self._probe is not None else ""
            self.say(f"rollout worker {w} restarted as pid {info['pid']} on {info['host']}{synced}")
            return True

    async def expect(self, ids: list[int], check: Callable[[list[float], str], float]) -> None:
        """The probe the last weights passed: a restarted worker's (or engine actor's) engine logprobs of ``ids``
        must pass ``check`` (which raises StaleWeightsError naming the engine, its second argument) before it
        plays."""
        if self._engines:
            await self._board.set_probe.remote(list(ids), check)
        else:
            self._probe = (list(ids), check)

    async def play(
        self,
        tasks: Sequence[EpisodeTask],
        *,
        concurrency: int = 8,
        turn_timeout: float | None = None,
        episode_timeout: float | None = None,
        run_id: str = "",
        seed: int | None = None,
        on_episode: Callable[[Episode], None] | None = None,
    ) -> RayRollout:
        """Play ``tasks`` on the workers left, groups dealt whole (``deal``); the episodes in task order. ``seed``
        goes to the recipe's ``agent``."""
        if any(t.parent is not None or t.branch_points for t in tasks):
            raise ValueError(
                "branching rollouts (branch_points, branch_tasks) run on the local runner, not on Ray workers"
            )
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        for w in list(self.lost):  # lost between plays (in a weight sync): back with the weights just probed
            await self.restart(w)
        result = RayRollout(episodes=[], workers=self.workers)
        if tasks:
            play_options = {
                "concurrency": concurrency,
                "turn_timeout": turn_timeout,
                "episode_timeout": episode_timeout,
                "run_id": run_id,
            }
            await self._drive(list(tasks), play_options, seed, result, on_episode)
        by_id = {e.episode_id: e for e in result.episodes}
        result.episodes = [by_id[t.episode_id] for t in tasks]
        if self._engines:
            await self._engine_news(result)
        return result

    async def _engine_news(self, result: RayRollout) -> None:
        """The engines' lines (restarts) said, their request counts in ``result``; RolloutError when no engine was
        left to take a request."""
        for line in await self._board.take_news.remote():
            self.say(line)
        stats = await asyncio.gather(*[e.stats.remote() for e in self._engines], return_exceptions=True)
        result.engines = [s for s in stats if isinstance(s, dict)]
        from turngym.distributed.ray_engines import NO_ENGINE

        stranded = [e for e in result.episodes if e.error and NO_ENGINE in e.error]
        if stranded:
            raise RolloutError(
                f"{len(stranded)} episode(s) found no engine to serve them: {stranded[0].error}. The episodes that "
                "finished are kept; check why the engines died (their logs under the Ray session's logs) and rerun"
            )

    async def load_weights(self, weights: list[tuple[str, Any]]) -> None:
        """Every engine serves ``weights`` (put in Ray's object store once): each engine actor, or each worker's
        own engine."""
        ref = self._ray.put(weights)
        if self._engines:
            await self._board.set_weights.remote([ref])  # what a restarted engine loads
            await self._on_engines(lambda e: e.load_weights.remote(ref), "loading weights")
            return
        self._probe = None  # until the trainer has probed these weights (expect)
        await self._each(lambda h: h.load_weights.remote(ref), "loading weights")
        self._weights = ref

    async def prompt_logprobs(self, ids: list[int]) -> dict[str, list[float]]:
        """Each engine's logprobs of ``ids`` (the probe after a weight sync), by the engine's name."""
        if self._engines:
            return await self._on_engines(lambda e: e.prompt_logprobs.remote(list(ids)), "the probe")
        answers = await self._each(lambda h: h.prompt_logprobs.remote(list(ids)), "the probe")
        return {f"{self.where(w)}'s engine": v for w, v in answers.items()}

    async def _on_engines(self, call: Callable[[Any], Any], doing: str) -> dict[str, Any]:
        """``call(engine)`` on every engine actor, by name; one that died is restarted by Ray and asked again."""
        from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

        out: dict[str, Any] = {}
        for info, engine in zip(self.engines, self._engines, strict=True):
            for attempt in range(self.options.restarts + 1):
                try:
                    out[f"engine {info['index']}"] = await call(engine)
                    break
                except (RayActorError, ActorUnavailableError) as e:
                    if attempt == self.options.restarts:
                        raise RolloutError(f"engine {info['index']} is gone in {doing}: {e}") from None
                except RayTaskError as e:
                    cause = e.cause if getattr(e, "cause", None) is not None else e
                    raise RolloutError(
                        f"engine {info['index']} failed in {doing}: {type(cause).__name__}: {cause}"
                    ) from None
        return out

    async def _each(self, call: Callable[[Any], Any], doing: str) -> dict[int, Any]:
        """``call(handle)`` on every worker left, awaited; the answers by worker index (a worker lost on the way
        is left out, RolloutError if none is left or one raised)."""
        from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

        workers = self.alive
        refs = [call(self._handles[w]) for w in workers]
        out = {}
        for w, ref in zip(workers, refs, strict=True):
            try:
                out[w] = await ref
            except (RayActorError, ActorUnavailableError) as e:
                self._lose(w, e)
                self.say(f"{self.where(w)} is gone ({self.lost[w]}) in {doing}")
                if not self.alive:
                    raise self._none_left(w) from None
            except RayTaskError as e:
                cause = e.cause if getattr(e, "cause", None) is not None else e
                raise RolloutError(f"{self.where(w)} failed in {doing}: {type(cause).__name__}: {cause}") from None
        return out

    async def _drive(
        self,
        tasks: list[EpisodeTask],
        play_options: dict[str, Any],
        seed: int | None,
        result: RayRollout,
        on_episode: Callable[[Episode], None] | None,
    ) -> None:
        from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

        got: dict[str, Episode] = {}

        async def stream(w: int, share: list[EpisodeTask]) -> list[tuple[int, list[EpisodeTask]]]:
            """Play ``share`` on worker ``w``; the shares to play elsewhere if the worker dies."""
            handle = self._handles[w]
            pid = self.workers[w]["pid"]
            episodes = handle.play.remote(share, play_options, seed)
            try:
                async for ref in episodes:
                    episode = await ref
                    if episode.episode_id in got:  # played again after a loss that was only a delay: counted once
                        continue
                    got[episode.episode_id] = episode
                    result.played_on[episode.episode_id] = w
                    result.played_by[episode.episode_id] = pid
                    if on_episode is not None:
                        on_episode(episode)
                return []
            except (RayActorError, ActorUnavailableError) as e:
                error: BaseException = e
            except RayTaskError as e:
                cause = e.cause if getattr(e, "cause", None) is not None else e
                raise RolloutError(f"{self.where(w)} failed: {type(cause).__name__}: {cause}") from None
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    self._ray.cancel(episodes)
                raise
            # the worker is gone: what it had not sent is played again by the others
            left = [t for t in share if t.episode_id not in got]
            for task in left:
                result.replayed[task.episode_id] = pid
            gone = self.where(w)
            if self._lose(w, error, handle):
                result.lost[w] = self.lost[w]
                self.say(f"{gone} is gone ({self.lost[w]}): {len(left)} unfinished episode(s) to play again")
            await self.restart(w)
            if not self.alive:
                raise RolloutError(
                    f"{self._none_left(w)}. The {len(got)} episodes that finished are kept; rerun to play the rest "
                    "(an eval resumes from its run directory)"
                ) from None
            survivors = self.alive
            return [(survivors[i], part) for i, part in enumerate(deal(left, len(survivors))) if part]

        alive = self.alive
        jobs = {
            asyncio.ensure_future(stream(alive[i], share)) for i, share in enumerate(deal(tasks, len(alive))) if share
        }
        done: set[asyncio.Future[Any]] = set()
        try:
            while jobs:
                done, jobs = await asyncio.wait(jobs, return_when=asyncio.FIRST_COMPLETED)
                for job in done:
                    for w, share in job.result():
                        jobs.add(asyncio.ensure_future(stream(w, share)))
        finally:
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, *done, return_exceptions=True)  # every job's error retrieved, one raised
        result.episodes = list(got.values())


def import_ray() -> Any:
    """``ray``, with usage stats off and its traffic on loopback on a one-machine cluster (set before import)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "Ray rollouts need Ray, which is not installed: pip install 'turngym[ray]' (the same Ray version on every "
            "node of the cluster), or run without --ray to use the local runner"
        ) from None
    return ray


@contextlib.contextmanager
def connected(ray: Any, options: RayOptions) -> Iterator[None]:
    """Connected to Ray for the block: the existing connection, a cluster at ``options.address``, or a local
    instance started (and stopped) here."""
    if ray.is_initialized():
        yield
        return
    address = options.address
    try:
        if address == "local":
            ray.init(
                address="local",
                num_cpus=max(
                    os.cpu_count() or 1,
                    int(options.workers * options.cpus_per_worker + options.engines * options.cpus_per_engine + 0.999),
                ),
                include_dashboard=False,
                object_store_memory=OBJECT_STORE_BYTES,
                logging_level=logging.WARNING,
            )
        else:
            ray.init(address=address, logging_level=logging.WARNING)
    except Exception as e:  # noqa: BLE001 - whatever ray.init raises becomes one paragraph
        raise ConfigError(
            f"cannot use the Ray cluster at {address!r}: {type(e).__name__}: {e}. Start one (`ray start --head`) and "
            "pass its address (HOST:PORT, or auto for the one on this machine), or pass --ray alone to start a local "
            "one for the run"
        ) from None
    try:
        yield
    finally:
        ray.shutdown()


async def _start_workers(
    ray: Any, env_ids: Sequence[str], recipe: AgentRecipe, options: RayOptions, workers: int
) -> tuple[list[Any], Any, dict[str, float]]:
    from ray.util.placement_group import placement_group, remove_placement_group

    from turngym.core.registry import env_info

    offered = ray.cluster_resources()
    needs = {
        NODE_RESOURCES[req]: RESOURCE_SLIVER
        for env_id in env_ids
        for req in env_info(env_id).requires
        if req in NODE_RESOURCES and NODE_RESOURCES[req] in offered
    }
    bundle = {"CPU": options.cpus_per_worker, **needs}
    group = placement_group([dict(bundle) for _ in range(workers)], strategy="SPREAD")
    try:
        await asyncio.wait_for(group.ready(), PLACE_TIMEOUT)
    except TimeoutError:
        remove_placement_group(group)
        free = {k: v for k, v in ray.available_resources().items() if k == "CPU" or k in NODE_RESOURCES.values()}
        raise ConfigError(
            f"the Ray cluster cannot place {workers} rollout workers of {bundle} each within {PLACE_TIMEOUT:.0f} s "
            f"(free now: {free}): ask for fewer workers (--workers, ray.workers), less CPU each "
            "(ray.cpus_per_worker), or add nodes"
        ) from None
    return [_new_worker(ray, group, recipe, options, needs, i) for i in range(workers)], group, needs


def _new_worker(ray: Any, group: Any, recipe: AgentRecipe, options: RayOptions, needs: dict[str, float], i: int) -> Any:
    """Rollout worker ``i``: an actor in bundle ``i`` of the placement group."""
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    return (
        ray.remote(RolloutWorker)
        .options(
            num_cpus=options.cpus_per_worker,
            resources=needs or None,
            max_restarts=0,
            scheduling_strategy=PlacementGroupSchedulingStrategy(placement_group=group, placement_group_bundle_index=i),
        )
        .remote(i, recipe)
    )


async def _stop_workers(ray: Any, handles: list[Any], group: Any) -> None:
    """Each worker closes its agent (``CLOSE_TIMEOUT``), then every worker is killed and the placement removed."""
    from ray.util.placement_group import remove_placement_group

    closing = [h.close.remote() for h in handles]
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), CLOSE_TIMEOUT)
    for handle in handles:
        with contextlib.suppress(Exception):
            ray.kill(handle)
    with contextlib.suppress(Exception):
        remove_placement_group(group)


async def _gather(ray: Any, refs: list[Any], doing: str) -> list[Any]:
    from ray.exceptions import RayError

    try:
        return list(await asyncio.gather(*refs))
    except RayError as e:
        raise RolloutError(f"a rollout worker failed while {doing}: {e}") from None

"""Inference engines as Ray actors, shared by every rollout worker (``RayOptions.engines`` > 0):

    rollout worker: LLMAgent -> RoutedBackend --generate--> the least loaded EngineActor (an hf or vllm Backend)
    driver (RolloutPool): load_weights and the probe --> every EngineActor; the EngineBoard keeps the last of both

With ``engines: 0`` (the default) each rollout worker builds its own copy of the engine, as before; with N, the
workers hold no model: their agents send each request to one of N engine actors placed on the cluster by
resources (``cpus_per_engine``, ``gpus_per_engine``), so a few GPU engines serve many CPU-bound env workers.

- **Routing.** A worker's ``RoutedBackend`` sends a request to the engine with the fewest of its requests in
  flight (the lowest index on a tie), as verl's server manager does with its request counts; every worker
  balancing its own requests balances the whole. A request is a pure function of (prompt, sampling, seed), so
  one sent again after its engine died gives the same episode.
- **Faults.** An engine actor that dies is restarted by Ray in place (``RayOptions.restarts`` times; the workers'
  handles stay valid, calls made meanwhile wait for it). Before it serves, the new process builds its engine, loads
  the last weights the driver pushed (kept by the ``EngineBoard``, a small actor) and must pass their probe; it
  posts a line the driver shows. Requests in flight on it go to the other engines. When no engine is left, the
  requests fail (the episodes end with the error) and the driver stops the run with ``RolloutError`` naming them.
- **Recipes.** An engine is built from the pool's agent recipe: a training run's ``PolicyRecipe`` (``build()``
  returns the run's backend) or an eval's ``SpecRecipe`` of an ``hf:``/``vllm:`` spec (the agent's backend; its
  sampling and prompt settings travel to the workers' agents).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turngym.agents.llm import Backend, Generation, LLMAgent
from turngym.agents.sampling import SamplingConfig
from turngym.core.errors import BackendError, ConfigError, StaleWeightsError

__all__ = ["NO_ENGINE", "EngineActor", "EngineBoard", "RoutedBackend", "RoutedRecipe", "engine_of"]

#: seconds a request waits for some engine to take it (a restarting one included) before it fails
REQUEST_WAIT = 120.0
#: how that failure's message starts (the driver finds the episodes it ended by it)
NO_ENGINE = "no Ray engine took the request"


def engine_of(built: Any) -> tuple[Backend, dict[str, Any] | None]:
    """What an engine actor serves from what its recipe built: a backend as it is, or an LLM agent's backend and
    the agent's settings (for the workers' agents)."""
    if isinstance(built, Backend):
        return built, None
    if isinstance(built, LLMAgent):
        settings = {
            "sampling": built.sampling, "system_prompt": built.system_prompt, "chat_template": built.chat_template,
            "name": built.name, "trainable": built.trainable,
        }
        return built.backend, settings
    name = getattr(built, "name", type(built).__name__)
    raise ConfigError(
        f"engine actors serve a model, and the agent {name!r} has none: use an hf:PATH or vllm:PATH agent, or "
        "engines 0 (each rollout worker runs its agent itself)"
    )


class EngineBoard:
    """The Ray actor that keeps what a restarted engine needs: the last weights pushed (an object ref, kept alive
    here) and the probe they passed (its ids and the trainer's check); and the lines engines post for the driver."""

    def __init__(self) -> None:
        self.weights: list[Any] | None = None
        self.probe: tuple[list[int], Callable[[list[float], str], float]] | None = None
        self.news: list[str] = []
        self.starts: dict[int, int] = {}

    def started(self, index: int) -> int:
        """Engine ``index`` starts: how many times it had started before (> 0: Ray restarted it)."""
        self.starts[index] = self.starts.get(index, 0) + 1
        return self.starts[index] - 1

    def set_weights(self, weights: list[Any]) -> None:
        """``weights``: [ref], a list so that Ray hands the ref over instead of its value."""
        self.weights, self.probe = weights, None

    def set_probe(self, ids: list[int], check: Callable[[list[float], str], float]) -> None:
        self.probe = (list(ids), check)

    def latest(self) -> tuple[list[Any] | None, tuple[list[int], Callable[[list[float], str], float]] | None]:
        return self.weights, self.probe

    def post(self, line: str) -> None:
        self.news.append(line)

    def take_news(self) -> list[str]:
        news, self.news = self.news, []
        return news


class EngineActor:
    """The Ray actor (``ray.remote(EngineActor)``) of one inference engine: built from the recipe at its first call
    (after a restart: with the last weights loaded and probed first), then serving every worker's requests."""

    def __init__(self, index: int, recipe: Any, board: str) -> None:
        import ray

        # the board by name: an actor handle among the constructor's arguments would live in the object store,
        # which Ray warns may not survive to a restart
        self.index, self.recipe, self.board = index, recipe, ray.get_actor(board)
        self.backend: Backend | None = None
        self.settings: dict[str, Any] | None = None
        self.served = 0
        self._starting = asyncio.Lock()

    def where(self) -> dict[str, Any]:
        import ray

        node = ray.get_runtime_context().get_node_id()
        return {
            "index": self.index, "pid": os.getpid(), "host": socket.gethostname(), "node": node,
            "python": sys.executable,
        }

    def name(self) -> str:
        return f"engine {self.index} (pid {os.getpid()} on {socket.gethostname()})"

    async def ready(self) -> Backend:
        """The engine, built once; a restarted actor loads the last weights and passes their probe first."""
        if self.backend is not None:
            return self.backend
        async with self._starting:
            if self.backend is None:
                backend, self.settings = engine_of(self.recipe.build())
                if await self.board.started.remote(self.index):
                    await self._resync(backend)
                self.backend = backend
        return self.backend

    async def _resync(self, backend: Backend) -> None:
        weights, probe = await self.board.latest.remote()
        what = "restarted as"
        if weights is not None:
            await backend.load_weights(await weights[0])
            what = "restarted with the last weights loaded"
        if probe is not None:
            ids, check = probe
            try:
                diff = check(await backend.prompt_logprobs(ids), self.name())
            except StaleWeightsError as e:  # never serve stale weights: die, and Ray starts another
                await self.board.post.remote(f"engine {self.index} failed its probe after a restart: {e}")
                os._exit(1)
            what += f" and probed (max diff {diff:.2g}),"
        await self.board.post.remote(f"engine {self.index} {what} pid {os.getpid()} on {socket.gethostname()}")

    async def describe(self) -> dict[str, Any]:
        """The tokenizer's directory, the backend's name and (for an agent spec) the agent's settings: what a
        worker's RoutedBackend and agent need (the model directory must be readable on every node)."""
        backend = await self.ready()
        # the tokenizer's directory, not the object: the workers' transformers may be another version
        return {"tokenizer": backend.tokenizer.name_or_path, "name": backend.name, "agent": self.settings}

    async def generate(self, prompt: list[int], sampling: SamplingConfig, pattern: str | None, seed: int | None):
        backend = await self.ready()
        self.served += 1
        return await backend.generate(prompt, sampling, pattern=pattern, seed=seed)

    async def load_weights(self, weights: list[tuple[str, Any]]) -> None:
        await (await self.ready()).load_weights(weights)

    async def prompt_logprobs(self, ids: list[int]) -> list[float]:
        return await (await self.ready()).prompt_logprobs(ids)

    def stats(self) -> dict[str, Any]:
        return {**self.where(), "served": self.served}

    async def close(self) -> None:
        if self.backend is not None:
            await self.backend.aclose()


class RoutedBackend(Backend):
    """A worker's backend over the engine actors: each request to the least loaded (see the module docstring)."""

    def __init__(self, engines: list[Any], tokenizer: Any, name: str) -> None:
        self.engines = list(engines)
        self.tokenizer = tokenizer
        self.name = f"{name} on {len(engines)} Ray engine(s)"
        self.in_flight = [0] * len(self.engines)

    def pick(self, skip: set[int]) -> int:
        """The engine with the fewest requests in flight, ``skip`` left out (all if that leaves none)."""
        free = [i for i in range(len(self.engines)) if i not in skip] or list(range(len(self.engines)))
        return min(free, key=lambda i: (self.in_flight[i], i))

    async def generate(
        self, prompt: list[int], sampling: SamplingConfig, *, pattern: str | None = None, seed: int | None = None
    ) -> Generation:
        from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError

        failed: dict[int, str] = {}
        deadline = asyncio.get_running_loop().time() + REQUEST_WAIT
        while True:
            i = self.pick(set(failed))
            self.in_flight[i] += 1
            try:
                return await self.engines[i].generate.remote(list(prompt), sampling, pattern, seed)
            except RayTaskError as e:  # the engine raised: the request's own error
                raise e.as_instanceof_cause() from None
            except (RayActorError, ActorUnavailableError) as e:
                failed[i] = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            finally:
                self.in_flight[i] -= 1
            if len(failed) < len(self.engines):
                continue  # another engine takes it now
            if asyncio.get_running_loop().time() > deadline:
                raise BackendError(
                    f"{NO_ENGINE} within {REQUEST_WAIT:.0f} s: "
                    + "; ".join(f"engine {k}: {why}" for k, why in sorted(failed.items()))
                )
            await asyncio.sleep(1.0)  # every engine failed it: wait for their restarts
            failed.clear()


@dataclass(frozen=True)
class RoutedRecipe:
    """A rollout worker's recipe when engines serve the model: the worker builds a RoutedBackend (the tokenizer and
    settings asked from an engine) and the inner recipe's agent over it; it holds no model."""

    inner: Any
    engines: tuple[Any, ...]

    async def build(self) -> tuple[RoutedBackend, dict[str, Any] | None]:
        from transformers import AutoTokenizer

        about = await self.engines[0].describe.remote()
        tokenizer = await asyncio.to_thread(AutoTokenizer.from_pretrained, about["tokenizer"])
        return RoutedBackend(list(self.engines), tokenizer, about["name"]), about["agent"]

    def agent(self, built: tuple[RoutedBackend, dict[str, Any] | None], seed: int | None) -> Any:
        backend, settings = built
        if settings is None:  # a training run's recipe: the run's agent over this backend
            return self.inner.agent(backend, seed)
        return LLMAgent(backend=backend, **settings)

    async def close(self, built: Any) -> None:
        """Nothing: the engines belong to the pool."""


def start_engines(ray: Any, recipe: Any, options: Any) -> tuple[Any, list[Any]]:
    """The board and ``options.engines`` engine actors, spread over the nodes (built at their first call)."""
    name = f"turngym-engine-board-{uuid.uuid4().hex[:12]}"
    board = ray.remote(EngineBoard).options(num_cpus=0, name=name).remote()
    extra: dict[str, Any] = {"num_gpus": options.gpus_per_engine} if options.gpus_per_engine else {}
    if options.engine_python is not None:
        python = Path(options.engine_python).expanduser().absolute()
        if not os.access(python, os.X_OK):
            raise ConfigError(
                f"ray.engine_python={options.engine_python!r} is not an executable Python here: give the path of the "
                "Python the engine actors run in (the same path on every node, with this Ray version and turngym "
                "installed, e.g. .venv-vllm/bin/python after `bash scripts/setup.sh all`), or drop it to run them in "
                "this Python"
            )
        extra["runtime_env"] = {"py_executable": str(python)}
    actor = ray.remote(EngineActor).options(
        num_cpus=options.cpus_per_engine, max_restarts=options.restarts, max_task_retries=0,
        scheduling_strategy="SPREAD", **extra,
    )
    return board, [actor.remote(i, recipe, name) for i in range(options.engines)]


async def stop_engines(ray: Any, board: Any, engines: list[Any], timeout: float) -> None:
    """Each engine closes its backend (``timeout``), then the engines and the board are killed."""
    closing = [e.close.remote() for e in engines]
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), timeout)
    for handle in [*engines, board]:
        with contextlib.suppress(Exception):
            ray.kill(handle)

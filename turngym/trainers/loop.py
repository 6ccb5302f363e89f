"""The one training loop: everything around an algorithm's update, written once.

    loop = TrainLoop(cfg, algorithm)              # algorithm: OnPolicyTrainer, ArcherTrainer (the Algorithm protocol)
    summary = loop.run(resume=False, progress=True)

    start      claim the run directory (refuse one that holds a run unless resuming, and one that holds an
               eval run); on resume compare config.yaml with the new config (see below), load the newest
               complete checkpoint; write config.yaml; ``algorithm.start(loop, fresh=...)``
    sync       a resumed run pushes the checkpoint's weights into the fresh engine (and probes)
    eval       on the held-out seeds before the first iteration, every ``eval.every``, at the end, through the
               benchmarks evaluator; its episodes go to the run's episode store (run_id ``eval{k}``) and
               report.html is rewritten (turngym.benchmarks.report: learning curve, last eval, transcripts)
    for k:     it = algorithm.step(k)          the part that differs: episodes -> updates, one Iteration
               weights -> engine + logprob probe when ``it.sync`` (stale weights stop the run)
               metrics -> RunDir.log (JSONL + TensorBoard); one rich progress display
               checkpoint every ``checkpoint.every`` iterations and at the end
    end        report.html once more (also where no eval ran)

A checkpoint (``checkpoints/iter-N/``) holds ``model/``, a plain Hugging Face model directory (LoRA merged,
tokenizer and chat template: ``hf:DIR``, ``vllm:DIR`` and ``vllm serve DIR`` load it as it is; ``turngym
export model RUN --out DIR`` copies it out), ``trainer.pt`` (the counters, the global RNG states, the LoRA
adapters when training LoRA, and ``algorithm.checkpoint_state()``: optimizers, generators, critics) and
the algorithm's own files (ArCHer: ``replay.jsonl``). A full fine-tune resumes its weights from ``model/``
(float32, exact); a resumed run replays what the killed run would have done.

**Resuming with a changed config.** ``--resume`` compares the run's ``config.yaml`` with the new resolved
config and raises ConfigError naming every differing key (dotted path, old -> new), except the keys in
``SAFE_TO_CHANGE``, which change how long the run goes or how it is watched, not what it learns:
``iterations``, ``eval.every``, ``checkpoint.every``, ``checkpoint.keep``, ``tensorboard``, ``torch_threads``,
``update_threads``, ``learner`` (a checkpoint does not depend on the number of learner processes).

The Algorithm protocol (what a trainer implements to plug in):

    model                          the policy (trained in place; the loop syncs, checkpoints and exports it)
    async start(loop, fresh=...)   before the first iteration of this process (``loop.backend`` is ready)
    async step(k) -> Iteration     iteration k: collect or sample, update; metrics in ``Iteration.record``
    probe_tokens()                 token streams to probe the engine with (the first non-empty one is used)
    checkpoint_state() / restore_state(state)     picklable extra state for trainer.pt
    write_files(dir) / read_files(dir)            extra checkpoint files
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from rich.markup import escape

from turngym.benchmarks.summary import cut_warning
from turngym.core.config import config_diff, dump_config
from turngym.core.errors import ConfigError
from turngym.trainers.config import TrainConfig
from turngym.trainers.policy import MODEL_DIR, is_lora, quiet_hf, save_model_dir
from turngym.trainers.engine import make_backend, resolve_device, sync_pool_weights, sync_weights
from turngym.trainers.rollout import evaluate
from turngym.trainers.run import RunDir, capture_rng, restore_rng

__all__ = [
    "PROBE_TOKENS",
    "SAFE_TO_CHANGE",
    "Algorithm",
    "Iteration",
    "ProgressDisplay",
    "TrainLoop",
    "check_resumable",
    "probe_ids",
    "refuse_eval_run",
]

#: config keys a resumed run may change (dotted paths; a key covers everything under it)
SAFE_TO_CHANGE = (
    "iterations",
    "eval.every",
    "checkpoint.every",
    "checkpoint.keep",
    "tensorboard",
    "torch_threads",
    "update_threads",
    "learner",
    # where the rollouts run, not what they sample: a run started on Ray workers resumes on others, or locally
    "rollout.engine",
    "rollout.workers",
    "rollout.address",
    "rollout.cpus_per_worker",
    "rollout.engines",
    "rollout.cpus_per_engine",
    "rollout.gpus_per_engine",
    "rollout.engine_python",
)

#: tokens of the probe sequence (a recorded token stream, cut)
PROBE_TOKENS = 256


def probe_ids(streams: Iterable[Sequence[int] | None], tokenizer: Any) -> list[int]:
    """The probe of a weight sync: the first non-empty recorded token stream (cut to PROBE_TOKENS), else a
    short chat prompt with a reply."""
    for s in streams:
        if s:
            return [int(t) for t in list(s)[:PROBE_TOKENS]]
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "probe [1] [2] [3]"}], tokenize=False, add_generation_prompt=True
    )
    return list(tokenizer.encode(text + "[1]", add_special_tokens=False))


@dataclass
class Iteration:
    """What ``Algorithm.step`` returns."""

    #: the iteration's metrics (the loop adds kind, iteration, episodes_seen, probe_diff, time_sync)
    record: dict[str, Any]
    #: episodes collected (counted into episodes_seen)
    episodes: int = 0
    #: the policy's weights changed (the engine is stale until the next sync)
    updated: bool = True
    #: push the weights into the engine now (and probe): the next iteration samples from it
    sync: bool = True


class Algorithm(Protocol):
    model: torch.nn.Module

    async def start(self, loop: TrainLoop, *, fresh: bool) -> None: ...

    async def step(self, k: int) -> Iteration: ...

    def probe_tokens(self) -> Iterable[Sequence[int] | None]: ...

    def checkpoint_state(self) -> dict[str, Any]: ...

    def restore_state(self, state: dict[str, Any]) -> None: ...

    def write_files(self, directory: Path) -> None: ...

    def read_files(self, directory: Path) -> None: ...


# ---- the run directory ----------------------------------------------------------------------------
def refuse_eval_run(path: Path) -> None:
    """ConfigError when ``path`` holds an eval run (``turngym eval --out``), which training must not overwrite."""
    if (path / "metrics.jsonl").exists() or (path / "checkpoints").exists():
        return
    if (path / "episodes.jsonl").exists() or (path / "summary.json").exists():
        raise ConfigError(
            f"run_dir {str(path)!r} holds an eval run (episodes.jsonl, summary.json), not a training run: "
            "training would overwrite its config.yaml; choose another run_dir"
        )


def check_resumable(path: Path, cfg: TrainConfig) -> None:
    """ConfigError naming every key of ``cfg`` that differs from the run's config.yaml, outside SAFE_TO_CHANGE."""
    import yaml

    stored_path = path / "config.yaml"
    if not stored_path.is_file():
        return
    stored = yaml.safe_load(stored_path.read_text(encoding="utf-8")) or {}
    try:  # defaults the stored file predates are filled in, so only what was set differently counts
        stored = TrainConfig.model_validate(stored).model_dump(mode="json")
    except ValueError:
        pass  # a config of an older schema: compared as written
    changed = [
        (key, old, new)
        for key, old, new in config_diff(stored, cfg.model_dump(mode="json"))
        if not any(key == safe or key.startswith(safe + ".") for safe in SAFE_TO_CHANGE)
    ]
    if changed:
        listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, old, new in changed)
        raise ConfigError(
            f"--resume: the config differs from the one run_dir {str(path)!r} was started with ({listed}). "
            "A resumed run must train as the interrupted one did: resume with the stored settings "
            f"({stored_path}), or start a new run_dir. Only {', '.join(SAFE_TO_CHANGE)} may change on resume."
        )


# ---- progress ---------------------------------------------------------------------------------------
class ProgressDisplay:
    """One rich progress display on stderr: the run's iterations, and transient bars for an iteration's
    phases (``with display.phase("critic", steps) as advance: ...``)."""

    def __init__(self, *, enabled: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.enabled = enabled
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
            console=Console(stderr=True), disable=not enabled, transient=False,
        )
        self._main: Any = None

    def __enter__(self) -> ProgressDisplay:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)  # type: ignore[arg-type]

    def start(self, description: str, total: int, completed: int) -> None:
        self._main = self._progress.add_task(description, total=total, completed=completed, info="")

    def update(self, completed: int, info: str) -> None:
        if self._main is not None:
            self._progress.update(self._main, completed=completed, info=info)

    def say(self, text: str) -> None:
        """A line above the bars (on stderr, also where the bars are off)."""
        self._progress.console.print(escape(text), highlight=False, soft_wrap=True)

    def warn(self, text: str) -> None:
        """A warning line above the bars (on stderr, also where the bars are off)."""
        self._progress.console.print(f"[bold yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)

    @contextmanager
    def phase(self, description: str, total: int) -> Iterator[Any]:
        """A bar for one phase of an iteration (none for a single step); yields ``advance()``."""
        if not self.enabled or total < 2:
            yield lambda: None
            return
        task = self._progress.add_task(description, total=total, info="")
        try:
            yield lambda: self._progress.advance(task)
        finally:
            self._progress.remove_task(task)


# ---- the loop ---------------------------------------------------------------------------------------
class TrainLoop:
    """A run of ``algorithm`` under ``cfg``. See the module docstring."""

    def __init__(self, cfg: TrainConfig, algorithm: Algorithm, *, backend: Any = None) -> None:
        self.cfg = cfg
        self.algorithm = algorithm
        self.dir = RunDir(cfg.run_dir, tensorboard=cfg.tensorboard)
        self.device = resolve_device(cfg)
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        self.iteration = 0
        self.episodes_seen = 0
        self.progress = ProgressDisplay(enabled=False)
        self._backend = backend
        #: the Ray rollout workers (``rollout.engine: ray``), open while the loop runs
        self.pool: Any = None
        self._stale = False  # the engine serves older weights than the trainer holds
        self._tokenizer: Any = None
        self._last_eval: Any = None  # the last EvalResult of this process (the report's), else read from the store
        self._cut_warned = False

    @property
    def backend(self) -> Any:
        """The rollout engine (made on first use)."""
        if self._backend is None:
            self._backend = make_backend(self.cfg)
        return self._backend

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.cfg.model.path)
        return self._tokenizer

    # -- the run -----------------------------------------------------------------------------------
    def run(self, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        return asyncio.run(self.arun(resume=resume, progress=progress))

    async def arun(self, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        """Train to ``cfg.iterations``; the summary: run_dir, iterations, episodes_seen, the last train
        record, the last eval's metrics."""
        try:
            self._claim(resume)
            self.progress = ProgressDisplay(enabled=progress)
            with self.progress:
                await self._loop()
            self.report()
        finally:
            await self.aclose()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        train, evals = self.dir.read_metrics("train"), self.dir.read_metrics("eval")
        skip = ("kind", "iteration", "episodes_seen", "time_eval")
        return {
            "run_dir": str(self.dir.path),
            "iterations": self.iteration,
            "episodes_seen": self.episodes_seen,
            "train": train[-1] if train else None,
            "eval": {k: v for k, v in evals[-1].items() if k not in skip} if evals else None,
        }

    def _claim(self, resume: bool) -> None:
        """Refuse a run directory of another kind or run, load the checkpoint to resume, snapshot the config."""
        refuse_eval_run(self.dir.path)
        if resume:
            check_resumable(self.dir.path, self.cfg)
            ckpt, _ = self.dir.resume_from()
            if ckpt is not None:
                self._load(ckpt)
        elif self.dir.latest() is not None or self.dir.read_metrics():
            raise ConfigError(
                f"run directory {self.dir.path} already holds a run: pass --resume to continue it, "
                "or choose another run_dir"
            )
        (self.dir.path / "config.yaml").write_text(dump_config(self.cfg), encoding="utf-8")

    async def _loop(self) -> None:
        cfg, alg = self.cfg, self.algorithm
        if cfg.rollout.engine == "ray":
            await self._open_pool()
        await alg.start(self, fresh=self.iteration == 0)
        if self.iteration > 0:  # a fresh engine serves the base weights: push the checkpoint's
            await self.sync()
        evaluated = {r["iteration"] for r in self.dir.read_metrics("eval")}
        if self.iteration == 0 and cfg.eval.every and 0 not in evaluated:
            await self.evaluate()
        self.progress.start(cfg.algorithm_name, cfg.iterations, self.iteration)
        while self.iteration < cfg.iterations:
            k = self.iteration + 1
            start = time.perf_counter()
            it = await alg.step(k)
            record: dict[str, Any] = {"kind": "train", "iteration": k, **it.record}
            self._stale = self._stale or it.updated
            if it.sync:
                t0 = time.perf_counter()
                record["probe_diff"] = await self.sync()
                record["time_sync"] = time.perf_counter() - t0
            record["time_iteration"] = time.perf_counter() - start  # rollout, update and sync: what overlap cuts
            self.iteration = k
            self.episodes_seen += it.episodes
            record["episodes_seen"] = self.episodes_seen
            self.dir.log(record)
            info = f"success {record['success']:.2f}" if "success" in record else ""
            self.progress.update(k, info)
            if cfg.eval.every and (k % cfg.eval.every == 0 or k == cfg.iterations):
                metrics = await self.evaluate()
                self.progress.update(k, f"{info} eval {metrics['success']:.2f}".strip())
            if k == cfg.iterations or (cfg.checkpoint.every and k % cfg.checkpoint.every == 0):
                self.save()

    # -- weight sync and eval ----------------------------------------------------------------------
    async def sync(self) -> float:
        """Push the policy's weights into the engine and probe it: the max |logprob diff|
        (StaleWeightsError above ``probe_tolerance``)."""
        ids = probe_ids(self.algorithm.probe_tokens(), self.backend.tokenizer)
        diff = await sync_weights(self.backend, self.algorithm.model, ids, tolerance=self.cfg.probe_tolerance)
        if self.pool is not None:
            pool_diff = await sync_pool_weights(self.pool, self.algorithm.model, ids, tolerance=self.cfg.probe_tolerance)
            diff = max(diff, pool_diff)
        self._stale = False
        return diff

    async def _open_pool(self) -> None:
        """The Ray rollout workers of ``rollout.engine: ray``, each with the run's engine (or routing to
        ``rollout.engines`` engine actors); on a resume they get the checkpoint's weights before the first rollout
        (the loop syncs them)."""
        from turngym.distributed.ray_rollout import RayOptions, RolloutPool
        from turngym.trainers.rollout import PolicyRecipe
        from turngym.trainers.tasks import env_specs

        r = self.cfg.rollout
        # the Ray settings the rollout section names (address, workers, engines...), each under the same name
        options = RayOptions(**r.model_dump(include=set(RayOptions.model_fields) & set(type(r).model_fields)))
        pool = RolloutPool(PolicyRecipe(self.cfg), options, env_ids=[s.id for s in env_specs(self.cfg)],
                           on_event=self.progress.say)
        self.pool = await pool.__aenter__()

    async def evaluate(self) -> dict[str, float]:
        """The policy on the held-out seeds through the engine (synced first), by the benchmarks evaluator: the
        episodes stored (run_id ``eval{k}``), the metrics logged as kind ``eval``, the report rewritten."""
        if self._stale:
            await self.sync()
        t0 = time.perf_counter()
        result = await evaluate(self.cfg, self.backend, store=self.dir.store, run_dir=self.dir.path,
                                run_id=f"eval{self.iteration}")
        self.dir.log({"kind": "eval", "iteration": self.iteration, "episodes_seen": self.episodes_seen,
                      **result.metrics, "time_eval": time.perf_counter() - t0})
        self._last_eval = result
        warning = cut_warning(result.summary)
        if warning is not None and not self._cut_warned:  # once a run: every eval would repeat it
            self._cut_warned = True
            self.progress.warn(warning)
        self.report()
        return result.metrics

    def report(self) -> Path:
        """report.html (turngym.benchmarks.report): the learning curve, the last eval's table and transcripts."""
        from turngym.benchmarks.report import write_train_report

        last = self._last_eval
        return write_train_report(self.dir.path, last_eval=(last.summary, last.episodes) if last is not None else None)

    # -- checkpoints -------------------------------------------------------------------------------
    def save(self) -> Path:
        """Checkpoint the current iteration (see the module docstring)."""
        model = self.algorithm.model

        def write(d: Path) -> None:
            save_model_dir(model, self.cfg.model.path, d / MODEL_DIR, tokenizer=self.tokenizer)
            self.algorithm.write_files(d)
            state: dict[str, Any] = {
                "iteration": self.iteration,
                "episodes_seen": self.episodes_seen,
                "algorithm": self.algorithm.checkpoint_state(),
            }
            if is_lora(model):  # the merged model/ cannot give the adapters back
                state["adapters"] = {n: t for n, t in model.state_dict().items() if "lora_" in n}
            state["rng"] = capture_rng()
            torch.save(state, d / "trainer.pt")

        return self.dir.save_checkpoint(self.iteration, write, keep=self.cfg.checkpoint.keep)

    def _load(self, ckpt: Path) -> None:
        """Load checkpoint ``ckpt`` (also one written before the one loop: the weights in trainer.pt's
        ``model`` or in ``policy/``, the algorithm's state at trainer.pt's top level)."""
        state = torch.load(ckpt / "trainer.pt", map_location="cpu", weights_only=False)
        model = self.algorithm.model
        weights_dir = ckpt / MODEL_DIR if (ckpt / MODEL_DIR).is_dir() else ckpt / "policy"
        try:
            if "model" in state:  # an on-policy checkpoint of an earlier version: the whole state_dict
                model.load_state_dict(state["model"])
            elif is_lora(model):
                missing = model.load_state_dict(state["adapters"], strict=False).missing_keys
                if any("lora_" in n for n in missing):
                    raise RuntimeError(f"adapters missing from the checkpoint: {[n for n in missing if 'lora_' in n][:3]}")
            else:
                from transformers import AutoModelForCausalLM

                with quiet_hf():
                    saved = AutoModelForCausalLM.from_pretrained(weights_dir, dtype=torch.float32)
                model.load_state_dict(saved.state_dict())
                del saved
        except (RuntimeError, KeyError, OSError) as e:
            raise ConfigError(
                f"checkpoint {ckpt} does not fit the policy {self.cfg.model.path!r} ({e}): resume with the model "
                "(and model.lora) the run started from"
            ) from e
        self.algorithm.restore_state(state.get("algorithm", state))
        self.algorithm.read_files(ckpt)
        restore_rng(state["rng"])
        self.iteration = int(state["iteration"])
        self.episodes_seen = int(state["episodes_seen"])

    # -- lifetime ----------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Release the engine and the run's files (safe twice)."""
        backend, self._backend = self._backend, None
        pool, self.pool = self.pool, None
        try:
            if pool is not None:
                await pool.aclose()
        finally:
            if backend is not None:
                await backend.aclose()
            self.dir.close()

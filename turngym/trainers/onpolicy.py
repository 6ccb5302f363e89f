"""The on-policy loop of the GRPO family (grpo, rloo, flow_grpo, mt_grpo, gigpo):

    for iteration k:
        episodes  = G episodes of each of ``rollout.groups`` task instances, sampled by the backend
        table     = TurnTable.from_episodes(episodes)
        A         = compute_advantages(table, estimator, filter=StarPO-S if keep_fraction)
        K epochs of minibatch PPO-clip steps (update.policy_update) at lr_k (optim.lr_schedule)
        weights  -> backend, then the logprob probe (rollout.sync_weights); stale weights stop the run
        log metrics; eval on held-out seeds every ``eval.every``; checkpoint every ``checkpoint.every``

    trainer = OnPolicyTrainer(load_config(TrainConfig, "gn.yaml"))
    summary = trainer.run(resume=False)

Resuming (``run(resume=True)``) loads the newest complete checkpoint (weights, optimizer, the
minibatch generator, the global RNG states, counters), drops the metrics and episodes logged after
it, pushes the weights into a fresh engine and goes on: iteration k's tasks and sampling seeds
depend only on (seed, k), so the resumed run replays what the killed run would have done.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from turngym.core.config import dump_config
from turngym.core.errors import ConfigError
from turngym.core.types import Episode
from turngym.trainers.advantages import NEEDS_VALUES, StarPOFilter, compute_advantages, estimator_config
from turngym.trainers.config import TrainConfig
from turngym.trainers.constraint import action_states
from turngym.trainers.losses import frozen_reference
from turngym.trainers.rollout import (
    action_fsms,
    collect,
    evaluate,
    make_backend,
    make_rollout_agent,
    resolve_device,
    summarize,
    sync_weights,
    train_tasks,
)
from turngym.trainers.run import RunDir, capture_rng, restore_rng
from turngym.trainers.table import TurnTable, write_parquet
from turngym.trainers.update import make_optimizer, policy_update, scheduled_lr, torch_threads

__all__ = ["OnPolicyTrainer", "iteration_seed", "load_policy"]

#: tokens of the probe sequence (the first episode of the batch, cut)
PROBE_TOKENS = 256


def iteration_seed(seed: int, iteration: int) -> int:
    """The sampling seed of iteration ``iteration``: a function of the run seed and k only."""
    return int(np.random.default_rng([seed, iteration, 1]).integers(2**31))


def load_policy(cfg: TrainConfig, device: torch.device) -> Any:
    """The trainable model (float32 master weights; LoRA adapters if configured)."""
    from transformers import AutoModelForCausalLM

    if not Path(cfg.model.path).is_dir():
        raise ConfigError(
            f"model.path {cfg.model.path!r} is not a directory: pass a local Hugging Face model "
            "(build a tiny one with `turngym models tiny --out DIR`)"
        )
    model = AutoModelForCausalLM.from_pretrained(cfg.model.path, dtype=torch.float32).to(device)
    if cfg.model.lora is not None:
        from peft import LoraConfig, get_peft_model

        lora = cfg.model.lora
        model = get_peft_model(
            model,
            LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.target_modules)),
        )
    return model.eval()


class OnPolicyTrainer:
    """A run of the GRPO family. See the module docstring."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.estimator = estimator_config(cfg.algorithm)
        if self.estimator.name in NEEDS_VALUES:
            raise ConfigError(
                f"algorithm {self.estimator.name!r} needs a turn critic, which the on-policy loop does not train: "
                "use grpo, rloo, flow_grpo, mt_grpo or gigpo (bilevel_gae is available as a function)"
            )
        self.cfg = cfg
        self.dir = RunDir(cfg.run_dir, tensorboard=cfg.tensorboard)
        self.device = resolve_device(cfg)
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)
        self.model = load_policy(cfg, self.device)
        self.optimizer = make_optimizer(self.model, cfg.optim)
        self.ref = frozen_reference(self.model) if cfg.loss.beta > 0 else None
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.iteration = 0
        self.episodes_seen = 0
        self.filter = StarPOFilter(keep_fraction=cfg.keep_fraction) if cfg.keep_fraction else None

    # -- checkpoints -------------------------------------------------------------------------------
    def _write_checkpoint(self, path: Path) -> None:
        torch.save(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state(),
                "rng": capture_rng(),
                "iteration": self.iteration,
                "episodes_seen": self.episodes_seen,
            },
            path / "trainer.pt",
        )

    def _load_checkpoint(self, path: Path) -> None:
        state = torch.load(path / "trainer.pt", map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        restore_rng(state["rng"])
        self.iteration = int(state["iteration"])
        self.episodes_seen = int(state["episodes_seen"])

    def export(self, out: str | os.PathLike[str]) -> Path:
        """The policy as a plain Hugging Face model directory (LoRA merged), with the tokenizer."""
        from transformers import AutoTokenizer

        out = Path(out)
        model = self.model.merge_and_unload() if hasattr(self.model, "merge_and_unload") else self.model
        model.save_pretrained(out)
        AutoTokenizer.from_pretrained(self.cfg.model.path).save_pretrained(out)
        for extra in ("chat_template.jinja", "turngym_tiny.json"):
            src = Path(self.cfg.model.path) / extra
            if src.exists():
                (out / extra).write_text(src.read_text())
        return out

    # -- the loop ------------------------------------------------------------------------------
    def run(self, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        return asyncio.run(self.arun(resume=resume, progress=progress))

    async def arun(self, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        cfg = self.cfg
        if resume:
            ckpt, _ = self.dir.resume_from()
            if ckpt is not None:
                self._load_checkpoint(ckpt)
        elif self.dir.latest() is not None or self.dir.read_metrics():
            raise ConfigError(
                f"run directory {self.dir.path} already holds a run: pass --resume to continue it, "
                "or choose another run_dir"
            )
        (self.dir.path / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
        backend = make_backend(cfg)
        try:
            return await self._loop(backend, progress=progress)
        finally:
            await backend.aclose()
            self.dir.close()

    async def _loop(self, backend: Any, *, progress: bool) -> dict[str, Any]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        cfg = self.cfg
        fsms = action_fsms(cfg, backend) if cfg.sampling.constrain else None
        vocab_size = int(self.model.get_input_embeddings().weight.shape[0])
        if self.iteration > 0:  # a fresh engine serves the base weights: push the checkpoint's
            await sync_weights(backend, self.model, self._probe_ids(None, backend), tolerance=cfg.probe_tolerance)
        last_eval: dict[str, float] | None = None
        evaluated = {r["iteration"] for r in self.dir.read_metrics("eval")}
        if self.iteration == 0 and cfg.eval.every and 0 not in evaluated:
            last_eval = await self._eval(backend)
        columns = [TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"), TimeRemainingColumn()]
        with Progress(*columns, disable=not progress, transient=False) as bar:
            task = bar.add_task("train", total=cfg.iterations, completed=self.iteration, info="")
            while self.iteration < cfg.iterations:
                record = await self._iteration(backend, fsms, vocab_size)
                bar.update(task, completed=self.iteration, info=f"success {record['success']:.2f}")
                if cfg.eval.every and (self.iteration % cfg.eval.every == 0 or self.iteration == cfg.iterations):
                    last_eval = await self._eval(backend)
                    bar.update(task, info=f"success {record['success']:.2f} eval {last_eval['success']:.2f}")
                if self.iteration == cfg.iterations or (cfg.checkpoint.every and self.iteration % cfg.checkpoint.every == 0):
                    self.dir.save_checkpoint(self.iteration, self._write_checkpoint, keep=cfg.checkpoint.keep)
        return {"iterations": self.iteration, "episodes_seen": self.episodes_seen, "eval": last_eval, "run_dir": str(self.dir.path)}

    def _probe_ids(self, episodes: list[Episode] | None, backend: Any) -> list[int]:
        for ep in episodes or []:
            if ep.tokens:
                return list(ep.tokens[:PROBE_TOKENS])
        tok = backend.tokenizer
        text = tok.apply_chat_template([{"role": "user", "content": "probe [1] [2] [3]"}], tokenize=False, add_generation_prompt=True)
        return list(tok.encode(text + "[1]", add_special_tokens=False))

    async def _iteration(self, backend: Any, fsms: Any, vocab_size: int) -> dict[str, Any]:
        cfg = self.cfg
        k = self.iteration + 1
        t0 = time.perf_counter()
        agent = make_rollout_agent(cfg, backend, seed=iteration_seed(cfg.seed, k))
        episodes = await collect(train_tasks(cfg, k), agent, cfg, run_id=f"it{k}")
        t_roll = time.perf_counter() - t0
        rows = [i for i, e in enumerate(episodes) if e.error is None and e.trainable and e.turns]
        usable = [episodes[i] for i in rows]
        full = TurnTable.from_episodes(episodes)  # built once: trained on (its usable rows) and saved
        record: dict[str, Any] = {"kind": "train", "iteration": k, **summarize(episodes)}
        t1 = time.perf_counter()
        if usable:
            table = full if len(rows) == len(episodes) else full.select(rows)
            adv = compute_advantages(table, self.estimator, filter=self.filter)
            states = allowed = None
            if fsms is not None:
                states, allowed = self._states(table, fsms, vocab_size)
            record["lr"] = scheduled_lr(cfg.optim, k, cfg.iterations)
            for group in self.optimizer.param_groups:
                group["lr"] = record["lr"]
            with torch_threads(cfg.update_threads):
                stats = policy_update(
                    self.model, self.optimizer, table, adv, optim=cfg.optim, loss=cfg.loss, device=self.device,
                    ref_model=self.ref, fsm_states=states, allowed=allowed, generator=self.generator,
                    pad_id=int(getattr(backend.tokenizer, "pad_token_id", None) or 0),
                )
            record.update({f"update/{n}": v for n, v in stats.items()})
            record["adv_abs_mean"] = float(np.abs(adv.turn).mean()) if len(adv.turn) else 0.0
            record["kept_episodes"] = int(adv.keep.sum())
        t2 = time.perf_counter()
        record["probe_diff"] = await sync_weights(
            backend, self.model, self._probe_ids(usable, backend), tolerance=cfg.probe_tolerance
        )
        t3 = time.perf_counter()
        self._save_episodes(k, full)
        self.iteration = k
        self.episodes_seen += len(episodes)
        record.update(
            episodes=len(episodes), episodes_seen=self.episodes_seen,
            time_rollout=t_roll, time_update=t2 - t1, time_sync=t3 - t2,
        )
        self.dir.log(record)
        return record

    def _states(self, table: TurnTable, fsms: dict[str, Any], vocab_size: int) -> tuple[np.ndarray, torch.Tensor]:
        """Per-token automaton states over the whole table, one automaton per env."""
        if len(fsms) == 1:
            return action_states(table, next(iter(fsms.values())), vocab_size)
        states = np.zeros(len(table.tokens), dtype=np.int64)
        blocks: list[torch.Tensor] = []
        offset = 0
        for env_id, fsm in fsms.items():
            rows = np.flatnonzero(table.env_id == env_id)
            if not len(rows):
                continue
            sub, allowed = action_states(table.select(rows), fsm, vocab_size)
            sub = np.where(sub > 0, sub + offset, 0)
            states[table.token_positions_of(rows)] = sub
            blocks.append(allowed)
            offset += len(allowed)
        return states, torch.cat(blocks) if blocks else torch.zeros((0, vocab_size), dtype=torch.bool)

    def _save_episodes(self, k: int, table: TurnTable) -> None:
        path = self.dir.episode_file(k)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        write_parquet(table, tmp)
        tmp.replace(path)

    async def _eval(self, backend: Any) -> dict[str, float]:
        t0 = time.perf_counter()
        metrics = await evaluate(self.cfg, backend)
        record = {"kind": "eval", "iteration": self.iteration, "episodes_seen": self.episodes_seen, **metrics,
                  "time_eval": time.perf_counter() - t0}
        self.dir.log(record)
        return metrics

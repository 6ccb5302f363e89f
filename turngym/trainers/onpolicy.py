"""The on-policy algorithms (the GRPO family: grpo, rloo, flow_grpo, mt_grpo, gigpo; and bilevel_gae with its
turn critic), as the part of the training loop (turngym.trainers.loop) that differs: one iteration k is

        episodes  = G episodes of each of ``rollout.groups`` task instances, sampled by the backend
        table     = TurnTable.from_episodes(episodes)
        V         = critic.values(policy, table)        (bilevel_gae only: value_head.TurnCritic)
        A         = compute_advantages(table, estimator, values=V, filter=StarPO-S if keep_fraction)
        K epochs of minibatch PPO-clip steps (update.policy_update) at lr_k (optim.lr_schedule)
        critic.update(A)                                 (bilevel_gae only: value-loss steps towards A.returns)

and the loop does the rest (weights -> backend and the logprob probe after every iteration, metrics,
eval every ``eval.every``, checkpoints every ``checkpoint.every``, resume). With ``learner.processes: N`` the
policy update runs on N processes (turngym.trainers.distributed): this one is rank 0 and runs everything else.

    trainer = OnPolicyTrainer(load_config(TrainConfig, "gn.yaml"))
    summary = trainer.run(resume=False)

With ``rollout.overlap: 1`` iteration k + 1 is sampled while iteration k updates (the update in a thread, the
rollout on the event loop, each with its own copy of the weights): its episodes come from the weights of iteration
k - 1 (``policy_version``, one behind the policy they train; the metrics log ``staleness``), and the update corrects
that with truncated importance sampling against the sampler's logprobs (``loss.tis_cap``). The weights reach the
engine after both have finished, so no episode mixes two versions. An iteration takes max(rollout, update) + sync
instead of their sum only where the two run in parallel: the update's kernels release the GIL (a GPU, a bigger
model); the demo's tiny model on a 2-core CPU is Python-bound in both and gets slower (PERFORMANCE.md, "Scale-out").

A checkpoint adds the optimizer and the minibatch generator to what the loop saves (and the critic's head and
optimizer for bilevel_gae, and with overlap the episodes sampled ahead for the next iteration). Iteration k's tasks
and sampling seeds depend only on (seed, k), so a resumed run replays what the killed run would have done.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from turngym.core.errors import ConfigError
from turngym.core.types import Episode
from turngym.trainers.advantages import NEEDS_VALUES, StarPOFilter, compute_advantages, estimator_config
from turngym.trainers.config import TrainConfig
from turngym.trainers.constraint import action_fsms, action_states
from turngym.trainers.distributed import Learners, start_learners
from turngym.trainers.loop import Iteration, TrainLoop
from turngym.trainers.losses import frozen_reference
from turngym.trainers.policy import load_policy, save_model_dir
from turngym.trainers.rollout import collect_iteration, require_snapshots, summarize
from turngym.trainers.table import TurnTable
from turngym.trainers.tasks import iteration_seed  # re-exported (its home before the one loop)
from turngym.trainers.update import make_optimizer, policy_update, set_scheduled_lr, torch_threads
from turngym.trainers.value_head import TurnCritic

__all__ = ["OnPolicyTrainer", "iteration_seed", "load_policy"]


class OnPolicyTrainer:
    """A run of the GRPO family. See the module docstring."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.estimator = estimator_config(cfg.algorithm)
        self.cfg = cfg
        self.loop = TrainLoop(cfg, self)  # the run directory, the seeds, the device
        self.dir = self.loop.dir
        self.device = self.loop.device
        self.model = load_policy(cfg, self.device)
        self.optimizer = make_optimizer(self.model, cfg.optim)
        #: the turn critic of the estimators that need values (bilevel_gae), trained here
        self.critic = (
            TurnCritic(self.model, self.estimator.critic, device=self.device, seed=cfg.seed)  # type: ignore[attr-defined]
            if self.estimator.name in NEEDS_VALUES else None
        )
        self.ref = frozen_reference(self.model) if cfg.loss.beta > 0 else None
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.filter = StarPOFilter(keep_fraction=cfg.keep_fraction) if cfg.keep_fraction else None
        self.backend: Any = None
        self.fsms: dict[str, Any] | None = None
        #: with rollout.overlap: (k, the episodes of iteration k), sampled during iteration k - 1's update
        self._ahead: tuple[int, list[Episode]] | None = None
        self._usable: list[Episode] = []  # the last iteration's trained-on episodes (the probe's source)
        #: the data-parallel learner's workers (learner.processes > 1) during run()
        self.learners: Learners | None = None

    def export(self, out: str | os.PathLike[str]) -> Path:
        """The policy as a plain Hugging Face model directory (LoRA merged), with the tokenizer."""
        return save_model_dir(self.model, self.cfg.model.path, out)

    def run(self, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        return asyncio.run(self.arun(resume=resume, progress=progress))

    async def arun(self, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        # the workers load while this process sets up and plays the first episodes; they get its state (the
        # checkpoint's, on resume) at the first update
        self.learners = start_learners(self.cfg, self.device)
        try:
            return await self.loop.arun(resume=resume, progress=progress)
        finally:
            self.close()

    def close(self) -> None:
        """Stop the learner's workers (safe twice; run() does it at its end)."""
        learners, self.learners = self.learners, None
        if learners is not None:
            learners.close()

    # -- the Algorithm protocol (turngym.trainers.loop) ----------------------------------------------
    async def start(self, loop: TrainLoop, *, fresh: bool) -> None:
        if self.cfg.branches > 1:
            require_snapshots(self.cfg)
        self.backend = loop.backend
        self.fsms = action_fsms(self.cfg, self.backend) if self.cfg.sampling.constrain else None
        self._usable = []

    def probe_tokens(self) -> Iterable[Sequence[int] | None]:
        return (e.tokens for e in self._usable)

    def checkpoint_state(self) -> dict[str, Any]:
        state = {"optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state()}
        if self.critic is not None:
            state["critic"] = self.critic.state_dict()
        if self._ahead is not None:  # sampled during the last update: the next iteration trains on them
            k, episodes = self._ahead
            state["ahead"] = {"iteration": k, "episodes": [e.model_dump_json() for e in episodes]}
        return state

    def restore_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        ahead = state.get("ahead")
        if ahead is not None:
            self._ahead = (int(ahead["iteration"]), [Episode.model_validate_json(e) for e in ahead["episodes"]])
        if self.critic is not None:
            if "critic" not in state:
                raise ConfigError(
                    f"the checkpoint holds no turn critic, which algorithm {self.estimator.name!r} needs: it was "
                    "written by a run of another algorithm; resume with that run's config or start a new run_dir"
                )
            self.critic.load_state_dict(state["critic"])

    def write_files(self, directory: Path) -> None:
        pass

    def read_files(self, directory: Path) -> None:
        pass

    async def step(self, k: int) -> Iteration:
        """Iteration ``k``: collect, estimate advantages, PPO-clip epochs; the episodes appended to the run's store.
        With ``rollout.overlap``, iteration k + 1's rollout runs during the update (see the module docstring)."""
        cfg, backend = self.cfg, self.backend
        t0 = time.perf_counter()
        if self._ahead is not None and self._ahead[0] == k:
            episodes, self._ahead = self._ahead[1], None
        else:  # the first iteration, or a resume of a run that did not overlap
            self._ahead = None
            episodes = await collect_iteration(cfg, backend, k, pool=self.loop.pool)
        t_roll = time.perf_counter() - t0
        ahead = None
        if cfg.rollout.overlap and k < cfg.iterations:  # sampled with the weights the engine serves now: k - 1's
            ahead = asyncio.ensure_future(collect_iteration(cfg, backend, k + 1, version=k - 1, pool=self.loop.pool))
        try:
            record = await self._train(k, episodes, t_roll, overlapped=ahead is not None)
            if ahead is not None:
                t1 = time.perf_counter()
                self._ahead = (k + 1, await ahead)  # before the loop pushes the new weights to the engine
                record["time_rollout_wait"] = time.perf_counter() - t1
        finally:
            if ahead is not None and not ahead.done():
                ahead.cancel()
                await asyncio.gather(ahead, return_exceptions=True)
        return Iteration(record=record, episodes=len(episodes), updated=record.pop("_updated"), sync=True)

    async def _train(self, k: int, episodes: list[Episode], t_roll: float, *, overlapped: bool) -> dict[str, Any]:
        """Iteration ``k``'s update on ``episodes``; its metrics. ``overlapped``: a rollout runs on the event loop
        meanwhile, so the update runs in a thread."""
        cfg, backend = self.cfg, self.backend
        rows = [i for i, e in enumerate(episodes) if e.error is None and e.trainable and e.turns]
        self._usable = [episodes[i] for i in rows]
        full = TurnTable.from_episodes(episodes)  # built once: trained on its usable rows
        record: dict[str, Any] = {**summarize(episodes)}
        t1 = time.perf_counter()
        if rows:
            table = full if len(rows) == len(episodes) else full.select(rows)
            pad_id = int(getattr(backend.tokenizer, "pad_token_id", None) or 0)
            values = None
            if self.critic is not None:
                with torch_threads(cfg.update_threads):
                    values = self.critic.values(
                        self.model, table, batch_size=cfg.optim.micro_batch_size or cfg.optim.minibatch_size,
                        pad_id=pad_id, autocast=cfg.optim.autocast,
                    )
            adv = compute_advantages(table, self.estimator, values=values, filter=self.filter)
            states = allowed = None
            if self.fsms is not None:
                vocab_size = int(self.model.get_input_embeddings().weight.shape[0])
                states, allowed = self._states(table, self.fsms, vocab_size)
            record["lr"] = set_scheduled_lr(self.optimizer, cfg.optim, k, cfg.iterations)
            batch = {"table": table, "advantages": adv, "fsm_states": states, "allowed": allowed, "pad_id": pad_id,
                     "truncated_is": cfg.loss.tis_cap if cfg.rollout.overlap else None}

            def update() -> tuple[dict[str, float], dict[str, float]]:
                with torch_threads(cfg.update_threads):
                    stats = self._update(batch)
                    return stats, (self.critic.update(adv) if self.critic is not None else {})

            stats, critic_stats = await asyncio.to_thread(update) if overlapped else update()
            record.update(critic_stats)
            record.update({f"update/{n}": v for n, v in stats.items()})
            record["adv_abs_mean"] = float(np.abs(adv.turn).mean()) if len(adv.turn) else 0.0
            record["kept_episodes"] = int(adv.keep.sum())
        record["time_update"] = time.perf_counter() - t1
        versions = [e.policy_version for e in episodes if e.policy_version is not None]
        record["staleness"] = float(np.mean([k - 1 - v for v in versions])) if versions else 0.0
        self.dir.append_episodes(episodes)  # the run's episode store (run_id it{k})
        record.update(episodes=len(episodes), time_rollout=t_roll, _updated=bool(rows))
        return record

    def _update(self, batch: dict[str, Any]) -> dict[str, float]:
        """K epochs of PPO-clip steps on ``batch`` (policy_update's table, advantages, fsm_states, allowed,
        pad_id), on every process of the learner group where there is one."""
        cfg = self.cfg
        options = {"optim": cfg.optim, "loss": cfg.loss, "device": self.device, "ref_model": self.ref}
        if self.learners is not None:
            return self.learners.update(self.model, self.optimizer, batch, generator=self.generator, **options)
        return policy_update(self.model, self.optimizer, batch["table"], batch["advantages"],
                             fsm_states=batch["fsm_states"], allowed=batch["allowed"], pad_id=batch["pad_id"],
                             truncated_is=batch["truncated_is"], generator=self.generator, **options)

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

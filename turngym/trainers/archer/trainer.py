"""ArCHer's loop: collect, fit the utterance-level critic off-policy, step the token-level actor, sync.

    trainer = ArcherTrainer(TrainConfig(..., algorithm="archer", archer={...}))
    summary = trainer.run(resume=False)       # or resume=True: continue from the newest checkpoint

One iteration (RESEARCH.md section 5; the math is in ``math.py``, the critic in ``critic.py``):

    online:  collect trajectories_per_iteration episodes with the current policy through the rollout
             backend (LLMAgent over HFBackend / vLLM), add one transition per turn to the replay buffer
    critic:  critic.steps_per_iteration steps, each on batch_size transitions (micro-batches accumulated):
             L_Q against r + gamma (1 - done) Vbar_k(s'), L_V against Qbar_k(s, a~) with a~ ~ pi_theta(.|s)
             sampled fresh; grad clip; Polyak update of the target after every step
    actor:   after warmup_iterations critic-only iterations, actor.steps_per_iteration REINFORCE steps on
             fresh a~ ~ pi_theta(.|s) for buffer states, A = min_k Q_k(s, a~) - min_k V_k(s); grad clip
    sync:    the new weights go into the rollout backend, and a logprob probe checks it serves them
             (max |engine - trainer| <= probe_tolerance, else RuntimeError: stale weights)

Offline (``archer.mode: offline``): the buffer is filled once from ``archer.dataset`` (a turn-table
parquet file or directory, or an eval run's episode store JSONL) and nothing is collected; the backend
still serves the evaluation episodes.

a~ is sampled token-faithfully: the prompt is the transition's recorded ``state_ids`` (the exact tokens the
policy saw), sampled with the trainer's own model, under the env's action constraint when
``sampling.constrain`` is set; the actor's logprobs are then those of the constrained policy
(``constraint.constrained_logprobs``), the policy the backend samples from.

The critic's encoder phi: ``critic.encoder: separate`` (default) is a small model of its own,
``critic.encoder_path`` or, without one, a tiny random-init Llama encoder over the policy's tokenizer, built
in memory (no hub access); ``critic.encoder: policy`` uses the policy's own last hidden states (no gradient
into the policy), with the critic's own heads.

A checkpoint (``checkpoints/iter-N/``) holds the policy (HF format), the critic and its target, both
optimizers, the token baseline, the RNG states (global, the a~ sampler, the buffer's),
the counters and the replay buffer (``replay.jsonl``): a resumed run continues as the uninterrupted one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from turngym.agents.llm import Backend
from turngym.agents.sampling import TokenFSM
from turngym.core.config import dump_config
from turngym.core.errors import ConfigError
from turngym.core.types import Episode, Message, Turn
from turngym.trainers.archer.buffer import ReplayBuffer, Transition, collate
from turngym.trainers.archer.config import ArcherConfig
from turngym.trainers.archer.critic import (
    DoubleCritic,
    TextEncoder,
    TokenBaseline,
    critic_losses,
    make_target,
    pool_hidden,
)
from turngym.trainers.archer.math import (
    actor_loss,
    advantage,
    baseline_loss,
    polyak_update,
)
from turngym.trainers.config import TrainConfig
from turngym.trainers.constraint import constrained_logprobs
from turngym.trainers.losses import token_logprobs
from turngym.trainers.onpolicy import PROBE_TOKENS, iteration_seed
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
from turngym.trainers.table import TurnTable, read_parquet, write_parquet
from turngym.trainers.update import torch_threads

__all__ = ["ArcherTrainer", "Sampled", "load_offline_episodes", "sample_utterances", "table_episodes"]

#: the size of the default separate encoder: (hidden, layers, heads, intermediate)
DEFAULT_ENCODER = (64, 2, 2, 128)


# ---- a~ ~ pi_theta(.|s): batched sampling with the trainer's model -----------------------------------
@dataclass(frozen=True)
class Sampled:
    """Utterances sampled for a batch of states.

    ``ids[b]``: the sampled tokens (the EOS included when the reply ended with one); ``texts[b]``: the reply
    text as the conversation records it (without the EOS); ``fsm_rows[b][j]``: 1 + the row of ``allowed``
    that constrained token j (0: unconstrained); ``allowed``: ``[S, V]`` bool, or None without a constraint.
    """

    ids: list[list[int]]
    texts: list[str]
    fsm_rows: list[list[int]]
    allowed: torch.Tensor | None


def _left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
            attn[i, width - len(s) :] = 1
    return ids, attn


class _AllowedRows:
    """The allowed-token rows of the automaton states met while sampling (one row per state)."""

    def __init__(self, fsm: TokenFSM, vocab_size: int) -> None:
        self.fsm, self.vocab_size = fsm, vocab_size
        self.index: dict[int, int] = {}
        self.rows: list[torch.Tensor] = []

    def row(self, state: int) -> int:
        k = self.index.get(state)
        if k is None:
            ids = self.fsm.allowed(state)
            row = torch.zeros(self.vocab_size, dtype=torch.bool)
            row[torch.from_numpy(ids[ids < self.vocab_size])] = True
            if not bool(row.any()):
                raise RuntimeError(f"no token can continue a constrained reply in automaton state {state}: the pattern is unsatisfiable")
            k = self.index[state] = len(self.rows)
            self.rows.append(row)
        return k

    def matrix(self) -> torch.Tensor:
        return torch.stack(self.rows) if self.rows else torch.zeros((0, self.vocab_size), dtype=torch.bool)


@torch.no_grad()
def sample_utterances(
    model: torch.nn.Module,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    temperature: float,
    eos_ids: Sequence[int],
    pad_id: int,
    fsm: TokenFSM | None = None,
    generator: torch.Generator | None = None,
) -> Sampled:
    """One reply per prompt, sampled with ``model`` (left-padded batch, KV cache), raw logits -> constraint
    mask -> temperature -> draw, as the hf backend samples; stops at an EOS or ``max_new_tokens``."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    vocab_size = int(model.get_output_embeddings().weight.shape[0])
    ids, attn = _left_pad(prompts, pad_id)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    n = len(prompts)
    out_ids: list[list[int]] = [[] for _ in range(n)]
    fsm_rows: list[list[int]] = [[] for _ in range(n)]
    rows = _AllowedRows(fsm, vocab_size) if fsm is not None else None
    states = [fsm.initial] * n if fsm is not None else None
    done = [False] * n
    eos = {int(e) for e in eos_ids}
    cache = DynamicCache()
    out = model(
        input_ids=ids.to(device), attention_mask=attn.to(device), position_ids=pos.to(device),
        past_key_values=cache, use_cache=True, logits_to_keep=1,
    )
    for _ in range(max_new_tokens):
        logits = out.logits[:, -1, :].float().cpu()
        row_of = [0] * n
        if rows is not None and states is not None:
            mask = torch.zeros_like(logits, dtype=torch.bool)
            for b in range(n):
                if not done[b]:
                    row_of[b] = rows.row(states[b]) + 1
                    mask[b] = rows.rows[row_of[b] - 1]
                else:
                    mask[b] = True
            logits = logits.masked_fill(~mask, float("-inf"))
        # inverse-CDF draw: one uniform per row (torch.multinomial is ~10x slower over a 32k vocabulary)
        cdf = torch.softmax(logits / temperature, dim=-1).cumsum(dim=-1)
        u = torch.rand((n, 1), generator=generator) * cdf[:, -1:]
        nxt = torch.searchsorted(cdf, u, right=True)[:, 0].clamp_(max=vocab_size - 1)
        for b in range(n):
            if done[b]:
                nxt[b] = pad_id
                continue
            tok = int(nxt[b])
            out_ids[b].append(tok)
            fsm_rows[b].append(row_of[b])
            if fsm is not None and states is not None:
                states[b] = fsm.advance(states[b], tok)
            if tok in eos or len(out_ids[b]) >= max_new_tokens:
                done[b] = True
        if all(done):
            break
        live = torch.tensor([0 if d else 1 for d in done], dtype=torch.long)
        attn = torch.cat([attn, live[:, None]], dim=1)
        pos = pos[:, -1:] + 1
        out = model(
            input_ids=nxt[:, None].to(device), attention_mask=attn.to(device), position_ids=pos.to(device),
            past_key_values=cache, use_cache=True,
        )
    texts = [
        tokenizer.decode(s[:-1] if s and s[-1] in eos else s, skip_special_tokens=False) for s in out_ids
    ]
    return Sampled(ids=out_ids, texts=texts, fsm_rows=fsm_rows, allowed=rows.matrix() if rows is not None else None)


def _policy_forward(
    model: torch.nn.Module, prompts: Sequence[Sequence[int]], sampled: Sampled, pad_id: int, *, hidden: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """log pi_theta(a~_j | s, a~_<j) ``[B, L]`` (with gradient; constrained where the tokens were), the action
    mask ``[B, L]`` and, with ``hidden``, the last hidden states that predicted each token ``[B, L, H]``.

    The batch is left-padded, so every row's a~ sits at its right end: only the last L + 1 positions'
    logits are computed (``logits_to_keep``)."""
    device = next(model.parameters()).device
    L = max(1, max(len(a) for a in sampled.ids))
    seqs = [list(p) + list(a) for p, a in zip(prompts, sampled.ids, strict=True)]
    ids, attn = _left_pad(seqs, pad_id)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    W = ids.shape[1]
    out = model(
        input_ids=ids.to(device), attention_mask=attn.to(device), position_ids=pos.to(device),
        logits_to_keep=L + 1, output_hidden_states=hidden,
    )
    win_ids = ids[:, W - L - 1 :].to(device)  # [B, L+1]; win position k >= 1 is predicted by logits k - 1
    act_mask = torch.zeros((len(seqs), L + 1), dtype=torch.bool)
    states = torch.zeros((len(seqs), L + 1), dtype=torch.long)
    for b, (a, r) in enumerate(zip(sampled.ids, sampled.fsm_rows, strict=True)):
        if a:
            act_mask[b, L + 1 - len(a) :] = True
            states[b, L + 1 - len(a) :] = torch.tensor(r, dtype=torch.long)
    act_mask, states = act_mask.to(device), states.to(device)
    if sampled.allowed is not None:
        logp = constrained_logprobs(out.logits, win_ids, states, sampled.allowed)
    else:
        logp = token_logprobs(out.logits, win_ids)
    h = None
    if hidden:
        h = out.hidden_states[-1][:, W - L - 1 : W - 1]  # the states that predicted the last L tokens
    return logp[:, 1:], act_mask[:, 1:], h


# ---- offline data ----------------------------------------------------------------------------------
def table_episodes(table: TurnTable) -> list[Episode]:
    """Episodes rebuilt from a turn table, enough for the replay buffer: the exact token streams and spans,
    rewards and action texts; the history as text messages (each turn's observation text as one user
    message). The table keeps no truncation flag, so every episode's last turn counts as terminal."""
    out = []
    for e in range(len(table)):
        view = table.episode(e)
        rows = list(view.turn_rows)
        if not rows:
            continue
        turns = []
        for i, m in enumerate(rows):
            nxt = rows[i + 1] if i + 1 < len(rows) else None
            span = (int(table.action_start[m]), int(table.action_end[m]))
            obs = (int(table.obs_start[m]), int(table.obs_end[m]))
            turns.append(
                Turn(
                    index=i,
                    action=str(table.action_text[m]),
                    observation=[Message(role="user", content=str(table.state_text[nxt]))] if nxt is not None else [],
                    reward=float(table.reward[m]),
                    terminated=nxt is None,
                    action_span=span if span[0] >= 0 else None,
                    observation_span=obs if obs[0] >= 0 else None,
                )
            )
        success = table.success[e]
        out.append(
            Episode(
                run_id=str(table.run_id[e]),
                episode_id=str(table.episode_id[e]),
                group_id=str(table.group_id[e]),
                env_id=str(table.env_id[e]),
                task_id=str(table.task_id[e]),
                instance_hash=str(table.instance_hash[e]),
                prompt=[Message(role="user", content=str(table.state_text[rows[0]]))],
                turns=turns,
                tokens=[int(x) for x in view.tokens],
                mask=[int(x) for x in view.mask],
                logprobs=[float(x) for x in view.logprobs],
                trainable=bool(table.trainable[e]),
                success=None if np.isnan(success) else bool(success),
            )
        )
    return out


def load_offline_episodes(path: str | Path) -> list[Episode]:
    """A saved run's episodes: an episode store JSONL (or a directory holding ``episodes.jsonl``), else a
    turn-table parquet file or directory (``runs/NAME/episodes``)."""
    from turngym.benchmarks.store import EPISODES_FILE, read_episodes

    p = Path(path)
    if p.suffix == ".jsonl" or (p.is_dir() and (p / EPISODES_FILE).is_file()):
        return read_episodes(p / EPISODES_FILE if p.is_dir() else p)
    if p.suffix == ".parquet" or (p.is_dir() and any(p.glob("*.parquet"))):
        return table_episodes(read_parquet(p))
    raise ConfigError(
        f"archer.dataset={str(p)!r} is neither an episode store JSONL nor a turn-table parquet file or directory: "
        "point it at runs/NAME/episodes (a training run) or runs/NAME/episodes.jsonl (an eval run)"
    )


# ---- helpers ---------------------------------------------------------------------------------------
def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _progress(total: int, description: str, *, enabled: bool = True, leave: bool = False, initial: int = 0) -> Any:
    """A tqdm bar (off when ``enabled`` is false, for a single step, or when stderr is not a terminal)."""
    from tqdm.auto import tqdm

    off = True if not enabled or total - initial < 2 else None
    return tqdm(total=total, initial=initial, desc=description, leave=leave, disable=off, dynamic_ncols=True)


def _default_encoder(tokenizer_path: str, seed: int, pooling: str, max_length: int) -> TextEncoder:
    """A tiny random-init Llama encoder over the policy's tokenizer, built in memory (no download)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaModel

    tok = AutoTokenizer.from_pretrained(tokenizer_path)
    hidden, layers, heads, inter = DEFAULT_ENCODER
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, head_dim=hidden // heads,
        max_position_embeddings=max(max_length, 64), pad_token_id=tok.pad_token_id, bos_token_id=None,
        eos_token_id=None,
    )
    fork = torch.random.fork_rng()
    with fork:
        torch.manual_seed(seed)
        model = LlamaModel(config).to(torch.float32)
    return TextEncoder(model=model, tokenizer=tok, pooling=pooling, max_length=max_length)  # type: ignore[arg-type]


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


# ---- the trainer -----------------------------------------------------------------------------------
class ArcherTrainer:
    """ArCHer on one env: the policy, the critic and its target, the replay buffer, the rollout backend.

    ``run(resume)`` trains for ``cfg.iterations`` iterations and returns a summary; ``close()`` releases the
    backend (safe twice). See the module docstring for an iteration.
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
        self.acfg = ArcherConfig(**cfg.archer)
        self.env = cfg.env
        self.device = resolve_device(cfg)
        self.run_dir = RunDir(cfg.run_dir, tensorboard=cfg.tensorboard)
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        torch.manual_seed(cfg.seed)
        self._build_policy()
        self._build_critic()
        self.buffer = ReplayBuffer(capacity=self.acfg.buffer_capacity, seed=cfg.seed)
        self.generator = torch.Generator().manual_seed(cfg.seed)  # a~ ~ pi_theta(.|s)
        self.iteration = 0
        self.episodes_seen = 0
        self._backend = backend
        self._fsm = action_fsms(cfg, self.backend)[cfg.env.id] if cfg.sampling.constrain else None
        self._synced = True  # the backend starts from the same weights as the trainer
        self._show = True  # progress bars
        self._closed = False

    # -- construction ------------------------------------------------------------------------------
    def _build_policy(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = self.cfg.model.path
        if not Path(path).is_dir():
            raise ConfigError(f"model.path={path!r} is not a directory: give a local Hugging Face model directory")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(self.device).eval()
        gen = self.model.generation_config
        eos = gen.eos_token_id if gen.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos_ids: list[int] = [eos] if isinstance(eos, int) else list(eos or [])
        self.pad_id = gen.pad_token_id if gen.pad_token_id is not None else (self.eos_ids or [0])[0]
        params: list[dict[str, Any]] = [{"params": [p for p in self.model.parameters() if p.requires_grad]}]
        self.baseline: TokenBaseline | None = None
        if self.acfg.actor.token_baseline:
            self.baseline = TokenBaseline(hidden_size=int(self.model.config.hidden_size)).to(self.device)
            params.append({"params": list(self.baseline.parameters())})
        self.actor_opt = torch.optim.AdamW(params, lr=self.acfg.actor.lr)

    def _build_critic(self) -> None:
        c = self.acfg.critic
        if c.encoder == "policy":
            self.critic = DoubleCritic(feature_dim=int(self.model.config.hidden_size), hidden_dim=c.hidden_dim)
        elif c.encoder_path is not None:
            enc = TextEncoder.from_pretrained(c.encoder_path, pooling=c.pooling, max_length=c.max_length)
            self.critic = DoubleCritic(encoder=enc, hidden_dim=c.hidden_dim)
        else:
            enc = _default_encoder(self.cfg.model.path, self.cfg.seed, c.pooling, c.max_length)
            self.critic = DoubleCritic(encoder=enc, hidden_dim=c.hidden_dim)
        self.critic.to(self.device)
        self.target = make_target(self.critic)
        self.critic_opt = torch.optim.AdamW(self.critic.parameters(), lr=c.lr)

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = make_backend(self.cfg)
        return self._backend

    # -- the run -----------------------------------------------------------------------------------
    def run(self, resume: bool = False, *, progress: bool = True) -> dict[str, Any]:
        """Train to ``cfg.iterations`` (from the newest checkpoint with ``resume``); a summary dict.
        ``progress``: progress bars for the iterations and the critic and actor phases."""
        return asyncio.run(self.arun(resume=resume, progress=progress))

    async def arun(self, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
        try:
            await self._loop(resume=resume, progress=progress)
        finally:
            await self.aclose()
        train = self.run_dir.read_metrics("train")
        evals = self.run_dir.read_metrics("eval")
        skip = ("kind", "iteration", "episodes_seen", "time_eval")
        return {
            "run_dir": str(self.run_dir.path),
            "iterations": self.iteration,
            "episodes_seen": self.episodes_seen,
            "train": train[-1] if train else None,
            "eval": {k: v for k, v in evals[-1].items() if k not in skip} if evals else None,
        }

    async def _loop(self, *, resume: bool, progress: bool) -> None:
        cfg = self.cfg
        self._show = progress
        start = 0
        if resume:
            ckpt, start = self.run_dir.resume_from()
            if ckpt is not None:
                self._load(ckpt)
        elif self.run_dir.latest() is not None or self.run_dir.read_metrics():
            raise ConfigError(
                f"run_dir {cfg.run_dir!r} already holds a run: resume it (run(resume=True), turngym train "
                "--resume) or choose a new run_dir"
            )
        if start == 0:  # a fresh run, or one killed before its first checkpoint: start from nothing
            self.run_dir.metrics_path.unlink(missing_ok=True)
            for f in self.run_dir.episodes.glob("iter-*.parquet*") if self.run_dir.episodes.exists() else []:
                f.unlink()
        (self.run_dir.path / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
        if start == 0 and self.acfg.mode == "offline":
            episodes = load_offline_episodes(self.acfg.dataset or "")
            self._add_episodes(episodes)
            if len(self.buffer) == 0:
                raise ConfigError(
                    f"archer.dataset={self.acfg.dataset!r} holds no trainable episodes (token streams recorded by an "
                    "LLM agent): record them with an hf or vllm agent"
                )
        if start > 0 or not self._synced:
            await self.sync()
        if start == 0 and cfg.eval.every:
            await self.evaluate(0)
        with _progress(cfg.iterations, "archer", enabled=progress, leave=True, initial=start) as bar:
            for it in range(start + 1, cfg.iterations + 1):
                record = await self.step(it)
                self.run_dir.log(record)
                last = it == cfg.iterations
                if cfg.eval.every and (it % cfg.eval.every == 0 or last):
                    ev = await self.evaluate(it)
                    bar.set_postfix(eval_success=f"{ev['success']:.2f}")
                if last or (cfg.checkpoint.every and it % cfg.checkpoint.every == 0):
                    self.save(it)
                bar.update(1)

    async def step(self, it: int) -> dict[str, Any]:
        """Iteration ``it``: collect (online), critic steps, actor steps (after the warm-up), sync."""
        t0 = time.perf_counter()
        record: dict[str, Any] = {"kind": "train", "iteration": it}
        if self.acfg.mode == "online":
            episodes = await self.collect(it)
            record.update(summarize(episodes), episodes=len(episodes))
        t1 = time.perf_counter()
        with torch_threads(self.cfg.update_threads):
            record.update(self.critic_phase())
        t2 = time.perf_counter()
        if it > self.acfg.warmup_iterations:
            with torch_threads(self.cfg.update_threads):
                record.update(self.actor_phase())
            self._synced = False
            if self.acfg.mode == "online":
                record["probe_diff"] = await self.sync()
        t3 = time.perf_counter()
        self.iteration = it
        record.update(
            episodes_seen=self.episodes_seen, buffer_size=len(self.buffer), buffer_added=self.buffer.added,
            buffer_position=self.buffer.position, time_collect=t1 - t0, time_critic=t2 - t1, time_actor=t3 - t2,
        )
        return record

    # -- collection and evaluation -----------------------------------------------------------------
    async def collect(self, it: int) -> list[Episode]:
        """Iteration ``it``'s episodes with the current policy, into the buffer and the run's episode files.

        ``trajectories_per_iteration`` task instances, one episode each; tasks and sampling seeds depend
        only on (seed, it), as in the on-policy loop, so a resumed iteration replays the uninterrupted one."""
        n = self.acfg.trajectories_per_iteration
        cfg = self.cfg.model_copy(update={"rollout": self.cfg.rollout.model_copy(update={"groups": n, "group_size": 1})})
        agent = make_rollout_agent(self.cfg, self.backend, seed=iteration_seed(self.cfg.seed, it))
        episodes = await collect(train_tasks(cfg, it), agent, self.cfg, run_id=f"it{it}")
        write_parquet(episodes, self.run_dir.episode_file(it))
        self._add_episodes(episodes)
        self.episodes_seen += len(episodes)
        return episodes

    def _add_episodes(self, episodes: Sequence[Episode]) -> int:
        """Transitions of the episodes that carry a token stream and no error."""
        usable = [e for e in episodes if e.tokens and e.error is None and e.turns]
        return self.buffer.add_episodes(usable)

    async def evaluate(self, it: int) -> dict[str, Any]:
        """The policy on the held-out seeds through the backend (synced first); logged as kind ``eval``."""
        if not self._synced:
            await self.sync()
        t0 = time.perf_counter()
        metrics = await evaluate(self.cfg, self.backend)
        record = {"kind": "eval", "iteration": it, "episodes_seen": self.episodes_seen, **metrics,
                  "time_eval": time.perf_counter() - t0}
        self.run_dir.log(record)
        return record

    # -- weight sync and the probe -----------------------------------------------------------------
    def _probe_ids(self) -> list[int]:
        for t in self.buffer.transitions()[:1]:
            if t.tokens is not None:
                return list(t.tokens[:PROBE_TOKENS])
        ids = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": "probe [1] [2] [3]"}], add_generation_prompt=True, tokenize=True
        )
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)

    async def sync(self) -> float:
        """Push the policy's weights into the backend and probe it (``rollout.sync_weights``): the max
        |logprob diff|; ``StaleWeightsError`` (a RuntimeError) above ``probe_tolerance``."""
        diff = await sync_weights(self.backend, self.model, self._probe_ids(), tolerance=self.cfg.probe_tolerance)
        self._synced = True
        return diff

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
            eos_ids=self.eos_ids, pad_id=self.pad_id, fsm=self._fsm, generator=self.generator,
        )
        return prompts, sampled

    @torch.no_grad()
    def _policy_features(self, seqs: Sequence[Sequence[int]]) -> torch.Tensor:
        """phi(x) of the ``policy`` encoder: the policy's pooled last hidden states (no gradient)."""
        limit = self.acfg.critic.max_length
        seqs = [list(s)[-limit:] or [self.pad_id] for s in seqs]
        ids, attn = _left_pad(seqs, self.pad_id)
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
        with _progress(a.critic.steps_per_iteration, "critic", enabled=self._show) as bar:
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
                torch.nn.utils.clip_grad_norm_(self.critic.parameters(), a.grad_clip)
                self.critic_opt.step()
                self.critic_opt.zero_grad(set_to_none=True)
                polyak_update(self.target, self.critic, a.tau)
                for k, v in sums.items():
                    stats[k].append(v)
                bar.update(1)
        self.critic.eval()
        return {f"critic/{k}": _mean(v) for k, v in stats.items()}

    # -- the actor ---------------------------------------------------------------------------------
    def actor_phase(self) -> dict[str, float]:
        a = self.acfg
        stats: dict[str, list[float]] = {"loss": [], "grad_norm": [], "baseline_loss": [], "tokens": []}
        advantages: list[torch.Tensor] = []
        params = [p for group in self.actor_opt.param_groups for p in group["params"]]
        with _progress(a.actor.steps_per_iteration, "actor", enabled=self._show) as bar:
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
                    logp, mask, hidden = _policy_forward(
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
                norm = torch.nn.utils.clip_grad_norm_(params, a.grad_clip)
                self.actor_opt.step()
                self.actor_opt.zero_grad(set_to_none=True)
                stats["loss"].append(loss_sum)
                stats["grad_norm"].append(float(norm))
                stats["baseline_loss"].append(base_sum)
                stats["tokens"].append(tokens)
                bar.update(1)
        A = torch.cat(advantages) if advantages else torch.zeros(0)
        out = {f"actor/{k}": _mean(v) for k, v in stats.items() if k != "baseline_loss" or self.baseline is not None}
        out["actor/adv_mean"] = float(A.mean()) if len(A) else float("nan")
        out["actor/adv_std"] = float(A.std()) if len(A) > 1 else 0.0
        return out

    # -- checkpoints -------------------------------------------------------------------------------
    def save(self, it: int) -> Path:
        def write(d: Path) -> None:
            self.model.save_pretrained(d / "policy", safe_serialization=True)
            self.tokenizer.save_pretrained(d / "policy")
            self.buffer.save(d / "replay.jsonl")
            torch.save(
                {
                    "iteration": it,
                    "episodes_seen": self.episodes_seen,
                    "critic": self.critic.state_dict(),
                    "target": self.target.state_dict(),
                    "critic_opt": self.critic_opt.state_dict(),
                    "actor_opt": self.actor_opt.state_dict(),
                    "baseline": self.baseline.state_dict() if self.baseline is not None else None,
                    "rng": capture_rng(),
                    "generator": self.generator.get_state(),
                },
                d / "trainer.pt",
            )
            (d / "archer.json").write_text(json.dumps({"iteration": it, "buffer": len(self.buffer)}))

        return self.run_dir.save_checkpoint(it, write, keep=self.cfg.checkpoint.keep)

    def _load(self, ckpt: Path) -> None:
        from transformers import AutoModelForCausalLM

        state = torch.load(ckpt / "trainer.pt", map_location=self.device, weights_only=False)
        saved = AutoModelForCausalLM.from_pretrained(ckpt / "policy", dtype=torch.float32)
        try:
            self.model.load_state_dict(saved.state_dict())
        except RuntimeError as e:
            raise RuntimeError(
                f"checkpoint {ckpt} does not fit the policy {self.cfg.model.path!r} ({e}): resume with the model "
                "the run started from"
            ) from e
        del saved
        self.critic.load_state_dict(state["critic"])
        self.target.load_state_dict(state["target"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        if self.baseline is not None and state["baseline"] is not None:
            self.baseline.load_state_dict(state["baseline"])
        restore_rng(state["rng"])
        self.generator.set_state(state["generator"])
        self.buffer = ReplayBuffer.load(ckpt / "replay.jsonl")
        self.iteration = int(state["iteration"])
        self.episodes_seen = int(state["episodes_seen"])
        self._synced = False

    # -- lifetime ----------------------------------------------------------------------------------
    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        backend, self._backend = self._backend, None
        if backend is not None:
            await backend.aclose()
        self.run_dir.close()

    def close(self) -> None:
        """Release the backend and the run's files (safe twice)."""
        if not self._closed:
            asyncio.run(self.aclose())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

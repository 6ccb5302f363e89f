"""The policy under constrained sampling, for the trainer.

With ``constrain=True`` the backends sample from the model's distribution renormalised over the
tokens the action format allows next (and record those logprobs). The policy being trained is
that masked policy, so the trainer computes the same thing:

    log pi_c(a_k | s, a_<k) = log pi(a_k | s, a_<k) - logsumexp_{v in allowed(q_k)} log pi(v | s, a_<k)

where q_k is the state of the action pattern's automaton after a_<k. ``action_states`` walks every
recorded action through the automaton once (``TokenFSM``, the one the hf backend samples with) and
gives every loss token its state; ``constrained_logprobs`` applies the renormalisation.

    fsm = action_fsms(cfg, backend)[env_id]                        # the env's action pattern over the tokenizer
    states, allowed = action_states(table, fsm, vocab_size)       # per token; [S, V] bool
    batch = collate_episodes(table, rows, token_columns={"fsm_state": states})
    logp = constrained_logprobs(logits, batch["input_ids"], batch["fsm_state"].long(), allowed)
"""

from __future__ import annotations

import numpy as np
import torch

from turngym.agents.llm import Backend
from turngym.agents.sampling import TokenFSM, vocabulary
from turngym.core.errors import ConfigError
from turngym.trainers.config import TrainConfig
from turngym.trainers.losses import token_logprobs
from turngym.trainers.table import TurnTable
from turngym.trainers.tasks import env_specs

__all__ = ["action_fsms", "action_states", "constrained_logprobs", "mask_disallowed"]


def action_states(table: TurnTable, fsm: TokenFSM, vocab_size: int) -> tuple[np.ndarray, torch.Tensor]:
    """Per token of the flat stream: 1 + the index (into ``allowed``) of the automaton state before it
    on loss tokens, 0 elsewhere; and ``allowed`` [S, V] bool, the tokens each state allows."""
    index: dict[int, int] = {}
    rows: list[np.ndarray] = []
    out = np.zeros(len(table.tokens), dtype=np.int64)
    base = table.token_offsets[table.turn_episode]
    for m in np.flatnonzero(table.action_start >= 0):
        start, end = base[m] + table.action_start[m], base[m] + table.action_end[m]
        state = fsm.initial
        for k in range(start, end):
            if state not in index:
                ids = fsm.allowed(state)
                row = np.zeros(vocab_size, dtype=bool)
                row[ids[ids < vocab_size]] = True
                index[state] = len(rows)
                rows.append(row)
            out[k] = index[state] + 1
            try:
                state = fsm.advance(state, int(table.tokens[k]))
            except ValueError as e:
                raise ValueError(
                    f"turn {m} of episode {table.episode_id[table.turn_episode[m]]!r} was not sampled under the "
                    f"action constraint ({e}): train with constrain=False, or on episodes sampled with it"
                ) from None
    out[table.mask == 0] = 0
    allowed = torch.from_numpy(np.stack(rows)) if rows else torch.zeros((0, vocab_size), dtype=torch.bool)
    return out, allowed


def mask_disallowed(logits: torch.Tensor, states: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Rows of next-token ``logits`` [n, V] with the tokens their state (``states`` [n], 1 + a row of
    ``allowed``; 0 = unconstrained) does not allow set to -inf; a log-softmax of the result is the
    constrained policy's distribution."""
    sel = states > 0
    if not bool(sel.any()):
        return logits
    banned = ~allowed.to(logits.device)[(states - 1).clamp(min=0)] & sel[:, None]
    return logits.masked_fill(banned, float("-inf"))


def constrained_logprobs(
    logits: torch.Tensor, input_ids: torch.Tensor, states: torch.Tensor, allowed: torch.Tensor
) -> torch.Tensor:
    """``token_logprobs`` renormalised over the allowed tokens where ``states`` [B, L] > 0 (1 + the row of
    ``allowed`` [S, V] for that token); unchanged where it is 0."""
    logp = token_logprobs(logits, input_ids)
    b, k = (states > 0).nonzero(as_tuple=True)
    if len(b) == 0:
        return logp
    rows = torch.log_softmax(mask_disallowed(logits[b, k - 1].float(), states[b, k], allowed), dim=-1)
    return logp.index_put((b, k), rows.gather(-1, input_ids[b, k][:, None])[:, 0])


def action_fsms(cfg: TrainConfig, backend: Backend) -> dict[str, TokenFSM]:
    """env id -> the automaton of its action pattern over the tokenizer (for constrained training)."""
    import turngym

    tok = backend.tokenizer
    vocab = vocabulary(tok)
    eos = sorted(getattr(backend, "eos_ids", None) or [tok.eos_token_id])
    out: dict[str, TokenFSM] = {}
    for spec in env_specs(cfg):
        env = turngym.make(spec.id, **spec.kwargs)
        try:
            fmt = getattr(env.unwrapped, "action_format", None)
            pattern = fmt.pattern() if fmt is not None else None
        finally:
            env.close()
        if pattern is None:
            raise ConfigError(
                f"sampling.constrain=true but {spec.id}'s action format has no pattern: set sampling.constrain=false"
            )
        out[spec.id] = TokenFSM.build(pattern, vocab, eos_ids=eos, canonical=tok if cfg.sampling.canonical else None)
    return out

"""a~ ~ pi_theta(.|s) for ArCHer: batched sampling with the trainer's own model, and the actor's logprobs.

    sampled = sample_utterances(model, tokenizer, prompts, max_new_tokens=8, temperature=1.0, eos_ids=[2],
                                pad_id=0, fsm=fsm, generator=gen)
    logp, mask, hidden = policy_forward(model, prompts, sampled, pad_id, hidden=True)

The prompts are the transitions' recorded ``state_ids`` (the exact tokens the policy saw); sampling runs
raw logits -> constraint mask -> temperature -> top-p -> one draw per row with the hf backend's own
sampling code (``turngym.agents.hf.draw``), the KV cache passed as the backend passes it
(``turngym.agents.hf.kv.cache_argument``). What differs from the backend is only whose weights sample: the
trainer's current ones, which change between the actor's steps, where the engine serves the last sync.
Under a constraint the actor's logprobs are those of the constrained policy (``constrained_logprobs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from turngym.agents.hf.draw import draw
from turngym.agents.hf.kv import cache_argument
from turngym.agents.sampling import SamplingConfig, TokenFSM
from turngym.trainers.constraint import constrained_logprobs
from turngym.trainers.losses import token_logprobs

__all__ = ["Sampled", "left_pad", "policy_forward", "sample_utterances"]


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


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
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
    top_p: float = 1.0,
    eos_ids: Sequence[int],
    pad_id: int,
    fsm: TokenFSM | None = None,
    generator: torch.Generator | None = None,
) -> Sampled:
    """One reply per prompt, sampled with ``model`` (left-padded batch, KV cache), raw logits -> constraint
    mask -> temperature -> top-p -> draw (the hf backend's ``draw``); stops at an EOS or ``max_new_tokens``."""
    from transformers import DynamicCache

    device = next(model.parameters()).device
    vocab_size = int(model.get_output_embeddings().weight.shape[0])
    ids, attn = left_pad(prompts, pad_id)
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    n = len(prompts)
    out_ids: list[list[int]] = [[] for _ in range(n)]
    fsm_rows: list[list[int]] = [[] for _ in range(n)]
    rows = _AllowedRows(fsm, vocab_size) if fsm is not None else None
    states = [fsm.initial] * n if fsm is not None else None
    done = [False] * n
    eos = {int(e) for e in eos_ids}
    cache = DynamicCache()
    kv = {cache_argument(model): cache}
    sampling = SamplingConfig(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens)
    out = model(
        input_ids=ids.to(device), attention_mask=attn.to(device), position_ids=pos.to(device),
        use_cache=True, logits_to_keep=1, **kv,
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
        nxt = draw(logits, [sampling] * n, [generator] * n).clamp_(max=vocab_size - 1)
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
            use_cache=True, **kv,
        )
    texts = [
        tokenizer.decode(s[:-1] if s and s[-1] in eos else s, skip_special_tokens=False) for s in out_ids
    ]
    return Sampled(ids=out_ids, texts=texts, fsm_rows=fsm_rows, allowed=rows.matrix() if rows is not None else None)


def policy_forward(
    model: torch.nn.Module, prompts: Sequence[Sequence[int]], sampled: Sampled, pad_id: int, *, hidden: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """log pi_theta(a~_j | s, a~_<j) ``[B, L]`` (with gradient; constrained where the tokens were), the action
    mask ``[B, L]`` and, with ``hidden``, the last hidden states that predicted each token ``[B, L, H]``.

    The batch is left-padded, so every row's a~ sits at its right end: only the last L + 1 positions'
    logits are computed (``logits_to_keep``)."""
    device = next(model.parameters()).device
    L = max(1, max(len(a) for a in sampled.ids))
    seqs = [list(p) + list(a) for p, a in zip(prompts, sampled.ids, strict=True)]
    ids, attn = left_pad(seqs, pad_id)
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


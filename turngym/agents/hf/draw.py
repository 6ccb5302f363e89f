"""Sampling a batch whose rows differ: raw logits -> constraint mask (by the caller) -> temperature ->
top-p -> one draw per row (argmax at temperature 0). The draw is ``torch.multinomial``'s own
(``argmax(p / q)``, ``q ~ Exp(1)`` from the row's generator), so a seeded row samples what
``torch.multinomial(p, 1, generator=g)`` would, whatever else is in the batch."""

from __future__ import annotations

from typing import Any

from turngym.agents.sampling import SamplingConfig

__all__ = ["draw", "generator"]


def generator(seed: int | None) -> Any:
    """A CPU ``torch.Generator`` seeded with ``seed``; ``None`` for an unseeded row."""
    if seed is None:
        return None
    import torch

    return torch.Generator().manual_seed(int(seed))


def draw(x: Any, samplings: list[SamplingConfig], gens: list[Any]) -> Any:
    """One token per row of ``x`` (masked logits): temperature, then top-p (nucleus), then one draw;
    argmax at temperature 0. The draw is ``torch.multinomial(p, 1, generator=g)``'s for one sample,
    ``argmax(p / q)`` with ``q ~ Exp(1)`` filled from the row's generator, so seeded rows repeat
    whatever the batch holds."""
    import torch

    temps = [s.temperature for s in samplings]
    toks = torch.zeros(len(temps), dtype=torch.long)
    cold = [k for k, t in enumerate(temps) if t == 0]
    if cold:  # argmax over the greedy rows only: a full-vocabulary pass per row
        toks[cold] = x.index_select(0, torch.tensor(cold, device=x.device)).argmax(-1).cpu()
    hot = [k for k, t in enumerate(temps) if t != 0]
    if not hot:
        return toks
    # no copy of the logits where every row samples, no division where every temperature is 1 (x / 1 == x)
    xs = x if len(hot) == len(temps) else x.index_select(0, torch.tensor(hot, device=x.device))
    if any(temps[k] != 1.0 for k in hot):
        xs = xs / torch.tensor([temps[k] for k in hot], dtype=x.dtype, device=x.device)[:, None]
    probs = torch.softmax(xs, dim=-1)
    top_p = torch.tensor([samplings[k].top_p for k in hot], dtype=probs.dtype, device=probs.device)
    nucleus = (top_p < 1.0).nonzero()[:, 0]
    if len(nucleus):
        part = probs.index_select(0, nucleus)
        sorted_p, order = part.sort(dim=-1, descending=True)
        keep = sorted_p.cumsum(-1) - sorted_p < top_p[nucleus, None]  # always keeps the top token
        part = torch.zeros_like(part).scatter(1, order, torch.where(keep, sorted_p, torch.zeros_like(sorted_p)))
        probs = probs.index_copy(0, nucleus, part)
    probs = probs.cpu()
    q = torch.empty_like(probs)
    for k in range(len(hot)):
        q[k].exponential_(1, generator=gens[hot[k]])
    toks[hot] = probs.div_(q).argmax(-1)  # in place: probs is this call's own tensor
    return toks

"""The turn critic of bi-level GAE (RESEARCH.md section 4c): a value head over a language model's hidden
states, and its loss.

    head = ValueHead(hidden_size=model.config.hidden_size)
    values = critic_values(model, head, batch["input_ids"], batch["attention_mask"])   # [B, L]
    adv = compute_advantages(table, BilevelGAEConfig(), values=uncollate(table, rows, values))
    loss = value_loss(values, returns, batch["loss_mask"])

The head reads the last hidden layer at every token; bi-level GAE uses the value at each token of an
action and, at a turn's last action token e_t, V(e_t).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ValueHead", "critic_values", "value_loss"]


class ValueHead(nn.Module):
    """V(token) = w . h + b on the last hidden state h, computed in float32."""

    def __init__(self, *, hidden_size: int, init_std: float = 1e-2) -> None:
        super().__init__()
        self.proj = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.proj.weight, std=init_std)
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """[B, L, H] hidden states -> [B, L] values."""
        return self.proj(hidden.float()).squeeze(-1)


def critic_values(model: nn.Module, head: ValueHead, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Per-token values [B, L] from a transformers-style model (``output_hidden_states=True``)."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    return head(out.hidden_states[-1])


def value_loss(
    values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    *,
    old_values: torch.Tensor | None = None,
    clip: float | None = None,
) -> torch.Tensor:
    """0.5 * mean over action tokens of (V - R)^2; with ``old_values`` and ``clip``, PPO's clipped form
    0.5 * max((V - R)^2, (V_old + clip(V - V_old, -clip, clip) - R)^2)."""
    mask = mask.bool()
    err = (values - returns) ** 2
    if clip is not None:
        if old_values is None:
            raise ValueError(f"clip={clip} needs old_values= (the critic's values at rollout time)")
        clipped = old_values + torch.clamp(values - old_values, -clip, clip)
        err = torch.maximum(err, (clipped - returns) ** 2)
    return 0.5 * torch.where(mask, err, 0.0).sum() / mask.sum().clamp(min=1)

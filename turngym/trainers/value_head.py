"""The turn critic of bi-level GAE (RESEARCH.md section 4c): a value head over a language model's hidden
states, and its loss.

    head = ValueHead(hidden_size=model.config.hidden_size)
    values = critic_values(model, head, batch["input_ids"], batch["attention_mask"])   # [B, L]
    adv = compute_advantages(table, BilevelGAEConfig(), values=uncollate(table, rows, values))
    loss = value_loss(values, returns, batch["loss_mask"])

The head reads the last hidden layer at every token; bi-level GAE uses the value at each token of an
action and, at a turn's last action token e_t, V(e_t).

In the training loop (``algorithm: bilevel_gae``) the critic is a ``TurnCritic``: this head on the policy's
own hidden states, detached, with an optimizer of its own (options: ``BilevelGAEConfig.critic``).

    critic = TurnCritic(model, cfg.algorithm.critic, device=device, seed=cfg.seed)
    values = critic.values(model, table)            # V_k on the action tokens (hidden states kept)
    adv = compute_advantages(table, cfg.algorithm, values=values)
    ...                                             # the policy update
    metrics = critic.update(adv)                    # value-loss steps towards adv.returns

Why a head on the policy's detached hidden states and not a second model: the policy's forward pass
already holds a representation of every turn's context, so V(s_t) costs one no-grad forward and a
linear map; the head's steps reuse the iteration's hidden states (no forward or backward through the
model); the PPO update and its loss stay as the other estimators have them; and the checkpoint adds a
head and its optimizer, not a second model. The price: the critic can only be as good as a linear
read-out of features the policy learns for itself (verl and RAGEN train a separate critic model).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from turngym.trainers.advantages import Advantages, TurnCriticConfig
from turngym.trainers.table import TurnTable, collate_episodes
from turngym.trainers.update import _autocast

__all__ = ["TurnCritic", "ValueHead", "critic_values", "last_hidden_states", "value_loss"]


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


def last_hidden_states(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, autocast: str = "auto"
) -> torch.Tensor:
    """The last hidden layer [B, L, H] of a transformers-style model: its decoder's (no output layer run), or
    ``output_hidden_states=True``'s last entry. bf16 autocast on CUDA for ``autocast="auto"``, as the update."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    with _autocast(input_ids.device, autocast):
        if decoder is not None:
            return decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states[-1]


def critic_values(model: nn.Module, head: ValueHead, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Per-token values [B, L] (the head on the last hidden layer at every position)."""
    return head(last_hidden_states(model, input_ids, attention_mask))


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


class TurnCritic:
    """The turn critic of ``algorithm: bilevel_gae`` in the training loop (see the module docstring).

    V_k, the value of action token k, is the head on the hidden state at position k - 1, the one that
    predicts token k (where the policy's logprob of k is read): the first action token of turn t carries
    V(s_t), the value of the turn's context, and the last one V(e_t). ``values`` keeps those hidden
    states (detached) and the values it returned; ``update`` takes ``steps_per_iteration`` full-batch
    AdamW steps of ``value_loss`` on the kept episodes' action tokens towards ``Advantages.returns``."""

    def __init__(self, model: nn.Module, cfg: TurnCriticConfig, *, device: torch.device | str, seed: int) -> None:
        self.cfg = cfg
        with torch.random.fork_rng(devices=[]):  # its own seed: the global RNG streams stay as they were
            torch.manual_seed(seed)
            self.head = ValueHead(hidden_size=int(model.config.hidden_size), init_std=cfg.init_std)
        self.head.to(device)
        self.optimizer = torch.optim.AdamW(self.head.parameters(), lr=cfg.lr, weight_decay=0.0)
        self._features: torch.Tensor | None = None  # [N, H] hidden states predicting the N action tokens
        self._values: torch.Tensor | None = None  # [N] the values the estimator got
        self._episode: np.ndarray | None = None  # [N] table row of each
        self._positions: np.ndarray | None = None  # [N] flat-stream position of each

    @property
    def device(self) -> torch.device:
        return self.head.proj.weight.device

    @torch.no_grad()
    def values(
        self, model: nn.Module, table: TurnTable, *, batch_size: int = 0, pad_id: int = 0, autocast: str = "auto"
    ) -> np.ndarray:
        """V_k on every action token of ``table``'s flat stream (0 elsewhere), for ``compute_advantages``;
        ``batch_size`` episodes per forward pass (0: all)."""
        pos = np.flatnonzero(table.token_turn >= 0)
        step = batch_size or max(len(table), 1)
        feats: list[torch.Tensor] = []
        for start in range(0, len(table), step):
            batch = collate_episodes(table, np.arange(start, min(start + step, len(table))), device=self.device,
                                     pad_id=pad_id)
            b, k = batch["loss_mask"].nonzero(as_tuple=True)  # row-major: the flat stream's order
            if bool((k == 0).any()):
                raise ValueError("an action token at position 0 has no context to value: streams start with a prompt")
            hidden = last_hidden_states(model, batch["input_ids"], batch["attention_mask"], autocast=autocast)
            feats.append(hidden[b, k - 1].float())
        width = int(self.head.proj.in_features)
        self._features = torch.cat(feats) if feats else torch.zeros((0, width), device=self.device)
        self._values = self.head(self._features)
        self._episode = np.repeat(np.arange(len(table)), table.stream_lengths)[pos]
        self._positions = pos
        out = np.zeros(len(table.tokens), dtype=np.float64)
        out[pos] = self._values.double().cpu().numpy()
        return out

    def update(self, advantages: Advantages) -> dict[str, float]:
        """Value-loss steps towards ``advantages.returns`` on the tokens of the last ``values`` call whose
        episodes were kept; metrics ``critic/value_loss`` (of the values the estimator used: the critic's
        error on episodes it had not seen), ``critic/value_loss_trained`` (after the steps),
        ``critic/explained_variance`` (1 - Var(R - V) / Var(R), where Var(R) > 0) and ``critic/grad_norm``."""
        if self._features is None or self._values is None or self._episode is None or self._positions is None:
            raise RuntimeError("TurnCritic.update needs the values of the same table first: call values(model, table)")
        if advantages.returns is None:
            raise ValueError("the advantages carry no returns: the turn critic trains on a critic-based estimator's targets")
        keep = np.asarray(advantages.keep, dtype=bool)[self._episode]
        returns = np.asarray(advantages.returns, dtype=np.float64)[self._positions][keep]
        rows = torch.as_tensor(keep, device=self.device)
        feats, old = self._features[rows], self._values[rows]
        self._features = self._values = self._episode = self._positions = None
        return self._fit(feats, old, torch.as_tensor(returns, dtype=torch.float32, device=self.device))

    def _fit(self, feats: torch.Tensor, old: torch.Tensor, returns: torch.Tensor) -> dict[str, float]:
        if not len(returns):
            return {}
        every = torch.ones_like(returns, dtype=torch.bool)
        clip = self.cfg.value_clip
        out: dict[str, float] = {"critic/value_loss": float(value_loss(old, returns, every))}
        var = float(returns.var(unbiased=False))
        if var > 0:
            out["critic/explained_variance"] = 1.0 - float((returns - old).var(unbiased=False)) / var
        self.head.train()
        norms = []
        for _ in range(self.cfg.steps_per_iteration):
            loss = value_loss(self.head(feats), returns, every, old_values=old if clip else None, clip=clip)
            loss.backward()
            params = list(self.head.parameters())
            if self.cfg.grad_clip > 0:
                norms.append(float(torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)))
            else:
                norms.append(float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.head.eval()
        with torch.no_grad():
            out["critic/value_loss_trained"] = float(value_loss(self.head(feats), returns, every))
        out["critic/grad_norm"] = float(np.mean(norms))
        return out

    def state_dict(self) -> dict[str, Any]:
        """The head's weights and its optimizer's state (for the checkpoint's trainer.pt)."""
        return {"head": self.head.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.head.load_state_dict(state["head"])
        self.optimizer.load_state_dict(state["optimizer"])

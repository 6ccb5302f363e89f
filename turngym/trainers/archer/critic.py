"""ArCHer's utterance-level critic: double Q heads and double V heads over an encoder phi.

    Q_k(s, a) = MLP_k([phi(s); phi(a)]),   V_k(s) = MLP'_k(phi(s)),   k = 1, 2   (RESEARCH.md section 5)

The encoder phi is pluggable:

- ``encoder="separate"``: a small model of its own, ``TextEncoder.from_pretrained(dir)`` (any transformers
  ``AutoModel`` in a local directory, mean-pooled or last-token hidden state). By default it is trained with
  the heads (``finetune_encoder=True``), as in the reference code (RoBERTa fine-tuned by the critic optimiser).
- ``encoder="minilm"``: the same with the pretrained all-MiniLM-L6-v2 (``encoder.minilm_encoder``), reading the
  texts through its own tokenizer, mean-pooled.
- ``FrozenEncoder(text_encoder)`` (``finetune_encoder=False``): either of these held fixed: no gradient, eval mode,
  one copy shared by the critic and its target, embeddings cached per text; only the heads train.
- ``encoder="policy"``: ``DoubleCritic(encoder=None, feature_dim=H)``; the caller passes the policy's own
  pooled hidden states of s and a as ``[B, H]`` tensors (``pool_hidden`` pools them), only the heads are
  the critic's.

The target critic (Qbar, Vbar) is ``make_target(critic)``: a frozen deep copy, moved towards the critic by
``math.polyak_update`` after every critic step.

    critic = DoubleCritic(encoder=TextEncoder.from_pretrained(path))
    target = make_target(critic)
    q, v = critic(state_texts, action_texts)        # [2, B] each
    v_next = target.values(next_state_texts)        # Vbar_k(s'), [2, B]
    losses = critic_losses(critic, target, states=..., actions=..., next_states=..., pi_actions=...,
                           rewards=..., dones=..., gamma=0.95)   # one critic step's L_Q and L_V
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from os import PathLike
from typing import Any, Literal, NamedTuple, TypeVar, cast

import torch
from torch import Tensor, nn

from turngym.core.errors import ConfigError
from turngym.trainers.archer.math import critic_q_loss, critic_v_loss, td_target
from turngym.trainers.losses import frozen_reference

__all__ = [
    "CriticLosses",
    "CriticValues",
    "DoubleCritic",
    "FrozenEncoder",
    "TextEncoder",
    "TokenBaseline",
    "critic_losses",
    "make_target",
    "pool_hidden",
]

Pooling = Literal["mean", "last"]
M = TypeVar("M", bound=nn.Module)


def pool_hidden(hidden: Tensor, attention_mask: Tensor, pooling: Pooling = "mean") -> Tensor:
    """One vector per sequence from hidden states ``[B, L, H]`` and their mask ``[B, L]`` -> ``[B, H]``.

    ``mean``: the mean over the positions with mask 1. ``last``: the hidden state at the last position with
    mask 1 (right or left padding alike), the usual choice for a decoder-only model.
    """
    m = attention_mask.to(hidden.dtype)
    if pooling == "mean":
        return (hidden * m.unsqueeze(-1)).sum(dim=1) / m.sum(dim=1, keepdim=True).clamp_min(1.0)
    if pooling == "last":
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        last = (attention_mask.to(torch.long) * positions).max(dim=1).values  # index of the last 1 in each row
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    raise ValueError(f"pooling={pooling!r} is not one of 'mean', 'last'")


class TextEncoder(nn.Module):
    """phi: texts -> ``[B, dim]``, a transformers ``AutoModel`` with its tokenizer and a pooling.

    Long histories are truncated on the left (the latest turns are kept), as the reference code does.
    """

    def __init__(self, *, model: nn.Module, tokenizer: Any, pooling: Pooling = "mean", max_length: int = 512):
        super().__init__()
        if pooling not in ("mean", "last"):
            raise ValueError(f"pooling={pooling!r} is not one of 'mean', 'last'")
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ConfigError(
                    f"the encoder tokenizer {type(tokenizer).__name__} has neither a pad nor an eos token, so "
                    "batches of texts cannot be padded; give it a pad token (tokenizer.pad_token = ...)"
                )
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.truncation_side = "left"
        self.model = model
        self.tokenizer = tokenizer
        self.pooling: Pooling = pooling
        self.max_length = max_length

    @classmethod
    def from_pretrained(
        cls,
        path: str | PathLike[str],
        *,
        pooling: Pooling = "mean",
        max_length: int = 512,
        dtype: torch.dtype = torch.float32,
    ) -> TextEncoder:
        """Load the model and tokenizer from a local directory (no hub access).

        A causal-LM checkpoint loads its base model (the LM head is dropped), so the policy's own
        directory works too. ``dtype``: float32 (the CPU default); bfloat16 on a GPU.
        """
        from transformers import AutoModel, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = AutoModel.from_pretrained(str(path), local_files_only=True, dtype=dtype)
        except OSError as e:
            raise ConfigError(
                f"cannot load a critic encoder from {str(path)!r}: {e}. Give algorithm.critic.encoder_path a local "
                "directory holding a transformers model and its tokenizer (config.json, weights, tokenizer.json)"
            ) from e
        return cls(model=model, tokenizer=tokenizer, pooling=pooling, max_length=max_length)

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def forward(self, texts: Sequence[str]) -> Tensor:
        device = next(self.model.parameters()).device
        enc = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(device)
        hidden = self.model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        return pool_hidden(hidden, enc["attention_mask"], self.pooling)


class FrozenEncoder(nn.Module):
    """phi held fixed: a ``TextEncoder`` with gradients off, always in eval mode (no dropout), its embeddings
    cached per text (the same text gives the same vector, so each distinct history is encoded once; the
    ``cache_size`` most recently used are kept).

    ``make_target`` shares it rather than copying it (``__deepcopy__`` returns the module itself): the target
    of a fixed encoder is the encoder, and one cache serves both. ``polyak_update`` skips the shared weights.
    """

    def __init__(self, encoder: TextEncoder, *, cache_size: int = 65_536):
        super().__init__()
        self.encoder = encoder.requires_grad_(False)
        self.train(False)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Tensor] = OrderedDict()

    @property
    def dim(self) -> int:
        return self.encoder.dim

    def train(self, mode: bool = True) -> FrozenEncoder:
        return super().train(False)  # eval mode always: a fixed function of the text

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenEncoder:
        return self

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> FrozenEncoder:
        self._cache.clear()  # a move to another device or dtype: the cached vectors would be stale
        return super()._apply(fn, *args, **kwargs)

    @torch.no_grad()
    def forward(self, texts: Sequence[str]) -> Tensor:
        texts = list(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, vector in zip(missing, self.encoder(missing), strict=True):
                self._cache[text] = vector
        for text in texts:
            self._cache.move_to_end(text)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return torch.stack([self._cache[t] for t in texts])


def _mlp(in_dim: int, hidden_dim: int) -> nn.Sequential:
    """The reference head: two hidden ReLU layers, one scalar out."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, 1),
    )


class CriticValues(NamedTuple):
    q: Tensor | None  # [K, B]: Q_k(s, a); None when no action was given
    v: Tensor  # [K, B]: V_k(s)


class DoubleCritic(nn.Module):
    """K = 2 Q heads MLP_k([phi(s); phi(a)]) and K = 2 V heads MLP'_k(phi(s)) over one encoder phi.

    ``encoder``: a module mapping a batch of inputs (texts, ids, anything it accepts) to ``[B, dim]``, with a
    ``dim`` attribute; or ``None`` when the caller passes features itself (the policy's hidden states), in
    which case ``feature_dim`` is their width. ``hidden_dim`` is the heads' width (default: the feature width,
    as in the reference code).
    """

    def __init__(
        self,
        *,
        encoder: nn.Module | None = None,
        feature_dim: int | None = None,
        hidden_dim: int | None = None,
        num_heads: int = 2,
    ):
        super().__init__()
        if encoder is None and feature_dim is None:
            raise ConfigError(
                "DoubleCritic needs an encoder or, with encoder=None (the policy's hidden states as features), "
                "feature_dim = the width of those features"
            )
        dim = int(feature_dim if feature_dim is not None else encoder.dim)  # type: ignore[union-attr]
        if encoder is not None and feature_dim is not None and getattr(encoder, "dim", dim) != dim:
            raise ConfigError(f"feature_dim={feature_dim} differs from the encoder's width {encoder.dim}; drop one")
        hidden = hidden_dim or dim
        self.encoder = encoder
        self.feature_dim = dim
        self.q_heads = nn.ModuleList(_mlp(2 * dim, hidden) for _ in range(num_heads))  # MLP_k
        self.v_heads = nn.ModuleList(_mlp(dim, hidden) for _ in range(num_heads))  # MLP'_k

    def encode(self, x: Any) -> Tensor:
        """phi(x): the encoder's output, or ``x`` itself (a ``[B, feature_dim]`` tensor) without an encoder."""
        if self.encoder is not None:
            return self.encoder(x)
        if not isinstance(x, Tensor) or x.dim() != 2 or x.shape[1] != self.feature_dim:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"this critic has no encoder, so it takes features [B, {self.feature_dim}], not {shape}; "
                "pool the policy's hidden states with pool_hidden, or give the critic an encoder"
            )
        return x

    def q_from_features(self, phi_s: Tensor, phi_a: Tensor) -> Tensor:
        """Q_k(s, a) = MLP_k([phi(s); phi(a)]) -> ``[K, B]``."""
        x = torch.cat([phi_s, phi_a], dim=-1)
        return torch.stack([head(x).squeeze(-1) for head in self.q_heads])

    def v_from_features(self, phi_s: Tensor) -> Tensor:
        """V_k(s) = MLP'_k(phi(s)) -> ``[K, B]``."""
        return torch.stack([head(phi_s).squeeze(-1) for head in self.v_heads])

    def values(self, states: Any) -> Tensor:
        """V_k(s) -> ``[K, B]`` (no action encoded)."""
        return self.v_from_features(self.encode(states))

    def forward(self, states: Any, actions: Any = None) -> CriticValues:
        """Q_k(s, a) and V_k(s), phi(s) computed once; ``q`` is None when ``actions`` is None."""
        phi_s = self.encode(states)
        q = None if actions is None else self.q_from_features(phi_s, self.encode(actions))
        return CriticValues(q=q, v=self.v_from_features(phi_s))


class TokenBaseline(nn.Module):
    """The optional per-token baseline b(s, a~_<j): a scalar per position from the policy's hidden states.

    Give it the hidden states aligned with the logits of the action tokens (``[B, L, H]``, the state
    before token j is emitted); it returns ``[B, L]``. Train it with ``math.baseline_loss``.
    """

    def __init__(self, *, hidden_size: int, width: int | None = None):
        super().__init__()
        width = width or hidden_size
        self.net = nn.Sequential(nn.Linear(hidden_size, width), nn.ReLU(), nn.Linear(width, 1))

    def forward(self, hidden: Tensor) -> Tensor:
        return self.net(hidden).squeeze(-1)


def make_target(module: M) -> M:
    """The target copy (Qbar, Vbar): a deep copy with gradients off, in eval mode (no dropout), moved
    towards ``module`` by ``math.polyak_update``. The same frozen copy as the policy's KL reference."""
    return cast(M, frozen_reference(module))


class CriticLosses(NamedTuple):
    q_loss: Tensor  # L_Q, with gradient into the critic
    v_loss: Tensor  # L_V, with gradient into the critic
    q: Tensor  # [K, B] Q_k(s, a), detached (for logging)
    v: Tensor  # [K, B] V_k(s), detached
    y: Tensor  # [K, B] the TD targets r + gamma (1 - done) Vbar_k(s')


def critic_losses(
    critic: DoubleCritic,
    target: DoubleCritic,
    *,
    states: Any,
    actions: Any,
    next_states: Any,
    pi_actions: Any,
    rewards: Tensor,
    dones: Tensor,
    gamma: float,
) -> CriticLosses:
    """One critic step's losses on a batch of buffer transitions (s, a, r, s', done).

    ``pi_actions`` are utterances a~ ~ pi_theta(.|s) freshly sampled for the same states. The critic gives
    Q_k(s, a) and V_k(s); the target gives Vbar_k(s') for the TD target and Qbar_k(s, a~) for the V target.
    Backpropagate ``q_loss + v_loss``, clip, step, then ``polyak_update(target, critic, tau)``.
    """
    q, v = critic(states, actions)
    with torch.no_grad():
        y = td_target(rewards, dones, target.values(next_states), gamma)  # r + gamma (1 - done) Vbar_k(s')
        q_tilde = target(states, pi_actions).q  # Qbar_k(s, a~)
    assert q is not None and q_tilde is not None
    return CriticLosses(q_loss=critic_q_loss(q, y), v_loss=critic_v_loss(v, q_tilde), q=q.detach(), v=v.detach(), y=y)

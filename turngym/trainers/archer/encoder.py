"""The default encoder phi of ArCHer's separate critic: a tiny random-init Llama over the policy's
tokenizer, built in memory (no hub access), seeded on its own (the global RNG is left as it was).

    encoder = default_encoder(cfg.model.path, seed=0, pooling="mean", max_length=256)
"""

from __future__ import annotations

import torch

from turngym.trainers.archer.critic import TextEncoder

__all__ = ["DEFAULT_ENCODER", "default_encoder"]

#: the size of the default separate encoder: (hidden, layers, heads, intermediate)
DEFAULT_ENCODER = (64, 2, 2, 128)


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

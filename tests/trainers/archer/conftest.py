"""Tiny random-init encoders (BERT, Qwen2) in temp dirs, with real tokenizers made by `tokenizers`: no hub."""

from __future__ import annotations

from pathlib import Path

import pytest

WORDS = (
    "user assistant tool state end guess the number is higher lower right a0 a1 : ? ! [ ] "
    "0 1 2 3 4 5 6 7 8 9 10 50 75 from to I am thinking of whole it after each say whether secret"
).split()

def _tokenizer(special: list[str], **named: str):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(special + [w for w in dict.fromkeys(WORDS) if w not in special])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=named["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, **named), len(vocab)

@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    d = tmp_path_factory.mktemp("tiny-bert")
    tok, n = _tokenizer(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]"], pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    )
    tok.save_pretrained(d)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=n,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(cfg).save_pretrained(d)
    return d

@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from transformers import Qwen2Config, Qwen2Model

    d = tmp_path_factory.mktemp("tiny-qwen2")
    tok, n = _tokenizer(
        ["<|endoftext|>", "<unk>"], pad_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<unk>"
    )
    tok.save_pretrained(d)
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=n,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=128,
    )
    Qwen2Model(cfg).save_pretrained(d)
    return d

"""Tiny random-weight chat models for tests, benchmarks and RL demos, built offline.

``build_tiny_model(out)`` writes, in Hugging Face format (loaded by transformers, by vLLM and by
``vllm serve``): a Qwen2-style causal LM with random weights (RMSNorm, SwiGLU, RoPE, grouped-query
attention, bias on the attention projections), a real tokenizer and a ChatML chat template that
takes tools. The checkpoint declares the Llama architecture (``LlamaForCausalLM`` with
``attention_bias=True``), not ``Qwen2ForCausalLM``: transformers 5 loads every ``qwen2`` checkpoint
with its byte-level ``Qwen2Tokenizer`` whatever ``tokenizer.json`` holds, which would garble the
SentencePiece and word-level vocabularies below; the Llama type honours ``tokenizer_class``.
Tokenizers:

    "mistral"        the 32k SentencePiece vocabulary shipped in the mistral-common package
                     (``tokenizer.model.v1``), converted to tokenizer.json, plus ChatML tokens
    "task:NAME"      a small word-level vocabulary built with ``tokenizers`` for one task
                     (``task:guess_number``: numbers below 100 as single tokens, brackets,
                     the words of the game's prompt and hints; ``task:lookup``: the
                     names, cities and words of turngym/Lookup-v0)

Templates: ``chatml`` (append-only), ``compact`` (two template tokens per message, for task-vocabulary
models trained from scratch, where every token of the stream costs training time) and ``thinking`` (Qwen3-style: drops the ``<think>`` blocks of
assistant turns before the last user message, so it is *not* append-only; tests use it).

CLI: ``turngym models tiny --out DIR [--size tiny] [--tokenizer mistral] [--tied]``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Literal

from turngym.envs.games.lookup import CITIES as LOOKUP_CITIES
from turngym.envs.games.lookup import NAMES as LOOKUP_NAMES
from turngym.envs.games.text_nav import CONTAINERS, OBJECTS, ROOMS, SURFACES

__all__ = ["SIZES", "TASK_VOCABS", "TEMPLATES", "build_tiny_model"]

#: name -> (hidden, layers, heads, kv heads, intermediate); head_dim 32 in the CPU sizes (vLLM CPU kernels);
#: 0.5b: a Qwen2-0.5B-like shape for the GPU check (perf/gpu_check.py; ~0.44B parameters with the 32k tokenizer)
SIZES: dict[str, tuple[int, int, int, int, int]] = {
    "nano": (32, 1, 1, 1, 64),
    "tiny": (64, 2, 2, 1, 128),
    "small": (128, 4, 4, 2, 384),
    "0.5b": (1024, 28, 16, 4, 3584),
}

CHAT_TOKENS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")

_SYSTEM_WITH_TOOLS = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages and messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}"
    "{{- '# Tools\\n\\nYou may call functions. Their signatures are inside <tools></tools>:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
    "{{- '\\n</tools>\\n\\nCall a function as <tool_call>{\"name\": NAME, \"arguments\": {...}}</tool_call><|im_end|>\\n' }}"
    "{%- elif messages and messages[0].role == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}"
    "{%- endif %}"
)
_TOOL_CALLS = (
    "{%- if message.tool_calls %}{%- for tc in message.tool_calls %}"
    "{{- '<tool_call>{\"name\": \"' + tc.function.name + '\", \"arguments\": ' + tc.function.arguments + '}</tool_call>' }}"
    "{%- endfor %}{%- endif %}"
)
_BODY = (
    "{%- for message in messages %}"
    "{%- if message.role == 'system' and loop.first %}"
    "{%- elif message.role == 'tool' %}"
    "{{- '<|im_start|>user\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' + CONTENT }}" + _TOOL_CALLS + "{{- '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
#: the index of the last user message, as Qwen3's template computes it
_LAST_USER = (
    "{%- set ns = namespace(last_user=-1) %}"
    "{%- for m in messages %}{%- if m.role == 'user' %}{%- set ns.last_user = loop.index0 %}{%- endif %}{%- endfor %}"
)
TEMPLATES: dict[str, str] = {
    "chatml": _SYSTEM_WITH_TOOLS + _BODY.replace("CONTENT", "message.content"),
    # for task-vocabulary models trained from scratch: two template tokens per message instead of
    # ChatML's five; an assistant reply follows every other message directly and ends with <|im_end|>
    "compact": (
        "{%- for message in messages %}"
        "{%- if message.role == 'assistant' %}{{- message.content + '<|im_end|>' }}"
        "{%- else %}{{- '<|im_start|>' + message.content + '<|im_end|>' }}{%- endif %}"
        "{%- endfor %}"
    ),
    "thinking": _LAST_USER
    + _SYSTEM_WITH_TOOLS
    + _BODY.replace(
        "CONTENT",
        "((message.content.split('</think>')[-1].lstrip('\\n')) if loop.index0 < ns.last_user else message.content)",
    ),
}

#: task name -> the words of its vocabulary (besides digits, punctuation, whitespace and roles)
TASK_VOCABS: dict[str, tuple[str, ...]] = {
    "guess_number": (
        "The", "secret", "is", "higher", "lower", "than", "right", "Invalid", "action", "guess",
        # the words of the game's description and of its action format's instructions
        "I", "am", "thinking", "of", "a", "whole", "number", "from", "to", "Guess", "it", "after", "each",
        "say", "whether", "or", "Write", "your", "in", "square", "brackets", "for", "example", "Only",
        "the", "last", "bracketed", "counts", "outside", "not", "valid", "choose", "one",
    ),
    "lookup": (
        # the question, the tool's records and the verdicts; "?" is not among the shared punctuation
        "Where", "does", "live", "?", "Use", "search", "NAME", "then", "answer", "CITY",
        "lives", "in", "No", "record", "of", "Right", "Wrong", *LOOKUP_NAMES, *LOOKUP_CITIES,
        # the invalid-action messages
        "Invalid", "action", "is", "not", "a", "valid", "choose", "one", "no", "square", "brackets", "write",
        "your", "for", "example", "That", "was", "the", "episode", "over",
    ),
    "maze": (
        # the description, the position reports and the moves (perf/turn_credit.py trains on them)
        "You", "are", "in", "a", "maze", "of", "rows", "and", "columns", "row", "is", "the", "top", "column", "left",
        "Reach", "goal", "After", "each", "move", "you", "learn", "your", "position", "which", "directions", "open",
        "moving", "into", "wall", "leaves", "where", "Each", "costs", "point", "A", "that", "brings", "step", "closer",
        "to", "along", "earns", "it", "back", "Write", "square", "brackets", "for", "example", "up", "Valid", "down",
        "right", "Only", "last", "bracketed", "counts", "at", "Open", "Walls", "reached",
        "Invalid", "action", "not", "valid", "choose", "one", "no", "hit", "write", ";", "(", ")", "'",
    ),
    "text_nav": (
        # the task, the room descriptions, the commands and the invalid-command messages
        "You", "are", "in", "a", "house", "Your", "task", "put", "the", "cabinet", "Commands", "go", "north", "south",
        "east", "west", "take", "OBJECT", "open", "CONTAINER", "close", "on", "SURFACE", "look", "Taking", "opening",
        "and", "carrying", "into", "each", "earn", "points", "first", "time", "Exits", "There", "is", "closed", "it",
        "nothing", "On", "floor", "carry", "Valid", "commands", "around", "room", "Done", "Put",
        "Invalid", "action", "not", "valid", "choose", "one", "no", "exit", "to", "here", "use", "of", "exits",
        "listed", "things", "in", "first", "cannot", "be", "opened", "or", "already", "objects", "see", "furniture",
        "this", "you", "can", "with", "from", "write", "your", "command", "square", "brackets", "for", "example",
        "DIRECTION", "X", "there", "(", ")", "|", "'", "must", "like",
        *dict.fromkeys(w for name in (*ROOMS, *CONTAINERS, *SURFACES, *OBJECTS) for w in name.split()),
    ),
}
_PUNCT = ("[", "]", "-", ".", "!", ":", ",")
_WS = (" ", "\n")
_ROLES = ("system", "user", "assistant", "tool")


def _mistral_tokenizer(work: Path) -> Any:
    from importlib.resources import files

    from transformers import LlamaTokenizer

    src = files("mistral_common") / "data" / "tokenizer.model.v1"
    if not src.is_file():
        raise FileNotFoundError(
            f"{src} is missing: the mistral tokenizer comes from the mistral-common package; "
            "pip install 'turngym[llm]' (or mistral-common)"
        )
    spm = work / "spm"
    spm.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(str(src), spm / "tokenizer.model")
    tok = LlamaTokenizer.from_pretrained(str(spm))
    tok.add_special_tokens({"additional_special_tokens": list(CHAT_TOKENS)})
    return tok


def _task_tokenizer(name: str) -> Any:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = TASK_VOCABS.get(name)
    if words is None:
        raise ValueError(f"unknown task vocabulary {name!r}: choose one of {', '.join(sorted(TASK_VOCABS))}")
    specials = ["<unk>", *CHAT_TOKENS]
    words = tuple(dict.fromkeys((*_ROLES, *words)))
    numbers = [str(d) for d in range(10)] + [f"{n:02d}" for n in range(100)]
    vocab = [*specials, *numbers, *_PUNCT, *_WS, *words, *(" " + w for w in words)]
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(vocab)}, unk_token="<unk>"))
    # one token per number below 100 (longer digit runs split into pairs), per word (with the space
    # before it), punctuation mark and other whitespace character; decoding concatenates. Whole
    # numbers as tokens let a model trained from scratch compare them without learning to read digits.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\d\d?| ?[A-Za-z]+|\s|[^\sA-Za-z\d]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(specials)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )


def _declare_tokenizers_backend(path: Path) -> None:
    """Make AutoTokenizer load tokenizer.json as it is (not a model-specific class that rebuilds it)."""
    config = json.loads(path.read_text())
    config["tokenizer_class"] = "TokenizersBackend"
    config.pop("auto_map", None)
    path.write_text(json.dumps(config, indent=2))


def build_tiny_model(
    out: str | os.PathLike[str],
    *,
    size: str = "tiny",
    tokenizer: str = "mistral",
    template: Literal["chatml", "compact", "thinking"] = "chatml",
    tied: bool = False,
    seed: int = 0,
    init_std: float = 0.3,
    max_positions: int = 8192,
) -> Path:
    """Write a random-init Qwen2 chat model to ``out`` and return the path. See the module docstring.

    ``init_std`` is larger than a trained model's 0.02 so the random model's next-token
    distributions are peaked (logprobs spread over several nats), which makes stream and logprob
    checks sensitive.
    """
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}: choose one of {', '.join(SIZES)}")
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}: choose one of {', '.join(TEMPLATES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if tokenizer == "mistral":
        tok = _mistral_tokenizer(out / ".work")
    elif tokenizer.startswith("task:"):
        tok = _task_tokenizer(tokenizer.removeprefix("task:"))
    else:
        raise ValueError(f"unknown tokenizer {tokenizer!r}: use 'mistral' or 'task:NAME' ({', '.join(TASK_VOCABS)})")
    tok.chat_template = TEMPLATES[template]
    tok.eos_token = "<|im_end|>"
    tok.pad_token = "<|endoftext|>"
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    pad = tok.convert_tokens_to_ids("<|endoftext|>")
    hidden, layers, heads, kv_heads, inter = SIZES[size]
    vocab_size = len(tok)  # no padding rows: a random model would sample ids no tokenizer decodes
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=hidden // heads,
        max_position_embeddings=max_positions,
        tie_word_embeddings=tied,
        attention_bias=True,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        initializer_range=init_std,
        bos_token_id=None,
        eos_token_id=eos,
        pad_token_id=pad,
        dtype="float32",
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    model.generation_config = GenerationConfig(eos_token_id=[eos], pad_token_id=pad, bos_token_id=None)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    _declare_tokenizers_backend(out / "tokenizer_config.json")
    # chat_template.jinja is what newer transformers and vLLM read; keep the config key too
    (out / "chat_template.jinja").write_text(TEMPLATES[template])
    shutil.rmtree(out / ".work", ignore_errors=True)
    params = sum(p.numel() for p in model.parameters())
    (out / "turngym_tiny.json").write_text(
        json.dumps(
            {"size": size, "tokenizer": tokenizer, "template": template, "tied": tied, "seed": seed, "init_std": init_std,
             "parameters": params},
            indent=2,
        )
    )
    return out

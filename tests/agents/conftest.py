"""Fixtures of the LLM-agent tests: tiny models built once per machine under .cache/tiny-models."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / ".cache" / "tiny-models"
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"


def tiny_model(name: str, **kwargs) -> Path:
    """The cached tiny model ``name`` (built on first use; a file lock guards parallel builds)."""
    from turngym.agents.tiny import build_tiny_model

    out = MODELS / name
    if (out / "turngym_tiny.json").is_file():
        return out
    MODELS.mkdir(parents=True, exist_ok=True)
    with open(MODELS / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "turngym_tiny.json").is_file():
            tmp = MODELS / f".{name}.tmp{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            build_tiny_model(tmp, **kwargs)
            tmp.rename(out)
    return out


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    """The mistral-tokenizer tiny model with the append-only ChatML template."""
    return tiny_model("tiny")


@pytest.fixture(scope="session")
def thinking_dir() -> Path:
    """A tiny model whose template drops earlier <think> blocks (not append-only)."""
    return tiny_model("tiny-thinking", template="thinking", seed=1)


@pytest.fixture(scope="session")
def tied_dir() -> Path:
    """A tiny model with tied input and output embeddings (``tie_word_embeddings=True``)."""
    return tiny_model("tiny-tied", tied=True, seed=2)

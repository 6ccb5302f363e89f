"""Fixtures of the LLM-agent tests: tiny models built once per machine under .cache/tiny-models."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / ".cache" / "tiny-models"
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"


def run_in_vllm_venv(script: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run a worker script under .venv-vllm's python (vLLM is not in the main venv), as ``run_in_venv`` does,
    with 1 GiB of vLLM CPU KV cache."""
    from tests.conftest import run_in_venv

    return run_in_venv(
        ".venv-vllm", script, *args, setup="scripts/setup/60-vllm.sh", env={"VLLM_CPU_KVCACHE_SPACE": "1"},
        timeout=timeout,
    )


def tiny_model(name: str, **kwargs) -> Path:
    """The cached tiny model ``name`` (built on first use; a file lock guards parallel builds). Asking
    for a cached name with other options is an error: which test built it first would decide the model."""
    from turngym.agents.tiny import build_tiny_model

    out = MODELS / name
    if (out / "turngym_tiny.json").is_file():
        built = json.loads((out / "turngym_tiny.json").read_text())
        differ = {k: (built.get(k), v) for k, v in kwargs.items() if built.get(k) != v}
        if differ:
            raise ValueError(
                f"tiny model {name!r} is cached with other options (cached, asked): {differ}: give the variant "
                f"its own name, or delete {out} if it predates these options"
            )
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

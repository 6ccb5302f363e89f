"""Fixtures of the trainer tests: task-vocabulary tiny models (fast to train on CPU), one torch thread."""

from __future__ import annotations

import pytest

from tests.agents.conftest import tiny_model


@pytest.fixture(scope="session")
def gn_model():
    """A nano Llama model with the GuessNumber task tokenizer (untied embeddings)."""
    return tiny_model("gn-nano", size="nano", tokenizer="task:guess_number", init_std=0.02)


@pytest.fixture(scope="session")
def gn_model_tied():
    """The same with tied input/output embeddings (the weight-sync pitfall)."""
    return tiny_model("gn-nano-tied", size="nano", tokenizer="task:guess_number", init_std=0.02, tied=True, seed=3)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

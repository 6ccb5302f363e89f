"""Fixtures of the trainer tests: task-vocabulary tiny models (fast to train on CPU), the 2-iteration training
runs that several tests read (built once per session), one torch thread."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass
class TrainedRun:
    """A finished 2-iteration on-policy run: its trainer (the model as trained) and one recorded episode's tokens
    (episode 0 of iteration 2) with the trainer's logprobs on them. Read it; do not train it further."""

    trainer: Any
    run_dir: Path
    ids: list[int]
    mask: list[int]  # 1 = sampled by the policy
    logprobs: list[float]  # log p(ids[k] | ids[:k]), k >= 1

    @property
    def final(self) -> Path:
        """The model directory of the last checkpoint (what `turngym export model RUN` copies out)."""
        return self.run_dir / "checkpoints" / "iter-000002" / "model"


#: the LoRA run's settings (a higher lr, so the merged weights move visibly in 2 iterations)
LORA = {"model.lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        "optim.lr": 0.05, "eval.every": 0, "rollout.groups": 6}


def _trained_run(root: Path, model: Path, **over: Any) -> TrainedRun:
    import torch

    from tests.trainers.test_onpolicy import config
    from turngym.benchmarks.store import read_episodes
    from turngym.trainers.config import TrainConfig
    from turngym.trainers.onpolicy import OnPolicyTrainer
    from turngym.trainers.engine import trainer_logprobs

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # session fixtures set up before the autouse one below
    try:
        cfg = TrainConfig(**config(root, model, **over))
        trainer = OnPolicyTrainer(cfg)
        trainer.run(progress=False)
        run = Path(cfg.run_dir)
        episode = read_episodes(run / "episodes.jsonl", run_ids=["it2"])[0]
        ids = [int(t) for t in episode.tokens]
        return TrainedRun(trainer, run, ids, list(episode.mask), trainer_logprobs(trainer.model, ids))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def grpo_run(gn_model, tmp_path_factory) -> TrainedRun:
    """2 iterations of GRPO (full fine-tune), every checkpoint kept."""
    return _trained_run(tmp_path_factory.mktemp("grpo"), gn_model, algorithm="grpo",
                        **{"eval.every": 0, "checkpoint.keep": 3})


@pytest.fixture(scope="session")
def lora_run(gn_model, tmp_path_factory) -> TrainedRun:
    """2 iterations of the default algorithm with LoRA adapters (model/ holds the merged model)."""
    return _trained_run(tmp_path_factory.mktemp("lora"), gn_model, iterations=2, **LORA)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

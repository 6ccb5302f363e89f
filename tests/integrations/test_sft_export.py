"""An exported GuessNumber eval trains with TRL: ``turngym export episodes RUN --format sft`` (and ``hf``), read
back with ``datasets`` in .venv-trl, 2 SFTTrainer steps with ``assistant_only_loss=True`` (sft_worker.py says
what is real there): the loss covers exactly the agent's turns, and the weights move."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

import pytest

from tests.conftest import run_in_venv
from turngym.benchmarks.eval import eval_config, execute, plan_run
from turngym.benchmarks.export import env_system_prompt, export_episodes
from turngym.benchmarks.store import EPISODES_FILE, read_episodes
from turngym.benchmarks.suite import Suite

HERE = Path(__file__).resolve().parent


@pytest.mark.slow
def test_sft_export_trains_with_trl(tmp_path: Path) -> None:
    from datasets import load_from_disk

    from tests.agents.conftest import tiny_model

    suite = Suite.model_validate(
        {"name": "gn", "episodes": 6, "seed": 0, "envs": [{"id": "turngym/GuessNumber-v0", "kwargs": {"high": 16}}]}
    )
    run = tmp_path / "eval"
    asyncio.run(execute(plan_run(eval_config(suite, agent="scripted"), run)))
    episodes = {e.episode_id: e for e in read_episodes(run / EPISODES_FILE)}
    # the hf export of the same run loads with datasets in .venv too
    assert len(load_from_disk(str(export_episodes(run, "hf", tmp_path / "hf").path))) == len(episodes)
    sft = export_episodes(run, "sft", tmp_path / "sft", only_success=True, system=env_system_prompt())
    assert sft.rows == sum(e.success is True for e in episodes.values()) > 0

    out = tmp_path / "out.json"
    t0 = time.monotonic()
    res = run_in_venv(".venv-trl", HERE / "sft_worker.py", tiny_model("tiny"), tmp_path / "sft", out,
                      setup="scripts/setup/70-trl.sh", timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-6000:]
    got = json.loads(out.read_text())
    print(f"sft worker: {got['wall_s']:.1f} s inside, {time.monotonic() - t0:.1f} s with start-up")
    assert got["rows"] == sft.rows and "messages" in got["columns"]
    # the loss covers the agent's actions, nothing else: each with the newlines and the end-of-turn token that
    # TRL's Qwen2.5 training template puts inside its generation block
    for episode_id, texts in zip(got["episode_ids"], got["trained_texts"]):
        actions = [f"\n{t.action}<|im_end|>\n" for t in episodes[episode_id].turns]
        assert texts == actions, (texts, actions)
    assert len(got["logs"]) == 2 and all(math.isfinite(log["loss"]) for log in got["logs"])
    assert got["params_changed"] > 0, "the optimizer steps changed no weight"

"""Inference engines as Ray actors (``RayOptions.engines``, ``rollout.engines``) on the two-node cluster: every
worker's requests spread over the engines, the local runner's transcripts at temperature 0, a vLLM engine actor
running in .venv-vllm's Python, an engine killed with SIGKILL mid-training restarted by Ray with the last weights
loaded and probed, every episode stored once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from tests.agents.conftest import VLLM_PYTHON
from tests.distributed.test_ray_rollout import eval_cli, play_locally, transcript
from tests.distributed.test_ray_train import _cfg, _train_records, kill_in_second_rollout
from turngym.agents.runner import group_tasks
from turngym.benchmarks.store import read_episodes
from turngym.core.errors import ConfigError
from turngym.distributed.ray_rollout import RayOptions, run_episodes_ray
from turngym.trainers.onpolicy import OnPolicyTrainer

pytestmark = pytest.mark.slow

GREEDY = {"temperature": 0.0, "max_new_tokens": 6, "constrain": True, "system_prompt": ""}


def test_engine_actors_serve_every_workers_requests_and_give_the_local_transcripts(cluster, gn_model):
    tasks = group_tasks("turngym/GuessNumber-v0", range(4), group_size=2, env_kwargs={"low": 1, "high": 16},
                        max_turns=6)

    expected = play_locally(tasks, f"hf:{gn_model}", **GREEDY)
    events: list[str] = []
    options = RayOptions(address=cluster.address, workers=2, engines=2, cpus_per_engine=0.5)
    result = asyncio.run(
        run_episodes_ray(tasks, f"hf:{gn_model}", agent_options=GREEDY, ray=options, concurrency=4,
                         on_event=events.append)
    )
    assert not any(e.error for e in result.episodes)
    assert [transcript(e) for e in result.episodes] == [transcript(e) for e in expected]
    # the workers hold no model: every request went to an engine actor, both engines took some
    served = {s["index"]: s["served"] for s in result.engines}
    assert set(served) == {0, 1} and min(served.values()) > 0, served
    assert sum(served.values()) == sum(len(e.turns) for e in result.episodes)
    assert any(line.startswith("engines: 2 on ") for line in events), events
    assert all(e.tokens and e.trainable for e in result.episodes)  # token streams recorded through the routing


def test_vllm_engine_actors_run_in_the_vllm_virtualenv_and_serve_the_workers(cluster, gn_model):
    """vLLM is not in the main venv: the engine actor runs in .venv-vllm's Python (ray.engine_python), the workers in
    this one, and the workers' agents record token streams from its samples."""
    tasks = group_tasks("turngym/GuessNumber-v0", range(2), group_size=2, env_kwargs={"low": 1, "high": 16},
                        max_turns=6)
    options = RayOptions(address=cluster.address, workers=2, engines=1, engine_python=str(VLLM_PYTHON))
    result = asyncio.run(
        run_episodes_ray(tasks, f"vllm:{gn_model}", agent_options=GREEDY, ray=options, concurrency=4)
    )
    assert not any(e.error for e in result.episodes), [e.error for e in result.episodes]
    assert all(e.tokens and e.trainable for e in result.episodes)
    [engine] = result.engines
    assert Path(engine["python"]).resolve() == VLLM_PYTHON.resolve()
    assert engine["served"] == sum(len(e.turns) for e in result.episodes)
    # greedy from one engine: both episodes of a group (one seed) play the same moves
    for a, b in zip(result.episodes[::2], result.episodes[1::2], strict=True):
        assert [t.action for t in a.turns] == [t.action for t in b.turns]


def test_engines_need_a_model_and_ray(tmp_path):
    with pytest.raises(ConfigError, match="engine actors serve a model"):
        asyncio.run(run_episodes_ray(group_tasks("turngym/GuessNumber-v0", range(1)), "scripted",
                                     ray=RayOptions(engines=1)))
    done = eval_cli("--engines", "2", "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    assert "--engines 2 goes with --ray" in done.stderr and "Traceback" not in done.stderr


def test_an_engine_killed_mid_training_is_restarted_with_the_synced_weights_and_the_run_goes_on(
    tmp_path, gn_model, cluster, monkeypatch, capfd
):
    seen = kill_in_second_rollout(monkeypatch, lambda pool: pool.engines[0]["pid"])
    over = {"rollout.workers": 1, "rollout.engines": 2, "rollout.cpus_per_engine": 0.5, "rollout.groups": 4,
            "rollout.concurrency": 8}
    cfg = _cfg(tmp_path, gn_model, cluster, iterations=2, **over)
    OnPolicyTrainer(cfg).run(progress=False)
    # Ray restarted the engine in place; before serving it loaded iteration 1's weights and passed their probe
    err = capfd.readouterr().err
    assert "engine 0 restarted with the last weights loaded and probed (max diff" in err, err
    restarted = next(s for s in seen["result"].engines if s["index"] == 0)
    assert restarted["pid"] != seen["killed"]
    episodes = read_episodes(tmp_path / "run" / "episodes.jsonl")
    counts = Counter(e.episode_id for e in episodes)
    assert len(counts) == 2 * 4 * 4 and set(counts.values()) == {1}
    assert not any(e.error for e in episodes)  # the requests in flight on the dead engine went to the other
    records = _train_records(tmp_path / "run")
    assert [r["iteration"] for r in records] == [1, 2]
    assert all(r["probe_diff"] <= cfg.probe_tolerance for r in records)  # both engines synced after each update

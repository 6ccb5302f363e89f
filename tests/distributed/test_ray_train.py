"""Training with its rollouts on Ray workers (``rollout.engine: ray``) on the two-node cluster: the workers' engines
get every update's weights (the probe after each sync checks them), every episode is stored once, a worker killed
in the middle of an iteration's rollout has its episodes played again by the other, and the run goes on."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter

import pytest

from tests.trainers.test_onpolicy import config
from turngym.benchmarks.store import read_episodes
from turngym.distributed import ray_rollout
from turngym.trainers.config import TrainConfig
from turngym.trainers.onpolicy import OnPolicyTrainer

pytestmark = pytest.mark.slow


def _cfg(tmp_path, gn_model, cluster, **over) -> TrainConfig:
    ray = {"rollout.engine": "ray", "rollout.address": cluster.address, "rollout.workers": 2}
    return TrainConfig(**config(tmp_path, gn_model, **{"eval.every": 0, **ray, **over}))


def _train_records(run) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "train"]


def test_ray_workers_get_every_updates_weights_and_each_episode_is_stored_once(tmp_path, gn_model, cluster):
    cfg = _cfg(tmp_path, gn_model, cluster, iterations=2, **{"rollout.overlap": 1})
    OnPolicyTrainer(cfg).run(progress=False)
    records = _train_records(tmp_path / "run")
    assert [r["iteration"] for r in records] == [1, 2]
    # each sync pushed the new weights into both workers' engines, and the probe agreed with the trainer
    assert all(r["probe_diff"] <= cfg.probe_tolerance for r in records)
    episodes = read_episodes(tmp_path / "run" / "episodes.jsonl")
    counts = Counter(e.episode_id for e in episodes)
    assert len(counts) == 2 * 8 and set(counts.values()) == {1}
    assert {(e.run_id, e.policy_version) for e in episodes} == {("it1", 0), ("it2", 0)}
    assert all(e.trainable and e.tokens and not e.error for e in episodes)


def kill_in_second_rollout(monkeypatch, victim) -> dict[str, object]:
    """SIGKILL the process ``victim(pool)`` names when the second rollout's first episode reaches the driver (it
    then has episodes in flight); what it saw: ``killed`` (the pid), ``result`` (that rollout's RayRollout)."""
    play = ray_rollout.RolloutPool.play
    seen: dict[str, object] = {"calls": 0}

    async def play_and_kill(self, tasks, **kwargs):
        seen["calls"] += 1
        if seen["calls"] != 2:
            return await play(self, tasks, **kwargs)
        outer = kwargs.pop("on_episode", None)

        def on_episode(episode):
            if "killed" not in seen:
                seen["killed"] = victim(self)
                os.kill(seen["killed"], signal.SIGKILL)
            if outer is not None:
                outer(episode)

        seen["result"] = await play(self, tasks, on_episode=on_episode, **kwargs)
        return seen["result"]

    monkeypatch.setattr(ray_rollout.RolloutPool, "play", play_and_kill)
    return seen


def test_a_worker_killed_mid_rollout_is_replaced_with_the_synced_weights_and_the_run_goes_on(
    tmp_path, gn_model, cluster, monkeypatch, capfd
):
    seen = kill_in_second_rollout(monkeypatch, lambda pool: pool.workers[1]["pid"])
    cfg = _cfg(tmp_path, gn_model, cluster, iterations=3, **{"rollout.groups": 4, "rollout.concurrency": 2})
    OnPolicyTrainer(cfg).run(progress=False)
    second = seen["result"]
    killed = seen["killed"]
    assert second.lost.keys() == {1} and second.replayed and set(second.replayed.values()) == {killed}
    assert all(second.played_by[i] != killed for i in second.replayed)
    # the replacement loaded the weights of iteration 1's sync and passed its probe before it played
    err = capfd.readouterr().err
    assert f"rollout worker 1 restarted as pid {second.workers[1]['pid']}" in err
    assert "(the last weights loaded and probed)" in err
    episodes = read_episodes(tmp_path / "run" / "episodes.jsonl")
    counts = Counter(e.episode_id for e in episodes)
    assert len(counts) == 3 * 4 * 4 and set(counts.values()) == {1}
    records = _train_records(tmp_path / "run")
    assert [r["iteration"] for r in records] == [1, 2, 3]
    assert all(r["probe_diff"] <= cfg.probe_tolerance for r in records)  # both workers synced after each update

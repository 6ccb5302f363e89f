"""Ray rollouts on a real two-node Ray cluster started here (``ray.cluster_utils.Cluster``): the same transcripts as
the local runner, groups kept whole, a worker killed with SIGKILL mid-run has its unfinished episodes played again
elsewhere (each stored exactly once), and the errors named."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.sandboxes.conftest import docker_ready
from turngym.agents.base import make_agent
from turngym.agents.runner import group_tasks, run_episodes
from turngym.benchmarks.eval import eval_config, plan_run
from turngym.benchmarks.store import EpisodeStore, read_episodes
from turngym.core.errors import RolloutError
from turngym.distributed.ray_rollout import RayOptions, deal, run_episodes_ray

pytestmark = pytest.mark.slow


def transcript(episode) -> tuple:
    """What must not depend on where an episode was played (times and run ids left out)."""
    return (
        episode.episode_id,
        episode.instance_hash,
        [m.model_dump() for m in episode.prompt],
        [
            (t.action, [m.model_dump() for m in t.observation], t.reward, t.terminated, t.truncated)
            for t in episode.turns
        ],
        episode.success,
        episode.error,
    )


def play_locally(tasks, spec: str, **options) -> list:
    """``tasks`` played by the local runner (4 at a time) with the agent of ``spec``: the transcripts to match."""

    async def play():
        agent = make_agent(spec, **options)
        try:
            return await run_episodes(tasks, agent, concurrency=4)
        finally:
            await agent.aclose()

    return asyncio.run(play())


def suite_tasks(suite: str, episodes: int, tmp_path: Path):
    return plan_run(eval_config(suite, agent="scripted", episodes=episodes), tmp_path / suite).tasks


def eval_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``turngym eval`` of GuessNumber with the scripted agent, plus ``args``, in a fresh process."""
    cmd = [sys.executable, "-m", "turngym.cli.app", "eval", "--env", "turngym/GuessNumber-v0", "--agent", "scripted"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=REPO, timeout=timeout, check=False)


def test_deal_keeps_groups_whole_and_balances_them():
    tasks = group_tasks("turngym/GuessNumber-v0", range(5), group_size=3)
    shares = deal(tasks, 2)
    assert [len(s) for s in shares] == [9, 6]
    for share in shares:
        groups = Counter(t.group_id for t in share)
        assert set(groups.values()) == {3}
    assert deal(tasks[:3], 4) == [tasks[:3], [], [], []]


def test_smoke_and_code_suites_on_two_nodes_give_the_local_runners_transcripts(cluster, tmp_path):
    assert docker_ready() is None, docker_ready()
    tasks = suite_tasks("smoke", 2, tmp_path) + suite_tasks("code", 2, tmp_path)
    assert {t.env_id for t in tasks} >= {"turngym/Terminal-v0", "turngym/PythonTool-v0", "turngym/Maze-v0"}

    expected = play_locally(tasks, "scripted")
    events: list[str] = []
    result = asyncio.run(
        run_episodes_ray(
            tasks, "scripted", ray=RayOptions(address=cluster.address, workers=2), concurrency=4, on_event=events.append
        )
    )
    assert [e.episode_id for e in result.episodes] == [t.episode_id for t in tasks]
    assert [transcript(e) for e in result.episodes] == [transcript(e) for e in expected]
    assert not any(e.error for e in result.episodes)
    # both workers played Docker episodes, each on its own node (its sandboxes made there)
    nodes = {w["index"]: w["node"] for w in result.workers}
    assert len(set(nodes.values())) == 2, result.workers
    docker_envs = {"turngym/Terminal-v0", "turngym/PythonTool-v0", "turngym/HumanEvalMT-v0"}
    played = {nodes[result.played_on[t.episode_id]] for t in tasks if t.env_id in docker_envs}
    assert len(played) == 2
    assert events[0].startswith("rollout workers: 2 on 2 node(s) (0: pid ")
    assert not result.replayed and not result.lost


def test_a_worker_killed_mid_run_has_its_unfinished_episodes_played_again_and_each_is_stored_once(cluster, tmp_path):
    tasks = group_tasks("turngym/Wait-v0", range(8), group_size=2, env_kwargs={"step_seconds": 0.2, "turns": 4})
    path = tmp_path / "episodes.jsonl"
    pids: dict[int, int] = {}
    killed: list[int] = []

    events: list[str] = []

    def on_event(line: str) -> None:
        events.append(line)
        if line.startswith("rollout workers:"):
            pids.update((int(i), int(p)) for i, p in re.findall(r"(\d+): pid (\d+)", line))

    with EpisodeStore(path=path) as store:

        def on_episode(episode) -> None:
            store.append(episode)
            if not killed:  # at the first episode back (~1 s in), worker 1 dies with 6 or more of its 8 unfinished
                os.kill(pids[1], signal.SIGKILL)
                killed.append(pids[1])

        result = asyncio.run(
            run_episodes_ray(
                tasks,
                "scripted",
                ray=RayOptions(address=cluster.address, workers=2),
                concurrency=2,
                on_episode=on_episode,
                on_event=on_event,
            )
        )
    stored = read_episodes(path)
    counts = Counter(e.episode_id for e in stored)
    assert sorted(counts) == sorted(t.episode_id for t in tasks)
    assert set(counts.values()) == {1}, "an episode was stored twice"
    assert result.lost.keys() == {1}
    assert len(result.replayed) >= 6, "the killed worker's unfinished episodes must be played again"
    assert set(result.replayed.values()) == {killed[0]}
    assert all(result.played_by[i] != killed[0] for i in result.replayed)
    # worker 1 came back as a new process, which played part of what was left
    assert result.workers[1]["pid"] != killed[0]
    assert any(line.startswith(f"rollout worker 1 restarted as pid {result.workers[1]['pid']}") for line in events)
    assert result.workers[1]["pid"] in {result.played_by[i] for i in result.replayed}
    assert not any(e.error for e in stored)
    # a replayed episode is the same task: the same instance as the rest of its group
    hashes: dict[str, set[str]] = {}
    for e in stored:
        hashes.setdefault(e.group_id, set()).add(e.instance_hash)
    assert all(len(h) == 1 for h in hashes.values())


def test_the_run_stops_with_a_named_error_when_no_worker_is_left_and_keeps_what_finished(cluster, tmp_path):
    tasks = group_tasks("turngym/Wait-v0", range(6), env_kwargs={"step_seconds": 0.2, "turns": 4})
    pids: dict[int, int] = {}
    got = []

    def on_episode(episode) -> None:
        got.append(episode)
        if len(got) == 1:
            for pid in pids.values():
                os.kill(pid, signal.SIGKILL)

    def on_event(line: str) -> None:
        pids.update((int(i), int(p)) for i, p in re.findall(r"(\d+): pid (\d+)", line))

    with pytest.raises(RolloutError, match=r"every rollout worker is gone") as caught:
        asyncio.run(
            run_episodes_ray(
                tasks,
                "scripted",
                ray=RayOptions(address=cluster.address, workers=2, restarts=0),
                concurrency=1,
                on_episode=on_episode,
                on_event=on_event,
            )
        )
    # the first episode back, and one the other worker may have sent just before it died
    assert 1 <= len(got) <= 2 and f"The {len(got)} episodes that finished are kept" in str(caught.value)


def test_a_worker_that_fails_stops_the_run_naming_it(cluster, tmp_path):
    tasks = group_tasks("turngym/GuessNumber-v0", range(2))
    with pytest.raises(
        RolloutError, match=r"rollout worker \d \(pid \d+ on .*\) failed in building its agent: .*does-not-exist"
    ):
        asyncio.run(
            run_episodes_ray(tasks, f"hf:{tmp_path / 'does-not-exist'}", ray=RayOptions(address=cluster.address))
        )


def test_eval_cli_runs_on_the_cluster_and_resumes_on_the_local_runner(cluster, tmp_path):
    out = tmp_path / "run"
    done = eval_cli("--episodes", "4", "--out", str(out), "--ray", cluster.address, "--workers", "2", timeout=300)
    assert done.returncode == 0, done.stderr
    assert "rollout workers: 2 on 2 node(s)" in done.stderr
    stored = read_episodes(out / "episodes.jsonl")
    assert len(stored) == 4 and all(e.success for e in stored)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overall"]["episodes"] == 4
    again = eval_cli("--episodes", "4", "--out", str(out), timeout=300)
    assert again.returncode == 0, again.stderr
    assert "4 of 4 episodes already stored" in again.stdout


def test_cli_mistakes_are_one_paragraph(tmp_path):
    done = eval_cli("--workers", "2", "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    assert "--workers 2 goes with --ray" in done.stderr and "Traceback" not in done.stderr
    done = eval_cli("--ray", "--workers", "0", "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    assert "ray.workers" in done.stderr and "Traceback" not in done.stderr

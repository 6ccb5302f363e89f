"""Eval runs: the run directory, the episode store, resume (also after a real kill -9), images, the report."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import turngym
from turngym.agents import base
from turngym.benchmarks.eval import eval_config, execute, externalize_images, load_run, plan_run
from turngym.benchmarks.store import EpisodeStore, read_episodes
from turngym.core.errors import ConfigError
from turngym.core.types import Episode, ImagePart, Message, Observation, TextPart, Turn

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data"


def suite_file(tmp_path: Path, **extra) -> str:
    suite = {
        "name": "mini",
        "episodes": 6,
        "envs": [
            {"id": "turngym/GuessNumber-v0"},
            {"id": "turngym/GuessNumber-v0", "label": "tiny", "kwargs": {"high": 4}, "max_turns": 2},
        ],
        **extra,
    }
    path = tmp_path / "mini.yaml"
    path.write_text(yaml.safe_dump(suite))
    return str(path)


def test_run_dir_holds_config_episodes_summary_and_report(tmp_path):
    cfg = eval_config(suite_file(tmp_path), agent="scripted", group_size=2)
    run = tmp_path / "run"
    summary = asyncio.run(execute(plan_run(cfg, run)))
    assert summary.envs["turngym/GuessNumber-v0"].episodes == 12 and summary.envs["tiny"].episodes == 12
    assert summary.envs["turngym/GuessNumber-v0"].success_rate == 1.0
    stored_cfg, stored_summary, episodes = load_run(run)
    assert stored_cfg == cfg and stored_summary == summary and len(episodes) == 24
    assert yaml.safe_load((run / "config.yaml").read_text())["group_size"] == 2
    ids = [e.episode_id for e in episodes]
    assert "tiny/s3/g1" in ids and len(set(ids)) == 24
    # the two episodes of a group share one task instance
    by_group = {}
    for e in episodes:
        by_group.setdefault(e.group_id, set()).add(e.instance_hash)
    assert len(by_group) == 12 and all(len(v) == 1 for v in by_group.values())
    html = (run / "report.html").read_text()
    assert "data:image/png;base64," in html and "tiny" in html and "id='episodes'" in html
    plot = html.split("data:image/png;base64,")[1].split("'")[0]
    assert base64.b64decode(plot)[:8] == b"\x89PNG\r\n\x1a\n"
    summary_json = json.loads((run / "summary.json").read_text())
    assert summary_json["overall"]["episodes"] == 24 and "ci95" in summary_json["envs"]["tiny"]


def test_resume_runs_only_missing_episodes_and_rejects_a_different_config(tmp_path):
    run = tmp_path / "run"
    cfg = eval_config(suite_file(tmp_path), agent="random")
    plan = plan_run(cfg, run)
    # pretend an earlier run stored 5 episodes and was killed while writing the 6th
    full = asyncio.run(execute(plan_run(cfg, tmp_path / "ref")))
    reference = read_episodes(tmp_path / "ref" / "episodes.jsonl")
    with EpisodeStore(path=run / "episodes.jsonl") as store:
        for e in reference[:5]:
            store.append(e)
    with open(run / "episodes.jsonl", "ab") as f:
        f.write(reference[5].model_dump_json().encode()[:40])  # torn line, no newline
    plan = plan_run(cfg, run)
    assert len(plan.done) == 5 and len(plan.pending) == len(plan.tasks) - 5
    played = []
    summary = asyncio.run(execute(plan, on_episode=played.append))
    assert len(played) == len(plan.tasks) - 5
    lines = (run / "episodes.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == len(plan.tasks)  # torn line cut, nothing duplicated
    stored = read_episodes(run / "episodes.jsonl")
    assert sorted(e.episode_id for e in stored) == sorted(t.episode_id for t in plan.tasks)
    # the random agent is seeded per episode: resumed episodes equal the uninterrupted ones
    ref = {e.episode_id: [t.action for t in e.turns] for e in reference}
    assert all(ref[e.episode_id] == [t.action for t in e.turns] for e in stored)
    assert summary.overall.success_rate == full.overall.success_rate
    # concurrency may change on resume; what defines the tasks may not
    assert plan_run(eval_config(suite_file(tmp_path), agent="random", concurrency=2), run).pending == []
    with pytest.raises(ConfigError, match=r"agent\.spec: stored 'random', now 'scripted'.*new --out"):
        plan_run(eval_config(suite_file(tmp_path), agent="scripted"), run)
    with pytest.raises(ConfigError, match="suite.episodes"):
        plan_run(eval_config(suite_file(tmp_path), agent="random", overrides=["suite.episodes=7"]), run)


def test_kill_9_mid_run_then_rerun_loses_and_duplicates_nothing(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, str(DATA / "slow_eval.py"), "eval", "--suite", str(DATA / "slow_suite.yaml"),
           "--agent", "random", "--concurrency", "4", "--out", str(out)]
    store = out / "episodes.jsonl"
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (store.exists() and store.read_bytes().count(b"\n") >= 20):
            assert proc.poll() is None, f"eval ended before the kill: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "no episodes stored within 60 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = read_episodes(store)
    assert 20 <= len(before) < 150 and not (out / "summary.json").exists()
    rerun = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resuming {out}: {len(before)} of 150" in rerun.stdout.replace("\n", "")
    stored = read_episodes(store)
    ids = [e.episode_id for e in stored]
    assert len(ids) == 150 and len(set(ids)) == 150
    assert store.read_bytes().count(b"\n") == 150  # no duplicate line, no torn line left behind
    assert json.loads((out / "summary.json").read_text())["overall"]["episodes"] == 150
    assert all(e.success for e in stored)


PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


class Screen(turngym.TurnEnv):
    """A GUI-like env: every observation carries a screenshot as a data URL."""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs("start"), {}

    def step(self, action):
        return self._obs("done"), 1.0, True, False, {"success": True}

    def _obs(self, text):
        url = "data:image/png;base64," + base64.b64encode(PNG_1PX).decode()
        return Observation(messages=[Message(role="user", content=[TextPart(text=text), ImagePart(url=url)])])


class ClickAgent(base.Agent):
    name = "clicker"

    @classmethod
    def from_spec(cls, rest: str = "", **options):
        return cls()

    async def start(self, env, *, seed):
        class P(base.Policy):
            async def act(self, observation):
                return "click"

        return P()


def test_images_are_written_as_files_and_the_report_shows_the_final_screenshot(tmp_path, monkeypatch):
    turngym.register("evaltest/Screen-v0", Screen, max_turns=2)
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"name": "screens", "episodes": 2, "envs": [{"id": "evaltest/Screen-v0"}]}))
    run = tmp_path / "run"
    monkeypatch.setitem(base.AGENT_FACTORIES, "clicker", f"{__name__}:ClickAgent.from_spec")
    asyncio.run(execute(plan_run(eval_config(str(suite), agent="clicker"), run)))
    episodes = read_episodes(run / "episodes.jsonl")
    urls = [p.url for e in episodes for m in [*e.prompt, *(m for t in e.turns for m in t.observation)] for p in m.images]
    assert len(urls) == 4 and all(u.startswith("images/") and u.endswith(".png") for u in urls)
    assert all((run / u).read_bytes() == PNG_1PX for u in urls)
    assert b"data:image" not in (run / "episodes.jsonl").read_bytes()
    html = (run / "report.html").read_text()
    assert "Final screenshot" in html and base64.b64encode(PNG_1PX).decode() in html


def test_externalize_images_leaves_text_episodes_untouched(tmp_path):
    e = Episode(episode_id="x", env_id="a/B-v0", prompt=[Message(role="user", content="hi")], turns=[Turn(index=0, action="a")])
    assert externalize_images(e, tmp_path) is e and not (tmp_path / "images").exists()


def test_store_ignores_a_torn_last_line_and_warns_on_garbage(tmp_path):
    path = tmp_path / "e.jsonl"
    a, b = Episode(episode_id="a", env_id="n/E-v0"), Episode(episode_id="b", env_id="n/E-v0")
    path.write_bytes(a.model_dump_json().encode() + b"\nnot json\n" + b.model_dump_json().encode()[:-3])
    with pytest.warns(UserWarning, match="e.jsonl:2"):
        assert [e.episode_id for e in read_episodes(path)] == ["a"]
    store = EpisodeStore(path=path)
    store.append(b)
    store.close()
    store.close()  # safe twice
    with pytest.warns(UserWarning):
        assert [e.episode_id for e in read_episodes(path)] == ["a", "b"]


def test_unknown_env_in_a_suite_names_close_matches(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"name": "bad", "envs": [{"id": "turngym/GuesNumber-v0"}]}))
    with pytest.raises(turngym.RegistryError, match="GuessNumber"):
        plan_run(eval_config(str(suite), agent="random"), tmp_path / "run")
    with pytest.raises(ConfigError, match="concurrency"):
        eval_config(str(suite), agent="random", overrides=["concurrency=0"])


def test_an_env_that_cannot_run_here_is_skipped_with_its_reason(tmp_path):
    turngym.register("evaltest/Offline-v0", Screen, unavailable="it needs an online service (none here)")
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"name": "mixed", "episodes": 2, "envs": [
        {"id": "evaltest/Offline-v0"}, {"id": "turngym/GuessNumber-v0"}]}))
    plan = plan_run(eval_config(str(suite), agent="scripted"), tmp_path / "run")
    assert plan.skipped == {"evaltest/Offline-v0": "it needs an online service (none here)"} and len(plan.tasks) == 2
    summary = asyncio.run(execute(plan))
    assert summary.envs["evaltest/Offline-v0"].skipped and summary.envs["turngym/GuessNumber-v0"].success_rate == 1.0
    assert "skipped: it needs an online service" in (tmp_path / "run" / "report.html").read_text()

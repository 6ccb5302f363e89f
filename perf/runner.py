"""Rollout-runner throughput: steps/s of a game played directly (a plain Python loop) and through
``turngym.agents.runner.run_episodes`` with the scripted agent, side by side in one process.

    .venv/bin/python perf/runner.py [--episodes 3000] [--repeats 5]

Speeds are steps per CPU-second of this process (``time.process_time``), so that other work on a
shared machine does not count against them; on an idle machine they equal wall-clock steps/s. Two envs: turngym/GuessNumber-v0 (the reference game) and a null env whose step returns a prebuilt
observation, so the runner's own per-step cost shows without the game's. Prints a markdown table
(medians over the repeats) for perf/results/runner.md.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from typing import Any

import turngym
from turngym.agents.base import make_agent
from turngym.agents.runner import group_tasks, run_episodes
from turngym.core.registry import env_info, load_object
from turngym.core.types import Observation

_OBS = Observation.text("ok")


class NullEnv(turngym.TurnEnv):
    """Five steps of nothing: the cost left is the caller's."""

    def reset(self, *, seed=None, options=None):
        self.n = 0
        return _OBS, {"task_id": "null", "instance_hash": "0"}

    def step(self, action):
        self.n += 1
        done = self.n >= 5
        return _OBS, 0.0, done, False, ({"success": True} if done else {})


def null_expert(env: Any):
    return lambda obs: "go"


def direct(env_id: str, episodes: int) -> float:
    env = turngym.make(env_id)
    expert = load_object(env_info(env_id).expert)
    steps = 0
    t = time.process_time()
    for seed in range(episodes):
        obs, _ = env.reset(seed=seed)
        policy = expert(env.unwrapped)
        done = False
        while not done:
            obs, _, term, trunc, _ = env.step(policy(obs))
            steps += 1
            done = term or trunc
    return steps / (time.process_time() - t)


def through_runner(env_id: str, episodes: int, concurrency: int, turn_timeout: float | None) -> float:
    tasks = group_tasks(env_id, range(episodes))
    agent = make_agent("scripted")
    t = time.process_time()
    eps = asyncio.run(run_episodes(tasks, agent, concurrency=concurrency, turn_timeout=turn_timeout))
    dt = time.process_time() - t
    assert all(e.error is None for e in eps)
    return sum(e.num_turns for e in eps) / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--episodes", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    turngym.register("perf/Null-v0", NullEnv, max_turns=10, expert="__main__:null_expert")
    cases = {
        "direct loop": lambda e: direct(e, args.episodes),
        "runner, concurrency 1": lambda e: through_runner(e, args.episodes, 1, None),
        "runner, concurrency 8": lambda e: through_runner(e, args.episodes, 8, None),
        "runner, concurrency 8, turn_timeout 30 s": lambda e: through_runner(e, args.episodes, 8, 30.0),
    }
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}; "
          f"{args.episodes} episodes per measurement, median of {args.repeats}\n")
    print("| env | how | steps/s (median) | runs |")
    print("|---|---|---:|---|")
    for env_id in ("turngym/GuessNumber-v0", "perf/Null-v0"):
        for name, fn in cases.items():
            runs = [fn(env_id) for _ in range(args.repeats)]
            print(f"| {env_id} | {name} | {statistics.median(runs):,.0f} | {', '.join(f'{r:,.0f}' for r in runs)} |")


if __name__ == "__main__":
    main()

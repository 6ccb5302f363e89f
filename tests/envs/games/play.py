"""Direct (asyncio-free) episode loops for the game tests, and the success-rate table of the report:

    .venv/bin/python -m tests.envs.games.play [ENV_ID ...] [--seeds 100] [--kwargs '{"piece": "R"}']
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

import turngym
from turngym.core.registry import env_info, load_object


def play(env: Any, agent: str, seed: int, *, rng_seed: int = 0) -> tuple[bool, int, float]:
    """One episode of ``agent`` ("expert" or "random") on a made env; (success, turns, return)."""
    obs, _ = env.reset(seed=seed)
    unwrapped = env.unwrapped
    if agent == "expert":
        policy = load_object(env_info(env.spec.id).expert)(unwrapped)
    else:
        rng = np.random.default_rng([rng_seed, seed])

        def policy(_obs: Any) -> str:
            legal = unwrapped.legal_actions()
            return legal[int(rng.integers(len(legal)))]

    turns, total, info = 0, 0.0, {}
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        turns += 1
        total += float(reward)
        if terminated or truncated:
            return bool(info.get("success")), turns, total


def success_rate(env_id: str, agent: str, seeds: range, **kwargs: Any) -> tuple[float, float, float]:
    """(success rate, mean turns, mean return) of ``agent`` over ``seeds``."""
    env = turngym.make(env_id, **kwargs)
    try:
        results = [play(env, agent, s) for s in seeds]
    finally:
        env.close()
    wins, turns, returns = zip(*results)
    return float(np.mean(wins)), float(np.mean(turns)), float(np.mean(returns))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("env_ids", nargs="*")
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--kwargs", type=json.loads, default={}, help="env kwargs as JSON")
    args = parser.parse_args()
    ids = args.env_ids or [i.id for i in turngym.list_envs(namespace="turngym") if "game" in i.tags]
    print(f"| env | agent | success ({args.seeds} seeds) | mean turns | mean return | seconds |")
    print("|---|---|---|---|---|---|")
    for env_id in ids:
        for agent in ("expert", "random"):
            start = time.perf_counter()
            rate, turns, ret = success_rate(env_id, agent, range(args.seeds), **args.kwargs)
            name = env_id + (f" {json.dumps(args.kwargs)}" if args.kwargs else "")
            print(f"| {name} | {agent} | {rate:.2f} | {turns:.1f} | {ret:.2f} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()

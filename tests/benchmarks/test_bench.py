"""turngym.benchmarks.bench as a library: the figures' arithmetic and the runs that cannot give figures.
(The CLI over it: tests/cli/test_bench.py.)"""

from __future__ import annotations

import math

import pytest

import turngym
from turngym.benchmarks.bench import bench_env, bench_rollout, latency_ms, percentile
from turngym.core.errors import TurngymError
from tests.core.test_env import Counter


def test_percentiles_are_nearest_rank():
    xs = [0.005, 0.001, 0.002, 0.004, 0.003]
    assert percentile(xs, 50) == 0.003 and percentile(xs, 95) == 0.005 and percentile(xs, 20) == 0.001
    assert math.isnan(percentile([], 50))
    assert latency_ms("step", xs) == pytest.approx({"step_p50_ms": 3.0, "step_p95_ms": 5.0})


def test_bench_env_on_a_users_env_with_the_random_agent():
    turngym.register("benchtest/Counter-v0", Counter, max_turns=4, kwargs={"target": 3})
    r = bench_env("benchtest/Counter-v0", episodes=3, seed=5)
    assert r.params["agent"] == "random"  # no scripted expert registered
    assert 3 <= r.metrics["steps"] <= 12 and r.metrics["steps_per_s"] > 0


def test_a_rollout_whose_every_episode_fails_is_an_error_naming_the_first():
    turngym.register("benchtest/NoExpert-v0", Counter, max_turns=2)
    with pytest.raises(TurngymError, match="every episode of scripted on benchtest/NoExpert-v0 failed.*no scripted expert"):
        bench_rollout("scripted", "benchtest/NoExpert-v0", episodes=2)

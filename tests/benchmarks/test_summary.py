"""Summary math: the Wilson interval against hand-computed values, and the per-env figures."""

from __future__ import annotations

import pytest

from turngym.benchmarks.summary import summarize, summarize_env, wilson_interval
from turngym.core.types import Episode, Turn


def test_wilson_interval_matches_hand_computation():
    # k=5, n=20, z=1.96: p=.25, denom=1+z^2/n=1.19207, centre=(p+z^2/2n)/denom=0.29028,
    # half=z/denom*sqrt(p(1-p)/n+z^2/4n^2)=1.64418*0.108517=0.17842
    lo, hi = wilson_interval(5, 20)
    assert lo == pytest.approx(0.11186, abs=1e-4) and hi == pytest.approx(0.46870, abs=1e-4)
    # k=0: lo=0, hi=z^2/(n+z^2); k=n: lo=n/(n+z^2), hi=1
    assert wilson_interval(0, 10) == pytest.approx((0.0, 3.8415 / 13.8415), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((10 / 13.8415, 1.0), abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="0..n"):
        wilson_interval(3, 2)


def ep(env: str, i: int, *, success=None, rewards=(0.0,), invalid=0, error=None, tokens=0) -> Episode:
    turns = [
        Turn(index=k, action="a", reward=r, action_error="bad" if k < invalid else None) for k, r in enumerate(rewards)
    ]
    return Episode(
        episode_id=f"{env}/{i}",
        group_id=f"{env}/s{i}",
        env_id=env,
        success=success,
        turns=turns,
        error=error,
        tokens=list(range(tokens)),
        wall_time=1.0,
        timings={"env": 0.25, "agent": 0.5},
    )


def test_per_env_and_overall_figures():
    a = [
        ep("a", 0, success=True, rewards=(0.0, 1.0), tokens=7),
        ep("a", 1, success=False, rewards=(0.0, 0.0, 0.0), invalid=2),
        ep("a", 2, error="RuntimeError: boom", rewards=()),
        ep("a", 3, success=True, rewards=(1.0,), tokens=3),
    ]
    b = [ep("b", 0), ep("b", 1)]  # no notion of success
    s = summarize([*a, *b], order=["b", "a"], skipped={"c": "needs Docker"}, agent="x", suite="y")
    assert list(s.envs) == ["b", "a", "c"]
    sa = s.envs["a"]
    assert (sa.episodes, sa.successes, sa.success_rate) == (4, 2, 0.5)  # the error counts as a failure
    assert sa.ci95 == pytest.approx(wilson_interval(2, 4))
    assert sa.mean_return == pytest.approx(0.5) and sa.mean_turns == pytest.approx(1.5)
    assert sa.invalid_action_rate == pytest.approx(2 / 6) and sa.errors == 1 and sa.first_error == "RuntimeError: boom"
    assert sa.tokens == 10
    assert (sa.wall_time.env, sa.wall_time.agent, sa.wall_time.total) == (1.0, 2.0, 4.0)
    assert s.envs["b"].success_rate is None and s.envs["b"].ci95 is None
    assert s.envs["c"].skipped == "needs Docker" and s.envs["c"].episodes == 0
    assert s.overall.episodes == 6 and s.overall.success_rate == pytest.approx(2 / 6)


def test_env_names_come_from_group_ids():
    eps = [ep("x/Env-v0", 0, success=True), ep("x/Env-v0", 1, success=False)]
    s = summarize(eps, env_of={"x/Env-v0/s0": "easy", "x/Env-v0/s1": "hard"})
    assert set(s.envs) == {"easy", "hard"} and s.envs["easy"].success_rate == 1.0
    assert summarize_env("none", []).episodes == 0

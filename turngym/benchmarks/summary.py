"""Per-env and overall figures of a run: success rate with a 95% Wilson interval, returns, turns,
invalid-action rate, tokens, wall time per phase, replies cut at max_new_tokens. Pure functions of the episodes."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from pydantic import BaseModel, Field

from turngym.core.types import Episode

#: the ``Turn.info`` key where an LLM policy records whether the reply was cut at ``max_new_tokens``
CUT_KEY = "reply_cut"
#: above this share of cut replies in an env, an eval warns (``cut_warning``)
CUT_WARN_RATE = 0.2
Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (Wilson 1927).

    p = k/n;  centre = (p + z^2/2n) / (1 + z^2/n);  half = z/(1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2)
    """
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in 0..n={n}, got {successes}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


class PhaseTimes(BaseModel):
    """Seconds summed over episodes: in the env (make, reset, step), in the agent, and in total."""

    env: float = 0.0
    agent: float = 0.0
    total: float = 0.0


class EnvSummary(BaseModel):
    env: str
    episodes: int = 0
    successes: int = 0
    #: None when no episode reported success or failure (the env has no notion of success)
    success_rate: float | None = None
    ci95: tuple[float, float] | None = None
    mean_return: float | None = None
    mean_turns: float | None = None
    #: invalid actions / turns
    invalid_action_rate: float | None = None
    errors: int = 0
    truncated: int = 0
    tokens: int = 0
    wall_time: PhaseTimes = Field(default_factory=PhaseTimes)
    #: why the env did not run here (then every figure is empty)
    skipped: str | None = None
    #: the first error text, as a hint
    first_error: str | None = None
    #: LLM replies that ended because ``sampling.max_new_tokens`` ran out (not at EOS or a stop string)
    cut_replies: int = 0
    #: cut_replies / the replies that record how they ended (``Turn.info["reply_cut"]``); None for agents that
    #: do not (scripted, random)
    cut_reply_rate: float | None = None


class Summary(BaseModel):
    agent: str = ""
    suite: str = ""
    envs: dict[str, EnvSummary] = Field(default_factory=dict)
    overall: EnvSummary
    #: wall-clock seconds of the run, summed over its invocations (a killed invocation's time is lost)
    elapsed: float = 0.0


def summarize_env(name: str, episodes: Sequence[Episode]) -> EnvSummary:
    """The figures of one env's episodes. Episodes that ended in an error count as failures."""
    n = len(episodes)
    if n == 0:
        return EnvSummary(env=name)
    successes = sum(e.success is True for e in episodes)
    graded = any(e.success is not None or e.error is not None for e in episodes)
    turns = sum(e.num_turns for e in episodes)
    errors = [e.error for e in episodes if e.error]
    cut = [bool(t.info[CUT_KEY]) for e in episodes for t in e.turns if CUT_KEY in t.info]
    return EnvSummary(
        env=name,
        episodes=n,
        successes=successes,
        success_rate=successes / n if graded else None,
        ci95=wilson_interval(successes, n) if graded else None,
        mean_return=sum(e.total_return for e in episodes) / n,
        mean_turns=turns / n,
        invalid_action_rate=(sum(e.invalid_actions for e in episodes) / turns) if turns else 0.0,
        errors=len(errors),
        truncated=sum(e.truncated for e in episodes),
        tokens=sum(len(e.tokens) for e in episodes),
        wall_time=PhaseTimes(
            env=sum(e.timings.get("env", 0.0) for e in episodes),
            agent=sum(e.timings.get("agent", 0.0) for e in episodes),
            total=sum(e.wall_time for e in episodes),
        ),
        first_error=errors[0] if errors else None,
        cut_replies=sum(cut),
        cut_reply_rate=sum(cut) / len(cut) if cut else None,
    )


def cut_warning(summary: Summary, threshold: float = CUT_WARN_RATE) -> str | None:
    """A warning when more than ``threshold`` of an env's replies were cut at ``max_new_tokens``: those
    replies are mostly invalid actions, so the run measures the token budget more than the agent."""
    rows = [s for s in summary.envs.values() if s.cut_reply_rate is not None and s.cut_reply_rate > threshold]
    if not rows:
        return None
    listed = ", ".join(f"{s.env} {100 * s.cut_reply_rate:.0f}%" for s in rows)  # type: ignore[operator]
    return (
        f"replies cut at max_new_tokens (ended by the token budget, not at end of turn): {listed}. A cut reply "
        "is usually an invalid action. Raise sampling.max_new_tokens (--set agent.max_new_tokens=N), or sample "
        "with constrain (--set agent.constrain=true) under an action pattern that ends the reply "
        "(an open-ended pattern such as [A-Za-z]+ lets a weak model run on to the budget)."
    )


def metrics(s: EnvSummary) -> dict[str, float]:
    """The headline figures of a summary as plain floats, for a metrics log (a training run's train and eval
    records): success rate, mean return, mean turns, failed episodes (0.0 where no episode ran)."""
    return {
        "success": s.success_rate or 0.0,
        "return": s.mean_return or 0.0,
        "turns": s.mean_turns or 0.0,
        "errors": float(s.errors),
    }


def episode_metrics(episodes: Sequence[Episode]) -> dict[str, float]:
    """``metrics`` of all ``episodes`` together."""
    return metrics(summarize_env("overall", episodes))


def summarize(
    episodes: Iterable[Episode],
    *,
    env_of: Mapping[str, str] | None = None,
    order: Sequence[str] = (),
    skipped: Mapping[str, str] | None = None,
    agent: str = "",
    suite: str = "",
    elapsed: float = 0.0,
) -> Summary:
    """Group episodes by env name (``env_of[group_id]`` if given, else ``env_id``) and summarise.

    ``order`` fixes the order of the env rows; ``skipped`` maps env names to why they did not run.
    """
    by_env: dict[str, list[Episode]] = {name: [] for name in order}
    all_eps: list[Episode] = []
    for e in episodes:
        name = env_of.get(e.group_id, e.env_id) if env_of else e.env_id
        by_env.setdefault(name, []).append(e)
        all_eps.append(e)
    envs = {name: summarize_env(name, eps) for name, eps in by_env.items()}
    for name, reason in (skipped or {}).items():
        envs[name] = EnvSummary(env=name, skipped=reason)
    if order:
        envs = {name: envs[name] for name in [*order, *(k for k in envs if k not in order)]}
    return Summary(agent=agent, suite=suite, envs=envs, overall=summarize_env("overall", all_eps), elapsed=elapsed)

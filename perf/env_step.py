"""Env stepping speed: turngym's built-in games (directly and through the rollout runner) and the
TextArena adapter against TextArena's own loop, on the same games, seeds and moves. One run:

    .venv/bin/python perf/env_step.py [--repeats 5] [--budget 0.5] [--out perf/results/env_step.md]

(a) every ``turngym/*`` text game without a sandbox, reset with seeds 0, 1, 2, ... and played by
    its scripted expert (``expert(env)`` of its registration) for ``--budget`` seconds;
(b) the same games and seeds through ``turngym.agents.runner.run_episodes`` with the scripted agent;
(c) TextArena games replayed from recorded move lists (both players' moves, recorded once on
    TextArena's raw env): TextArena's own loop (``ta.make(id)``, ``reset(num_players, seed)``,
    ``get_observation()``, ``step()``; both the default id, with its wrappers, and ``-raw``) against
    ``turngym.make("textarena/<id>")`` whose opponent replays the opponent's moves. A step is one
    TextArena ``step`` call, by either player, in both loops.

Each figure is the median of ``--repeats`` runs. Steps/s are given per second of this process's CPU
time (``time.process_time``, robust to other load on a shared machine) and per wall-clock second.
GEM (``gem-llm``) is measured side by side when ``--gem-python`` points to a venv that has it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import turngym
from turngym.benchmarks.bench import Rate, median_rate, timed
from turngym.core.registry import load_object

ROOT = Path(__file__).resolve().parent.parent
TEXTARENA_GAMES = ["GuessTheNumber-v0", "TicTacToe-v0", "ConnectFour-v0", "Nim-v0"]
LOAD = os.getloadavg()
TARGETS = {"direct": 100_000, "runner": 20_000, "overhead_pct": 10.0}


# -- (a) and (b): built-in games -----------------------------------------------------------------
def builtin_games() -> list[turngym.core.registry.EnvInfo]:
    return [
        info
        for info in turngym.list_envs(namespace="turngym")
        if info.modality == "text" and info.sandbox == "none" and info.expert
    ]


def play_direct(env: turngym.core.env.TurnEnv, *, budget: float, episodes: int | None = None) -> tuple[int, int]:
    """(steps, episodes) of the expert from seed 0 on, for ``budget`` seconds or ``episodes`` episodes."""
    expert = load_object(turngym.env_info(env.spec.id).expert)
    steps = done_eps = 0
    start = time.perf_counter()
    while (episodes is None and time.perf_counter() - start < budget) or (episodes is not None and done_eps < episodes):
        obs, _ = env.reset(seed=done_eps)
        policy = expert(env.unwrapped)
        while True:
            obs, _, terminated, truncated, _ = env.step(policy(obs))
            steps += 1
            if terminated or truncated:
                break
        done_eps += 1
    return steps, done_eps


def play_runner(env_id: str, episodes: int) -> int:
    from turngym.agents.base import make_agent
    from turngym.agents.runner import EpisodeTask, run_episodes

    tasks = [EpisodeTask(env_id=env_id, seed=s, episode_id=f"{env_id}/{s}") for s in range(episodes)]
    result = asyncio.run(run_episodes(tasks, make_agent("scripted"), concurrency=8))
    errors = [e.error for e in result if e.error]
    if errors:
        raise RuntimeError(f"{env_id}: {len(errors)} episodes failed in the runner, e.g. {errors[0]}")
    return sum(e.num_turns for e in result)


# -- (c): TextArena ------------------------------------------------------------------------------
def record_moves(game: str, players: int, seeds: range) -> dict[int, list[str]]:
    """Both players' moves, per seed, on a fresh raw TextArena env: random candidate moves (binary
    search for GuessTheNumber)."""
    import textarena as ta

    from turngym.envs.adapters.textarena_moves import candidate_moves

    out = {}
    for seed in seeds:
        env = ta.make(f"{game}-raw")
        env.reset(num_players=players, seed=seed)
        rng, history, moves, done = random.Random(seed), {p: [] for p in range(players)}, [], False
        while not done and len(moves) < 200:
            pid, messages = env.get_observation()
            history[pid].append("\n".join(m[1] for m in messages))
            options = candidate_moves(game, history[pid]) or ["[0]"]
            move = options[len(options) // 2] if game.startswith("GuessTheNumber") else rng.choice(options)
            done, _ = env.step(move)
            moves.append(move)
        out[seed] = moves
    return out


def textarena_loop(game: str, players: int, moves: dict[int, list[str]], *, raw: bool) -> int:
    """TextArena's own loop. The default id is made anew per episode, as its users do: its
    LLMObservationWrapper keeps every past episode's messages otherwise (each step gets slower)."""
    import textarena as ta

    env = ta.make(f"{game}-raw")
    steps = 0
    for seed, seq in moves.items():
        if not raw:
            env = ta.make(game)
        env.reset(num_players=players, seed=seed)
        it, done = iter(seq), False
        while not done:
            env.get_observation()
            done, _ = env.step(next(it))
            steps += 1
        env.close()
    return steps


def adapter_loop(env: turngym.core.env.TurnEnv, moves: dict[int, list[str]], source: list[Iterator[str]]) -> int:
    steps = 0
    for seed, seq in moves.items():
        source[0] = iter(seq)
        env.reset(seed=seed)
        while True:
            _, _, terminated, truncated, info = env.step(next(source[0]))
            if terminated or truncated:
                break
        steps += len(seq)
    return steps


def make_adapter(game: str) -> tuple[turngym.core.env.TurnEnv, list[Iterator[str]]]:
    source: list[Iterator[str]] = [iter(())]
    env = turngym.make(f"textarena/{game}", opponent=lambda _obs: next(source[0]))
    return env, source


def check_replay(game: str, moves: dict[int, list[str]]) -> None:
    """The adapter ends each episode exactly at the end of the recorded moves."""
    env, source = make_adapter(game)
    for seed, seq in moves.items():
        source[0] = iter(seq)
        env.reset(seed=seed)
        while True:
            *_, terminated, truncated, _ = env.step(next(source[0]))
            if terminated or truncated:
                break
        if next(source[0], None) is not None:
            raise RuntimeError(f"{game} seed {seed}: the adapter's game ended before the recorded moves did")


GEM_CODE = r"""
import statistics, sys, time
import gem
episodes, repeats = int(sys.argv[1]), int(sys.argv[2])
env = gem.make("game:GuessTheNumber-v0-hard")  # 1..50, 7 guesses
rates = []
for _ in range(repeats):
    steps, c0 = 0, time.process_time()
    for seed in range(episodes):
        obs, info = env.reset(seed=seed)
        lo, hi = 1, 50
        while True:
            guess = (lo + hi) // 2
            obs, reward, terminated, truncated, info = env.step("\\boxed{%d}" % guess)
            steps += 1
            if terminated or truncated:
                break
            if "higher" in obs:
                lo = guess + 1
            elif "lower" in obs:
                hi = guess - 1
    rates.append(steps / (time.process_time() - c0))
print(statistics.median(rates))
"""


def gem_rate(python: str, episodes: int, repeats: int) -> float | None:
    """GEM's GuessTheNumber (1..50) played by binary search in GEM's own loop, in its own venv."""
    try:
        out = subprocess.run([python, "-c", GEM_CODE, str(episodes), str(repeats)], capture_output=True, text=True,
                             timeout=600, check=True)
        return float(out.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError) as e:
        print(f"GEM not measured: {e}", file=sys.stderr)
        return None


# -- main -------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--budget", type=float, default=0.5, help="seconds per built-in game per repeat")
    ap.add_argument("--ta-seeds", type=int, default=200, help="seeds per TextArena game")
    ap.add_argument("--gem-python", default="/tmp/gemvenv/bin/python", help="a python with gem-llm, if any")
    ap.add_argument("--out", default=str(ROOT / "perf/results/env_step.md"))
    args = ap.parse_args()

    rows_builtin = []
    for info in builtin_games():
        env = turngym.make(info.id)  # made once, outside the timing, as the runner's workers do
        _, episodes = play_direct(env, budget=args.budget)  # warm-up; fixes the episode count
        direct = [timed(lambda n=episodes: play_direct(env, budget=0, episodes=n)[0]) for _ in range(args.repeats)]
        env.close()
        play_runner(info.id, min(episodes, 64))  # warm-up
        runner = [timed(lambda i=info.id, n=episodes: play_runner(i, n)) for _ in range(args.repeats)]
        rows_builtin.append((info.id, episodes, direct[0].steps, median_rate(direct), median_rate(runner)))
        print(f"{info.id:32s} direct {rows_builtin[-1][3][0]:>10,.0f}/s  runner {rows_builtin[-1][4][0]:>10,.0f}/s",
              file=sys.stderr)

    import textarena as ta

    rows_ta = []
    seeds = range(args.ta_seeds)
    for game in TEXTARENA_GAMES:
        players = turngym.env_info(f"textarena/{game}").kwargs["num_players"]
        moves = record_moves(game, players, seeds)
        check_replay(game, moves)
        env, source = make_adapter(game)
        adapter_loop(env, moves, source)  # warm-up
        runs: dict[str, list[Rate]] = {"ta": [], "ta_raw": [], "adapter": []}
        for _ in range(args.repeats):  # interleaved, so drifting load hits all three alike
            runs["ta"].append(timed(lambda g=game: textarena_loop(g, players, moves, raw=False)))
            runs["ta_raw"].append(timed(lambda g=game: textarena_loop(g, players, moves, raw=True)))
            runs["adapter"].append(timed(lambda: adapter_loop(env, moves, source)))
        med = {k: median_rate(v) for k, v in runs.items()}
        rows_ta.append((game, players, runs["ta"][0].steps, med))
        print(f"{game:24s} TextArena {med['ta'][0]:>9,.0f}/s  raw {med['ta_raw'][0]:>9,.0f}/s  "
              f"adapter {med['adapter'][0]:>9,.0f}/s", file=sys.stderr)

    gem = gem_rate(args.gem_python, 300, args.repeats) if Path(args.gem_python).exists() else None
    report = render(args, rows_builtin, rows_ta, gem, ta.__version__)
    print(report)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(report)
    return 0


def _overhead(ta_rate: float, adapter_rate: float) -> float:
    return (ta_rate / adapter_rate - 1.0) * 100.0


def render(args, rows_builtin, rows_ta, gem, ta_version) -> str:
    cmd = "python perf/env_step.py " + " ".join(sys.argv[1:])
    lines = [
        "# Env stepping speed (perf/env_step.py)",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, {platform.system()}; "
        f"TextArena {ta_version}; median of {args.repeats} repeats. "
        "Steps/s per CPU second of the process (per wall-clock second in brackets; the machine is shared: "
        f"load average {LOAD[0]:.0f} on {os.cpu_count()} cores at the start, {os.getloadavg()[0]:.0f} at the end, "
        "so every figure here is lower, and noisier, than on an idle machine).",
        "",
        f"## Built-in games: the scripted expert, directly and through the rollout runner "
        f"(targets >= {TARGETS['direct']:,}/s directly, >= {TARGETS['runner']:,}/s through the runner)",
        "",
        "The runner figure includes making its workers' envs (one per worker, at most 8); the direct one does not.",
        "",
        "| env | episodes | steps | direct steps/s | runner steps/s (8 workers) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for env_id, eps, steps, (d_cpu, d_wall), (r_cpu, r_wall) in rows_builtin:
        lines.append(f"| {env_id} | {eps} | {steps} | {d_cpu:,.0f} ({d_wall:,.0f}) | {r_cpu:,.0f} ({r_wall:,.0f}) |")
    lines += [
        "",
        f"## TextArena adapter against TextArena's own loop (target: overhead <= {TARGETS['overhead_pct']:.0f}%)",
        "",
        "Same seeds, same recorded moves of both players; a step is one TextArena `step` call.",
        "TextArena = `ta.make(id)` with its default wrappers (what its users run), made anew per episode (its "
        "`LLMObservationWrapper` keeps past episodes' messages otherwise); raw = one `ta.make(id + '-raw')` env.",
        "",
        "| game | players | steps | TextArena steps/s | TextArena raw steps/s | adapter steps/s | overhead vs TextArena | overhead vs raw |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for game, players, steps, med in rows_ta:
        (t_cpu, t_wall), (r_cpu, r_wall), (a_cpu, a_wall) = med["ta"], med["ta_raw"], med["adapter"]
        lines.append(
            f"| {game} | {players} | {steps} | {t_cpu:,.0f} ({t_wall:,.0f}) | {r_cpu:,.0f} ({r_wall:,.0f}) | "
            f"{a_cpu:,.0f} ({a_wall:,.0f}) | {_overhead(t_cpu, a_cpu):+.1f}% | {_overhead(r_cpu, a_cpu):+.1f}% |"
        )
    lines += ["", "## GEM", ""]
    if gem is None:
        lines.append("GEM (`gem-llm`) was not measured: no venv with it at `--gem-python`.")
    else:
        lines.append(
            f"GEM (`gem-llm` from PyPI, in a throwaway venv outside the repo) `game:GuessTheNumber-v0-hard` "
            f"(1..50), binary search, 300 seeds, its own reset/step loop: {gem:,.0f} steps/s (CPU). "
            "For comparison, the same protocol on turngym/GuessNumber-v0 (1..100) is the direct figure above."
        )
    return "\n".join(lines + ["", NOTES]) + "\n"


NOTES = """## Where the time goes

- A turngym episode pays fixed costs at reset that a bare game loop does not: seeding the env's own
  generator (gymnasium's `seeding.np_random`: SeedSequence + PCG64, ~12 us CPU here), the instance hash
  (JSON + SHA-256), the pydantic `Observation`, `info` with `task_id`. GuessNumber's expert needs ~6
  steps per episode, so the reset weighs as much as all its steps.
- The adapter against TextArena's raw engine: TextArena's GuessTheNumber ends in ~4 steps on 1..20, so
  the per-episode costs above (plus the adapter's own random streams, re-seeded per reset, and the
  restore of mutable game attributes) dominate; per step the adapter adds the observation formatting
  (`[GAME] ...` lines), the pydantic `Observation`, the `TurnLimit` wrapper and TurnEnv's invalid-action
  guard. Against TextArena's own default loop (`ta.make(id)`), the adapter is faster: TextArena's
  `LLMObservationWrapper` rebuilds the whole history string at every `get_observation`.
- Changes made for speed in core: `Observation.text` validates the observation and its message in one
  pydantic-core call (2.1 us instead of 4.4 us, fully validated); `instance_hash` reuses one
  `JSONEncoder` (2.7 us instead of 4.3 us, same bytes, same hashes); GuessNumber builds its prompt once.
  Not changed: the np_random seeding (an in-place PCG64 re-seed with identical state was tried: no
  faster, SeedSequence's hashing is the floor) and pydantic's `model_construct` (slower than validation).
"""


if __name__ == "__main__":
    sys.exit(main())

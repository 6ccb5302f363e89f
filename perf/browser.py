"""Browser env speed: turngym's MiniWoB++ envs against BrowserGym's, same tasks, same Chromium, one run.

    bash perf/setup_browsergym.sh                 # once: BrowserGym in ~/.cache/turngym/browsergym-venv
    .venv/bin/python perf/browser.py [--episodes 5] [--concurrent-episodes 24]

Measured per system and setting:
- reset p50: ``reset(seed)`` of sequential episodes (each episode: reset, then 3 steps);
- step p50: one step = the action (a click on the task's first text field, which never ends the
  episode) plus the observation the agent gets back;
- episodes/s with 8 concurrent episodes (reset + 3 steps each). turngym: the async rollout runner
  with concurrency 8 (one process, one Chromium); BrowserGym: 8 worker processes (its sync
  Playwright API allows one env per thread of control), timed from the first reset to the last step.

BrowserGym runs with its defaults (task slow_mo 100 ms, 0.5 s pre-observation delay, a new browser
per reset) and with its fastest settings (slow_mo 0, pre_observation_delay 0). Both drive
/usr/bin/chromium. Results: perf/results/browser.md (the figures are medians of the episodes).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TASKS = ("enter-text", "login-user", "enter-password")  # = turngym.benchmarks.bench.BROWSER_TASKS (the
# BrowserGym side runs in its own venv, without turngym)
STEPS = 3
CHROMIUM = "/usr/bin/chromium"
BG_VENV = Path(os.environ.get("BROWSERGYM_VENV", Path.home() / ".cache/turngym/browsergym-venv"))


# -- BrowserGym side (runs inside the BrowserGym venv; imports no turngym) ---------------------


def bg_worker(setting: str, tasks: list[str], episodes: int, seed0: int) -> dict:
    import gymnasium as gym
    import miniwob

    import browsergym.miniwob  # noqa: F401 - registers the tasks
    import playwright.sync_api

    # BrowserGym also launches a browser for its chat window, without our launch options: point every
    # launch at the system Chromium (Playwright's own download is not installed here)
    launch = playwright.sync_api.BrowserType.launch

    def launch_system_chromium(self, *args, **kw):
        kw.setdefault("executable_path", CHROMIUM)
        return launch(self, *args, **kw)

    playwright.sync_api.BrowserType.launch = launch_system_chromium

    os.environ.setdefault("MINIWOB_URL", (Path(miniwob.__file__).parent / "html" / "miniwob").as_uri() + "/")
    kwargs: dict = {"headless": True}
    if setting == "fast":
        kwargs.update(slow_mo=0, pre_observation_delay=0.0)
    resets, steps = [], []
    t_start = time.time()
    for task in tasks:
        env = gym.make(f"browsergym/miniwob.{task}", **kwargs)
        for k in range(episodes):
            t = time.perf_counter()
            env.reset(seed=seed0 + k)
            resets.append(time.perf_counter() - t)
            page = env.unwrapped.page
            bid = page.evaluate("() => document.querySelector('#area input').getAttribute('bid')")
            for _ in range(STEPS):
                t = time.perf_counter()
                env.step(f'click("{bid}")')
                steps.append(time.perf_counter() - t)
        env.close()
    return {"resets": resets, "steps": steps, "start": t_start, "end": time.time(), "episodes": episodes * len(tasks)}


def run_browsergym(setting: str, episodes: int, concurrent_episodes: int) -> dict:
    py = BG_VENV / "bin" / "python"
    if not py.exists():
        raise SystemExit(f"no BrowserGym venv at {BG_VENV}: run `bash perf/setup_browsergym.sh` first")

    def spawn(tasks: list[str], n: int, seed0: int) -> subprocess.Popen:
        code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import browser as b, json; " \
               f"print(json.dumps(b.bg_worker({setting!r}, {tasks!r}, {n}, {seed0})))"
        return subprocess.Popen([str(py), "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    seq = json.loads(spawn(list(TASKS), episodes, 0).communicate()[0].strip().splitlines()[-1])
    per = max(1, concurrent_episodes // 8)
    procs = [spawn([TASKS[i % len(TASKS)]], per, 100 + i * per) for i in range(8)]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    wall = max(o["end"] for o in outs) - min(o["start"] for o in outs)
    return {
        "reset_p50": statistics.median(seq["resets"]),
        "step_p50": statistics.median(seq["steps"]),
        "eps_per_s": sum(o["episodes"] for o in outs) / wall,
    }


# -- turngym side -------------------------------------------------------------------------------


async def run_turngym(screenshot: bool, episodes: int, concurrent_episodes: int) -> dict:
    import turngym
    from turngym.agents.runner import EpisodeTask
    from turngym.benchmarks.bench import ClickFirstTextBox, rollout_throughput, time_episodes
    from turngym.core.wrappers import aclose

    resets, steps = [], []
    for task in TASKS:
        env = turngym.make(f"miniwob/{task}-v1", screenshot=screenshot)
        # warm-up seed 10_000 starts the browser and fills the pool: not an episode of the figure
        times = await time_episodes(env, ClickFirstTextBox(), episodes=episodes, max_steps=STEPS, warmup=10_000)
        resets += times.resets
        steps += times.steps
        await aclose(env)

    kwargs = {"screenshot": screenshot}
    tasks = [
        EpisodeTask(env_id=f"miniwob/{TASKS[i % len(TASKS)]}-v1", env_kwargs=kwargs, seed=i, episode_id=str(i), max_turns=STEPS)
        for i in range(concurrent_episodes)
    ]
    done = await rollout_throughput(tasks, ClickFirstTextBox(), concurrency=8)
    if done.errors:
        print("turngym episode errors:", done.errors[:3], file=sys.stderr)
    return {
        "reset_p50": statistics.median(resets),
        "step_p50": statistics.median(steps),
        "eps_per_s": done.episodes / done.wall,
    }


def main() -> None:
    import asyncio

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=5, help="sequential episodes per task for reset/step p50")
    ap.add_argument("--concurrent-episodes", type=int, default=24)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "browser.json"))
    args = ap.parse_args()
    start_load = os.getloadavg()
    systems = {
        "turngym (a11y tree)": lambda: asyncio.run(run_turngym(False, args.episodes, args.concurrent_episodes)),
        "turngym (a11y tree + screenshot)": lambda: asyncio.run(run_turngym(True, args.episodes, args.concurrent_episodes)),
        "BrowserGym (default)": lambda: run_browsergym("default", args.episodes, args.concurrent_episodes),
        "BrowserGym (fastest: slow_mo 0, no pre-observation delay)": lambda: run_browsergym(
            "fast", args.episodes, args.concurrent_episodes
        ),
    }
    rows = {}
    for name, measure in systems.items():
        rows[name] = {**measure(), "loadavg_1min_after": os.getloadavg()[0]}  # the machine may be shared
        print(rows)
    load = os.getloadavg()
    print(f"\n{'system':62s} {'reset p50':>10s} {'step p50':>10s} {'episodes/s (8 conc.)':>22s} {'load':>6s}")
    for name, r in rows.items():
        print(f"{name:62s} {r['reset_p50'] * 1000:8.0f}ms {r['step_p50'] * 1000:8.0f}ms {r['eps_per_s']:22.2f} "
              f"{r['loadavg_1min_after']:6.1f}")
    print(f"load average at the start: {start_load[0]:.1f} {start_load[1]:.1f} {start_load[2]:.1f}, at the end: "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    out = {"rows": rows, "loadavg_start": start_load, "loadavg": load, "args": vars(args)}
    Path(args.out).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

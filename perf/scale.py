"""Rollout scale-out: episodes/s against workers, the local runner and Ray rollout workers in one run.

    .venv/bin/python perf/scale.py [--workers 1 2 4 8] [--repeats 3] [--envs wait terminal]

For N workers, the local runner plays the same tasks in one process with ``concurrency = N x c``, and Ray plays
them on N rollout workers (actors on one local Ray instance, started once for the whole run) with ``c`` episodes
in flight each; the scripted agent plays, so the env and the runners are what is measured. Two envs:

- ``wait``: turngym/Wait-v0, a step of 50 ms spent waiting (I/O-bound: a remote API, a sandbox round trip),
  5 turns, so an episode takes 0.3 s; ``--per-worker`` episodes per worker (64), c = 4.
- ``terminal``: turngym/Terminal-v0 in Docker sandboxes (shell commands in containers), c = 2, 8 per worker.

Ray's time is from the workers being up (their placement and start-up is reported apart: a run pays it once) to
the last episode back. Prints a markdown table (medians over the repeats, the load average before each env) and
writes perf/results/scale.md and scale.json.

    .venv/bin/python perf/scale.py --train 60 [--repeats 3]

instead trains the demo (``turngym quickstart``'s config: flow_grpo on GuessNumber 1..16, the tiny model) for N
iterations serially and with ``rollout.overlap: 1``, each with the local engine and with one Ray rollout worker,
alternating, and reports the median of the iterations' wall times (``time_iteration``: rollout, update and sync; the
first iteration, which nothing overlaps, left out) into perf/results/scale_train.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from turngym.agents.base import make_agent
from turngym.agents.runner import group_tasks, run_episodes
from turngym.distributed.ray_rollout import RayOptions, import_ray, run_episodes_ray

RESULTS = Path(__file__).parent / "results"
ENVS = {
    "wait": {"id": "turngym/Wait-v0", "kwargs": {"step_seconds": 0.05, "turns": 5}, "c": 4, "per_worker": 64},
    "terminal": {"id": "turngym/Terminal-v0", "kwargs": {}, "c": 2, "per_worker": 8},
}


def tasks_for(env: dict, n: int, per_worker: int):
    count = n * per_worker
    seeds = [s % 13 for s in range(count)] if env["id"] == "turngym/Terminal-v0" else range(count)
    tasks = group_tasks(env["id"], seeds, env_kwargs=env["kwargs"])
    return [
        t.model_copy(update={"episode_id": f"{t.episode_id}/{i}", "group_id": f"{t.group_id}/{i}"})
        for i, t in enumerate(tasks)
    ]


async def local(tasks, concurrency: int) -> float:
    agent = make_agent("scripted")
    try:
        start = time.perf_counter()
        episodes = await run_episodes(tasks, agent, concurrency=concurrency)
        elapsed = time.perf_counter() - start
    finally:
        await agent.aclose()
    assert not any(e.error for e in episodes), [e.error for e in episodes if e.error][:3]
    return len(episodes) / elapsed


async def on_ray(tasks, workers: int, concurrency: int) -> tuple[float, float]:
    marks: dict[str, float] = {}
    start = time.perf_counter()

    def event(line: str) -> None:
        if line.startswith("rollout workers:"):
            marks["up"] = time.perf_counter()

    result = await run_episodes_ray(
        tasks,
        "scripted",
        ray=RayOptions(workers=workers),
        concurrency=concurrency,
        on_event=event,
        on_episode=lambda e: marks.__setitem__("last", time.perf_counter()),
    )
    assert not any(e.error for e in result.episodes), [e.error for e in result.episodes if e.error][:3]
    return len(tasks) / (marks["last"] - marks["up"]), marks["up"] - start


#: the training modes --train compares: rollout.overlap, rollout.engine
TRAIN_MODES = {"serial": (0, "local"), "overlap": (1, "local"), "ray serial": (0, "ray"), "ray overlap": (1, "ray")}


def train_iterations(
    iterations: int, overlap: int, run_dir: Path, engine: str = "local", extra: Sequence[str] = ()
) -> list[float]:
    """The iteration wall times of a demo run of ``iterations`` iterations (eval and checkpoints off); with engine
    ray, one Ray rollout worker (a local Ray instance started for the run)."""
    import shutil

    from turngym.core.config import load_config
    from turngym.trainers.config import TrainConfig
    from turngym.trainers.onpolicy import OnPolicyTrainer
    from turngym.trainers.quickstart import DEMO_CONFIG, demo_model

    shutil.rmtree(run_dir, ignore_errors=True)
    overrides = [f"model.path={demo_model()}", f"run_dir={run_dir}", f"iterations={iterations}", "eval.every=0",
                 f"checkpoint.every={iterations}", f"rollout.overlap={overlap}", f"rollout.engine={engine}",
                 "rollout.workers=1", *extra]
    cfg = load_config(TrainConfig, str(DEMO_CONFIG), overrides=overrides)
    OnPolicyTrainer(cfg).run(progress=False)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["time_iteration"] for r in records if r["kind"] == "train" and r["iteration"] > 1]


def main_train(iterations: int, repeats: int) -> None:
    load = os.getloadavg()[0]
    runs: dict[str, list[float]] = {name: [] for name in TRAIN_MODES}
    for _ in range(repeats):
        for name, (overlap, engine) in TRAIN_MODES.items():
            times = train_iterations(iterations, overlap, Path("runs/perf-scale") / name.replace(" ", "-"), engine)
            runs[name].append(statistics.median(times))
            print(f"{name}: {runs[name][-1] * 1000:.0f} ms an iteration", flush=True)
    serial = statistics.median(runs["serial"])
    head = (
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.2f} before; the demo's config "
        f"(quickstart: flow_grpo, GuessNumber 1..16, the tiny model), {iterations} iterations a run, the modes "
        f"alternating, {repeats} runs each; median over a run's iterations 2.., then over the runs. ray = "
        "rollout.engine ray with 1 worker on a local Ray instance (the rollout in another process)."
    )
    lines = [
        head,
        "",
        "| mode | ms an iteration (runs) | vs serial |",
        "|---|---:|---:|",
    ]
    for name, values in runs.items():
        med = statistics.median(values)
        lines.append(f"| {name} | {med * 1000:.0f} ({', '.join(f'{x * 1000:.0f}' for x in values)}) | "
                     f"{med / serial:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale_train.md").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--per-worker", type=int, default=None, help="episodes per worker (default: per env)")
    parser.add_argument("--train", type=int, default=0, metavar="N", help="time N demo iterations, serial vs overlap")
    args = parser.parse_args()
    if args.train:
        main_train(args.train, args.repeats)
        return
    ray = import_ray()
    ray.init(
        address="local",
        num_cpus=max(args.workers),
        include_dashboard=False,
        object_store_memory=256 * 2**20,
        logging_level=logging.WARNING,
    )
    rows = []
    try:
        for name in args.envs:
            env = ENVS[name]
            load = os.getloadavg()[0]
            for n in args.workers:
                per_worker = args.per_worker or env["per_worker"]
                tasks = tasks_for(env, n, per_worker)
                runs = {"local": [], "ray": [], "start": []}
                for _ in range(args.repeats):
                    runs["local"].append(asyncio.run(local(tasks, n * env["c"])))
                    rate, start = asyncio.run(on_ray(tasks, n, env["c"]))
                    runs["ray"].append(rate)
                    runs["start"].append(start)
                row = {
                    "env": name,
                    "workers": n,
                    "episodes": len(tasks),
                    "concurrency_each": env["c"],
                    "local": statistics.median(runs["local"]),
                    "ray": statistics.median(runs["ray"]),
                    "ray_start_s": statistics.median(runs["start"]),
                    "load_before": round(load, 2),
                    "runs": runs,
                }
                rows.append(row)
                print(
                    f"{name} x{n}: local {row['local']:.2f} eps/s, ray {row['ray']:.2f} eps/s "
                    f"(start {row['ray_start_s']:.1f} s)",
                    flush=True,
                )
    finally:
        ray.shutdown()
    for name in args.envs:
        one = next((r for r in rows if r["env"] == name and r["workers"] == 1), None)
        for r in rows:
            if r["env"] == name and one is not None:
                r["ray_vs_linear"] = r["ray"] / (one["ray"] * r["workers"])
    head = (
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; median of {args.repeats} runs; scripted agent. "
        "local = one process, concurrency workers x c; ray = workers actors, c each; Ray's rate from workers up to "
        "the last episode back (start = placement and actor start-up, paid once a run)."
    )
    lines = [
        head,
        "",
        "| env | workers | episodes | local eps/s | ray eps/s | ray / local | ray vs linear | ray start s | load |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['env']} | {r['workers']} | {r['episodes']} | {r['local']:.2f} | {r['ray']:.2f} | "
            f"{r['ray'] / r['local']:.2f} | {r.get('ray_vs_linear', float('nan')):.2f} | {r['ray_start_s']:.1f} | "
            f"{r['load_before']} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.md").write_text(text)
    (RESULTS / "scale.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

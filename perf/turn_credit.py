"""Turn-level credit assignment measured (issue 17, items 4 and 5): grpo vs mt_grpo vs gigpo vs branch_baseline vs
bilevel_gae on tasks with turn rewards and repeated states, and archer vs flow_grpo vs grpo on the same tasks; the same
tiny model, budget (environment episodes; a branch counts as one) and seeds.

    .venv/bin/python perf/turn_credit.py run --task lookup --algorithms grpo mt_grpo --seeds 0 1 2
    .venv/bin/python perf/turn_credit.py report          # tables + curves from every stored run

Each run trains a tiny random-init model with the task's own word-level vocabulary (``turngym models tiny
--tokenizer task:NAME --template compact``) from scratch, evaluating greedily on held-out seeds every ``--every``
iterations, and writes one JSON to perf/results/turn_credit/ (commit each as it lands). Every algorithm gets
``groups`` x 8 episodes an iteration: 8 episodes per task instance for grpo, mt_grpo, gigpo, bilevel_gae and
flow_grpo, 2 episodes each branched into k=4 continuations for branch_baseline, and ``groups`` x 8 task instances of
one episode each for archer (off-policy: its replay buffer keeps every transition it has seen). ``report`` writes
turn_credit.md (per task: success at the budget, episodes to the task's threshold, per seed, with wall times) and
one PNG of learning curves per task.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "perf" / "results" / "turn_credit"

ALGORITHMS = ("grpo", "mt_grpo", "gigpo", "branch_baseline", "bilevel_gae", "flow_grpo", "archer")
#: the estimator options per algorithm: mean-only normalisation everywhere (the demo's), the papers' defaults else
ALGORITHM = {
    "grpo": {"name": "grpo", "norm": "mean"},
    "mt_grpo": {"name": "mt_grpo", "norm": "mean"},
    "gigpo": {"name": "gigpo", "norm": "mean"},
    "branch_baseline": {"name": "branch_baseline", "k": 4, "norm": "mean"},
    "bilevel_gae": {"name": "bilevel_gae"},  # RAGEN's defaults: gamma_turn 0.95, lambda 1, whitened, a turn critic
    "flow_grpo": {"name": "flow_grpo", "norm": "mean"},
    # ArCHer (issue 17 item 5) as perf/archer_sample_efficiency.py runs it on Lookup at the full budget: the critic on
    # its own tiny encoder (fine-tuned, lr 1e-3), 4 critic-only iterations, then 10 critic and 3 actor steps of 64
    # transitions an iteration. The frozen MiniLM critic took 33-39 s an iteration here on Maze (12-turn histories),
    # ~25 min a run: that comparison stays on GuessNumber and Lookup (perf/results/archer_encoders.md)
    "archer": {
        "name": "archer", "warmup_iterations": 4, "batch_size": 64, "micro_batch_size": 64,
        "critic": {"lr": 1e-3, "steps_per_iteration": 10, "max_length": 256},
        "actor": {"steps_per_iteration": 3},
    },
}
#: episodes per task instance an iteration (branch_baseline: roots x k = the same 8)
GROUP_SIZE = {"grpo": 8, "mt_grpo": 8, "gigpo": 8, "branch_baseline": 2, "bilevel_gae": 8, "flow_grpo": 8, "archer": 1}

#: the tasks: env, the task vocabulary, reply length, the success threshold for "episodes to reach"
TASKS: dict[str, dict] = {
    "lookup": {
        "env": {"id": "turngym/Lookup-v0", "kwargs": {"n_people": 4, "reward": "turn"}, "max_turns": 2},
        "tokenizer": "task:lookup",
        "max_new_tokens": 6,
        "threshold": 0.5,
        "claim": "MT-GRPO (Zeng et al. 2025), two-turn search-then-answer: MT-GRPO 50% exact match vs GRPO 20-30%",
    },
    "maze": {
        "env": {"id": "turngym/Maze-v0", "kwargs": {"rows": 3, "cols": 3, "reward": "shaped"}, "max_turns": 12},
        "tokenizer": "task:maze",
        "max_new_tokens": 4,
        "threshold": 0.9,
        "claim": "GiGPO (Feng et al. 2025): > 12% over GRPO on ALFWorld, from step-level groups over repeated states",
    },
    "textnav": {
        "env": {"id": "turngym/TextNav-v0", "kwargs": {"n_rooms": 2, "n_objects": 1, "reward": "subgoals"},
                "max_turns": 10},
        "tokenizer": "task:text_nav",
        "max_new_tokens": 18,  # the longest command, "[pick up the X out of the Y]", is 17 tokens (spaces are tokens)
        "threshold": 0.5,
        "claim": "(no paper figure on this task; LMRL-Gym's Text-Nav has a sparse reward)",
    },
}


def task_model(task: str) -> Path:
    """The task's tiny model (hidden 64, 2 layers, its vocabulary, the compact template), built once."""
    from turngym.agents.tiny import build_tiny_model

    path = REPO / ".cache" / "turngym" / "models" / f"{task}-tiny"
    if not (path / "turngym_tiny.json").is_file():
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        build_tiny_model(tmp, size="tiny", tokenizer=TASKS[task]["tokenizer"], template="compact", init_std=0.02)
        shutil.rmtree(path, ignore_errors=True)
        tmp.rename(path)
    return path


def config(task: str, algorithm: str, seed: int, *, iterations: int, every: int, groups: int, run_dir: Path) -> dict:
    t = TASKS[task]
    algo = ALGORITHM[algorithm]
    if algorithm == "archer":  # the actor samples replies as long as the rollout's
        algo = {**algo, "actor": {**algo["actor"], "max_new_tokens": t["max_new_tokens"]}}
    return {
        "run_dir": str(run_dir),
        "seed": seed,
        "env": t["env"],
        "model": {"path": str(task_model(task)), "backend": "hf", "system_prompt": ""},
        "sampling": {"temperature": 1.0, "max_new_tokens": t["max_new_tokens"], "constrain": True},
        "algorithm": algo,
        "loss": {"aggregation": "turn_mean"},
        "optim": {"lr": 1e-3, "betas": [0.9, 0.99], "lr_schedule": "wsd", "lr_decay_fraction": 0.5,
                  **({} if algorithm == "archer" else {"epochs": 3})},  # archer: its own steps (ALGORITHM)
        # groups x 8 episodes an iteration for every algorithm (archer: groups x 8 task instances, one episode each)
        "rollout": {"groups": groups * 8 if algorithm == "archer" else groups, "group_size": GROUP_SIZE[algorithm]},
        "iterations": iterations,
        "eval": {"every": every, "seeds": 64},
        "checkpoint": {"every": 0},
        "tensorboard": False,
        "torch_threads": 1,
        "update_threads": 1,
    }


def run_one(task: str, algorithm: str, seed: int, *, iterations: int, every: int, groups: int) -> dict:
    from turngym.trainers.config import TrainConfig
    from turngym.trainers.onpolicy import OnPolicyTrainer

    run_dir = REPO / "runs" / "turn_credit" / f"{task}-{algorithm}-s{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = TrainConfig(**config(task, algorithm, seed, iterations=iterations, every=every, groups=groups,
                               run_dir=run_dir))
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    if algorithm == "archer":
        from turngym.trainers.archer.trainer import ArcherTrainer

        ArcherTrainer(cfg).run(progress=False)
    else:
        OnPolicyTrainer(cfg).run(progress=False)
    seconds = time.perf_counter() - t0
    return {
        "task": task,
        "algorithm": algorithm,
        "seed": seed,
        "config": cfg.model_dump(mode="json"),
        "episodes_per_iteration": groups * 8,
        "seconds": seconds,
        "load_before": load,
        "load_after": os.getloadavg()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        **curves(run_dir, TASKS[task]["threshold"]),
    }


def curves(run_dir: Path, threshold: float) -> dict:
    """A run's held-out evals and training records (return with the turn rewards, success, turns)."""
    from turngym.trainers.run import RunDir

    metrics = RunDir(run_dir, tensorboard=False)
    evals = metrics.read_metrics("eval")
    train = metrics.read_metrics("train")
    return {
        "evals": [{"episodes": r["episodes_seen"], "success": r["success"], "return": r["return"]} for r in evals],
        "train": [{"episodes": r["episodes_seen"], "success": r["success"], "return": r["return"], "turns": r["turns"]}
                  for r in train],
        "final": evals[-1]["success"],
        "best": max(r["success"] for r in evals),
        "threshold": threshold,
        "episodes_to_threshold": next((r["episodes_seen"] for r in evals if r["success"] >= threshold), None),
    }


def report() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    runs = []
    for path in sorted(OUT.glob("*.json")):
        r = json.loads(path.read_text())
        run_dir = REPO / "runs" / "turn_credit" / f"{r['task']}-{r['algorithm']}-s{r['seed']}"
        if "train" not in r and (run_dir / "metrics.jsonl").is_file():  # stored before the training curves were
            r.update(curves(run_dir, r["threshold"]))
            path.write_text(json.dumps(r, indent=1))
        runs.append(r)
    colors = dict(zip(ALGORITHMS, ("tab:gray", "tab:green", "tab:blue", "tab:red", "tab:purple", "tab:orange",
                                   "tab:brown"), strict=True))
    lines = [("# Turn-level credit: grpo vs mt_grpo vs gigpo vs branch_baseline vs bilevel_gae, and archer vs "
              "flow_grpo (perf/turn_credit.py)"), ""]
    for task, t in TASKS.items():
        mine = [r for r in runs if r["task"] == task]
        if not mine:
            continue
        budget = max(r["evals"][-1]["episodes"] for r in mine)
        fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.3))
        first = min(x["seed"] for x in mine)
        for r in mine:
            label = r["algorithm"] if r["seed"] == first else None
            ax.plot([e["episodes"] for e in r["evals"]], [e["success"] for e in r["evals"]], "o-", ms=3,
                    color=colors[r["algorithm"]], alpha=0.8, label=label)
            train = r.get("train", [])
            window = max(1, len(train) // 20)
            ret = np.convolve([x["return"] for x in train], np.ones(window) / window, mode="valid")
            bx.plot([x["episodes"] for x in train][window - 1:], ret, color=colors[r["algorithm"]], alpha=0.8,
                    lw=1, label=label)
        ax.axhline(t["threshold"], color="k", lw=0.6, ls=":")
        env = t["env"]
        for a, ylabel in ((ax, "held-out success (greedy, 64 seeds)"),
                          (bx, f"training return, turn rewards included (mean of {window} iterations)")):
            a.set_xlabel("environment episodes (a branch counts as one)")
            a.set_ylabel(ylabel, fontsize=8)
            a.grid(alpha=0.3)
            a.legend(loc="upper left", fontsize=8)
        ax.set_ylim(-0.02, 1.02)
        fig.suptitle(f"{env['id']} {env['kwargs']}, max_turns {env['max_turns']}; one line per seed", fontsize=9)
        fig.tight_layout()
        fig.savefig(OUT / f"{task}.png", dpi=110)
        plt.close(fig)
        lines += [
            f"## {task}: `{env['id']}` {json.dumps(env['kwargs'])}, max_turns {env['max_turns']}",
            "",
            f"Paper: {t['claim']}. Budget {budget} episodes; threshold {t['threshold']}.",
            "",
            f"![{task}]({task}.png)",
            "",
            ("| algorithm | seeds | success at the budget (per seed) | mean | best eval | episodes to threshold "
             "(per seed) | wall time per run |"),
            "|---|---|---|---|---|---|---|",
        ]
        for algorithm in ALGORITHMS:
            rs = sorted((r for r in mine if r["algorithm"] == algorithm), key=lambda r: r["seed"])
            if not rs:
                continue
            finals = [r["final"] for r in rs]
            reach = ", ".join("-" if r["episodes_to_threshold"] is None else str(r["episodes_to_threshold"])
                              for r in rs)
            seeds = ", ".join(str(r["seed"]) for r in rs)
            best = ", ".join(f"{r['best']:.2f}" for r in rs)
            walls = ", ".join(f"{r['seconds']:.0f} s" for r in rs)
            lines.append(
                f"| {algorithm} | {seeds} | {', '.join(f'{x:.2f}' for x in finals)} | {np.mean(finals):.2f} | {best} "
                f"| {reach} | {walls} |"
            )
        n = max(1, min(len(r.get("train", [])) for r in mine) // 6)
        lines += [
            "",
            (f"Training side (sampled at temperature 1, turn rewards included), mean of the first and the last {n} "
             "iterations, per seed:"),
            "",
            "| algorithm | return first -> last | success first -> last | turns first -> last |",
            "|---|---|---|---|",
        ]
        for algorithm in ALGORITHMS:
            rs = sorted((r for r in mine if r["algorithm"] == algorithm and r.get("train")), key=lambda r: r["seed"])
            if not rs:
                continue

            def trend(key: str, rs: list = rs, n: int = n) -> str:
                return "; ".join(
                    f"{np.mean([x[key] for x in r['train'][:n]]):.2f} -> {np.mean([x[key] for x in r['train'][-n:]]):.2f}"
                    for r in rs
                )

            lines.append(f"| {algorithm} | {trend('return')} | {trend('success')} | {trend('turns')} |")
        loads = [r["load_before"] for r in mine]
        lines += ["", f"Load average (1 min) at the runs' starts: {min(loads):.1f}-{max(loads):.1f}.", ""]
    (OUT / "turn_credit.md").write_text("\n".join(lines) + "\n")
    print((OUT / "turn_credit.md").read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train and store one JSON per (task, algorithm, seed)")
    run.add_argument("--task", choices=list(TASKS), required=True)
    run.add_argument("--algorithms", nargs="+", choices=ALGORITHMS, default=list(ALGORITHMS))
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    run.add_argument("--iterations", type=int, default=60)
    run.add_argument("--every", type=int, default=10)
    run.add_argument("--groups", type=int, default=8, help="task instances an iteration (x 8 episodes)")
    sub.add_parser("report", help="turn_credit.md and the curves from the stored runs")
    args = ap.parse_args()
    if args.command == "report":
        report()
        return
    OUT.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for algorithm in args.algorithms:
            print(f"{args.task} {algorithm} seed {seed} ...", flush=True)
            r = run_one(args.task, algorithm, seed, iterations=args.iterations, every=args.every, groups=args.groups)
            (OUT / f"{args.task}-{algorithm}-s{seed}.json").write_text(json.dumps(r, indent=1))
            print(f"  success {r['final']:.2f} (best {r['best']:.2f}), episodes to {r['threshold']}: "
                  f"{r['episodes_to_threshold']}, {r['seconds']:.0f} s", flush=True)


if __name__ == "__main__":
    main()

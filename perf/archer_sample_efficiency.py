"""Sample efficiency: env episodes needed to reach a success threshold, archer vs flow_grpo vs grpo.

Same model (a tiny random-init chat model), same episode budget, same held-out eval (greedy, every few
iterations), 3 seeds each, on GuessNumber (1..16, 6 turns) and TwentyQuestions (rule-based oracle).
The x axis is environment episodes consumed by training (``episodes_seen``); eval episodes are not counted.

    nice -n 10 .venv/bin/python perf/archer_sample_efficiency.py            # everything (~30 min, 2 cores)
    nice -n 10 .venv/bin/python perf/archer_sample_efficiency.py --envs guess_number --seeds 0

Writes perf/results/archer.md (table) and perf/results/archer_<env>.png (learning curves); the raw
metrics stay under runs/perf-archer/<env>/<algo>-s<seed>/metrics.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "perf" / "results"
RUNS = REPO / "runs" / "perf-archer"
ALGOS = ("archer", "flow_grpo", "grpo")
#: archer.md keeps what follows this heading when the table is rewritten
NOTES_MARK = "## Reading the results"

#: per env: the model, the env, sampling, budget and threshold. Both families see the same number of
#: training episodes per iteration and the same learning rate.
SETUPS: dict[str, dict[str, Any]] = {
    "guess_number": {
        "model": ("gn-tiny", {"size": "tiny", "tokenizer": "task:guess_number"}),
        "env": {"id": "turngym/GuessNumber-v0", "kwargs": {"low": 1, "high": 16}, "max_turns": 6},
        "max_new_tokens": 6,
        "episodes_per_iteration": 16,
        "iterations": 16,
        "eval_every": 2,
        "eval_seeds": 32,
        "threshold": 0.5,
        "lr": 1e-3,
    },
    "twenty_questions": {
        "model": ("tiny", {}),  # the 32k mistral tokenizer: the ontology's words are in it
        "env": {"id": "turngym/TwentyQuestions-v0", "kwargs": {}, "max_turns": 20},
        "system_prompt": "",  # the first message already holds the rules, questions and objects (~1000 tokens)
        "max_new_tokens": 12,
        "episodes_per_iteration": 8,
        "iterations": 6,
        "eval_every": 2,
        "eval_seeds": 8,
        "threshold": 0.1,
        "lr": 1e-3,
    },
}


def train_config(env: str, algo: str, seed: int) -> Any:
    from tests.agents.conftest import tiny_model
    from turngym.trainers.config import TrainConfig

    s = SETUPS[env]
    name, kwargs = s["model"]
    model = tiny_model(name, **kwargs)
    n = s["episodes_per_iteration"]
    common = {
        "run_dir": str(RUNS / env / f"{algo}-s{seed}"), "seed": seed, "env": s["env"], "model": {"path": str(model), "system_prompt": s.get("system_prompt")},
        "sampling": {"temperature": 1.0, "max_new_tokens": s["max_new_tokens"], "constrain": True},
        "iterations": s["iterations"], "eval": {"every": s["eval_every"], "seeds": s["eval_seeds"], "temperature": 0.0},
        "checkpoint": {"every": 0, "keep": 1}, "tensorboard": False,
    }
    if algo == "archer":
        return TrainConfig(
            **common, algorithm="archer",
            archer={
                "trajectories_per_iteration": n, "warmup_iterations": 2, "batch_size": 32, "micro_batch_size": 32,
                "critic": {"steps_per_iteration": 10, "lr": s["lr"], "max_length": 256},
                "actor": {"steps_per_iteration": 3, "lr": s["lr"], "max_new_tokens": s["max_new_tokens"]},
            },
        )
    # G = 4 episodes per task instance, n / 4 instances: the same n episodes per iteration
    return TrainConfig(
        **common, algorithm=algo, optim={"lr": s["lr"], "epochs": 1},
        rollout={"groups": n // 4, "group_size": 4},
    )


def run_one(env: str, algo: str, seed: int) -> list[dict[str, Any]]:
    import shutil

    from turngym.trainers.run import RunDir

    cfg = train_config(env, algo, seed)
    shutil.rmtree(cfg.run_dir, ignore_errors=True)
    t0 = time.perf_counter()
    if algo == "archer":
        from turngym.trainers.archer.trainer import ArcherTrainer

        ArcherTrainer(cfg).run()
    else:
        from turngym.trainers.onpolicy import OnPolicyTrainer

        OnPolicyTrainer(cfg).run(progress=False)
    wall = time.perf_counter() - t0
    evals = RunDir(cfg.run_dir, tensorboard=False).read_metrics("eval")
    print(f"{env} {algo} seed {seed}: {wall:.0f} s, eval success {[round(e['success'], 2) for e in evals]}", flush=True)
    return [{"episodes": e["episodes_seen"], "success": e["success"], "return": e["return"], "wall": wall} for e in evals]


def episodes_to_threshold(curve: list[dict[str, Any]], threshold: float) -> int | None:
    for point in curve:
        if point["success"] >= threshold:
            return int(point["episodes"])
    return None


def plot(env: str, curves: dict[str, dict[int, list[dict[str, Any]]]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    colors = {"archer": "tab:red", "flow_grpo": "tab:blue", "grpo": "tab:green"}
    styles = {"flow_grpo": "--"}  # dashed: with an outcome-only reward it can coincide with grpo
    for algo, by_seed in curves.items():
        for i, (_seed, curve) in enumerate(sorted(by_seed.items())):
            ax.plot(
                [p["episodes"] for p in curve], [p["success"] for p in curve], color=colors.get(algo), alpha=0.8,
                linestyle=styles.get(algo, "-"), marker="o", markersize=3,
                label=f"{algo} ({len(by_seed)} seeds)" if i == 0 else None,
            )
    ax.axhline(SETUPS[env]["threshold"], color="gray", linestyle="--", linewidth=1, label="threshold")
    ax.set_xlabel("training episodes")
    ax.set_ylabel("held-out success (greedy)")
    ax.set_title(f"{env} (tiny model)")
    ax.legend()
    fig.tight_layout()
    path = OUT / f"archer_{env}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def report(results: dict[str, dict[str, dict[int, list[dict[str, Any]]]]]) -> str:
    lines = [
        "# ArCHer sample efficiency (tiny model, CPU)",
        "",
        ("Command: `nice -n 10 .venv/bin/python perf/archer_sample_efficiency.py` "
        f"({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')})."),
        ("Training episodes until the held-out greedy success first reaches the threshold (eval every few "
        "iterations, so the count is rounded up to an eval point); '-' = not reached within the budget."),
        "",
    ]
    for env, by_algo in results.items():
        s = SETUPS[env]
        budget = s["episodes_per_iteration"] * s["iterations"]
        lines += [
            f"## {env}",
            "",
            (f"Budget {budget} training episodes per run ({s['episodes_per_iteration']} per iteration), lr {s['lr']}, "
            f"threshold: success >= {s['threshold']} on {s['eval_seeds']} held-out seeds. Plot: `archer_{env}.png`."),
            "",
            "| algorithm | seed | episodes to threshold | first eval success | best eval success | final eval success | wall s |",
            "|---|---|---|---|---|---|---|",
        ]
        for algo, by_seed in by_algo.items():
            for seed, curve in sorted(by_seed.items()):
                hit = episodes_to_threshold(curve, s["threshold"])
                succ = [p["success"] for p in curve]
                lines.append(
                    f"| {algo} | {seed} | {hit if hit is not None else '-'} | {succ[0]:.2f} | {max(succ):.2f} | "
                    f"{succ[-1]:.2f} | {curve[-1]['wall']:.0f} |"
                )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    ap.add_argument("--algos", nargs="+", default=list(ALGOS), choices=list(ALGOS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--report-only", action="store_true", help="only rebuild the table and plots from the raw results")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    for env in [] if args.report_only else args.envs:
        raw = OUT / f"archer_raw_{env}.json"  # one file per env: runs of different envs may go in parallel
        mine: dict[str, Any] = json.loads(raw.read_text()) if raw.exists() else {}
        for algo in args.algos:
            for seed in args.seeds:
                mine.setdefault(algo, {})[str(seed)] = run_one(env, algo, seed)
                raw.write_text(json.dumps(mine, indent=1))
    results = {
        env: json.loads((OUT / f"archer_raw_{env}.json").read_text())
        for env in SETUPS
        if (OUT / f"archer_raw_{env}.json").exists()
    }
    for env, by_algo in results.items():
        plot(env, by_algo)
    md = OUT / "archer.md"
    notes = md.read_text().partition(NOTES_MARK)[2] if md.exists() else ""  # the hand-written reading stays
    md.write_text(report(results) + "\n" + (NOTES_MARK + notes if notes else ""))
    print((OUT / "archer.md").read_text())


if __name__ == "__main__":
    main()

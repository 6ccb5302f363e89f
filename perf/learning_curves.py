"""Learning curves of grpo, flow_grpo, mt_grpo and gigpo on the same task with the same budget.

    .venv/bin/python perf/learning_curves.py [--iterations 150] [--seeds 0] [--out perf/results]

Every run is the quickstart demo (turngym/trainers/configs/guess_number.yaml: terse GuessNumber 1..16,
6 turns, the tiny task-vocabulary model from scratch, constrained sampling, 16 groups x 8 episodes
per iteration, mean-only group normalisation) with only the estimator's name and the loss
aggregation of its paper changed, run one after another on this machine. Writes
learning_curves.png (held-out eval success against environment episodes) and learning_curves.md
(final eval success, episodes to reach 0.9, wall time) to ``--out``; the runs stay in runs/curves/.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ALGORITHMS = ("grpo", "flow_grpo", "mt_grpo", "gigpo")
#: the loss aggregation each method's paper uses
AGGREGATION = {
    "grpo": "seq_mean",
    "flow_grpo": "turn_mean",
    "mt_grpo": "token_mean",
    "gigpo": "token_mean",
}


def run_one(algorithm: str, seed: int, iterations: int, every: int, overrides: list[str]) -> dict:
    from turngym.core.config import load_config
    from turngym.trainers.config import TrainConfig
    from turngym.trainers.onpolicy import OnPolicyTrainer
    from turngym.trainers.quickstart import DEMO_CONFIG, demo_model
    from turngym.trainers.run import RunDir

    run_dir = REPO / "runs" / "curves" / f"{algorithm}-s{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    cfg = load_config(
        TrainConfig,
        DEMO_CONFIG,
        overrides=[
            f"model.path={demo_model()}",
            f"run_dir={run_dir}",
            f"seed={seed}",
            f"algorithm.name={algorithm}",  # the demo's other estimator options (norm) stay
            f"loss.aggregation={AGGREGATION[algorithm]}",
            f"iterations={iterations}",
            f"eval.every={every}",
            "checkpoint.every=0",
            "tensorboard=false",
            *overrides,
        ],
    )
    t0 = time.perf_counter()
    OnPolicyTrainer(cfg).run(progress=False)
    seconds = time.perf_counter() - t0
    evals = RunDir(run_dir, tensorboard=False).read_metrics("eval")
    reach = next((r["episodes_seen"] for r in evals if r["success"] >= 0.9), None)
    return {
        "algorithm": algorithm,
        "seed": seed,
        "overrides": list(overrides),
        "seconds": seconds,
        "evals": evals,
        "final": evals[-1]["success"],
        "episodes_to_0.9": reach,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--every", type=int, default=15)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS))
    ap.add_argument("--out", type=Path, default=REPO / "perf" / "results")
    ap.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one more config override for every run (e.g. update_threads=1 when runs share the machine)",
    )
    ap.add_argument(
        "--runs-only",
        action="store_true",
        help="only run and write learning_curves.json to --out",
    )
    ap.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        help="combine the learning_curves.json of parallel --runs-only runs",
    )
    args = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = []
    if args.merge:
        for path in args.merge:
            results += json.loads(Path(path).read_text())
    else:
        for algorithm in args.algorithms:
            for seed in args.seeds:
                print(f"{algorithm} seed {seed} ...", flush=True)
                results.append(run_one(algorithm, seed, args.iterations, args.every, args.overrides))
                r = results[-1]
                print(
                    f"  final eval success {r['final']:.3f}, episodes to 0.9: {r['episodes_to_0.9']}, {r['seconds']:.0f} s",
                    flush=True,
                )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learning_curves.json").write_text(json.dumps(results, indent=1))
    if args.runs_only:
        return
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    colors = dict(
        zip(ALGORITHMS, ("tab:gray", "tab:red", "tab:green", "tab:blue"), strict=True)
    )
    for r in results:
        ax.plot(
            [e["episodes_seen"] for e in r["evals"]],
            [e["success"] for e in r["evals"]],
            "o-",
            ms=3,
            color=colors.get(r["algorithm"]),
            alpha=0.9,
            label=f"{r['algorithm']} (seed {r['seed']})",
        )
    ax.set_xlabel("environment episodes")
    ax.set_ylabel("held-out success (greedy, 64 secrets)")
    ax.set_title(
        f"GuessNumber 1..16 (terse), 6 turns; {args.iterations} iterations x 16 x 8 episodes"
    )
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out / "learning_curves.png", dpi=110)
    sets = "".join(f" --set {o}" for o in dict.fromkeys(o for r in results for o in r.get("overrides", [])))
    lines = [
        "# Learning curves: grpo, flow_grpo, mt_grpo, gigpo",
        "",
        (
            f"`.venv/bin/python perf/learning_curves.py --iterations {args.iterations} --every {args.every} "
            f"--seeds {' '.join(map(str, args.seeds))}{sets}` (the algorithms run in parallel with --runs-only, then --merge): the "
            "quickstart task and model, only the algorithm (and its paper's loss aggregation) changed; same budget of "
            "iterations x 16 groups x 8 episodes; held-out eval on 64 "
            "secrets, greedy. The runs of one invocation go one after another; runs started at the same time share the "
            "2-core machine, so their wall times are not the demo's."
        ),
        "",
        "![learning curves](learning_curves.png)",
        "",
        "| algorithm | seed | aggregation | final eval success | episodes to reach 0.9 | wall time |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        reach = (
            r["episodes_to_0.9"] if r["episodes_to_0.9"] is not None else "not reached"
        )
        lines.append(
            f"| {r['algorithm']} | {r['seed']} | {AGGREGATION[r['algorithm']]} | {r['final']:.3f} | {reach} | {r['seconds'] / 60:.1f} min |"
        )
    (args.out / "learning_curves.md").write_text("\n".join(lines) + "\n")
    print((args.out / "learning_curves.md").read_text())


if __name__ == "__main__":
    main()

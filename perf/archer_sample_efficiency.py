"""Sample efficiency: env episodes needed to reach a success threshold, archer vs flow_grpo vs grpo.

Same model (a tiny random-init chat model), same episode budget per iteration and per run, same held-out
eval (greedy, every few iterations), 3 seeds each, on GuessNumber (1..16, 6 turns) and TwentyQuestions
(rule-based oracle). The x axis is environment episodes consumed by training (``episodes_seen``); eval
episodes are not counted. The plot's second panel puts the same curves against training seconds (the summed
phase times, eval excluded), for per-compute efficiency. Every run uses ``torch_threads: 1``.

    nice -n 10 .venv/bin/python perf/archer_sample_efficiency.py --envs guess_number   # ~25 min, 2 cores
    nice -n 10 .venv/bin/python perf/archer_sample_efficiency.py --envs guess_number --algos archer --seeds 0
    .venv/bin/python perf/archer_sample_efficiency.py --report-only [--reread]          # table and plot only
    nice -n 10 .venv/bin/python perf/archer_sample_efficiency.py --envs guess_number --encoders tiny minilm-frozen \
        minilm-ft --seeds 0 --iterations 12 --batch 16 [--probe]                        # the critic encoders (issue 17)

Several processes may run different algorithms or seeds at once: each run is merged into
perf/results/archer_raw_<env>.json under a lock. Writes perf/results/archer.md (the table; the hand-written
"Reading the results" section is kept) and perf/results/archer_<env>.png; the runs stay under
runs/perf-archer/<env>/<algo>-s<seed>/.

``--encoders`` runs archer alone, once per critic encoder of ``ENCODERS`` (the setup otherwise unchanged;
``--iterations`` cuts the budget), into perf/results/archer_encoders_raw_<env>.json, archer_encoders.md
(a table with the critic's advantage spread beside the success), archer_encoders_<env>.md and .png; the runs stay
under runs/perf-archer/<env>/archer-<encoder>-s<seed>/.
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
        # numbers below 100 are single tokens, the compact template (half the stream), trained-model init
        "model": ("gn-tiny-numtok", {"size": "tiny", "tokenizer": "task:guess_number", "template": "compact", "init_std": 0.02}),
        "env": {"id": "turngym/GuessNumber-v0", "kwargs": {"low": 1, "high": 16}, "max_turns": 6},
        "system_prompt": "",
        "max_new_tokens": 6,
        "episodes_per_iteration": 64,
        "group_size": 8,
        "iterations": 40,
        "eval_every": 2,
        "eval_seeds": 64,
        "threshold": (0.3, 0.5),
        "lr": 1e-3,
        # measured with 1 thread: a critic step on 64 transitions ~0.8 s (a~ sampling + encoder), an actor step
        # ~0.5 s, so ~10 s an iteration against ~1 s for the on-policy loop's 64 episodes
        "archer": {"warmup_iterations": 4, "critic_steps": 10, "actor_steps": 3, "batch_size": 64, "micro_batch_size": 64},
    },
    "lookup": {
        # MT-GRPO's two-turn search-then-answer task (issue 17): the turn reward pays 0.5 for a search whose result
        # holds the answer, 1 for the exact answer; the setup of perf/turn_credit.py's lookup runs, ArCHer's as above
        "model": ("lookup-tiny", {"size": "tiny", "tokenizer": "task:lookup", "template": "compact", "init_std": 0.02}),
        "env": {"id": "turngym/Lookup-v0", "kwargs": {"n_people": 4, "reward": "turn"}, "max_turns": 2},
        "system_prompt": "",
        "max_new_tokens": 6,
        "episodes_per_iteration": 64,
        "group_size": 8,
        "iterations": 40,
        "eval_every": 2,
        "eval_seeds": 64,
        "threshold": (0.3, 0.5),
        "lr": 1e-3,
        "archer": {"warmup_iterations": 4, "critic_steps": 10, "actor_steps": 3, "batch_size": 64, "micro_batch_size": 64},
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
        "group_size": 4,
        "archer": {"warmup_iterations": 2, "critic_steps": 10, "actor_steps": 3, "batch_size": 32, "micro_batch_size": 32},
    },
}
#: ``--encoders``: archer's critic settings per encoder (ArcherCriticConfig fields over the setup's). The fine-tuned
#: MiniLM gets critic lr 1e-4, not the setup's 1e-3: at 1e-3 ten critic steps collapsed the pretrained encoder (the
#: two GuessNumber hints' Q values 0.0001 apart, against 1.4 at 3e-4 and 0.9 after 20 steps at 1e-4; the
#: separation test of tests/trainers/test_archer_encoder.py, calibrated by hand). Frozen, only the heads train: 1e-3.
ENCODERS: dict[str, dict[str, Any]] = {
    "tiny": {},  # the default: a random-init 2-layer Llama over the policy's tokenizer, fine-tuned
    "minilm-frozen": {"encoder": "minilm", "finetune_encoder": False},
    "minilm-ft": {"encoder": "minilm", "finetune_encoder": True, "lr": 1e-4},
}
#: the loss aggregation of each on-policy method's paper (as perf/learning_curves.py)
AGGREGATION = {"grpo": "seq_mean", "flow_grpo": "turn_mean"}


def train_config(
    env: str, algo: str, seed: int, *, encoder: str | None = None, iterations: int | None = None, batch: int | None = None
) -> Any:
    """The run's TrainConfig; ``encoder`` (archer only): a key of ENCODERS; ``iterations``: a cut budget;
    ``batch`` (archer only): transitions per critic/actor step (and per forward pass) instead of the setup's."""
    from tests.agents.conftest import tiny_model
    from turngym.trainers.config import TrainConfig

    s = SETUPS[env]
    name, kwargs = s["model"]
    model = tiny_model(name, **kwargs)
    n = s["episodes_per_iteration"]
    label = f"{algo}-{encoder}" if encoder else algo
    common = {
        "run_dir": str(RUNS / env / f"{label}-s{seed}"), "seed": seed, "env": s["env"], "model": {"path": str(model), "system_prompt": s.get("system_prompt")},
        "sampling": {"temperature": 1.0, "max_new_tokens": s["max_new_tokens"], "constrain": True},
        "iterations": iterations or s["iterations"],
        "eval": {"every": s["eval_every"], "seeds": s["eval_seeds"], "temperature": 0.0},
        "checkpoint": {"every": 0, "keep": 1}, "tensorboard": False,
        "torch_threads": 1,  # tiny models: 2 threads spin-wait on a busy 2-core machine (7-11 s vs ~1 s a rollout)
    }
    if algo == "archer":
        ar = s["archer"]
        return TrainConfig(
            **common,
            algorithm={
                "name": "archer", "warmup_iterations": ar["warmup_iterations"],
                "batch_size": batch or ar["batch_size"], "micro_batch_size": batch or ar["micro_batch_size"],
                "critic": {
                    "steps_per_iteration": ar["critic_steps"], "lr": s["lr"], "max_length": 256,
                    **ENCODERS[encoder or "tiny"],
                },
                "actor": {"steps_per_iteration": ar["actor_steps"], "max_new_tokens": s["max_new_tokens"]},
            },
            optim={"lr": s["lr"]},  # the actor's
            rollout={"groups": n, "group_size": 1},  # n task instances, one episode each
        )
    # G episodes per task instance, n / G instances: the same n episodes per iteration
    g = s["group_size"]
    return TrainConfig(
        **common, algorithm=algo, optim={"lr": s["lr"], "epochs": 1}, loss={"aggregation": AGGREGATION[algo]},
        rollout={"groups": n // g, "group_size": g},
    )


def run_one(
    env: str, algo: str, seed: int, *, encoder: str | None = None, iterations: int | None = None, batch: int | None = None
) -> list[dict[str, Any]]:
    import shutil

    cfg = train_config(env, algo, seed, encoder=encoder, iterations=iterations, batch=batch)
    shutil.rmtree(cfg.run_dir, ignore_errors=True)
    t0 = time.perf_counter()
    if algo == "archer":
        from turngym.trainers.archer.trainer import ArcherTrainer

        ArcherTrainer(cfg).run(progress=False)
    else:
        from turngym.trainers.onpolicy import OnPolicyTrainer

        OnPolicyTrainer(cfg).run(progress=False)
    wall = time.perf_counter() - t0
    curve = read_curve(cfg.run_dir, wall)
    print(f"{env} {algo} {encoder or ''} seed {seed}: {wall:.0f} s, eval success {[round(p['success'], 2) for p in curve]}", flush=True)
    return curve


def read_curve(run_dir: str | Path, wall: float) -> list[dict[str, Any]]:
    """One point per eval: episodes, held-out greedy success and return, training seconds so far, and the
    sampled (temperature 1) success of the training episodes of the iterations since the previous eval."""
    from turngym.trainers.run import RunDir

    run = RunDir(run_dir, tensorboard=False)
    evals, train = run.read_metrics("eval"), run.read_metrics("train")
    out, last = [], 0
    for e in evals:
        since = [r["success"] for r in train if last < r["iteration"] <= e["iteration"]]
        spread = [r["actor/adv_std"] for r in train if last < r["iteration"] <= e["iteration"] and "actor/adv_std" in r]
        out.append({
            "episodes": e["episodes_seen"], "success": e["success"], "return": e["return"], "wall": wall,
            "train_s": train_seconds(train, e["iteration"]),
            "train_success": sum(since) / len(since) if since else None,
            "adv_std": sum(spread) / len(spread) if spread else None,  # archer: std of A over the actor's samples
        })
        last = e["iteration"]
    return out


def train_seconds(train: list[dict[str, Any]], iteration: int) -> float:
    """Training compute up to ``iteration``: the summed phase times of its iterations (eval not counted)."""
    return sum(v for r in train if r["iteration"] <= iteration for k, v in r.items() if k.startswith("time_"))


def first_reach(curve: list[dict[str, Any]], threshold: float) -> dict[str, Any] | None:
    """The first eval point whose success reaches ``threshold`` (None: never)."""
    return next((p for p in curve if p["success"] >= threshold), None)


def thresholds(env: str) -> list[float]:
    t = SETUPS[env]["threshold"]
    return list(t) if isinstance(t, (list, tuple)) else [t]


def plot(env: str, curves: dict[str, dict[int, list[dict[str, Any]]]], stem: str = "archer") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    colors = {
        "archer": "tab:red", "flow_grpo": "tab:blue", "grpo": "tab:green",
        "archer-tiny": "tab:red", "archer-minilm-frozen": "tab:purple", "archer-minilm-ft": "tab:orange",
    }
    styles = {"flow_grpo": "--"}  # dashed: with an outcome-only reward it can coincide with grpo
    for ax, x, xlabel in zip(axes, ("episodes", "train_s"), ("training episodes", "training seconds (1 thread, shared machine)"), strict=True):
        for algo, by_seed in curves.items():
            for i, (_seed, curve) in enumerate(sorted(by_seed.items())):
                ax.plot(
                    [p.get(x, float("nan")) for p in curve], [p["success"] for p in curve], color=colors.get(algo),
                    alpha=0.8, linestyle=styles.get(algo, "-"), marker="o", markersize=3,
                    label=f"{algo} ({len(by_seed)} seeds)" if i == 0 else None,
                )
        for t in thresholds(env):
            ax.axhline(t, color="gray", linestyle=":", linewidth=1)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("held-out success (greedy)")
    axes[0].legend()
    fig.suptitle(f"{env} (tiny model): per episode (left) and per training second (right)")
    fig.tight_layout()
    path = OUT / f"{stem}_{env}.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def report(results: dict[str, dict[str, dict[int, list[dict[str, Any]]]]]) -> str:
    lines = [
        "# ArCHer sample efficiency (tiny model, CPU)",
        "",
        ("Command: `nice -n 10 .venv/bin/python perf/archer_sample_efficiency.py` "
        f"({os.cpu_count()} cores, {time.strftime('%Y-%m-%d')})."),
        ("Training episodes (and training seconds: the summed collect/critic/actor or rollout/update/sync times, eval "
        "excluded) until the held-out greedy success first reaches each threshold (eval every few iterations, so "
        "counts are rounded up to an eval point); '-' = not reached within the budget."),
        "",
    ]
    for env, by_algo in results.items():
        s = SETUPS[env]
        budget = s["episodes_per_iteration"] * s["iterations"]
        ar = s["archer"]
        ts = thresholds(env)
        lines += [
            f"## {env}",
            "",
            (f"Budget {budget} training episodes per run ({s['episodes_per_iteration']} per iteration, "
            f"{s['iterations']} iterations), lr {s['lr']}, eval every {s['eval_every']} iterations on "
            f"{s['eval_seeds']} held-out seeds. On-policy: groups of G = {s['group_size']}. ArCHer: "
            f"{ar['warmup_iterations']} critic-only warm-up iterations, {ar['critic_steps']} critic steps and "
            f"{ar['actor_steps']} actor steps per iteration, batch {ar['batch_size']} transitions. "
            f"Plot: `archer_{env}.png`."),
            "",
            "| algorithm | seed | " + " | ".join(f"episodes to {t}" for t in ts) + " | "
            + " | ".join(f"train s to {t}" for t in ts)
            + " | first eval | best eval | final eval | train s (all) | wall s |",
            "|---|---|" + "---|" * (2 * len(ts) + 5),
        ]
        for algo, by_seed in by_algo.items():
            for seed, curve in sorted(by_seed.items()):
                hits = [first_reach(curve, t) for t in ts]
                succ = [p["success"] for p in curve]
                lines.append(
                    f"| {algo} | {seed} | "
                    + " | ".join(str(int(h["episodes"])) if h else "-" for h in hits) + " | "
                    + " | ".join(f"{h['train_s']:.0f}" if h else "-" for h in hits)
                    + f" | {succ[0]:.2f} | {max(succ):.2f} | {succ[-1]:.2f} | {curve[-1].get('train_s', float('nan')):.0f}"
                    f" | {curve[-1]['wall']:.0f} |"
                )
        lines.append("")
    return "\n".join(lines)


def critic_probe(
    env: str, seed: int, *, encoder: str, iterations: int | None, batch: int | None, states: int = 32
) -> dict[str, float]:
    """Does the trained critic prefer the guesses the hints allow? For the first ``states`` distinct states of the
    run's episodes that hold a hint, min_k Q_k(s, [g]) for every guess g; the gap is the mean Q of the guesses
    inside the bounds the hints imply minus that of the others (a critic that reads the hints: > 0). Returns
    the mean gap and the fraction of states where it is positive. Loads the run's final checkpoint."""
    import re

    import torch

    from turngym.benchmarks.store import read_episodes
    from turngym.trainers.archer.buffer import episode_transitions
    from turngym.trainers.archer.trainer import ArcherTrainer

    cfg = train_config(env, "archer", seed, encoder=encoder, iterations=iterations, batch=batch)
    trainer = ArcherTrainer(cfg)
    trainer.run(resume=True, progress=False)  # every iteration done: loads the final checkpoint and stops
    kw = SETUPS[env]["env"]["kwargs"]
    guesses = list(range(kw["low"], kw["high"] + 1))
    bounds: dict[str, tuple[int, int]] = {}
    for episode in read_episodes(Path(cfg.run_dir) / "episodes.jsonl"):
        for t in episode_transitions(episode):
            text = t.state_text
            above = [int(x) for x in re.findall(r"higher than (\d+)", text)]
            below = [int(x) for x in re.findall(r"lower than (\d+)", text)]
            if above or below:
                bounds.setdefault(text, (max(above, default=kw["low"] - 1), min(below, default=kw["high"] + 1)))
    gaps = []
    trainer.critic.eval()
    with torch.no_grad():
        for text, (lo, hi) in list(bounds.items())[:states]:
            inside = torch.tensor([lo < g < hi for g in guesses])
            if inside.all() or not inside.any():
                continue
            q = trainer.critic([text] * len(guesses), [f"[{g}]" for g in guesses]).q
            assert q is not None
            q = q.min(dim=0).values
            gaps.append(float(q[inside].mean() - q[~inside].mean()))
    return {
        "probe_states": len(gaps), "probe_gap": sum(gaps) / max(len(gaps), 1),
        "probe_agree": sum(g > 0 for g in gaps) / max(len(gaps), 1),
    }


def encoder_report(env: str, by_label: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    """The ``--encoders`` table: per run, the success at the budget, the episodes to each threshold, the
    critic's advantage spread, wall time and seed."""
    s, ar = SETUPS[env], SETUPS[env]["archer"]
    ts = thresholds(env)
    lines = [
        f"# ArCHer critic encoders on {env} (tiny policy, CPU)",
        "",
        (f"Command: see the docstring of perf/archer_sample_efficiency.py (`--encoders`). {s['episodes_per_iteration']} "
        f"training episodes per iteration, lr {s['lr']} (actor; critic: ENCODERS), {ar['warmup_iterations']} critic-only "
        f"warm-up iterations, {ar['critic_steps']} critic and {ar['actor_steps']} actor steps per iteration on "
        f"the batch of transitions given per run; greedy eval every {s['eval_every']} iterations on {s['eval_seeds']} held-out "
        f"seeds. adv std: the std of A = min Q - min V over the actor's sampled a~, averaged over the run's "
        f"actor iterations (how much the critic tells guesses apart). Plot: `archer_encoders_{env}.png`."),
        "",
        "| encoder | seed | budget (episodes) | batch | first eval | best eval | success at budget | "
        + " | ".join(f"episodes to {t}" for t in ts)
        + " | adv std (first, last eval window) | Q gap, hint-consistent guesses (states > 0) | train s | wall s |",
        "|---|---|---|---|---|---|---|" + "---|" * (len(ts) + 4),
    ]
    for label, by_seed in by_label.items():
        for seed, curve in sorted(by_seed.items()):
            hits = [first_reach(curve, t) for t in ts]
            succ = [p["success"] for p in curve]
            spread = [p["adv_std"] for p in curve if p.get("adv_std") is not None]
            adv = f"{spread[0]:.3f}, {spread[-1]:.3f}" if spread else "-"
            end = curve[-1]
            probe = f"{end['probe_gap']:+.4f} ({end['probe_agree']:.0%} of {end['probe_states']})" if "probe_gap" in end else "-"
            lines.append(
                f"| {label} | {seed} | {int(curve[-1]['episodes'])} | {curve[-1].get('batch', ar['batch_size'])} | {succ[0]:.2f} | {max(succ):.2f} | {succ[-1]:.2f} | "
                + " | ".join(str(int(h["episodes"])) if h else "-" for h in hits)
                + f" | {adv} | {probe} | {curve[-1]['train_s']:.0f} | {curve[-1]['wall']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def save_run(raw: Path, algo: str, seed: int, curve: list[dict[str, Any]]) -> None:
    """Merge one run into the env's raw file (locked: several processes may run seeds side by side)."""
    import fcntl

    RUNS.mkdir(parents=True, exist_ok=True)
    with open(RUNS / f"{raw.stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        mine: dict[str, Any] = json.loads(raw.read_text()) if raw.exists() else {}
        mine.setdefault(algo, {})[str(seed)] = curve
        raw.write_text(json.dumps(mine, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    ap.add_argument("--algos", nargs="+", default=list(ALGOS), choices=list(ALGOS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument(
        "--encoders", nargs="+", choices=list(ENCODERS),
        help="archer only, once per critic encoder (ENCODERS); results in archer_encoders*",
    )
    ap.add_argument("--iterations", type=int, help="cut every run's budget to this many iterations")
    ap.add_argument("--batch", type=int, help="archer: transitions per critic/actor step instead of the setup's")
    ap.add_argument(
        "--probe", action="store_true",
        help="--encoders: after the runs (or with --report-only), probe each run's final critic (critic_probe)",
    )
    ap.add_argument("--report-only", action="store_true", help="only rebuild the table and plots from the raw results")
    ap.add_argument("--reread", action="store_true", help="with --report-only: re-read the curves from the run dirs")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    if args.encoders:
        for env in args.envs:
            raw = OUT / f"archer_encoders_raw_{env}.json"
            for encoder in [] if args.report_only else args.encoders:
                for seed in args.seeds:
                    curve = run_one(env, "archer", seed, encoder=encoder, iterations=args.iterations, batch=args.batch)
                    curve[-1]["batch"] = args.batch or SETUPS[env]["archer"]["batch_size"]
                    save_run(raw, f"archer-{encoder}", seed, curve)
            if args.probe and raw.exists():
                by_label = json.loads(raw.read_text())
                for label, by_seed in by_label.items():
                    for seed, curve in by_seed.items():
                        encoder = label.removeprefix("archer-")
                        found = critic_probe(env, int(seed), encoder=encoder, iterations=args.iterations, batch=curve[-1].get("batch"))
                        curve[-1].update(found)
                        print(f"{label} seed {seed}: critic probe {found}", flush=True)
                raw.write_text(json.dumps(by_label, indent=1))
            if raw.exists():
                by_label = json.loads(raw.read_text())
                plot(env, by_label, stem="archer_encoders")
                (OUT / f"archer_encoders_{env}.md").write_text(encoder_report(env, by_label))
                print(encoder_report(env, by_label))
        return
    for env in [] if args.report_only else args.envs:
        raw = OUT / f"archer_raw_{env}.json"  # one file per env, merged under a lock after every run
        for algo in args.algos:
            for seed in args.seeds:
                save_run(raw, algo, seed, run_one(env, algo, seed))
    results = {
        env: json.loads((OUT / f"archer_raw_{env}.json").read_text())
        for env in SETUPS
        if (OUT / f"archer_raw_{env}.json").exists()
    }
    if args.reread:
        for env, by_algo in results.items():
            for algo, by_seed in by_algo.items():
                for seed, curve in by_seed.items():
                    by_seed[seed] = read_curve(RUNS / env / f"{algo}-s{seed}", curve[-1]["wall"])
            (OUT / f"archer_raw_{env}.json").write_text(json.dumps(by_algo, indent=1))
    for env, by_algo in results.items():
        plot(env, by_algo)
    md = OUT / "archer.md"
    notes = md.read_text().partition(NOTES_MARK)[2] if md.exists() else ""  # the hand-written reading stays
    md.write_text(report(results) + "\n" + (NOTES_MARK + notes if notes else ""))
    print((OUT / "archer.md").read_text())


if __name__ == "__main__":
    main()

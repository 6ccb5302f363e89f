"""Rollout throughput: turngym's runner + token-faithful conversation against the backend's own raw
batched generation of the same tokens, for the hf and the vllm backends, in one run.

    .venv/bin/python perf/rollout.py [--episodes 64] [--turns 4] [--new-tokens 16] [--repeats 3] [--backend hf]
    .venv/bin/python perf/rollout.py --workload demo [--episodes 128] [--repeats 3] [--prefix-cache off]

turngym side: ``run_episodes`` plays ``--episodes`` concurrent GuessNumber episodes of ``--turns``
turns with the tiny model (each reply up to ``--new-tokens`` tokens). Raw side: the same prompts
(each turn's recorded prompt, taken from turngym's streams) sent to the backend's batched
generation directly, turn by turn, asking for the same number of new tokens: HF
``model.generate`` on the left-padded batch; vLLM ``AsyncLLM.generate`` for all prompts at once (as
token inputs, ``vllm.inputs.tokens_input``, the way the vllm backend sends them).
Overhead = raw tokens/s / turngym tokens/s - 1. The vllm half runs in .venv-vllm (a subprocess of
this script). Results (median of ``--repeats``) go to perf/results/rollout.md. Each repeat runs the two
sides back to back, so the script also gives the median of the per-repeat overheads (``paired``), and
the CPU seconds per token of each side (this process and its children, i.e. vLLM's engine core): on a
shared machine those are the steadier figures (``cpu overhead``).

``--workload demo`` times the hf backend alone on the RL demo's rollout: ``--episodes`` concurrent
GuessNumber episodes (low=1, high=16, max_turns=6), constrain=True, max_new_tokens=6, no system
prompt, the "small" task-tokenizer tiny model, max_batch=episodes; it prints the wall time of each
repeat and their median (JSON) and writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GN = "turngym/GuessNumber-v0"


def cpu_now() -> float:
    """CPU seconds used so far by this process (all threads) and its child processes (vLLM's engine core)."""
    try:
        import psutil
    except ImportError:
        return time.process_time()
    me = psutil.Process()
    total = time.process_time()
    for child in me.children(recursive=True):
        try:
            t = child.cpu_times()
        except psutil.Error:  # exited meanwhile
            continue
        total += t.user + t.system
    return total


def tiny_dir() -> Path:
    from tests.agents.conftest import tiny_model

    return tiny_model("tiny")


def tasks(n: int, turns: int):
    from turngym.agents.runner import group_tasks

    return group_tasks(GN, seeds=range(n), env_kwargs={"max_invalid_actions": 10 * turns}, max_turns=turns)


def turn_prompts(episodes) -> list[list[tuple[list[int], int]]]:
    """Per turn index: (prompt ids, sampled count) of every episode that played that turn."""
    rounds: list[list[tuple[list[int], int]]] = []
    for ep in episodes:
        for t, turn in enumerate(ep.turns):
            s, e = turn.action_span
            while len(rounds) <= t:
                rounds.append([])
            rounds[t].append((ep.tokens[:s], e - s))
    return rounds


async def turngym_run(agent, n: int, turns: int) -> tuple[float, int, list, float]:
    """Wall seconds, sampled tokens, the episodes, CPU seconds (``cpu_now``)."""
    from turngym.benchmarks.bench import rollout_throughput

    c0 = cpu_now()
    done = await rollout_throughput(tasks(n, turns), agent, concurrency=n)
    cpu = cpu_now() - c0
    if done.errors:
        raise RuntimeError(f"{len(done.errors)} episodes failed: {done.errors[:3]}")
    return done.wall, done.tokens, done.played, cpu


def hf_raw(model, rounds, new_tokens: int, pad_id: int) -> tuple[float, int, float]:
    import torch

    t0, c0 = time.perf_counter(), cpu_now()
    produced = 0
    for batch in rounds:
        width = max(len(p) for p, _ in batch)
        ids = torch.full((len(batch), width), pad_id)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        for i, (p, _) in enumerate(batch):
            ids[i, width - len(p) :] = torch.tensor(p)
            attn[i, width - len(p) :] = 1
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids, attention_mask=attn, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                do_sample=True, top_k=0, top_p=1.0, temperature=1.0, pad_token_id=pad_id,
            )
        produced += (out.shape[1] - width) * len(batch)
    return time.perf_counter() - t0, produced, cpu_now() - c0


def bench_hf(args) -> dict:
    from turngym.agents.base import make_agent

    agent = make_agent(f"hf:{tiny_dir()}", max_new_tokens=args.new_tokens, seed=0, max_batch=args.episodes)
    model, pad = agent.backend.model, agent.backend.pad_id
    asyncio.run(turngym_run(agent, 4, 1))  # warm-up
    ours, raw = [], []
    for _ in range(args.repeats):
        wall, toks, eps, cpu = asyncio.run(turngym_run(agent, args.episodes, args.turns))
        ours.append((wall, toks, len(eps), cpu))
        raw.append(hf_raw(model, turn_prompts(eps), args.new_tokens, pad))
    asyncio.run(agent.aclose())
    return summarise("hf", ours, raw)


async def _bench_vllm(args) -> dict:
    from vllm.inputs import tokens_input

    from turngym.agents.base import make_agent
    from turngym.agents.sampling import SamplingConfig
    from turngym.agents.vllm import sampling_params

    agent = make_agent(f"vllm:{tiny_dir()}", max_new_tokens=args.new_tokens, seed=0, max_model_len=2048)
    engine = agent.backend.engine
    await turngym_run(agent, 4, 1)  # warm-up
    ours, raw = [], []
    for r in range(args.repeats):
        wall, toks, eps, cpu = await turngym_run(agent, args.episodes, args.turns)
        ours.append((wall, toks, len(eps), cpu))
        rounds = turn_prompts(eps)
        t0, c0 = time.perf_counter(), cpu_now()
        produced = 0
        for t, batch in enumerate(rounds):

            async def one(i, prompt):
                # the same sampling settings as turngym's requests (unseeded on CPU, see VLLMBackend)
                seed = 1000 * t + i if agent.backend.per_request_seeds else None
                params = sampling_params(SamplingConfig(max_new_tokens=args.new_tokens), pattern=None, seed=seed)
                params.min_tokens = args.new_tokens
                params.ignore_eos = True
                final = None
                async for out in engine.generate(tokens_input(prompt), params, f"raw-{r}-{t}-{i}"):
                    final = out
                return len(final.outputs[0].token_ids)

            produced += sum(await asyncio.gather(*(one(i, p) for i, (p, _) in enumerate(batch))))
        raw.append((time.perf_counter() - t0, produced, cpu_now() - c0))
    await agent.aclose()
    return summarise("vllm", ours, raw)


def bench_demo(args) -> dict:
    from tests.agents.conftest import tiny_model
    from turngym.agents.hf import HFAgent
    from turngym.agents.runner import group_tasks, run_episodes

    model = tiny_model("demo-small-gn", size="small", tokenizer="task:guess_number")
    options = {"constrain": True, "max_new_tokens": 6, "seed": 0, "system_prompt": "", "max_batch": args.episodes}
    if args.prefix_cache == "off":
        options["prefix_cache"] = False
    agent = HFAgent.from_spec(str(model), **options)
    demo = group_tasks(GN, seeds=range(args.episodes), env_kwargs={"low": 1, "high": 16}, max_turns=6)

    async def play() -> tuple[float, float, int, int]:
        t0, c0 = time.perf_counter(), time.process_time()
        eps = await run_episodes(demo, agent, concurrency=args.episodes)
        bad = [e.error for e in eps if e.error]
        if bad:
            raise RuntimeError(f"{len(bad)} episodes failed: {bad[:3]}")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        return round(wall, 2), round(cpu, 2), sum(len(e.turns) for e in eps), sum(sum(e.mask) for e in eps)

    asyncio.run(play())  # warm-up (builds the constraint's token index)
    runs = [asyncio.run(play()) for _ in range(args.repeats)]
    asyncio.run(agent.aclose())
    return {"workload": "demo", "episodes": args.episodes, "prefix_cache": args.prefix_cache,
            "median_wall_s": statistics.median(r[0] for r in runs), "median_cpu_s": statistics.median(r[1] for r in runs),
            "runs (wall s, process cpu s, turns, tokens)": runs}


def summarise(name: str, ours, raw) -> dict:
    """Medians over the repeats; ``ours`` holds (wall, tokens, episodes, cpu), ``raw`` (wall, tokens, cpu)."""
    ours_tps = statistics.median(t / w for w, t, _, _ in ours)
    ours_eps = statistics.median(n / w for w, _, n, _ in ours)
    raw_tps = statistics.median(t / w for w, t, _ in raw)
    ours_cpt = statistics.median(c / t for _, t, _, c in ours)
    raw_cpt = statistics.median(c / t for _, t, c in raw)
    return {
        "backend": name,
        "turngym_tokens_per_s": ours_tps,
        "turngym_episodes_per_s": ours_eps,
        "raw_tokens_per_s": raw_tps,
        "overhead": raw_tps / ours_tps - 1,
        # each repeat's two sides ran back to back: the median of their ratios
        "overhead_paired": statistics.median(
            (w / t) / (rw / rt) - 1 for (w, t, _, _), (rw, rt, _) in zip(ours, raw, strict=True)
        ),
        "turngym_cpu_ms_per_token": 1000 * ours_cpt,
        "raw_cpu_ms_per_token": 1000 * raw_cpt,
        "cpu_overhead": ours_cpt / raw_cpt - 1,
        "runs": {"turngym": ours, "raw": raw},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=64)
    p.add_argument("--turns", type=int, default=4)
    p.add_argument("--new-tokens", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--backend", choices=["all", "hf", "vllm"], default="all")
    p.add_argument("--workload", choices=["throughput", "demo"], default="throughput")
    p.add_argument("--prefix-cache", choices=["on", "off"], default="on", help="demo workload: the hf prefix KV cache")
    p.add_argument("--json", help="write the results of this process as JSON here (used for the vllm half)")
    args = p.parse_args()
    if args.workload == "demo":
        print(json.dumps(bench_demo(args)))
        return
    results = []
    if args.backend in ("all", "hf"):
        results.append(bench_hf(args))
    if args.backend == "vllm":
        results.append(asyncio.run(_bench_vllm(args)))
    if args.backend == "all":
        vpy = REPO / ".venv-vllm" / "bin" / "python"
        out = REPO / ".cache" / "perf-rollout-vllm.json"
        cmd = [str(vpy), __file__, "--backend", "vllm", "--json", str(out)]
        cmd += ["--episodes", str(args.episodes), "--turns", str(args.turns)]
        cmd += ["--new-tokens", str(args.new_tokens), "--repeats", str(args.repeats)]
        subprocess.run(cmd, check=True, env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})
        results.extend(json.loads(out.read_text()))
    if args.json:
        Path(args.json).write_text(json.dumps(results))
        return
    write_report(args, results)


def write_report(args, results) -> None:
    load = os.getloadavg()
    lines = [
        "# Rollout throughput (perf/rollout.py)",
        "",
        f"Command: `.venv/bin/python perf/rollout.py --episodes {args.episodes} --turns {args.turns} "
        f"--new-tokens {args.new_tokens} --repeats {args.repeats}`",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, CPU only; "
        f"load average at the end {load[0]:.1f} (other jobs shared the CPU).",
        f"Workload: {args.episodes} concurrent GuessNumber episodes x {args.turns} turns, replies of up to "
        f"{args.new_tokens} tokens, tiny model (.cache/tiny-models/tiny: 4.2M parameters, 32k vocabulary). "
        "Raw = the same per-turn prompts through the backend's own batched generation, the same number of "
        "new tokens. Median of the repeats.",
        "",
        (
            "| backend | turngym tokens/s | turngym episodes/s | raw tokens/s | turngym overhead | paired | "
            "CPU ms/token turngym / raw | CPU overhead |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['backend']} | {r['turngym_tokens_per_s']:.0f} | {r['turngym_episodes_per_s']:.2f} | "
            f"{r['raw_tokens_per_s']:.0f} | {100 * r['overhead']:+.1f}% | {100 * r['overhead_paired']:+.1f}% | "
            f"{r['turngym_cpu_ms_per_token']:.2f} / {r['raw_cpu_ms_per_token']:.2f} | {100 * r['cpu_overhead']:+.1f}% |"
        )
    lines += ["", "Raw runs (wall s, tokens, CPU s) and turngym runs (wall s, tokens, episodes, CPU s):", "", "```"]
    lines += [json.dumps(r["runs"]) for r in results]
    lines += ["```", ""]
    out = REPO / "perf" / "results" / "rollout.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = "\n".join(lines)
    if out.is_file():  # earlier results stay below the new ones, as history
        earlier = out.read_text().removeprefix(lines[0]).lstrip("\n")
        out.write_text(report + "\n## Earlier results\n\n" + earlier)
    else:
        out.write_text(report)
    print(report)


if __name__ == "__main__":
    main()

"""Policy-update speed: turngym's ``policy_update`` against TRL's GRPOTrainer, same model, same batch, one run.

    bash perf/setup_trl.sh                  # once: TRL in ~/.cache/turngym/trl-venv (own transformers/accelerate)
    .venv/bin/python perf/trainer.py [--batch 64 --prompt-len 64 --completion-len 32 --repeats 10]

For each model (``small``: 0.8M params, 37-token task vocabulary; ``tiny``: 4.1M params, 32k mistral
vocabulary) the script builds one synthetic GRPO batch (random token ids, groups of ``--group`` with
0/1 rewards, GRPO advantages from turngym's estimator, old log-probs from the model itself) and starts
two worker processes: turngym's in this venv, TRL's in the TRL venv. Both load the same model
directory in float32 and get the same batch. They never run at the same time: the script asks them
for one optimizer step each in turn (who goes first alternates), ``--warmup`` steps are dropped and the
median of ``--repeats`` steps is reported. Each step is one AdamW step (lr ``--lr``, grad-norm clip 1.0,
no KL, no reference model) over the whole batch, 1 epoch, no generation.

Timed, turngym: ``policy_update(model, optimizer, table, advantages, ...)`` (collation of the turn table
into tensors, forward, PPO-clip token-mean loss, backward, clip, ``optimizer.step``). TRL: what
``Trainer._inner_training_loop`` does per optimizer step: ``GRPOTrainer.training_step`` (its own
``_prepare_inputs``, with ``_generate_and_score_completions`` replaced by a function returning the fixed
batch, then ``compute_loss`` and backward), then the grad-norm clip, ``optimizer.step``,
``lr_scheduler.step`` and ``zero_grad``. Memory: the peak RSS of each worker over the steps (VmHWM,
reset after set-up through /proc/self/clear_refs), and how far it rose above the RSS before the first
step. Results: perf/results/trainer.md (written by this script) and a JSON beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TRL_VENV = Path(os.environ.get("TRL_VENV", Path.home() / ".cache/turngym/trl-venv"))
TAG = "@@ "  # prefix of the JSON lines a worker prints (libraries may print other lines)
#: model name -> (tiny_model cache name, build_tiny_model kwargs)
MODELS = {
    "small": ("small-guess_number", {"size": "small", "tokenizer": "task:guess_number"}),
    "tiny": ("tiny", {}),
}


# -- helpers shared by both workers (standard library and torch only) -----------------------------


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)


def _say(obj: dict) -> None:
    print(TAG + json.dumps(obj), flush=True)


def _serve(step, info: dict) -> None:
    """Worker loop: report ``info``, then one ``step()`` per "step" line on stdin until "end"."""
    import torch

    info.update(threads=torch.get_num_threads(), rss_before_kib=_rss_kib("VmRSS"))
    _say(info)
    _reset_peak_rss()
    for line in sys.stdin:
        if line.strip() == "step":
            _say(step())
        else:
            break
    _say({"peak_rss_kib": _rss_kib("VmHWM"), "process_peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss})


def _load_batch(path: str) -> dict:
    import numpy as np

    with np.load(path) as z:
        return {k: z[k] for k in z.files}


# -- TRL side (runs in the TRL venv; imports no turngym) ------------------------------------------


def trl_worker(spec: dict) -> None:
    import datasets
    import torch
    import transformers
    import trl
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    b = _load_batch(spec["batch"])
    P = int(b["prompt_len"])
    ids = torch.as_tensor(b["input_ids"], dtype=torch.long)
    B, C = ids.shape[0], ids.shape[1] - P
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(spec["model"])

    def reward(completions, **kwargs):  # never called: generation and scoring are replaced below
        return [0.0] * len(completions)

    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-perf-"),
        per_device_train_batch_size=B,
        gradient_accumulation_steps=1,
        num_generations=spec["group"],
        max_completion_length=C,
        learning_rate=spec["lr"],
        lr_scheduler_type="constant",
        max_grad_norm=1.0,
        beta=0.0,
        epsilon=0.2,
        epsilon_high=0.28,  # turngym's LossConfig default (DAPO's clip-higher)
        loss_type="dapo",  # TRL's default: sum over all completion tokens / their number = token_mean
        num_iterations=1,
        bf16=False,
        fp16=False,
        use_cpu=True,
        report_to="none",
        logging_steps=10**6,
        save_strategy="no",
        seed=0,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=args,
        train_dataset=datasets.Dataset.from_dict({"prompt": ["hi"] * B}),
        processing_class=tok,
    )
    fixed = {
        "prompt_ids": ids[:, :P].contiguous(),
        "prompt_mask": torch.ones(B, P, dtype=torch.long),
        "completion_ids": ids[:, P:].contiguous(),
        "completion_mask": torch.ones(B, C, dtype=torch.long),
        "advantages": torch.as_tensor(b["advantages"], dtype=torch.float32),
        "num_items_in_batch": torch.tensor(B * C),
        "old_per_token_logps": torch.as_tensor(b["old_logprobs"], dtype=torch.float32),
    }
    # the only change to TRL's update path: its sampling + reward step returns the fixed batch
    trainer._generate_and_score_completions = lambda inputs: dict(fixed)
    wrapped, _ = trainer._prepare_for_training(10**6, None, None)  # optimizer, scheduler, accelerator.prepare
    trainer.current_gradient_accumulation_steps = 1
    prompts = [{"prompt": "hi"}] * B

    def step() -> dict:
        t0 = time.perf_counter()
        loss = trainer.training_step(wrapped, prompts, None)
        t1 = time.perf_counter()
        grad_norm = trainer._clip_grad_norm(wrapped)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        wrapped.zero_grad()
        t2 = time.perf_counter()
        return {"time": t2 - t0, "fwd_bwd": t1 - t0, "optim": t2 - t1, "collate": 0.0,
                "loss": float(loss), "grad_norm": float(grad_norm), "tokens": B * C}

    _serve(step, {
        "side": "trl",
        "versions": {"trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
                     "accelerate": __import__("accelerate").__version__},
        "optimizer": type(trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer).__name__
        + f" (optim={args.optim})",
    })


# -- turngym side (this venv) ------------------------------------------------------------------


def episodes_of_batch(b: dict) -> list:
    """One single-turn Episode per row: prompt (mask 0) + completion (mask 1, its old log-probs)."""
    from turngym.core.types import Episode, Turn

    P = int(b["prompt_len"])
    out = []
    for i, row in enumerate(b["input_ids"]):
        C = len(row) - P
        out.append(Episode(
            episode_id=str(i), group_id=f"g{i // int(b['group'])}", env_id="perf/Synthetic-v0",
            tokens=row.tolist(), mask=[0] * P + [1] * C,
            logprobs=[0.0] * P + b["old_logprobs"][i].tolist(),
            turns=[Turn(index=0, action="a", reward=float(b["rewards"][i]), action_span=(P, P + C))],
            trainable=True,
        ))
    return out


def turngym_worker(spec: dict) -> None:
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    import turngym.trainers.update as upd
    from turngym.trainers.advantages import compute_advantages, estimator_config
    from turngym.trainers.losses import LossConfig
    from turngym.trainers.table import TurnTable

    torch.manual_seed(0)
    b = _load_batch(spec["batch"])
    table = TurnTable.from_episodes(episodes_of_batch(b))
    adv = compute_advantages(table, estimator_config("grpo"))
    if not np.allclose(adv.turn, b["advantages"]):
        raise SystemExit("turngym worker: advantages differ from the batch file's")
    model = AutoModelForCausalLM.from_pretrained(spec["model"], dtype=torch.float32)
    optim = upd.OptimConfig(lr=spec["lr"], grad_clip=1.0, epochs=1)
    loss_cfg = LossConfig(eps_low=0.2, eps_high=0.28, beta=0.0, aggregation="token_mean")
    optimizer = upd.make_optimizer(model, optim)

    # split of the wall time: wrap the collation and the optimizer step policy_update calls
    split = {"collate": 0.0, "optim": 0.0}

    def timed(fn, key):
        def run(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                split[key] += time.perf_counter() - t
        return run

    upd.collate_episodes = timed(upd.collate_episodes, "collate")
    torch.nn.utils.clip_grad_norm_ = timed(torch.nn.utils.clip_grad_norm_, "optim")
    optimizer.step = timed(optimizer.step, "optim")
    gen = torch.Generator().manual_seed(0)

    def step() -> dict:
        split.update(collate=0.0, optim=0.0)
        t0 = time.perf_counter()
        m = upd.policy_update(model, optimizer, table, adv, optim=optim, loss=loss_cfg, device="cpu", generator=gen)
        t = time.perf_counter() - t0
        return {"time": t, "collate": split["collate"], "optim": split["optim"],
                "fwd_bwd": t - split["collate"] - split["optim"],
                "loss": m.get("loss", float("nan")), "grad_norm": m.get("grad_norm", float("nan")),
                "tokens": m.get("action_tokens", 0.0)}

    import transformers

    _serve(step, {
        "side": "turngym",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "optimizer": type(optimizer).__name__ + f" (foreach={optimizer.defaults.get('foreach')}, fused={optimizer.defaults.get('fused')})",
    })


# -- orchestration (this venv) -----------------------------------------------------------------


def model_dir(name: str) -> Path:
    sys.path.insert(0, str(ROOT))
    from tests.agents.conftest import tiny_model

    cache, kwargs = MODELS[name]
    return tiny_model(cache, **kwargs)


def build_batch(model: Path, out: Path, *, batch: int, prompt_len: int, completion_len: int, group: int, seed: int) -> dict:
    """Random token ids, 0/1 rewards (each group has both), turngym's GRPO advantages, and the model's own
    log-probs of the completion tokens as the old log-probs (so the first step's ratio is 1 on both sides)."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from turngym.trainers.advantages import compute_advantages, estimator_config
    from turngym.trainers.losses import token_logprobs
    from turngym.trainers.table import TurnTable

    if batch % group:
        raise SystemExit(f"--batch {batch} is not a multiple of --group {group}: GRPO needs whole groups")
    m = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, m.config.vocab_size, size=(batch, prompt_len + completion_len), dtype=np.int64)
    rewards = rng.integers(0, 2, size=batch).astype(np.float64)
    rewards[::group], rewards[1::group] = 0.0, 1.0  # every group has a 0 and a 1: no zero-advantage group
    with torch.no_grad():
        logp = token_logprobs(m(input_ids=torch.as_tensor(ids)).logits, torch.as_tensor(ids))
    b = {"input_ids": ids, "prompt_len": np.int64(prompt_len), "group": np.int64(group), "rewards": rewards,
         "old_logprobs": logp[:, prompt_len:].numpy().astype(np.float32)}
    adv = compute_advantages(TurnTable.from_episodes(episodes_of_batch(b)), estimator_config("grpo"))
    b["advantages"] = adv.turn.astype(np.float32)  # one turn per episode: A_i
    np.savez(out, **b)
    return {"params": sum(p.numel() for p in m.parameters()), "vocab": m.config.vocab_size}


class Worker:
    def __init__(self, python: Path, side: str, spec: dict, log: Path):
        self.side, self.log = side, log
        cmd = [str(python), str(Path(__file__).resolve()), "--worker", side, "--spec", json.dumps(spec)]
        env = dict(os.environ, PYTHONPATH=str(ROOT) if side == "turngym" else "", TOKENIZERS_PARALLELISM="false")
        with open(log, "w") as err:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
                                         cwd=ROOT, env=env)
        self.info = self.read()

    def read(self) -> dict:
        for line in self.proc.stdout:
            if line.startswith(TAG):
                return json.loads(line[len(TAG):])
        tail = self.log.read_text()[-3000:]
        raise SystemExit(f"the {self.side} worker ended without an answer (exit {self.proc.wait()}); its log:\n{tail}")

    def ask(self, line: str) -> dict:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> dict:
        out = self.ask("end")
        self.proc.wait(timeout=60)
        return out


def run_model(name: str, args, tmp: Path) -> dict:
    path = model_dir(name)
    npz = tmp / f"batch-{name}.npz"
    meta = build_batch(path, npz, batch=args.batch, prompt_len=args.prompt_len, completion_len=args.completion_len,
                       group=args.group, seed=args.seed)
    spec = {"model": str(path), "batch": str(npz), "lr": args.lr, "group": args.group}
    workers = {
        "turngym": Worker(Path(sys.executable), "turngym", spec, tmp / f"turngym-{name}.log"),
        "trl": Worker(TRL_VENV / "bin" / "python", "trl", spec, tmp / f"trl-{name}.log"),
    }
    steps: dict[str, list[dict]] = {k: [] for k in workers}
    for r in range(args.warmup + args.repeats):
        order = list(workers) if r % 2 == 0 else list(workers)[::-1]
        for side in order:
            steps[side].append(workers[side].ask("step"))
        print(f"{name} step {r}: " + "  ".join(f"{s} {steps[s][-1]['time'] * 1000:.0f} ms" for s in workers), flush=True)
    for side in workers:
        if steps[side][0]["tokens"] != args.batch * args.completion_len:
            raise SystemExit(f"{side} trained on {steps[side][0]['tokens']} action tokens, not the batch's "
                             f"{args.batch * args.completion_len}: the two sides did not do the same work")
    out = {"model": name, "path": str(path), **meta, "sides": {}}
    for side, w in workers.items():
        mem = w.close()
        timed = steps[side][args.warmup:]
        med = {k: statistics.median(s[k] for s in timed) for k in ("time", "collate", "fwd_bwd", "optim")}
        out["sides"][side] = {
            "info": w.info, "memory": mem, "median": med,
            "tokens": steps[side][0]["tokens"],
            "tokens_per_s": args.batch * args.completion_len / med["time"],
            "times": [s["time"] for s in timed],
            "first_step": {k: steps[side][0][k] for k in ("loss", "grad_norm")},
        }
    return out


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}"


def git_head() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "turngym/trainers"], cwd=ROOT, capture_output=True,
                               text=True, check=False).stdout.strip()
        return rev + (" + uncommitted turngym/trainers changes" if dirty else "")
    except OSError:
        return "?"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def command(args) -> str:
    """The command line of a run, every option spelled out (defaults included)."""
    opts = ("batch", "group", "prompt_len", "completion_len", "repeats", "warmup", "lr", "seed", "models")
    return ".venv/bin/python perf/trainer.py " + shlex.join(
        x for k in opts for x in (f"--{k.replace('_', '-')}", str(getattr(args, k)))
    )


def report(run: dict) -> str:
    """The markdown of a run (``run`` as saved in the JSON beside it)."""
    args, meta, results = argparse.Namespace(**run["args"]), run["meta"], run["results"]
    started, load0, load1 = meta["started"], *meta["loadavg"]
    any_side = results[0]["sides"]
    tv, gv = any_side["trl"]["info"]["versions"], any_side["turngym"]["info"]["versions"]
    lines = [
        "# Policy update: turngym vs TRL GRPOTrainer (CPU)",
        "",
        "Command (one run, both systems, same models, same batches; written by the script):",
        "",
        "    bash perf/setup_trl.sh",
        f"    {command(args)}",
        "",
        (f"**Machine: {meta['machine']}; shared with other jobs. Run started {started} UTC; load average "
        f"{load0[0]:.1f} / {load0[1]:.1f} / {load0[2]:.1f} (1/5/15 min) at the start, "
        f"{load1[0]:.1f} / {load1[1]:.1f} / {load1[2]:.1f} at the end. Torch threads: turngym "
        f"{any_side['turngym']['info']['threads']}, TRL {any_side['trl']['info']['threads']}.**"),
        "",
        (f"turngym: {meta['git']}, torch {gv['torch']}, transformers {gv['transformers']}, optimizer "
        f"{any_side['turngym']['info']['optimizer']}. TRL {tv['trl']} (its own venv): transformers "
        f"{tv['transformers']}, accelerate {tv['accelerate']}, torch {tv['torch']}, optimizer "
        f"{any_side['trl']['info']['optimizer']}."),
        "",
        (f"Batch: {args.batch} completions = {args.batch // args.group} GRPO groups of {args.group} with 0/1 rewards "
        f"(each group has both), prompt {args.prompt_len} + completion {args.completion_len} random token ids, "
        f"no padding; {args.batch * args.completion_len} action tokens per step. One AdamW step per batch "
        f"(lr {args.lr}, betas (0.9, 0.999), no weight decay, grad-norm clip 1.0), PPO-clip eps 0.2 / 0.28, "
        "token-mean loss, beta 0 (no KL, no reference model), float32, 1 epoch, no generation. Old log-probs "
        "are the model's own (ratio 1 at the first step), so both sides start from the same loss and gradient. "
        "No group has all-equal rewards, so turngym's `skip_zero_advantage` leaves every row in (checked: both "
        "sides train on every action token). "
        f"Median of {args.repeats} steps per side after {args.warmup} warm-up steps; the two workers take "
        "turns step by step (who goes first alternates), never at the same time."),
        "",
        "| model | system | tokens/s (median) | step (median) | collate | fwd+bwd | optimizer | peak RSS in the update | above pre-step RSS | process peak RSS |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        for side in ("turngym", "trl"):
            s = res["sides"][side]
            med, mem = s["median"], s["memory"]
            lines.append(
                f"| {res['model']} ({res['params'] / 1e6:.1f}M params, vocab {res['vocab']}) | "
                f"{'turngym policy_update' if side == 'turngym' else 'TRL GRPOTrainer'} | {s['tokens_per_s']:,.0f} | "
                f"{ms(med['time'])} | {ms(med['collate']) if side == 'turngym' else 'n/a (given as tensors)'} | "
                f"{ms(med['fwd_bwd'])} | {ms(med['optim'])} | {mem['peak_rss_kib'] / 1024:.0f} MiB | "
                f"{(mem['peak_rss_kib'] - s['info']['rss_before_kib']) / 1024:+.0f} MiB | "
                f"{mem['process_peak_rss_kib'] / 1024:.0f} MiB |"
            )
    lines += ["", "| model | ratio turngym / TRL (tokens/s, of the medians) | median of the per-round ratios | first-step loss turngym / TRL | first-step grad norm turngym / TRL | step times (s), turngym | step times (s), TRL |",
              "|---|---:|---:|---|---|---|---|"]
    for res in results:
        g, t = res["sides"]["turngym"], res["sides"]["trl"]
        lines.append(
            f"| {res['model']} | **{g['tokens_per_s'] / t['tokens_per_s']:.2f}** | "
            f"{statistics.median(b / a for a, b in zip(g['times'], t['times'], strict=True)):.2f} | "
            f"{g['first_step']['loss']:.6f} / {t['first_step']['loss']:.6f} | "
            f"{g['first_step']['grad_norm']:.5f} / {t['first_step']['grad_norm']:.5f} | "
            f"{', '.join(f'{x:.3f}' for x in g['times'])} | {', '.join(f'{x:.3f}' for x in t['times'])} |"
        )
    lines += [
        "",
        *([("**The machine was busy during this run (load above its core count): the absolute figures are "
           "slower and more spread than on a quiet machine. The alternation gives both sides the same "
           "conditions on average; read the ratio, and the per-round ratios beside it.**"), ""]
          if max(load0[0], load1[0]) > meta.get("cores", 2) else []),
        "What was timed:",
        "",
        ("- **turngym**: one call `policy_update(model, optimizer, table, advantages, optim=OptimConfig(lr, "
        "grad_clip=1.0, epochs=1), loss=LossConfig(eps_low=0.2, eps_high=0.28, beta=0, aggregation=\"token_mean\"), "
        "device=\"cpu\")` (turngym/trainers/update.py) on a `TurnTable.from_episodes` of single-turn episodes "
        "(prompt mask 0, completion mask 1 with its old log-probs, one turn whose action span is the completion) "
        "and `compute_advantages(table, estimator_config(\"grpo\"))`; the optimizer from `make_optimizer`. It "
        "includes collating the table into tensors (`collate_episodes`), the forward pass (full logits, "
        "`token_logprobs`), the loss, backward, the grad-norm clip and `optimizer.step`. Split: `collate_episodes` "
        "and `clip_grad_norm_` + `optimizer.step` are wrapped with timers; fwd+bwd is the rest."),
        ("- **TRL**: per step exactly what `Trainer._inner_training_loop` runs for one optimizer step with "
        "gradient_accumulation_steps 1: `GRPOTrainer.training_step(model, batch)` (its `_prepare_inputs` with "
        "`_generate_and_score_completions` replaced by a function that returns the fixed batch `{prompt_ids, "
        "prompt_mask, completion_ids, completion_mask, advantages, num_items_in_batch, old_per_token_logps}` "
        "as GRPOTrainer's own would, then shuffle/split, `compute_loss` (fused LM head: log-probs without the "
        "full logits, plus the per-token entropy it always computes for logging) and `accelerator.backward`), "
        "then `_clip_grad_norm`, `optimizer.step`, `lr_scheduler.step` and `model.zero_grad`. The optimizer, "
        "scheduler and `accelerator.prepare` come from `Trainer._prepare_for_training`. GRPOConfig: "
        "loss_type \"dapo\" (TRL's default, the token mean over the batch), epsilon 0.2, epsilon_high 0.28, "
        "beta 0, bf16/fp16 off, use_cpu, lr_scheduler_type constant, TRL's default optimizer. Not timed: "
        "sampling, rewards, the advantage computation (done once for both, by turngym's estimator)."),
        ("- Memory: each side is its own process. \"Peak RSS in the update\" is VmHWM over the warm-up and "
        "timed steps (reset through /proc/self/clear_refs after the set-up); \"above pre-step RSS\" is that "
        "minus the RSS after loading the model, optimizer and batch; \"process peak\" is ru_maxrss of the "
        "whole process (imports included: TRL imports datasets, accelerate and more)."),
        "",
        "Where the two differ (read off the code, whatever the figures of a run):",
        "",
        ("- LM head. turngym computes the full logits [B, L, V] at every position (prompt included) and a "
        "log-softmax over all of them, so its memory grows with B x L x V. TRL 1.x patches the model with a "
        "fused LM head (`add_fused_lm_head`, `ChunkedLogProbFunction`) that never holds [B, L, V]; but off "
        "CUDA/XPU (no Triton) it also scores every position, in tiles of 4096 tokens x 32768 vocabulary "
        "entries (one tile is 0.5 GB in float32, plus its temporaries), recomputes the projection in the "
        "backward pass, and always computes the entropy for its logs: on CPU it does more LM-head work than "
        "turngym and, at these sizes, holds more memory."),
        ("- Optimizer: TRL's default is `adamw_torch_fused`; turngym's `make_optimizer` gives "
        "`torch.optim.AdamW` with the foreach implementation (the \"optimizer\" column)."),
        ("- Collation: turngym's update collates its turn table into tensors inside the timed call; TRL's "
        "batch arrives as tensors (its collation is part of the generation step, not timed)."),
        "",
        "Raw numbers: `perf/results/trainer.json` (`--from-json` writes this file again from it).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=64, help="completions per step")
    ap.add_argument("--group", type=int, default=8, help="completions per GRPO group")
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--completion-len", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=10, help="timed steps per side (the median is reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per side first")
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default="small,tiny", help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--out", default=str(HERE / "results" / "trainer.md"))
    ap.add_argument("--from-json", help="only write the markdown again from a run's saved JSON")
    ap.add_argument("--worker", choices=("trl", "turngym"), help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        (trl_worker if args.worker == "trl" else turngym_worker)(json.loads(args.spec))
        return
    out = Path(args.out)
    if args.from_json:
        out.write_text(report(json.loads(Path(args.from_json).read_text())))
        print(out.read_text())
        return
    if not (TRL_VENV / "bin" / "python").exists():
        raise SystemExit(f"no TRL venv at {TRL_VENV}: run `bash perf/setup_trl.sh` first")
    meta = {"started": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "machine": machine(), "git": git_head(),
            "cores": os.cpu_count()}
    load0 = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory(prefix="turngym-perf-trainer-") as tmp:
        for name in args.models.split(","):
            results.append(run_model(name.strip(), args, Path(tmp)))
    meta["loadavg"] = [load0, os.getloadavg()]
    run = {"args": {k: v for k, v in vars(args).items() if k not in ("worker", "spec", "from_json")},
           "meta": meta, "results": results}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(run, indent=2))
    out.write_text(report(run))
    print(out.read_text())


if __name__ == "__main__":
    main()

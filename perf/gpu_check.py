"""The GPU check (issue 15, item 5): does the hf-backend training path run on CUDA unchanged, and how fast?

Three parts, one JSON line each (and ``--out DIR``: gpu_check.json):

1. **Logprob parity**: one random-init model (the same weights) scores the same token streams on the CPU in
   float32 and on the device in float32 and under bf16 autocast (``sequence_logprobs``, the update's own
   function); max and mean |difference| over the loss tokens.
2. **Training**: ``--iterations`` iterations of the on-policy trainer (grpo, GuessNumber 1..16, 8 x 8 episodes an
   iteration, PPO-clip, the hf backend sampling and updating on the device, bf16 autocast on CUDA), then
   update action tokens/s (the loss tokens of an iteration's update over its seconds, 2 epochs each), rollout
   episodes/s, the weight sync's probe (max |logprob diff| engine vs trainer) and peak GPU memory
   (``torch.cuda.max_memory_allocated``).
3. **Environment**: torch, transformers, CUDA and the device's name, so the numbers can be read against the
   versions they ran with (the GPU machine's own torch and transformers, not turngym's pins).

    .venv/bin/python perf/gpu_check.py --device cpu --size tiny --iterations 2     # the CPU path, here
    python3 perf/gpu_check.py --out $OUT                                          # on a GPU machine

On a GPU machine that lacks turngym's pure-Python dependencies, carry them as wheels: ``bash
perf/gpu_wheels.sh`` (here, once) fills ``.whl/`` (git-ignored; see its header), then the device command starts
with ``python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export
PYTHONPATH=/tmp/site:$PWD``. The model is built from a config (no download): ``--size 0.5b`` is a Qwen2-0.5B-like
shape (hidden 1024, 28 layers, 16 heads, 4 KV heads, MLP 3584; ~0.44B parameters with the 32k tokenizer).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def environment(device: str) -> dict[str, Any]:
    import torch
    import transformers

    out: dict[str, Any] = {
        "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "device": device, "cpu_count": os.cpu_count(),
    }
    if device.startswith("cuda"):
        out.update(cuda=torch.version.cuda, gpu=torch.cuda.get_device_name(0),
                   gpu_memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
    return out


def logprob_parity(model_path: Path, device: str, *, streams: int = 8, length: int = 256, seed: int = 0) -> dict[str, Any]:
    """Max and mean |log pi difference| of the device (float32, bf16 autocast) against the CPU in float32, on
    random streams whose second half are loss tokens."""
    import torch
    from transformers import AutoModelForCausalLM

    from turngym.trainers.update import sequence_logprobs

    g = torch.Generator().manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    vocab = int(model.get_input_embeddings().weight.shape[0])
    ids = torch.randint(0, vocab, (streams, length), generator=g)
    mask = torch.zeros_like(ids)
    mask[:, length // 2 :] = 1
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "loss_mask": mask}
    with torch.no_grad():
        ref, _ = sequence_logprobs(model, batch, autocast="off")
        out: dict[str, Any] = {"streams": streams, "length": length, "loss_tokens": int(mask.sum())}
        on = model.to(device)
        moved = {k: v.to(device) for k, v in batch.items()}
        for mode in ("off", "bf16") if device.startswith("cuda") else ("off",):
            lp, _ = sequence_logprobs(on, moved, autocast=mode)
            diff = (lp.float().cpu() - ref)[mask.bool()].abs()
            name = "fp32" if mode == "off" else "bf16_autocast"
            out[f"{name}_max_abs"] = float(diff.max())
            out[f"{name}_mean_abs"] = float(diff.mean())
    return out


def train(model_path: Path, device: str, *, iterations: int, run_dir: Path) -> dict[str, Any]:
    """A few grpo iterations on GuessNumber with the hf backend on ``device``; speed and memory."""
    import torch

    from turngym.trainers.config import TrainConfig
    from turngym.trainers.onpolicy import OnPolicyTrainer
    from turngym.trainers.run import RunDir

    cfg = TrainConfig(
        run_dir=str(run_dir), seed=0,
        env={"id": "turngym/GuessNumber-v0", "kwargs": {"low": 1, "high": 16}, "max_turns": 6},
        model={"path": str(model_path), "backend": "hf", "device": device, "system_prompt": ""},
        sampling={"temperature": 1.0, "max_new_tokens": 8, "constrain": True},
        algorithm="grpo", rollout={"groups": 8, "group_size": 8}, iterations=iterations,
        optim={"lr": 1e-5, "epochs": 2}, eval={"every": 0}, checkpoint={"every": 0}, tensorboard=False,
    )
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    OnPolicyTrainer(cfg).run(progress=False)
    wall = time.perf_counter() - t0
    records = RunDir(run_dir, tensorboard=False).read_metrics("train")
    later = records[1:] or records  # the first iteration pays CUDA's warm-up: left out where there are more
    update_s = sum(r["time_update"] for r in later)
    action_tokens = sum(r.get("update/action_tokens", 0.0) for r in later)
    out: dict[str, Any] = {
        "iterations": len(records), "wall_s": round(wall, 1),
        "update_s_per_iteration": round(update_s / len(later), 3),
        "rollout_s_per_iteration": round(sum(r["time_rollout"] for r in later) / len(later), 3),
        "rollout_episodes_per_s": round(sum(r["episodes"] for r in later) / sum(r["time_rollout"] for r in later), 1),
        "update_action_tokens_per_s": round(action_tokens / update_s, 1) if update_s else None,
        "success": [round(r.get("success", 0.0), 3) for r in records],
        "probe_diff": [r["probe_diff"] for r in records if "probe_diff" in r],  # the weight sync's max |logprob diff|
    }
    if device.startswith("cuda"):
        out["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (the path checked without a GPU)")
    ap.add_argument("--size", default="0.5b", help="a size of turngym.agents.tiny.SIZES (default 0.5b)")
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--out", help="a directory for gpu_check.json (default: print only)")
    args = ap.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {args.device}: torch {torch.__version__} sees no CUDA device here; run it on a GPU "
                 "machine, or check the CPU path with --device cpu --size tiny")
    from turngym.agents.tiny import build_tiny_model

    results: dict[str, Any] = {"environment": environment(args.device)}
    print(json.dumps(results["environment"]), flush=True)
    with tempfile.TemporaryDirectory(prefix="turngym-gpu-check-") as tmp:
        t0 = time.perf_counter()
        model = build_tiny_model(Path(tmp) / "model", size=args.size, tokenizer="mistral", template="compact",
                                 init_std=0.02)
        params = sum(p.numel() for p in __import__("transformers").AutoModelForCausalLM.from_pretrained(model).parameters())
        results["model"] = {"size": args.size, "parameters": params, "build_s": round(time.perf_counter() - t0, 1)}
        print(json.dumps(results["model"]), flush=True)
        results["parity"] = logprob_parity(model, args.device)
        print(json.dumps(results["parity"]), flush=True)
        results["train"] = train(model, args.device, iterations=args.iterations, run_dir=Path(tmp) / "run")
        print(json.dumps(results["train"]), flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "gpu_check.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

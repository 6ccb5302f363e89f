"""``turngym quickstart`` (and ``make demo``): a demo that learns, start to finish, on a CPU.

Builds a tiny model (random init, hidden 64, 2 layers, a GuessNumber task vocabulary, the compact
chat template) unless it exists, trains it with Flow-GRPO on GuessNumber 1..16 with 6 turns
(configs/guess_number.yaml), evaluates on held-out seeds before and after (greedy), prints the table;
the run's ``report.html`` (the learning curve, also as ``curve.png``, the evals, transcripts) is the one
every training run gets (turngym.benchmarks.report).

    summary = quickstart(out="runs/quickstart", overrides=["iterations=50"])
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from turngym.core.config import load_config
from turngym.trainers.config import TrainConfig

__all__ = ["DEMO_CONFIG", "demo_model", "quickstart"]

DEMO_CONFIG = files("turngym.trainers") / "configs" / "guess_number.yaml"
MODEL_SPEC = {"size": "tiny", "tokenizer": "task:guess_number", "template": "compact", "init_std": 0.02, "seed": 0}


#: where the demo's model is built
DEMO_MODEL = Path(".cache/turngym/models/guess-number-tiny")


def demo_model(cache: str | Path = DEMO_MODEL) -> Path:
    """The demo's model directory, built once (a few seconds) and reused."""
    import os
    import shutil

    from turngym.agents.tiny import build_tiny_model

    cache = Path(cache)
    marker = cache / "turngym_tiny.json"
    if marker.is_file() and all(json.loads(marker.read_text()).get(k) == v for k, v in MODEL_SPEC.items() if k != "init_std"):
        return cache
    # built aside and renamed into place, so runs started together never read a half-written model
    tmp = cache.with_name(f".{cache.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    build_tiny_model(tmp, **MODEL_SPEC)
    shutil.rmtree(cache, ignore_errors=True)
    try:
        tmp.rename(cache)
    except OSError:  # another run renamed its identical build first
        shutil.rmtree(tmp, ignore_errors=True)
    return cache


def quickstart(*, out: str | Path | None = None, overrides: Sequence[str] = (), resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Build the model, train, evaluate before and after; the summary (before, after, paths)."""
    from turngym.trainers.onpolicy import OnPolicyTrainer
    from turngym.trainers.run import RunDir

    t0 = time.perf_counter()
    extra = [f"model.path={DEMO_MODEL}"] + ([f"run_dir={out}"] if out is not None else [])
    cfg = load_config(TrainConfig, DEMO_CONFIG, overrides=[*extra, *overrides])  # a mistake ends here, before any build
    if Path(cfg.model.path) == DEMO_MODEL:
        demo_model(DEMO_MODEL)
    summary = OnPolicyTrainer(cfg).run(resume=resume, progress=progress)
    evals = RunDir(cfg.run_dir, tensorboard=False).read_metrics("eval")
    before, after = evals[0], evals[-1]
    seconds = time.perf_counter() - t0
    report = Path(cfg.run_dir) / "report.html"  # written by the training loop (turngym.benchmarks.report)
    return {**summary, "before": before, "after": after, "report": str(report), "seconds": seconds}

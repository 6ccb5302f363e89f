"""``turngym quickstart`` (and ``make demo``): a demo that learns, start to finish, on a CPU.

Builds a tiny model (random init, hidden 64, 2 layers, a GuessNumber task vocabulary, the compact
chat template) unless it exists, trains it with Flow-GRPO on GuessNumber 1..16 with 6 turns
(configs/guess_number.yaml), evaluates on held-out seeds before and after (greedy), prints the table
and writes ``report.html`` with the learning curve (``curve.png``) into the run directory.

    summary = quickstart(out="runs/quickstart", overrides=["iterations=50"])
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from turngym.core.config import load_config
from turngym.trainers.config import TrainConfig

__all__ = ["DEMO_CONFIG", "demo_model", "plot_curve", "quickstart", "write_report"]

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


def plot_curve(run_dir: str | Path) -> Path:
    """curve.png: training success per iteration (and its moving average) and held-out eval success,
    against environment episodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from turngym.trainers.run import RunDir

    run = RunDir(run_dir, tensorboard=False)
    train, evals = run.read_metrics("train"), run.read_metrics("eval")
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        x = [r["episodes_seen"] for r in train]
        y = [r["success"] for r in train]
        k = 10
        smooth = [sum(y[max(0, i - k + 1) : i + 1]) / len(y[max(0, i - k + 1) : i + 1]) for i in range(len(y))]
        ax.plot(x, y, color="tab:blue", alpha=0.25, lw=1, label="train (sampled, per iteration)")
        ax.plot(x, smooth, color="tab:blue", lw=2, label=f"train, mean of {k}")
    if evals:
        ax.plot([r["episodes_seen"] for r in evals], [r["success"] for r in evals], "o-", color="tab:red",
                lw=2, label="held-out eval (greedy)")
    ax.set_xlabel("environment episodes")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    out = Path(run_dir) / "curve.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_report(run_dir: str | Path, rows: Sequence[tuple[str, dict[str, Any]]], *, title: str, seconds: float) -> Path:
    """report.html: the before/after table and the learning curve."""
    import base64

    run_dir = Path(run_dir)
    png = plot_curve(run_dir)
    img = base64.b64encode(png.read_bytes()).decode()
    cells = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{m['success']:.3f}</td><td>{m['return']:.3f}</td><td>{m['turns']:.2f}</td></tr>"
        for name, m in rows
    )
    config = html.escape((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").exists() else ""
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto}}td,th{{padding:4px 12px;text-align:right}}
td:first-child{{text-align:left}}</style></head><body>
<h1>{html.escape(title)}</h1><p>wall time {seconds / 60:.1f} min</p>
<table><tr><th>held-out eval</th><th>success</th><th>return</th><th>turns</th></tr>{cells}</table>
<h2>Learning curve</h2><img src="data:image/png;base64,{img}" width="700">
<h2>Config</h2><pre>{config}</pre></body></html>"""
    out = run_dir / "report.html"
    out.write_text(page, encoding="utf-8")
    return out


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
    report = write_report(
        cfg.run_dir, [("before training", before), ("after training", after)],
        title=f"turngym quickstart: {cfg.algorithm_name} on {cfg.env.id if cfg.env else cfg.suite}", seconds=seconds,
    )
    return {**summary, "before": before, "after": after, "report": str(report), "seconds": seconds}

"""The on-policy loop for real: tiny model, hf backend, GuessNumber. Metrics, episodes and checkpoints
on disk; the stale-weights probe; tied embeddings; LoRA; the train CLI; kill -9 and --resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from turngym.benchmarks.store import read_episodes
from turngym.core.errors import ConfigError
from turngym.trainers.config import TrainConfig
from turngym.trainers.onpolicy import OnPolicyTrainer
from turngym.trainers.engine import StaleWeightsError
from turngym.trainers.table import TurnTable

REPO = Path(__file__).resolve().parents[2]


def config(tmp_path: Path, model: Path, **over) -> dict:
    data = {
        "run_dir": str(tmp_path / "run"),
        "seed": 0,
        "env": {"id": "turngym/GuessNumber-v0", "kwargs": {"low": 1, "high": 16}, "max_turns": 6},
        "model": {"path": str(model), "backend": "hf", "system_prompt": ""},
        "sampling": {"temperature": 1.0, "max_new_tokens": 6, "constrain": True},
        "algorithm": "flow_grpo",
        "loss": {"aggregation": "turn_mean"},
        "optim": {"lr": 1e-3, "epochs": 2, "minibatch_size": 4},
        "rollout": {"groups": 2, "group_size": 4},
        "iterations": 2,
        "eval": {"every": 1, "seeds": 4},
        "checkpoint": {"every": 1},
        "tensorboard": False,
    }
    for key, value in over.items():
        node = data
        *head, last = key.split(".")
        for part in head:
            node = node.setdefault(part, {})
        node[last] = value
    return data


def test_two_iterations_leave_metrics_episodes_and_checkpoints(tmp_path, gn_model):
    cfg = TrainConfig(**config(tmp_path, gn_model, tensorboard=True, **{"optim.lr_schedule": "linear"}))
    summary = OnPolicyTrainer(cfg).run(progress=False)
    run = Path(cfg.run_dir)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["iteration"] for r in train] == [1, 2] and [r["iteration"] for r in evals] == [0, 1, 2]
    assert summary["episodes_seen"] == 16 and train[-1]["episodes_seen"] == 16
    assert [r["lr"] for r in train] == [1e-3, 5e-4]  # linear decay to 0 over the 2 iterations
    for r in train:
        assert r["probe_diff"] <= cfg.probe_tolerance
        assert 0 <= r["success"] <= 1 and r["episodes"] == 8
    table = TurnTable.from_episodes(read_episodes(run / "episodes.jsonl", run_ids=["it2"]))
    assert len(table) == 8 and {g.rsplit("/", 1)[0] for g in table.group_id} == {"it2/g0", "it2/g1"}
    assert (run / "checkpoints" / "LATEST").read_text() == "iter-000002"
    assert any((run / "tb").iterdir())
    # the same run again refuses to overwrite it
    with pytest.raises(ConfigError, match="--resume"):
        OnPolicyTrainer(cfg).run(progress=False)


def test_stale_weights_in_the_engine_stop_the_run(tmp_path, gn_model, monkeypatch):
    from turngym.agents.hf import HFBackend

    async def ignore(self, weights):  # a sync that silently does nothing
        list(weights)

    monkeypatch.setattr(HFBackend, "load_weights", ignore)
    # up to 10 iterations of 4 groups: the first group with signal moves the weights, and the probe stops the run
    cfg = TrainConfig(**config(tmp_path, gn_model, **{"optim.lr": 0.05, "eval.every": 0, "iterations": 10, "rollout.groups": 4}))
    with pytest.raises(StaleWeightsError, match="not serving the new weights"):
        OnPolicyTrainer(cfg).run(progress=False)
    # the iteration whose sync failed is neither logged nor checkpointed; the ones before had no update
    for line in (Path(cfg.run_dir) / "metrics.jsonl").read_text().splitlines() if (Path(cfg.run_dir) / "metrics.jsonl").exists() else []:
        assert json.loads(line)["update/steps"] == 0


def test_tied_embeddings_sync_exactly(tmp_path, gn_model_tied):
    cfg = TrainConfig(**config(tmp_path, gn_model_tied, **{"optim.lr": 0.01, "iterations": 1, "eval.every": 0, "rollout.groups": 6}))
    trainer = OnPolicyTrainer(cfg)
    assert trainer.model.config.tie_word_embeddings
    trainer.run(progress=False)
    record = json.loads((Path(cfg.run_dir) / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["update/steps"] > 0 and record["probe_diff"] <= 1e-5


def test_lora_trains_only_the_adapters_and_the_engine_serves_them_merged(tmp_path, gn_model):
    cfg = TrainConfig(**config(tmp_path, gn_model, **{
        "model.lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
        "optim.lr": 0.05, "iterations": 1, "eval.every": 0, "rollout.groups": 6,
    }))
    trainer = OnPolicyTrainer(cfg)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.run(progress=False)
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)
    record = json.loads((Path(cfg.run_dir) / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["probe_diff"] <= 1e-5
    out = trainer.export(tmp_path / "export")
    assert (out / "config.json").exists() and not any("lora" in p.name for p in out.iterdir())


def test_train_cli_applies_overrides_and_reports_config_errors(tmp_path, gn_model):
    path = tmp_path / "gn.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, gn_model, iterations=1, **{"eval.every": 0})))
    cli = [sys.executable, "-m", "turngym.cli.app", "train", "--config", str(path)]
    bad = subprocess.run(check=False, args=[*cli, "--set", "optim.lr=-1"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert bad.returncode != 0 and "optim.lr" in bad.stderr
    ok = subprocess.run(check=False, args=[*cli, "--set", "algorithm=grpo"], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["algorithm"] == {"name": "grpo"}


def _records(run: Path) -> list[dict]:
    if not (run / "metrics.jsonl").exists():
        return []
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def _train_records(run: Path) -> list[dict]:
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        out.append({k: v for k, v in r.items() if not k.startswith("time_")})
    return out


#: a resumed run replays the killed iterations bit for bit on this CPU (same ops, same threads, same
#: seeds); the tolerance only absorbs float printing
RESUME_TOL = 1e-9


def test_resume_after_kill_9_matches_an_uninterrupted_run(tmp_path, gn_model):
    iterations = 4
    whole = TrainConfig(**config(tmp_path / "a", gn_model, iterations=iterations))
    OnPolicyTrainer(whole).run(progress=False)

    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path / "b", gn_model, iterations=iterations)))
    run = tmp_path / "b" / "run"
    cmd = [sys.executable, "-m", "turngym.cli.app", "train", "--config", str(path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if any(r["kind"] == "train" and r["iteration"] >= 2 for r in _records(run)):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)  # mid-run: after iteration 2 was logged, its checkpoint maybe not
    proc.wait()
    killed_at = (run / "checkpoints" / "LATEST").read_text() if (run / "checkpoints" / "LATEST").exists() else None
    resumed = subprocess.run(check=False, args=[*cmd, "--resume"], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    a, b = _train_records(Path(whole.run_dir)), _train_records(run)
    assert [(r["kind"], r["iteration"]) for r in a] == [(r["kind"], r["iteration"]) for r in b], killed_at
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for key in ra:
            if isinstance(ra[key], float):
                assert abs(ra[key] - rb[key]) <= RESUME_TOL, (key, ra, rb)
            else:
                assert ra[key] == rb[key], key
    # every iteration's episodes once: no episode lost, none counted twice
    stored = [e for e in read_episodes(run / "episodes.jsonl") if e.run_id.startswith("it")]
    assert sorted({e.run_id for e in stored}) == [f"it{k}" for k in range(1, iterations + 1)]
    lines = [json.loads(x) for x in (run / "episodes.jsonl").read_text().splitlines()]
    ids = [(r["run_id"], r["episode_id"]) for r in lines if r["run_id"].startswith("it")]  # every line, not deduplicated
    assert len(ids) == len(set(ids)) == len(stored) == iterations * 8

"""The one training loop around the algorithms: a model out of every checkpoint (hf loads it, its logprobs are
the trainer's; LoRA merged), resume refusing a changed config but not a safe key, and no run directory of
another kind overwritten (train over an eval run, eval over a training run)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import torch
import yaml

from tests.trainers.conftest import LORA
from tests.trainers.test_onpolicy import config
from turngym.core.errors import ConfigError
from turngym.trainers.config import TrainConfig
from turngym.trainers.loop import SAFE_TO_CHANGE, check_resumable
from turngym.trainers.onpolicy import OnPolicyTrainer

#: the hf backend's logprobs on the exported model vs the trainer's on its own model, float32 on CPU: the
#: same weights (LoRA merged: W + BA computed once) through the same forward
LOGPROB_TOL = 1e-5


def _engine_logprobs(model_dir: Path, ids: list[int]) -> list[float]:
    from turngym.agents.hf import HFBackend

    async def go() -> list[float]:
        backend = HFBackend(model=str(model_dir))  # what `--agent hf:DIR` builds
        try:
            return await backend.prompt_logprobs(ids)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def _max_diff(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b) and a
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def test_every_checkpoint_holds_a_model_that_hf_loads_with_the_trainers_logprobs(grpo_run, gn_model):
    run, ids = grpo_run.run_dir, grpo_run.ids
    for k in (1, 2):
        model_dir = run / "checkpoints" / f"iter-{k:06d}" / "model"
        names = {p.name for p in model_dir.iterdir()}
        assert {"config.json", "model.safetensors", "chat_template.jinja", "turngym_tiny.json"} <= names, names
    diff = _max_diff(_engine_logprobs(grpo_run.final, ids), grpo_run.logprobs)
    assert diff <= LOGPROB_TOL, diff
    # and it is the trained model, not the base one
    assert _max_diff(_engine_logprobs(gn_model, ids), grpo_run.logprobs) > 1e-4


def test_a_lora_runs_model_is_merged_differs_from_the_base_and_resumes_exactly(tmp_path, gn_model, lora_run):
    """LoRA: the checkpoint's model/ is the merged model (hf loads it, logprobs = the trainer's, weights differ
    from the base); a run of 1 iteration resumed with iterations=2 (a safe change) equals a 2-iteration run."""
    trainer, final = lora_run.trainer, lora_run.final
    assert not any("adapter" in p.name or "lora" in p.name for p in final.iterdir())
    from safetensors.torch import load_file

    base, merged = load_file(gn_model / "model.safetensors"), load_file(final / "model.safetensors")
    assert base.keys() == merged.keys()
    changed = {k for k in base if not torch.equal(base[k], merged[k])}
    assert changed and all("q_proj" in k or "v_proj" in k for k in changed), changed
    assert _max_diff(_engine_logprobs(final, lora_run.ids), lora_run.logprobs) <= LOGPROB_TOL

    cut = config(tmp_path / "b", gn_model, iterations=1, **LORA)
    OnPolicyTrainer(TrainConfig(**cut)).run(progress=False)
    resumed = OnPolicyTrainer(TrainConfig(**{**cut, "iterations": 2}))
    resumed.run(resume=True, progress=False)

    def train_records(run: str) -> list[dict]:
        lines = (Path(run) / "metrics.jsonl").read_text().splitlines()
        return [{k: v for k, v in json.loads(x).items() if not k.startswith("time_")} for x in lines]

    a, b = train_records(lora_run.run_dir), train_records(cut["run_dir"])
    assert [r["iteration"] for r in b] == [1, 2]
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for key, value in ra.items():
            assert rb[key] == pytest.approx(value, abs=1e-9), key
    for (n, p), (m, q) in zip(trainer.model.named_parameters(), resumed.model.named_parameters(), strict=True):
        assert n == m and torch.equal(p, q), n


def test_resume_refuses_a_changed_config_naming_the_keys(tmp_path, gn_model):
    data = config(tmp_path, gn_model)
    run = Path(data["run_dir"])
    run.mkdir(parents=True)
    from turngym.core.config import dump_config

    (run / "config.yaml").write_text(dump_config(TrainConfig(**data)))
    changed = TrainConfig(**{**data, "optim": {**data["optim"], "lr": 0.5}, "rollout": {"groups": 1, "group_size": 4}})
    with pytest.raises(ConfigError) as err:
        check_resumable(run, changed)
    message = str(err.value)
    assert "optim.lr: 0.001 -> 0.5" in message and "rollout.groups: 2 -> 1" in message
    assert "--resume" in message and "iterations" in message  # the fix, and what may change
    # through the trainer: refused before anything is loaded or written
    with pytest.raises(ConfigError, match=r"optim\.lr"):
        OnPolicyTrainer(changed).run(resume=True, progress=False)
    assert yaml.safe_load((run / "config.yaml").read_text())["optim"]["lr"] == 0.001
    # the safe keys pass
    safe = TrainConfig(**{**data, "iterations": 7, "eval": {**data["eval"], "every": 3}, "checkpoint": {"every": 2, "keep": 5},
                          "tensorboard": True, "torch_threads": 1, "update_threads": 2})
    check_resumable(run, safe)
    # a stored config that predates a field (its default applies) is not a change
    stored = yaml.safe_load((run / "config.yaml").read_text())
    del stored["probe_tolerance"]
    (run / "config.yaml").write_text(yaml.safe_dump(stored))
    check_resumable(run, TrainConfig(**data))
    assert set(SAFE_TO_CHANGE) >= {"iterations", "eval.every", "checkpoint.every", "checkpoint.keep"}


def test_train_refuses_an_eval_run_and_eval_refuses_a_training_run(tmp_path, gn_model):
    from turngym.benchmarks.eval import eval_config, plan_run

    eval_run = tmp_path / "eval-run"
    eval_run.mkdir()
    (eval_run / "config.yaml").write_text("suite: {name: smoke}\n")
    (eval_run / "episodes.jsonl").write_text("")
    (eval_run / "summary.json").write_text("{}")
    cfg = TrainConfig(**config(tmp_path, gn_model, run_dir=str(eval_run)))
    for resume in (False, True):
        with pytest.raises(ConfigError, match="holds an eval run"):
            OnPolicyTrainer(cfg).run(resume=resume, progress=False)
    assert (eval_run / "config.yaml").read_text() == "suite: {name: smoke}\n"

    train_run = tmp_path / "train-run"
    (train_run / "checkpoints").mkdir(parents=True)
    (train_run / "config.yaml").write_text("run_dir: x\n")
    with pytest.raises(ConfigError, match="holds a training run"):
        plan_run(eval_config("smoke", agent="scripted"), train_run)
    assert (train_run / "config.yaml").read_text() == "run_dir: x\n"


def test_a_checkpoint_of_the_earlier_layout_still_resumes(tmp_path, gn_model):
    """An on-policy checkpoint written before the one loop (the whole state in trainer.pt, no model/) resumes
    to the same iteration 2 as an uninterrupted run."""
    import shutil

    base = {"eval.every": 0, "algorithm": "grpo"}
    whole = TrainConfig(**config(tmp_path / "a", gn_model, iterations=2, **base))
    OnPolicyTrainer(whole).run(progress=False)
    cut = config(tmp_path / "b", gn_model, iterations=1, **base)
    OnPolicyTrainer(TrainConfig(**cut)).run(progress=False)
    ckpt = Path(cut["run_dir"]) / "checkpoints" / "iter-000001"
    new = torch.load(ckpt / "trainer.pt", weights_only=False)
    from transformers import AutoModelForCausalLM

    weights = AutoModelForCausalLM.from_pretrained(ckpt / "model", dtype=torch.float32).state_dict()
    torch.save({"model": weights, **new["algorithm"], "rng": new["rng"], "iteration": 1, "episodes_seen": new["episodes_seen"]},
               ckpt / "trainer.pt")
    shutil.rmtree(ckpt / "model")
    OnPolicyTrainer(TrainConfig(**{**cut, "iterations": 2})).run(resume=True, progress=False)
    a = [json.loads(x) for x in (Path(whole.run_dir) / "metrics.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (Path(cut["run_dir"]) / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in b] == [1, 2]
    assert a[1].keys() == b[1].keys() and "update/steps" in a[1]
    for key, value in a[1].items():
        if not key.startswith("time_"):
            assert b[1][key] == pytest.approx(value, abs=1e-9), key


@pytest.mark.parametrize("where", ["rollout", "update"])
def test_kill_9_in_the_middle_of_a_rollout_or_an_update_resumes_exactly(tmp_path, gn_model, where):
    """SIGKILL inside iteration 2 (episodes in flight, or after its first optimizer step), then `turngym train
    --resume`: the metrics and episodes equal an uninterrupted run's."""
    import os
    import subprocess
    import sys

    from tests.trainers.test_onpolicy import REPO, RESUME_TOL, _train_records

    over = {"iterations": 3, "eval.every": 2, "rollout.group_size": 8}
    whole = TrainConfig(**config(tmp_path / "a", gn_model, **over))
    OnPolicyTrainer(whole).run(progress=False)

    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path / "b", gn_model, **over)))
    run = tmp_path / "b" / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, str(REPO / "tests" / "trainers" / "kill_worker.py"), str(path), where, "2"],
                            check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert (run / "checkpoints" / "LATEST").read_text() == "iter-000001"
    assert [r["iteration"] for r in _train_records(run) if r["kind"] == "train"] == [1]
    resumed = subprocess.run([sys.executable, "-m", "turngym.cli.app", "train", "--config", str(path), "--resume"],
                             check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    a, b = _train_records(Path(whole.run_dir)), _train_records(run)
    assert [(r["kind"], r["iteration"]) for r in a] == [(r["kind"], r["iteration"]) for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for key, value in ra.items():
            assert rb[key] == pytest.approx(value, abs=RESUME_TOL) if isinstance(value, float) else rb[key] == value, key
    lines = [json.loads(x) for x in (run / "episodes.jsonl").read_text().splitlines()]
    ids = [(r["run_id"], r["episode_id"]) for r in lines]  # every line: none stored twice, none lost
    assert len(ids) == len(set(ids))
    assert sorted({r for r, _ in ids if r.startswith("it")}) == ["it1", "it2", "it3"]
    assert [json.loads(x)["run_id"] for x in (Path(whole.run_dir) / "episodes.jsonl").read_text().splitlines()] == [
        r for r, _ in ids]  # the same episodes in the same order as the uninterrupted run (its evals included)

"""A model exported from a 2-iteration training run (`turngym export model RUN --out DIR`), full fine-tune and
LoRA (merged), loads in vLLM through the ``vllm:`` agent, and vLLM's logprobs on a recorded episode of the run,
teacher-forced, equal the trainer's. The runs are the session fixtures that tests/trainers/test_loop.py checks
with the hf backend; vLLM lives in .venv-vllm, so one worker process loads both exports, one after the other.

`vllm serve DIR` of an export is not started here: the same engine loads the same directory, and a second server
start costs about a minute on a 2-core machine (tests/agents/test_openai_vllm.py covers the server with a tiny model)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agents.conftest import REPO, run_in_vllm_venv
from tests.trainers.conftest import TrainedRun

pytestmark = pytest.mark.vllm

#: vLLM's CPU kernels (float32) against the trainer's float32 HF forward on the same weights. Measured max |diff|
#: over a recorded iteration-2 episode (168 tokens): 4.8e-7 for both the full and the LoRA export (one float32
#: ulp at |logprob| ~ 5). 2e-5 leaves a 40x margin for other CPUs' float32 kernels yet fails an export whose
#: weights went through float16 (6e-5 .. 9e-5 on these runs) or bfloat16 (7.5e-4), which the weight-sync probe's
#: 2e-3 (TrainConfig.probe_tolerance) would let through; the previous checkpoint's model differs by ~0.2.
VLLM_EXPORT_TOL = 2e-5


def _export(run: Path, out: Path) -> Path:
    proc = subprocess.run([sys.executable, "-m", "turngym.cli.app", "export", "model", str(run), "--out", str(out)],
                          check=False, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def served(grpo_run: TrainedRun, lora_run: TrainedRun, tmp_path_factory) -> dict:
    """vLLM's logprobs on each run's recorded episode, from the exported model."""
    tmp = tmp_path_factory.mktemp("vllm-export")
    cases = {name: {"model": str(_export(run.run_dir, tmp / name)), "ids": run.ids}
             for name, run in (("full", grpo_run), ("lora", lora_run))}
    (tmp / "cases.json").write_text(json.dumps(cases))
    proc = run_in_vllm_venv(REPO / "tests" / "trainers" / "vllm_export_worker.py", tmp / "cases.json", tmp / "out.json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-5000:]
    return {**json.loads((tmp / "out.json").read_text()), "dirs": {k: Path(c["model"]) for k, c in cases.items()}}


def _diffs(mine: list[float], theirs: list[float], mask: list[int]) -> tuple[float, float]:
    """max |diff| over all predicted tokens, and over the policy's sampled (mask 1) tokens only."""
    assert len(mine) == len(theirs) == len(mask) - 1 and mine
    d = [abs(a - b) for a, b in zip(mine, theirs, strict=True)]
    sampled = [x for x, m in zip(d, mask[1:], strict=True) if m]
    assert sampled
    return max(d), max(sampled)


def _hf_base_logprobs(model: Path, ids: list[int]) -> list[float]:
    import torch
    from transformers import AutoModelForCausalLM

    from turngym.trainers.engine import trainer_logprobs

    return trainer_logprobs(AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32), ids)


@pytest.mark.parametrize("which", ["full", "lora"])
def test_vllm_loads_the_exported_model_with_the_trainers_logprobs(which, served, grpo_run, lora_run, gn_model):
    run = {"full": grpo_run, "lora": lora_run}[which]
    out = served[which]
    if which == "lora":  # the export is a plain model: LoRA merged, no adapter files
        assert not any("adapter" in p.name for p in served["dirs"]["lora"].iterdir())
    every, sampled = _diffs(run.logprobs, out["logprobs"], run.mask)
    print(f"{which}: max |vLLM - trainer| logprob diff {every:.3g} (sampled tokens {sampled:.3g}), "
          f"{len(run.ids)} tokens, engine start {out['start_s']:.0f}s")
    assert every <= VLLM_EXPORT_TOL, (which, every)
    assert 1 <= len(out["reply"]) <= 4  # and it samples (greedy, up to 4 tokens)
    # and the run moved the model (measured ~0.2 / ~0.4), so the check above tells the trained weights apart
    assert _diffs(_hf_base_logprobs(gn_model, run.ids), out["logprobs"], run.mask)[0] > 1e-2

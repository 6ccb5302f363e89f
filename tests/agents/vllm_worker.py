"""Runs under .venv-vllm's python (vLLM is not in the main venv): plays episodes with the in-process
``vllm:`` agent and writes what happened as JSON for tests/agents/test_vllm.py to check.

    .venv-vllm/bin/python tests/agents/vllm_worker.py MODEL_DIR OUT.json

One engine start serves three runs: ten-turn episodes, constrained episodes, and episodes whose
backend calls fail or hang (turn timeout).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.agents.test_hf import Recording  # noqa: E402
from turngym.agents.base import make_agent  # noqa: E402
from turngym.agents.runner import group_tasks, run_episodes  # noqa: E402


def _calls(rec: Recording) -> list[dict]:
    """The recorded (prompt, generation) pairs as JSON for the test."""
    return [{"prompt": p, "ids": g.ids, "logprobs": g.logprobs, "eos_id": g.eos_id} for p, g in rec.calls]


GN = "turngym/GuessNumber-v0"
LONG = {"max_invalid_actions": 50}


async def main(model: str, out: str) -> None:
    agent = make_agent(f"vllm:{model}", max_new_tokens=6, seed=7, temperature=1.0, max_model_len=2048)
    rec = agent.backend = Recording(agent.backend)
    result: dict = {"eos_ids": sorted(rec.inner.eos_ids)}
    try:
        tasks = group_tasks(GN, seeds=range(4), group_size=2, env_kwargs=LONG, max_turns=10)
        eps = await run_episodes(tasks, agent, concurrency=8)
        result["plain"] = {"episodes": [e.model_dump(mode="json") for e in eps], "calls": _calls(rec)}

        rec.calls, rec.n = [], 0
        agent.sampling = agent.sampling.model_copy(update={"constrain": True, "max_new_tokens": 8})
        eps = await run_episodes(group_tasks(GN, seeds=range(3), env_kwargs=LONG, max_turns=4), agent, concurrency=3)
        result["constrained"] = {"episodes": [e.model_dump(mode="json") for e in eps], "calls": _calls(rec)}

        rec.calls, rec.n, rec.fail_on, rec.hang_on = [], 0, {0}, {1}
        agent.sampling = agent.sampling.model_copy(update={"constrain": False, "max_new_tokens": 4})
        tasks = group_tasks(GN, seeds=range(4), env_kwargs=LONG, max_turns=3)
        eps = await run_episodes(tasks, agent, concurrency=4, turn_timeout=10)
        result["errors"] = {"episodes": [e.model_dump(mode="json") for e in eps], "calls": _calls(rec)}
    finally:
        await rec.inner.aclose()
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

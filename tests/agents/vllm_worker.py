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

from turngym.agents.base import make_agent  # noqa: E402
from turngym.agents.llm import Backend  # noqa: E402
from turngym.agents.runner import group_tasks, run_episodes  # noqa: E402

GN = "turngym/GuessNumber-v0"
LONG = {"max_invalid_actions": 50}


class Recording(Backend):
    def __init__(self, inner: Backend) -> None:
        self.inner, self.tokenizer, self.name = inner, inner.tokenizer, inner.name
        self.calls: list = []
        self.fail_on: set[int] = set()
        self.hang_on: set[int] = set()
        self.n = 0

    async def generate(self, prompt, sampling, *, pattern=None, seed=None):
        k, self.n = self.n, self.n + 1
        if k in self.fail_on:
            raise RuntimeError(f"backend failure injected at call {k}")
        if k in self.hang_on:
            await asyncio.sleep(3600)
        gen = await self.inner.generate(prompt, sampling, pattern=pattern, seed=seed)
        self.calls.append({"prompt": list(prompt), "ids": gen.ids, "logprobs": gen.logprobs, "eos_id": gen.eos_id})
        return gen


async def main(model: str, out: str) -> None:
    agent = make_agent(f"vllm:{model}", max_new_tokens=6, seed=7, temperature=1.0, max_model_len=2048)
    rec = agent.backend = Recording(agent.backend)
    result: dict = {"eos_ids": sorted(rec.inner.eos_ids)}
    try:
        tasks = group_tasks(GN, seeds=range(4), group_size=2, env_kwargs=LONG, max_turns=10)
        eps = await run_episodes(tasks, agent, concurrency=8)
        result["plain"] = {"episodes": [e.model_dump(mode="json") for e in eps], "calls": rec.calls}

        rec.calls, rec.n = [], 0
        agent.sampling = agent.sampling.model_copy(update={"constrain": True, "max_new_tokens": 8})
        eps = await run_episodes(group_tasks(GN, seeds=range(3), env_kwargs=LONG, max_turns=4), agent, concurrency=3)
        result["constrained"] = {"episodes": [e.model_dump(mode="json") for e in eps], "calls": rec.calls}

        rec.calls, rec.n, rec.fail_on, rec.hang_on = [], 0, {0}, {1}
        agent.sampling = agent.sampling.model_copy(update={"constrain": False, "max_new_tokens": 4})
        tasks = group_tasks(GN, seeds=range(4), env_kwargs=LONG, max_turns=3)
        eps = await run_episodes(tasks, agent, concurrency=4, turn_timeout=10)
        result["errors"] = {"episodes": [e.model_dump(mode="json") for e in eps], "calls": rec.calls}
    finally:
        await rec.inner.aclose()
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

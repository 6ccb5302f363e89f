"""The OpenEnv side of perf/serve.py; runs in OpenEnv's own venv (.venv-openenv, scripts/setup/65-openenv.sh).

    .venv-openenv/bin/python perf/openenv_native.py serve --port 8001 [--max-sessions 1024] [--ws auto]
    .venv-openenv/bin/python perf/openenv_native.py client --url ws://127.0.0.1:8001 --episodes 500

``serve``: GuessNumber written natively for OpenEnv, with the rules of turngym/GuessNumber-v0 (a
secret 1..100 drawn from the seed by numpy's PCG64, as gymnasium's ``np_random`` draws it; a guess
``[N]`` is answered higher or lower; reward 1 for the right guess; 10 turns), an ``Environment``
subclass served by OpenEnv's ``create_app`` under uvicorn, as OpenEnv's own env servers run.

``client``: OpenEnv's ``GenericEnvClient`` (async, one WebSocket session) plays episodes with seeds
``--seed``, ``--seed + 1``, ... by binary search from the hints, timing every ``reset`` and ``step``
call (``time.perf_counter`` around the await). Prints one JSON line: the durations in seconds, the
successes, the calls (warm-up included) and the client's CPU seconds over them. The same client plays ``turngym serve`` and the native server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
import uuid
from typing import Any

LOW, HIGH, MAX_TURNS = 1, 100, 10
MOVE = re.compile(r"\[\s*(-?\d+)\s*\]")


def serve(port: int, max_sessions: int, ws: str) -> None:
    import numpy as np
    import uvicorn
    from openenv.core.env_server import Environment, create_app
    from openenv.core.env_server.types import Action, Observation, State

    class GuessAction(Action):
        text: str = ""

    class GuessObservation(Observation):
        text: str = ""

    class GuessNumberEnvironment(Environment):
        SUPPORTS_CONCURRENT_SESSIONS = True

        def __init__(self) -> None:
            super().__init__()
            self._state = State()
            self.secret = LOW
            self.turns = 0

        def reset(
            self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any
        ) -> GuessObservation:
            self.secret = int(np.random.default_rng(seed).integers(LOW, HIGH + 1))
            self.turns = 0
            self._state = State(episode_id=episode_id or uuid.uuid4().hex, step_count=0)
            return GuessObservation(
                text=f"I am thinking of a whole number from {LOW} to {HIGH}. Guess it: reply [N].",
                done=False,
            )

        def step(
            self, action: GuessAction, timeout_s: float | None = None, **kwargs: Any
        ) -> GuessObservation:
            self.turns += 1
            self._state.step_count += 1
            truncated = self.turns >= MAX_TURNS
            m = MOVE.search(action.text)
            if m is None:
                return GuessObservation(
                    text="Invalid action: reply [N].", reward=0.0, done=truncated
                )
            guess = int(m.group(1))
            if guess == self.secret:
                return GuessObservation(
                    text=f"{guess} is right!", reward=1.0, done=True
                )
            hint = "higher" if self.secret > guess else "lower"
            return GuessObservation(
                text=f"The secret is {hint} than {guess}.", reward=0.0, done=truncated
            )

        @property
        def state(self) -> State:
            return self._state

    app = create_app(
        GuessNumberEnvironment,
        GuessAction,
        GuessObservation,
        env_name="guess_number",
        max_concurrent_envs=max_sessions,
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws=ws)


def text_of(observation: dict[str, Any]) -> str:
    return str(observation.get("text", ""))


async def client(url: str, episodes: int, seed: int, warmup: int) -> dict[str, Any]:
    from openenv.core.generic_client import GenericEnvClient

    resets: list[float] = []
    steps: list[float] = []
    successes = calls = 0
    async with GenericEnvClient(base_url=url) as env:
        cpu0 = time.process_time()
        for k in range(-warmup, episodes):
            s = seed + k if k >= 0 else 1_000_000 + k
            t = time.perf_counter()
            await env.reset(seed=s)
            dt = time.perf_counter() - t
            calls += 1
            if k >= 0:
                resets.append(dt)
            lo, hi, done, result = LOW, HIGH, False, None
            while not done:
                guess = (lo + hi) // 2
                t = time.perf_counter()
                result = await env.step({"text": f"[{guess}]"})
                dt = time.perf_counter() - t
                calls += 1
                if k >= 0:
                    steps.append(dt)
                done = result.done
                text = text_of(result.observation)
                if "higher" in text:
                    lo = guess + 1
                elif "lower" in text:
                    hi = guess - 1
            if k >= 0 and result is not None and (result.reward or 0) > 0:
                successes += 1
        cpu = time.process_time() - cpu0
    return {
        "resets": resets,
        "steps": steps,
        "episodes": episodes,
        "successes": successes,
        "calls": calls,
        "client_cpu_s": cpu,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--max-sessions", type=int, default=64)
    s.add_argument(
        "--ws",
        default="auto",
        help="uvicorn's WebSocket implementation (auto: what OpenEnv users get)",
    )
    c = sub.add_parser("client")
    c.add_argument("--url", required=True)
    c.add_argument("--episodes", type=int, default=500)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--warmup", type=int, default=20)
    args = ap.parse_args()
    if args.cmd == "serve":
        serve(args.port, args.max_sessions, args.ws)
    else:
        print(
            json.dumps(
                asyncio.run(client(args.url, args.episodes, args.seed, args.warmup))
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()

"""OpenEnv's own client (openenv 0.10.0 from its own virtualenv, GenericEnvClient) plays turngym envs served by
`turngym serve`: the transcripts equal the same seeds and actions played in-process, and `openenv validate`
passes against the running server."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import REPO, require
from tests.serve.conftest import expert_plan, health, openenv_play, served, wait_for

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "env_id",
    [
        "turngym/GuessNumber-v0",
        pytest.param("turngym/Terminal-v0", marks=pytest.mark.docker),
        pytest.param("miniwob/click-button-v1", marks=pytest.mark.browser),
    ],
)
def test_generic_env_client_plays_like_in_process(env_id, tmp_path):
    seeds = [0, 1] if env_id != "turngym/GuessNumber-v0" else [0, 1, 2]
    plan, expected = expert_plan(env_id, seeds)
    assert all(ep["actions"] for ep in plan)
    with served(env_id) as srv:
        got = openenv_play(srv.url, plan, tmp_path)
        assert got["transcripts"] == expected
        assert got["transcripts"][-1][-1][2] is True  # the expert's last step ended the episode
        state = got["state"]
        assert (
            state["env_id"] == env_id and state["seed"] == seeds[-1] and state["step_count"] == len(plan[-1]["actions"])
        )
        # the client closed its session: its env (sandbox, browser context) is closed with it
        wait_for(lambda: health(srv.url)["envs_open"] == 0, 30, "the session's env closed")


def test_openenv_validate_passes():
    """`openenv validate URL` (the package's own CLI) against the root env and a second env's prefix."""
    openenv = REPO / ".venv-openenv" / "bin" / "openenv"
    require(openenv.exists(), "the virtualenv .venv-openenv is missing: run bash scripts/setup/65-openenv.sh")
    with served("turngym/GuessNumber-v0", "turngym/Wordle-v0") as srv:
        for url in (srv.url, srv.url + "/turngym/Wordle-v0"):
            out = subprocess.run(
                [str(openenv), "validate", url, "--json"], capture_output=True, text=True, timeout=120, check=False
            )
            assert out.returncode == 0, out.stdout + out.stderr
            report = json.loads(out.stdout)
            failed = [c["id"] for c in report["criteria"] if not c["passed"]]
            assert report["passed"] and not failed, failed
            assert report["standard_profile"] == "openenv-http/1.x" and report["mode"] == "simulation"

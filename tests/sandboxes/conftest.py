"""Fixtures of the Docker tests: the engine must be there (in CI it is: never skipped), and at the
end of the session no turngym container may be left by this process or by any dead owner."""

from __future__ import annotations

import os

import pytest

from tests.conftest import require


def docker_ready() -> str | None:
    """None if the engine answers and the sandbox image exists, else why not."""
    try:
        from turngym.sandboxes.reaper import docker_client

        client = docker_client()
        client.images.get("turngym/sandbox:latest")
    except Exception as e:
        return f"Docker or the sandbox image is missing ({e}); run scripts/setup/40-docker.sh"
    return None


def leftovers() -> list[str]:
    """turngym containers owned by this process or by a process that is gone."""
    from turngym.sandboxes.reaper import list_sandboxes

    return [
        f"{r.name} ({r.status}, owner pid {r.owner_pid})"
        for r in list_sandboxes()
        if r.owner_alive is False or r.owner_pid == str(os.getpid())
    ]


@pytest.fixture(scope="session", autouse=True)
def no_leftover_containers():
    """Runs the session, then asserts that nothing of ours is left running."""
    reason = docker_ready()
    require(reason is None, reason or "")
    yield
    import time

    deadline = time.monotonic() + 20  # containers of closed pools may still be in auto-removal
    while (left := leftovers()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"turngym containers left after the tests: {left}"

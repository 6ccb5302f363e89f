"""Sandboxes: isolated places where envs run the agent's actions.

    Sandbox, ExecResult        the contract (base.py)
    DockerSandbox, SandboxConfig   a Docker container with a fast exec channel (docker.py, helper.py)
    SandboxPool                the warm pool (pool.py); the reaper of orphaned containers (reaper.py)

Names load lazily, so importing this package imports neither the docker SDK nor Playwright.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Sandbox": "turngym.sandboxes.base",
    "ExecResult": "turngym.sandboxes.base",
    "DockerSandbox": "turngym.sandboxes.docker",
    "SandboxConfig": "turngym.sandboxes.docker",
    "SandboxPool": "turngym.sandboxes.pool",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'turngym.sandboxes' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)

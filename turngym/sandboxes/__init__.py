"""Sandboxes: isolated places where envs run the agent's actions.

    Sandbox, ExecResult        the contract (base.py)
    DockerSandbox, SandboxConfig   a Docker container with a fast exec channel (docker.py, helper.py)
    SandboxPool                the warm pool (pool.py); the reaper of orphaned containers (reaper.py)

Names load lazily, so importing this package imports neither the docker SDK nor Playwright.
"""

from __future__ import annotations

from turngym.core.lazy import lazy_exports

__all__, __getattr__ = lazy_exports(
    __name__,
    {
        "Sandbox": "base",
        "ExecResult": "base",
        "DockerSandbox": "docker",
        "SandboxConfig": "docker",
        "SandboxPool": "pool",
    },
)

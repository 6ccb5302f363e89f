"""Names a package exports without importing their modules until first use (Gymnasium's habit), so that
``import turngym.sandboxes`` imports neither the docker SDK nor Playwright, and reading ArCHer's config
imports no torch.

    __all__, __getattr__ = lazy_exports(__name__, {"SandboxPool": "pool", "DockerSandbox": "docker"})
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[list[str], Callable[[str], Any]]:
    """``(__all__, __getattr__)`` for ``package``: each name of ``exports`` is loaded from its submodule
    (relative to ``package``) when first asked for."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return sorted(exports), __getattr__

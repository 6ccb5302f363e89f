"""The layering of DESIGN.md holds in the imports: nothing lower in the chain imports anything higher (envs
never import agents or trainers; the core imports none of them nor envs; sandboxes import nothing of envs).
A static check of every module's imports, so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "turngym"
#: package -> what no module under it may import
FORBIDDEN = {
    "envs": ("turngym.agents", "turngym.trainers"),
    "core": ("turngym.agents", "turngym.trainers", "turngym.envs"),
    "sandboxes": ("turngym.envs", "turngym.agents", "turngym.trainers"),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in ``path``, at any depth (also inside functions)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_never_import_higher_ones(package):
    banned = FORBIDDEN[package]
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
        for path in sorted((PACKAGE / package).rglob("*.py"))
        for line, module in imported_modules(path)
        if module in banned or module.startswith(tuple(f"{b}." for b in banned))
    ]
    assert found == []


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from turngym.agents.partner import make_partner\n    import turngym.agents\n")
    assert imported_modules(module) == [(2, "turngym.agents.partner"), (3, "turngym.agents")]

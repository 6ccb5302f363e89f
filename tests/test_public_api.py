"""The names ``import turngym`` gives are exactly the ones we mean to keep stable."""

from __future__ import annotations

import inspect

import turngym
import turngym.core.errors as errors

PUBLIC = [
    "ActionError",
    "BackendError",
    "CheckFailed",
    "ConfigError",
    "EnvUnavailable",
    "Episode",
    "EpisodeOver",
    "GameStuck",
    "LearnerError",
    "Message",
    "Observation",
    "PageCrashed",
    "PageError",
    "PageHung",
    "RegistryError",
    "RemoteEnvError",
    "RolloutError",
    "SandboxError",
    "ServeError",
    "SnapshotError",
    "SnapshotUnsupported",
    "StaleWeightsError",
    "TemplateError",
    "ToolCall",
    "ToolSpec",
    "Turn",
    "TurnEnv",
    "TurngymError",
    "__version__",
    "env_info",
    "list_envs",
    "make",
    "register",
]


def test_all_is_exactly_the_public_api():
    assert sorted(turngym.__all__) == sorted(PUBLIC)
    assert len(set(turngym.__all__)) == len(turngym.__all__)


def test_every_public_name_resolves():
    for name in turngym.__all__:
        assert getattr(turngym, name) is not None, name


def _exceptions(module: object) -> dict[str, type[BaseException]]:
    return {n: v for n, v in vars(module).items() if inspect.isclass(v) and issubclass(v, BaseException)}


#: BaseExceptions that cut a call from inside (``except Exception`` must not stop them) and never escape turngym
CONTROL_FLOW = {"TimeUp"}


def test_every_exception_is_in_the_tree_and_exported():
    defined = {n for n, v in _exceptions(errors).items() if v.__module__ == errors.__name__}
    assert defined == set(errors.__all__) - {"did_you_mean"}
    for name in defined:
        cls = getattr(errors, name)
        assert name in errors.__doc__, f"{name} is missing from the tree drawn in turngym.core.errors"
        if name in CONTROL_FLOW:  # a BaseException that never escapes turngym: outside the tree, not exported
            assert not issubclass(cls, Exception) and not hasattr(turngym, name), name
            continue
        assert issubclass(cls, turngym.TurngymError), name
        assert getattr(turngym, name) is cls, f"{name} is not exported from turngym"


def test_secondary_bases_keep_old_except_clauses_working():
    assert issubclass(turngym.StaleWeightsError, RuntimeError)
    assert issubclass(turngym.BackendError, RuntimeError)
    assert issubclass(turngym.ConfigError, ValueError)
    assert issubclass(turngym.RegistryError, KeyError)
    assert issubclass(turngym.CheckFailed, AssertionError)


def test_the_modules_that_raise_them_use_the_same_classes():
    from turngym.agents.conversation import TemplateError
    from turngym.agents.openai import BackendError
    from turngym.core.checker import CheckFailed
    from turngym.trainers.engine import StaleWeightsError

    assert TemplateError is turngym.TemplateError and CheckFailed is turngym.CheckFailed
    assert BackendError is turngym.BackendError and StaleWeightsError is turngym.StaleWeightsError
    from turngym.sandboxes.browser import PageCrashed, PageError, PageHung

    assert (PageError, PageCrashed, PageHung) == (turngym.PageError, turngym.PageCrashed, turngym.PageHung)


def test_no_module_defines_an_exception_outside_the_tree():
    import ast
    from pathlib import Path

    package = Path(turngym.__file__).parent
    found = []
    for path in package.rglob("*.py"):
        if path == Path(errors.__file__):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases]
                if any(b.endswith(("Error", "Exception", "Failed", "Unavailable")) or b in errors.__all__ for b in bases):
                    found.append(f"{path.relative_to(package)}: {node.name}")
    assert found == [], "define these in turngym/core/errors.py (and draw them in its tree): " + ", ".join(found)

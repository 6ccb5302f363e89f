"""README.md's "Write your own env" guide works as written: its Python blocks run, and its env passes
``turngym envs check`` and evaluates with ``--agent scripted``.

The guide is the part of README.md between ``<!-- guide:start`` and ``<!-- guide:end -->``. A Python block
whose first line is ``# path/to/file.py`` is that file of the reader's project; every other Python block is
a script run (in order, each in a fresh namespace) in the project's directory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TURNGYM = Path(sys.executable).with_name("turngym")
ENV_ID = "mypkg.envs:mypkg/AddUp-v0"

RUN_BLOCKS = """
import json, sys, traceback
sys.path.insert(0, ".")
for i, code in enumerate(json.load(open(sys.argv[1]))):
    try:
        exec(compile(code, f"<guide block {i}>", "exec"), {"__name__": "__main__"})
    except BaseException:
        print(f"guide block {i} failed:\\n{code}", file=sys.stderr)
        traceback.print_exc()
        sys.exit(1)
"""


def guide() -> str:
    text = README.read_text()
    start, end = text.find("<!-- guide:start"), text.find("<!-- guide:end -->")
    assert 0 <= start < end, "README.md lost its guide markers <!-- guide:start ... --> and <!-- guide:end -->"
    return text[start:end]


def python_blocks() -> tuple[dict[str, str], list[str]]:
    """The guide's files (path -> text) and its scripts."""
    files, scripts = {}, []
    for block in re.findall(r"^```python\n(.*?)^```", guide(), re.DOTALL | re.MULTILINE):
        first = block.split("\n", 1)[0]
        m = re.fullmatch(r"# ([\w/]+\.py)", first)
        if m:
            files[m.group(1)] = block
        else:
            scripts.append(block)
    return files, scripts


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The reader's project: the guide's files, plus the ``__init__.py`` of each package they are in."""
    root = tmp_path_factory.mktemp("guide")
    files, _ = python_blocks()
    assert "mypkg/envs.py" in files, "the guide's env must be the block that starts with '# mypkg/envs.py'"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(text)
    return root


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"COLUMNS": "200"}
    return subprocess.run(list(args), capture_output=True, text=True, timeout=300, cwd=cwd, env=env, check=False)


def test_the_guide_has_what_a_new_user_needs():
    text = guide()
    for must in (
        'info["success"]',
        "instance_hash",
        "ActionError",
        "max_invalid_actions",
        "invalid_penalty",
        "uses up a turn",
        "expert",
        "JsonToolCall",
        "NativeToolCalls",
        "TaggedBlock",
        "ToolSpec",
        "areset",
        "blocking = True",
        "turngym.envs",
        "module:id",
        "turngym envs check",
        "turngym eval",
        "turngym init",
    ):
        assert must in text, must
    _, scripts = python_blocks()
    assert len(scripts) >= 3


def test_the_guides_python_blocks_run(project, tmp_path):
    _, scripts = python_blocks()
    blocks = tmp_path / "blocks.json"
    blocks.write_text(json.dumps(scripts))
    r = run(sys.executable, "-c", RUN_BLOCKS, str(blocks), cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_guides_env_passes_envs_check_and_evaluates(project, tmp_path):
    r = run(str(TURNGYM), "envs", "check", ENV_ID, cwd=project)
    assert r.returncode == 0 and f"ok   {ENV_ID}" in r.stdout, r.stdout + r.stderr
    suite = project / "my_suite.yaml"
    suite.write_text(f"name: my_suite\nepisodes: 5\nenvs:\n  - id: {ENV_ID}\n")
    out = tmp_path / "run"
    r = run(str(TURNGYM), "eval", "--suite", str(suite), "--agent", "scripted", "--out", str(out), cwd=project)
    assert r.returncode == 0, r.stdout + r.stderr
    episodes = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 5 and all(e["success"] for e in episodes)


def test_help_turnenv_has_the_contract():
    import turngym

    doc = turngym.TurnEnv.__doc__
    for must in (
        'info["task_id"]',
        'info["instance_hash"]',
        'info["success"]',
        "ActionError",
        "invalid_penalty",
        "max_invalid_actions",
        "expert",
        "instance_state",
        "legal_actions",
        "JsonToolCall",
        "areset",
        "blocking = True",
        "turngym.envs",
        '"module:namespace/Env-v0"',
        "turngym init",
    ):
        assert must in doc, must

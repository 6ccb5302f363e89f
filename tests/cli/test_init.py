"""``turngym init``: the package it writes installs, passes ``turngym envs check``, evaluates with the scripted
agent and passes its own test, as generated; a mistake in NAME or ``--out`` exits 2 with one paragraph.

The package is installed without network and without touching the venv: ``pip install --no-deps
--no-build-isolation --target SITE``, then the commands run with ``PYTHONPATH=SITE``, where the
``turngym.envs`` entry point of its ``.dist-info`` is found.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TURNGYM = Path(sys.executable).with_name("turngym")


def run(*args: str, cwd: Path, site: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("PYTHONPATH", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return subprocess.run(list(args), capture_output=True, text=True, timeout=300, cwd=cwd, env=env, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``turngym init my-envs`` in a fresh directory, installed into ``site``."""
    tmp = tmp_path_factory.mktemp("init")
    r = run(str(TURNGYM), "init", "my-envs", cwd=tmp)
    assert r.returncode == 0, r.stderr
    root, site = tmp / "my-envs", tmp / "site"
    r = run(
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
        "--no-deps",
        "--no-build-isolation",
        "--target",
        str(site),
        str(root),
        cwd=tmp,
    )
    assert r.returncode == 0, r.stderr
    return root, site


@pytest.mark.slow
def test_the_generated_package_passes_envs_check_and_evaluates(installed):
    root, site = installed
    assert sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "egg-info" not in str(p) and "build" not in p.parts
    ) == [
        "README.md",
        "my_envs/__init__.py",
        "my_envs/envs.py",
        "pyproject.toml",
        "suites/my_envs.yaml",
        "tests/test_envs.py",
    ]
    r = run(str(TURNGYM), "envs", "check", "my_envs/AddUp-v0", cwd=root, site=site)
    assert r.returncode == 0 and "ok   my_envs/AddUp-v0" in r.stdout, r.stdout + r.stderr
    r = run(str(TURNGYM), "envs", "info", "my_envs/AddUp-v0", cwd=root, site=site)
    assert "my-envs 0.1.0 (turngym.envs entry point 'my_envs')" in r.stdout, r.stdout  # not "turngym"
    out = root.parent / "run"
    r = run(
        str(TURNGYM),
        "eval",
        "--suite",
        "suites/my_envs.yaml",
        "--agent",
        "scripted",
        "--out",
        str(out),
        cwd=root,
        site=site,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert "1.0" in json.dumps(summary) and (out / "episodes.jsonl").read_text().count("\n") == 20


@pytest.mark.slow
def test_the_generated_test_passes(installed):
    root, site = installed
    r = run(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests", cwd=root, site=site)
    assert r.returncode == 0 and "2 passed" in r.stdout, r.stdout + r.stderr


def test_a_module_id_reaches_the_generated_env_without_installing(tmp_path):
    from turngym.cli.init import scaffold

    scaffold("addup-q9", tmp_path / "pkg")
    r = run(str(TURNGYM), "envs", "check", "addup_q9.envs:addup_q9/AddUp-v0", cwd=tmp_path / "pkg")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize(
    ("name", "out", "message"),
    [
        ("1bad", None, "NAME '1bad' is not a package name: it must start with a letter"),
        ("my envs", None, "NAME 'my envs' is not a package name"),
        ("json", None, "NAME 'json' gives the Python package 'json', which is a keyword or the name of a module"),
        ("class", None, "NAME 'class' gives the Python package 'class'"),
        ("ok-name", "full", "full already exists and is not an empty directory: turngym init never overwrites"),
        ("ok-name", "afile", "afile already exists and is not an empty directory"),
    ],
)
def test_a_mistake_names_the_value_and_the_fix_and_writes_nothing(tmp_path, name, out, message):
    from turngym.cli.init import scaffold
    from turngym.core.errors import ConfigError

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    (tmp_path / "afile").write_text("mine")
    with pytest.raises(ConfigError, match=re.escape(message)):
        scaffold(name, tmp_path / (out or name))
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine" and sorted(os.listdir(tmp_path)) == ["afile", "full"]


def test_a_mistake_on_the_command_line_is_one_paragraph_and_exit_2(tmp_path):
    r = run(str(TURNGYM), "init", "1bad", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("error: NAME '1bad' is not a package name") and not r.stdout


def test_an_empty_out_directory_is_fine(tmp_path):
    from turngym.cli.init import scaffold

    (tmp_path / "empty").mkdir()
    written = scaffold("fine", tmp_path / "empty")
    assert tmp_path / "empty" / "fine" / "envs.py" in written
    assert 'fine = "fine.envs:register_envs"' in (tmp_path / "empty" / "pyproject.toml").read_text()

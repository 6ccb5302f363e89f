"""Third-party envs through the ``turngym.envs`` entry-point group, with a real package installed by pip.

tests/data/turngym_fixture_plugin is a separate package (its own pyproject.toml) whose entry point
registers ``fixtureq7z/Parity-v0``. The test installs it into the running venv, checks that a fresh
``turngym`` process lists and makes the env without importing the package by hand, then uninstalls it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
DIST = "turngym-fixture-plugin-q7z"
TURNGYM = Path(sys.executable).with_name("turngym")


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args, "-q", "--disable-pip-version-check"],
        capture_output=True, text=True, timeout=300,
    )


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    src = tmp_path_factory.mktemp("plugin") / "plugin"
    shutil.copytree(DATA / "turngym_fixture_plugin", src)  # the build writes into the source tree
    r = pip("install", "--no-deps", "--no-build-isolation", str(src))
    assert r.returncode == 0, r.stderr
    try:
        yield
    finally:
        r = pip("uninstall", "-y", DIST)
        assert r.returncode == 0, r.stderr
        assert subprocess.run([sys.executable, "-m", "pip", "show", DIST], capture_output=True).returncode == 1


def test_an_installed_package_adds_its_env(installed_plugin):
    r = subprocess.run([str(TURNGYM), "envs", "list"], capture_output=True, text=True, timeout=120,
                       env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert "fixtureq7z/Parity-v0" in r.stdout and "Call the parity of a hidden number" in r.stdout
    code = (
        "import turngym, sys\n"
        "env = turngym.make('fixtureq7z/Parity-v0')\n"
        "obs, info = env.reset(seed=1)\n"
        "assert 'tgfixture_q7z' in sys.modules and info['instance_hash']\n"
        "obs, r, term, trunc, info = env.step('[even]')\n"
        "print(obs.last_text, term, info['success'] == (r == 1.0))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("It was ") and r.stdout.strip().endswith("True True")
    r = subprocess.run([str(TURNGYM), "envs", "check", "fixtureq7z/Parity-v0"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_gymnasium_make_finds_a_plugin_id_right_after_import_turngym(installed_plugin):
    code = (
        "import sys, turngym, gymnasium\n"
        "assert 'tgfixture_q7z' not in sys.modules  # nothing loaded the plugin yet\n"
        "env = gymnasium.make('fixtureq7z/Parity-v0')\n"
        "obs, info = env.reset(seed=1)\n"
        "obs, r, term, trunc, info = env.step('[odd]')\n"
        "print(type(env).__name__, env.max_turns, term, gymnasium.spec('fixtureq7z/Parity-v0').id)\n"
        "print(gymnasium.make('fixtureq7z/Parity-v0', max_episode_steps=4).max_turns)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["TurnLimit", "1", "True", "fixtureq7z/Parity-v0", "4"]

"""The set-up steps (scripts/setup/) on the failure modes seen on fresh machines, in bash subprocesses
with stand-ins: apt sources in temporary directories (``APT_ETC``), and ``docker``, ``dockerd``,
``pgrep``, ``debootstrap`` and ``turngym`` replaced by small scripts on ``PATH``. Nothing here
touches the real Docker engine or /etc."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT = "http://deb.debian.org/debian"

DEB822 = """\
Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
"""


def mirror(etc: Path) -> subprocess.CompletedProcess[str]:
    """``debian_mirror`` under ``set -euo pipefail``, with apt's configuration read from ``etc``."""
    script = "set -euo pipefail; source scripts/setup/lib.sh; debian_mirror; echo done"
    env = {**os.environ, "APT_ETC": str(etc)}
    return subprocess.run(["bash", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=30)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # a fresh Debian 12 machine: deb822 sources only, no sources.list
        ({"sources.list.d/debian.sources": DEB822}, "http://mirror.example/debian"),
        ({"sources.list": "deb http://ftp.example/debian bookworm main\n"}, "http://ftp.example/debian"),
        ({"sources.list.d/a.list": "deb [arch=amd64] https://ftp.example/debian/ bookworm main\n"},
         "https://ftp.example/debian/"),
        ({}, DEFAULT),  # no sources at all
        ({"sources.list.d/": ""}, DEFAULT),  # an empty sources.list.d
        ({"sources.list": "# deb http://old.example/debian bookworm main\n"}, DEFAULT),  # commented out
        ({"sources.list.d/debian.sources": "# URIs: http://old.example/debian\nURIs: http://new.example/debian\n"},
         "http://new.example/debian"),
        ({"sources.list": "deb http://security.debian.org/debian-security bookworm-security main\n"}, DEFAULT),
        ({"sources.list": "deb http://ftp.example/ubuntu jammy main\n"}, DEFAULT),  # no URI ends in /debian
        ({"sources.list": ""}, DEFAULT),
    ],
    ids=["deb822-only", "one-line-only", "list-in-dir", "none", "empty-dir", "commented",
         "deb822-commented", "security-only", "no-debian-uri", "empty-file"],
)
def test_debian_mirror(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    for name, text in files.items():
        if name.endswith("/"):
            (tmp_path / name).mkdir(parents=True)
        else:
            write(tmp_path / name, text)
    res = mirror(tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [expected, "done"], res.stdout
    assert res.stderr == ""


def test_debian_mirror_missing_etc(tmp_path: Path) -> None:
    res = mirror(tmp_path / "absent")
    assert (res.returncode, res.stdout.splitlines()) == (0, [DEFAULT, "done"]), res.stderr


# -- 40-docker.sh with stand-ins --------------------------------------------------------------------
# state files under $FAKE: "up" (the daemon answers), "running" (a dockerd process exists),
# "image" (the base image exists); calls are logged to $FAKE/calls
STUBS = {
    "docker": """\
echo "docker $*" >> "$FAKE/calls"
case "$1" in
  info) [ -e "$FAKE/up" ] ;;
  version) echo "Error response from daemon: client version 1.51 is too new. Maximum supported API version is 1.41" >&2; exit 1 ;;
  image) [ -e "$FAKE/image" ] || [ "$3" != turngym/base:bookworm ] ;;
  import) cat > /dev/null; touch "$FAKE/image" ;;
  *) exit 0 ;;
esac
""",
    "dockerd": 'echo "dockerd $*" >> "$FAKE/calls"; touch "$FAKE/running" "$FAKE/up"\n',
    "pgrep": '[ "$*" = "-x dockerd" ] && [ -e "$FAKE/running" ]\n',
    "debootstrap": 'echo "debootstrap $*" >> "$FAKE/calls"; mkdir -p "$4/etc"\n',
    "turngym": 'echo "turngym $*" >> "$FAKE/calls"\n',
}


def docker_step(tmp_path: Path, *state: str, sources: str | None = DEB822) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    fake, bin_, root = tmp_path / "fake", tmp_path / "bin", tmp_path / "root"
    for d in (fake, bin_, root / "var/run/docker/containerd", tmp_path / "venv/bin", tmp_path / "stamps"):
        d.mkdir(parents=True, exist_ok=True)
    for name, body in STUBS.items():
        stub = (tmp_path / "venv/bin" if name == "turngym" else bin_) / name
        stub.write_text("#!/usr/bin/env bash\n" + body)
        stub.chmod(0o755)
    for s in state:
        (fake / s).touch()
    (root / "var/run/docker.pid").write_text("4242\n")  # what a killed dockerd leaves
    (root / "var/run/docker/containerd/containerd.pid").write_text("4243\n")
    if sources is not None:
        write(tmp_path / "apt/sources.list.d/debian.sources", sources)
    env = {
        **os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "FAKE": str(fake), "SETUP_ROOT": str(root),
        "APT_ETC": str(tmp_path / "apt"), "VENV": str(tmp_path / "venv"), "STAMPS": str(tmp_path / "stamps"),
        "REPO": str(REPO),
    }
    res = subprocess.run(["bash", "scripts/setup/40-docker.sh"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    calls = (fake / "calls").read_text().splitlines() if (fake / "calls").exists() else []
    return res, calls


def test_docker_step_starts_dockerd_and_builds_base(tmp_path: Path) -> None:
    """No dockerd, no base image, deb822 sources only (a fresh machine): dockerd is started after the
    stale pid files are cleared, the base image is bootstrapped from the configured mirror."""
    res, calls = docker_step(tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "starting dockerd" in res.stdout
    assert any(c.startswith("dockerd --bridge=none") for c in calls), calls
    assert not (tmp_path / "root/var/run/docker.pid").exists()
    assert not (tmp_path / "root/var/run/docker/containerd/containerd.pid").exists()
    boot = [c for c in calls if c.startswith("debootstrap")]
    assert len(boot) == 1 and boot[0].endswith(" http://mirror.example/debian"), calls
    assert any(c.startswith("docker import") for c in calls), calls
    assert any(c.startswith("turngym sandbox build --base turngym/base:bookworm") for c in calls), calls
    assert not any(c.startswith("docker version") for c in calls), "the CLI may be newer than dockerd: never ask"


def test_docker_step_no_apt_sources(tmp_path: Path) -> None:
    res, calls = docker_step(tmp_path, sources=None)
    assert res.returncode == 0, res.stdout + res.stderr
    assert [c for c in calls if c.startswith("debootstrap")][0].endswith(f" {DEFAULT}")


def test_docker_step_dockerd_answering(tmp_path: Path) -> None:
    """dockerd up and the base image there: nothing is started, nothing removed, nothing bootstrapped."""
    res, calls = docker_step(tmp_path, "up", "running", "image")
    assert res.returncode == 0, res.stdout + res.stderr
    assert not any(c.startswith(("dockerd", "debootstrap", "docker import")) for c in calls), calls
    assert (tmp_path / "root/var/run/docker.pid").exists()


def test_docker_step_dockerd_running_not_answering(tmp_path: Path) -> None:
    """A dockerd process that does not answer yet is waited for, its pid file kept, no second one started."""
    fake = tmp_path / "fake"
    fake.mkdir()
    # the running dockerd answers a moment later
    waiter = subprocess.Popen(["bash", "-c", f"sleep 2; touch {fake}/up"])
    try:
        res, calls = docker_step(tmp_path, "running", "image")
    finally:
        waiter.wait(timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "waiting for the running dockerd" in res.stdout
    assert not any(c.startswith("dockerd") for c in calls), calls
    assert (tmp_path / "root/var/run/docker.pid").exists()

"""Build contexts whose files come from package registries, fetched on the host (builds have no network).

An image directory may say what it needs besides its Dockerfile:

    requirements-<venv>.txt   pip requirements of one virtualenv: their wheels go to wheels/<venv>/
                              (and pip's own wheel to wheels/pip/, to install them without pip in the image)
    debs.txt                  Debian package names: they and whatever they need that the base image
                              lacks go to debs/ (resolved by apt against the base image's dpkg status)

``prepare_context`` copies such a directory into the cache (``$XDG_CACHE_HOME/turngym/images/<name>``)
and downloads there, once per content of those files and base image (a stamp file), so a rebuild is
offline. A directory without them is built as it is. The wheels match the base image's Python,
architecture and glibc, which ``prepare_context`` asks a throwaway container of the base.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from turngym.core.errors import SandboxError

_PROBE = (
    "import json, platform, sys; print(json.dumps({'python': '%d.%d' % sys.version_info[:2], "
    "'machine': platform.machine(), 'glibc': platform.libc_ver()[1]}))"
)
_INST = re.compile(r"^Inst (\S+) (?:\[[^]]*\] )?\((\S+)", re.MULTILINE)


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "turngym" / "images"


@contextlib.contextmanager
def cache_lock(name: str) -> Iterator[None]:
    """Hold the cache entry ``name`` for this process: two builds at once (two checkouts, a test beside
    ``make setup``) would otherwise fetch into, and build from, the same directory at the same time."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"{name}.lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def needs_fetch(context: Path) -> bool:
    return (context / "debs.txt").is_file() or any(context.glob("requirements-*.txt"))


def prepare_context(client: Any, context: Path, base: str) -> Path:
    """The build context of ``context``: itself, or a cached copy with the fetched files. See the module docstring."""
    if not needs_fetch(context):
        return context
    inputs = sorted(p for p in context.iterdir() if p.name == "debs.txt" or p.name.startswith("requirements-"))
    base_id = client.images.get(base).id
    digest = hashlib.sha256(base_id.encode())
    for p in inputs:
        digest.update(p.name.encode() + b"\0" + p.read_bytes())
    key = digest.hexdigest()[:16]
    out = cache_root() / context.name
    stamp = out / ".fetched"
    if not (stamp.is_file() and stamp.read_text() == key):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        probe = _run_base(client, base, ["sh", "-c", f'python3 -c "{_PROBE}" && cat /var/lib/dpkg/status'])
        first, _, status = probe.partition("\n")
        facts = json.loads(first)
        if (context / "debs.txt").is_file():
            fetch_debs(_names(context / "debs.txt"), status, out / "debs")
        reqs = [p for p in inputs if p.name.startswith("requirements-")]
        for req in reqs:
            fetch_wheels(["-r", str(req)], out / "wheels" / req.stem.removeprefix("requirements-"), facts)
        if reqs:
            fetch_wheels(["pip"], out / "wheels" / "pip", facts)
        stamp.write_text(key)
    for p in context.iterdir():  # the Dockerfile and the lists: always the current ones
        if p.is_file():
            shutil.copy2(p, out / p.name)
    return out


def fetch_debs(names: list[str], base_status: str, dest: Path) -> None:
    """Download ``names`` and the packages they need that the base (its dpkg status) lacks, at the
    versions the host's apt would install."""
    if shutil.which("apt-get") is None:
        raise SandboxError(
            f"fetching the Debian packages {names} needs apt-get on the host (a Debian bookworm machine); "
            "build this image on one, or install the packages in the Dockerfile from a local mirror"
        )
    dest.mkdir(parents=True, exist_ok=True)
    status = dest / ".base-status"
    status.write_text(base_status)
    sim = run_host(
        ["apt-get", "install", "-s", "--no-install-recommends", "-o", f"Dir::State::status={status}", *names],
        what=f"resolving the Debian packages {names} against the base image",
    )
    status.unlink()
    wanted = [f"{name}={version}" for name, version in _INST.findall(sim)]
    if wanted:
        run_host(["apt-get", "download", *wanted], what=f"downloading {len(wanted)} Debian packages", cwd=dest,
              fix="run `apt-get update` (the host's package lists may be stale) and build again")  # fmt: skip


def image_facts(client: Any, base: str) -> dict[str, str]:
    """The base image's Python version, machine and glibc, which wheels for it must match."""
    return json.loads(_run_base(client, base, ["python3", "-c", _PROBE]))


def fetch_wheels(args: list[str], dest: Path, facts: dict[str, str]) -> None:
    """``pip download`` binary wheels for the image's Python, architecture and glibc."""
    major, minor = facts["python"].split(".")
    glibc_minor = int(facts["glibc"].split(".")[1]) if facts.get("glibc") else 17
    platforms = [f"manylinux_2_{m}_{facts['machine']}" for m in range(17, glibc_minor + 1)]
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--only-binary=:all:",
           "--python-version", f"{major}.{minor}", "--implementation", "cp", "--abi", f"cp{major}{minor}",
           "--platform", f"manylinux2014_{facts['machine']}", *(x for p in platforms for x in ("--platform", p)),
           "-d", str(dest), *args]  # fmt: skip
    run_host(cmd, what=f"downloading the wheels of {' '.join(args)}")


def _names(path: Path) -> list[str]:
    return [w for line in path.read_text().splitlines() for w in line.split("#", 1)[0].split()]


def run_host(cmd: list[str], *, what: str, cwd: Path | None = None, fix: str = "") -> str:
    """Run ``cmd`` on the host; a ``SandboxError`` naming ``what`` failed, its output's tail and ``fix``."""
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        fix = fix or "check that the package registry is reachable from this machine and build again"
        raise SandboxError(f"{what} failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-800:]}; {fix}")
    return r.stdout


def _run_base(client: Any, base: str, cmd: list[str]) -> str:
    import docker.errors

    try:
        return client.containers.run(base, cmd, remove=True, network_mode="none", stderr=True).decode()
    except docker.errors.ImageNotFound:
        raise SandboxError(
            f"the base image {base!r} is missing: run `turngym sandbox build` (it builds it first)"
        ) from None
    except docker.errors.ContainerError as e:
        raise SandboxError(f"probing the base image {base!r} failed: {e}; the image needs python3 and dpkg") from None

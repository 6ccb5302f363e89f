"""``turngym serve --docker``: the env server inside a turngym container, reached through a local proxy.

    with DockerServer(config) as server:       # config: a ServeConfig (host, port: where the proxy listens)
        print(server.url)                      # http://127.0.0.1:PORT, as the plain server prints it
    serve_in_docker(config, on_ready=print)    # what the CLI runs: until SIGINT/SIGTERM

The container runs the server of ``server.py`` with the limits of a sandbox (memory, CPUs, pids; no
network, a non-root user, a read-only root with tmpfs at /work and /tmp, no capabilities). No port can
be published from a container without network, so the server listens on a Unix socket in a host
directory bind-mounted at /run/turngym, and this process forwards ``host:port`` to it byte for byte
(HTTP and WebSocket alike). The tool envs in there run their commands in that container with
``LocalSandbox`` (``TURNGYM_SANDBOX=local``): the Docker socket is never mounted.

Clean-up: the container carries the owner labels of every turngym container (``reaper.owner_labels``),
is stopped and removed at a normal exit, by ``cleanup_own`` at interpreter exit, and else by the
reaper (``turngym sandbox gc``). The server also stops by itself when this process goes away: it
reads a FIFO in the shared directory whose only writer is this process, so end of file means gone.

The image ``turngym/serve:latest`` (``build_serve_image``; ``images/serve/serve.Dockerfile``) is the
sandbox image plus a virtualenv with turngym and its serving dependencies, installed from wheels that
the host downloads (the build has no network), at the versions the host has. The turngym copy in it
is labelled with a digest of the host's package; a launch whose source differs rebuilds that last
layer first (a second or two), so the container always runs the code the host runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.metadata
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import turngym
from turngym.core.errors import SandboxError
from turngym.sandboxes.docker import SandboxConfig
from turngym.sandboxes.images import docker_build, fetch
from turngym.sandboxes.local import MODE_ENV, WORKDIR_ENV
from turngym.sandboxes.reaper import (
    LABEL,
    docker_client,
    install_exit_cleanup,
    owner_labels,
    reap,
    remove_container,
)

if TYPE_CHECKING:
    from turngym.serve.server import ServeConfig

SERVE_IMAGE = "turngym/serve:latest"
BASE_IMAGE = "turngym/sandbox:latest"
IMAGE_DIR = Path(__file__).resolve().parents[1] / "sandboxes" / "images" / "serve"
#: where the shared directory (the socket, the owner FIFO) is inside the container
SHARED = "/run/turngym"
CONFIG_ENV = "TURNGYM_SERVE_CONFIG"
OWNER_FIFO_ENV = "TURNGYM_SERVE_OWNER_FIFO"
#: pure-Python packages published only as source: built into wheels on the host (any Python takes them)
PURE_SDISTS = ("chess",)
#: the limits of a serve container: one server, its envs and their commands
DEFAULT_LIMITS = SandboxConfig(image=SERVE_IMAGE, memory="2g", cpus=1.0, pids=512, work_size="512m", tmp_size="256m")


# -- the image ----------------------------------------------------------------------------------------
def source_digest() -> str:
    """A digest of the turngym package this process runs (its files, caches left out)."""
    root = Path(turngym.__file__).parent
    h = hashlib.sha256()
    for p in sorted(_package_files(root)):
        h.update(str(p.relative_to(root)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _package_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]


def image_current(client: Any, image: str = SERVE_IMAGE) -> bool:
    """Whether ``image`` exists and holds the turngym this process runs."""
    import docker.errors

    try:
        labels = client.api.inspect_image(image)["Config"].get("Labels") or {}
    except docker.errors.ImageNotFound:
        return False
    return labels.get(f"{LABEL}.source") == source_digest()


def build_serve_image(client: Any, *, base: str = BASE_IMAGE, log: Callable[[str], None] | None = None) -> str:
    """Build ``turngym/serve:latest`` FROM ``base`` (see the module docstring); returns the image id."""
    with fetch.cache_lock("serve"):
        context = _prepare_context(client, base, log or (lambda _m: None))
        return docker_build(
            client,
            context,
            tag=SERVE_IMAGE,
            base=base,
            dockerfile="serve.Dockerfile",
            buildargs={"SOURCE": source_digest()},
        )


def _prepare_context(client: Any, base: str, log: Callable[[str], None]) -> Path:
    """The build context in the cache: the wheels (fetched once per requirement list, host versions and
    base image), the Dockerfile and the lists, and a fresh copy of the turngym package."""
    root = fetch.cache_root() / "serve"
    constraints = _host_constraints()
    requirements = (IMAGE_DIR / "requirements.txt").read_text()
    base_id = client.images.get(base).id
    key = hashlib.sha256(f"{base_id}\x00{requirements}\x00{constraints}".encode()).hexdigest()[:16]
    wheels, stamp = root / "wheels", root / ".fetched"
    if not (stamp.is_file() and stamp.read_text() == key):
        log(f"fetching the wheels of {SERVE_IMAGE} into {wheels} (once per set of versions)")
        shutil.rmtree(root, ignore_errors=True)
        wheels.mkdir(parents=True)
        (root / "constraints.txt").write_text(constraints)
        _fetch_wheels(client, base, root, wheels)
        stamp.write_text(key)
    shutil.copy2(IMAGE_DIR / "serve.Dockerfile", root / "serve.Dockerfile")
    shutil.copy2(IMAGE_DIR / "requirements.txt", root / "requirements.txt")
    (root / "constraints.txt").write_text(constraints)
    src = Path(turngym.__file__).parent
    shutil.rmtree(root / "turngym", ignore_errors=True)
    shutil.copytree(src, root / "turngym", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return root


def _host_constraints() -> str:
    """``name==version`` of every distribution the host has (turngym left out): the image gets the same."""
    pins = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() != "turngym":
            pins[name.lower()] = f"{name}=={dist.version}"
    return "".join(line + "\n" for _, line in sorted(pins.items()))


def _fetch_wheels(client: Any, base: str, root: Path, wheels: Path) -> None:
    facts = fetch.image_facts(client, base)
    constraints = root / "constraints.txt"
    pins = {line.split("==")[0].lower(): line for line in constraints.read_text().split()}
    pure = [pins.get(name, name) for name in PURE_SDISTS]
    fetch.run_host(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "-w",
            str(wheels),
            *pure,
        ],
        what=f"building wheels of {' '.join(pure)}",
    )
    requirements = ["--find-links", str(wheels), "-r", str(IMAGE_DIR / "requirements.txt"), "-c", str(constraints)]
    fetch.fetch_wheels(requirements, wheels, facts)
    fetch.fetch_wheels([pins.get("pip", "pip")], wheels / "pip", facts)


def ensure_image(client: Any, *, log: Callable[[str], None] | None = None) -> bool:
    """Build the serve image if it is missing or holds another turngym than this one; True if it built."""
    if image_current(client):
        return False
    if log is not None:
        log(f"building {SERVE_IMAGE} (turngym's source changed, or the image is missing)")
    build_serve_image(client, log=log)
    return True


# -- the launcher -------------------------------------------------------------------------------------
class DockerServer:
    """One serve container and the proxy to it. ``start()`` returns once ``/health`` answers; ``stop()``
    (safe twice) closes the proxy and removes the container. Use it on one event loop."""

    def __init__(
        self,
        config: ServeConfig,
        *,
        limits: SandboxConfig = DEFAULT_LIMITS,
        client: Any = None,
        startup_timeout: float = 60.0,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.config, self.limits, self.startup_timeout = config, limits, startup_timeout
        self._client = client
        self._log = log
        self.container_id: str | None = None
        self.url: str | None = None
        self.user = limits.user if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"
        self.startup_seconds: float | None = None
        self._dir: Path | None = None
        self._fifo_fd: int | None = None
        self._proxy: asyncio.AbstractServer | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._stopped = False

    @property
    def socket_path(self) -> Path:
        assert self._dir is not None
        return self._dir / "shared" / "serve.sock"

    async def start(self) -> str:
        """Start the container, wait for its health, listen on ``config.host:config.port``; the base URL."""
        try:
            if self._client is None:
                self._client = await asyncio.to_thread(docker_client)
            install_exit_cleanup()
            await asyncio.to_thread(reap, self._client)  # containers of owners that died (SIGKILL)
            await asyncio.to_thread(ensure_image, self._client, log=self._log)
            started = time.monotonic()
            await asyncio.to_thread(self._create_and_start)
            await self._wait_healthy(started)
            self.startup_seconds = time.monotonic() - started
            self._proxy = await asyncio.start_server(self._forward, self.config.host, self.config.port)
        except BaseException:
            await self.stop()
            raise
        port = self._proxy.sockets[0].getsockname()[1]
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        self.url = f"http://{host}:{port}"
        return self.url

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._proxy is not None:
            self._proxy.close()
        for task in list(self._pipes):
            task.cancel()
        if self.container_id is not None:
            await asyncio.to_thread(self._remove)
        if self._fifo_fd is not None:
            os.close(self._fifo_fd)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the container ------------------------------------------------------------------------------
    def _create_and_start(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="turngym-serve-"))  # 0700: only this user reaches the socket
        shared = self._dir / "shared"
        shared.mkdir()
        fifo = shared / "owner"
        os.mkfifo(fifo, 0o600)
        # our only writer end: when this process is gone, the server reads end of file and stops
        self._fifo_fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        user = self.user
        if os.getuid() == 0:
            uid, _, gid = user.partition(":")
            for p in (shared, fifo):
                os.chown(p, int(uid), int(gid or uid))
        inner = self.config.model_copy(update={"uds": f"{SHARED}/serve.sock", "host": "127.0.0.1", "port": 0})
        limits = self.limits.model_copy(update={"user": user})
        kw = limits.create_kwargs({**owner_labels(), f"{LABEL}.role": "serve"})
        kw["host_config"].update(init=True, auto_remove=False, binds={str(shared): {"bind": SHARED, "mode": "rw"}})
        host_config = self._client.api.create_host_config(**kw["host_config"])
        env = {
            CONFIG_ENV: inner.model_dump_json(),
            OWNER_FIFO_ENV: f"{SHARED}/owner",
            MODE_ENV: "local",
            WORKDIR_ENV: limits.workdir,
            "HOME": limits.workdir,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        out = self._client.api.create_container(
            limits.image,
            command=["/opt/turngym/bin/python", "-m", "turngym.serve.docker"],
            user=user,
            working_dir=limits.workdir,
            environment=env,
            labels=kw["labels"],
            host_config=host_config,
            name=f"turngym-serve-{uuid.uuid4().hex[:12]}",
            network_disabled=True,
        )
        self.container_id = out["Id"]
        self._client.api.start(self.container_id)

    async def _wait_healthy(self, started: float) -> None:
        deadline = started + self.startup_timeout
        checked = 0.0
        while True:
            if await _health(self.socket_path):
                return
            now = time.monotonic()
            if now - checked > 0.5:
                checked = now
                state = await asyncio.to_thread(self._state)
                if state.get("Status") not in ("created", "running"):
                    raise SandboxError(
                        f"the serve container {self.container_id[:12]} (image {self.limits.image}) exited with "
                        f"{state.get('ExitCode')} before its server answered: {await asyncio.to_thread(self._logs)}"
                    )
            if now > deadline:
                raise SandboxError(
                    f"the server in container {self.container_id[:12]} did not answer /health within "
                    f"{self.startup_timeout:g}s: {await asyncio.to_thread(self._logs) or 'no output'}"
                )
            await asyncio.sleep(0.05)

    def _state(self) -> dict[str, Any]:
        import docker.errors

        try:
            return self._client.api.inspect_container(self.container_id)["State"]
        except docker.errors.NotFound:
            return {"Status": "removed"}

    def _logs(self) -> str:
        try:
            return self._client.api.logs(self.container_id, tail=20).decode("utf-8", "replace").strip()[-1500:]
        except Exception as e:  # noqa: BLE001 - only for an error message
            return f"(no logs: {e})"

    def _remove(self) -> None:
        with contextlib.suppress(Exception):  # SIGTERM to the server: its sessions close their envs
            self._client.api.stop(self.container_id, timeout=5)
        remove_container(self._client, self.container_id)

    # -- the proxy ----------------------------------------------------------------------------------
    async def _forward(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        try:
            try:
                server_r, server_w = await asyncio.open_unix_connection(str(self.socket_path))
            except OSError:
                return  # the container is gone: the client sees a closed connection
            try:
                await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))
            finally:
                server_w.close()
        finally:
            client_w.close()
            self._pipes.discard(task)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


async def _health(sock: Path) -> bool:
    try:
        reader, writer = await asyncio.open_unix_connection(str(sock))
    except OSError:
        return False
    try:
        writer.write(b"GET /health HTTP/1.0\r\nHost: turngym\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readline(), 5)
        return b" 200 " in head
    except (TimeoutError, OSError):
        return False
    finally:
        writer.close()


def serve_in_docker(
    config: ServeConfig,
    *,
    on_ready: Callable[[str], None] | None = None,
    on_started: Callable[[DockerServer], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> None:
    """Run a ``DockerServer`` until SIGINT or SIGTERM; the container is removed on the way out."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        server = DockerServer(config, log=log)
        try:
            starting = asyncio.ensure_future(server.start())
            waiting = asyncio.ensure_future(stop.wait())
            await asyncio.wait({starting, waiting}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():  # stopped while starting
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await starting
                return
            waiting.cancel()
            url = starting.result()
            if on_started is not None:
                on_started(server)
            if on_ready is not None:
                on_ready(url)
            await stop.wait()
        finally:
            await server.stop()

    asyncio.run(main())


# -- inside the container -----------------------------------------------------------------------------
def _watch_owner(fifo: str) -> None:
    """Stop this server (SIGTERM to ourselves) once the host's launcher, the FIFO's only writer, is gone."""
    with open(fifo, "rb") as f:
        while f.read(4096):
            pass
    os.kill(os.getpid(), signal.SIGTERM)


def container_main() -> None:
    """The container's command: the server of ``$TURNGYM_SERVE_CONFIG`` on its Unix socket."""
    from turngym.serve.server import ServeConfig, serve

    config = ServeConfig.model_validate_json(os.environ[CONFIG_ENV])
    fifo = os.environ.get(OWNER_FIFO_ENV)
    if fifo:
        threading.Thread(target=_watch_owner, args=(fifo,), daemon=True, name="owner-watch").start()
    serve(config)


if __name__ == "__main__":
    container_main()

"""``turngym serve``: registered envs over the OpenEnv wire protocol, for any OpenEnv or MCP client."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError

from turngym.cli._common import USAGE, console, fail, fail_on
from turngym.core.errors import TurngymError

if TYPE_CHECKING:
    from turngym.serve.docker import DockerServer
    from turngym.serve.server import ServeConfig


def serve(
    env_ids: Annotated[
        list[str],
        typer.Argument(
            metavar="ID [ID ...]",
            help="registered env ids; the first is also served at /",
        ),
    ],
    host: Annotated[str, typer.Option(help="address to bind; anything but loopback needs --token")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind (0: any free port, printed at start)")] = 8000,
    uds: Annotated[str | None, typer.Option(help="listen on this Unix socket instead of host:port")] = None,
    max_sessions: Annotated[int, typer.Option(help="sessions (env instances) held at once")] = 64,
    max_sessions_per_client: Annotated[int | None, typer.Option(help="sessions one client address may hold")] = None,
    idle_timeout: Annotated[
        float,
        typer.Option(help="seconds after which an idle session and its env are closed (0: never)"),
    ] = 300.0,
    step_timeout: Annotated[float, typer.Option(help="seconds one reset or step may take")] = 600.0,
    max_message_bytes: Annotated[int, typer.Option(help="largest message or request body taken")] = 1 << 20,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="TURNGYM_SERVE_TOKEN",
            help="clients must send it ('Authorization: Bearer TOKEN')",
        ),
    ] = None,
    env_kwargs: Annotated[
        str,
        typer.Option("--kwargs", help="JSON object of keyword arguments for every env"),
    ] = "{}",
    docker: Annotated[
        bool,
        typer.Option(
            "--docker",
            help="run the server in a turngym container (sandbox limits, no network; tool envs run their "
            "commands in it) and forward host:port to it; builds turngym/serve:latest when needed",
        ),
    ] = False,
) -> None:
    """Serve envs over the OpenEnv wire protocol: WebSocket sessions at /ws (one env instance each), HTTP
    /reset /step /state /health /metadata /schema, and the env's tools over MCP at /mcp. Play one from
    turngym with `turngym.make("remote/ws://HOST:PORT")`, or with OpenEnv's GenericEnvClient."""
    from turngym.serve.server import ServeConfig, check_exposure, create_app
    from turngym.serve.server import serve as run

    try:
        kwargs = json.loads(env_kwargs)
        if not isinstance(kwargs, dict):
            raise ValueError("not a JSON object")  # noqa: TRY004 - caught right below, as json.loads errors are
    except ValueError as e:
        raise fail(
            f"--kwargs {env_kwargs!r} is not a JSON object ({e}): pass e.g. --kwargs '{{\"max_turns\": 8}}'",
            USAGE,
        ) from None
    try:
        config = ServeConfig(
            env_ids=env_ids,
            env_kwargs=kwargs,
            host=host,
            port=port,
            uds=uds,
            max_sessions=max_sessions,
            max_sessions_per_client=max_sessions_per_client,
            idle_timeout=idle_timeout,
            step_timeout=step_timeout,
            max_message_bytes=max_message_bytes,
            token=token,
        )
        check_exposure(config)
        create_app(config)  # an unknown env id fails here, before the socket is bound
    except ValidationError as e:
        first = e.errors()[0]
        raise fail(
            f"--{'-'.join(map(str, first['loc'])).replace('_', '-')}: {first['msg']}",
            USAGE,
        ) from None
    except TurngymError as e:
        raise fail_on(e) from None
    except ValueError as e:
        raise fail(str(e), USAGE) from None

    def ready(url: str) -> None:
        ws = url.replace("http://", "ws://", 1)
        gate = (
            "token required (Authorization: Bearer, or the WebSocket subprotocol bearer.TOKEN)"
            if config.token
            else "no token: loopback only"
        )
        console.print(
            f"serving {', '.join(env_ids)} at {url} ({ws}/ws); max {max_sessions} sessions; {gate}",
            highlight=False,
            soft_wrap=True,
        )
        console.print(f"play it: turngym.make({'remote/' + ws!r})", highlight=False)
        console.file.flush()

    if docker:
        if uds is not None:
            raise fail("--uds and --docker exclude each other: --docker listens on --host/--port", USAGE)
        _serve_in_docker(config, ready)
        return
    try:
        run(config, on_ready=ready)
    except OSError as e:
        raise fail(
            f"cannot listen on {uds or f'{host}:{port}'}: {e}; pick another --port (0 picks a free one)"
        ) from None


def _serve_in_docker(config: ServeConfig, ready: Callable[[str], None]) -> None:
    """``--docker``: the same server in a container (turngym.serve.docker), reached through a local proxy."""
    from turngym.serve.docker import serve_in_docker

    def started(server: DockerServer) -> None:
        console.print(
            f"container {server.container_id[:12]} ({server.limits.image}; network none, user {server.user}, "
            f"{server.limits.memory} memory, {server.limits.cpus:g} CPU) healthy in {server.startup_seconds:.2f}s",
            highlight=False,
            soft_wrap=True,
        )

    def log(message: str) -> None:
        console.print(message, highlight=False, soft_wrap=True)

    try:
        serve_in_docker(config, on_ready=ready, on_started=started, log=log)
    except TurngymError as e:
        raise fail_on(e) from None
    except OSError as e:
        raise fail(
            f"cannot listen on {config.host}:{config.port}: {e}; pick another --port (0 picks a free one)"
        ) from None

"""`turngym sandbox ...` subcommands (a sub-app mounted by turngym/cli/app.py).

    turngym sandbox build [--base IMAGE] [--only TAG]   the project's images, FROM the base
    turngym sandbox ls                                  every turngym container, with its owner
    turngym sandbox gc [--all-hosts] [--everything]     remove containers whose owner is gone
"""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Docker sandboxes: build the images, list and garbage-collect containers.", no_args_is_help=True)


def _client():
    from turngym.core.errors import SandboxError
    from turngym.sandboxes.reaper import docker_client

    try:
        return docker_client()
    except SandboxError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None


@app.command("build")
def build(
    base: Annotated[str, typer.Option(help="Base image of the project's Dockerfiles (ARG BASE).")] = "",
    only: Annotated[str | None, typer.Option(help="Build only the image with this tag.")] = None,
) -> None:
    """Build the sandbox image (FROM --base) and the Terminal tasks' images (FROM the sandbox image)."""
    from turngym.core.errors import SandboxError
    from turngym.envs.tools.terminal import task_images
    from turngym.sandboxes.images import DEFAULT_BASE, ImageSpec, build_image, project_images
    from turngym.serve.docker import SERVE_IMAGE, build_serve_image

    client = _client()
    specs = project_images() + [ImageSpec(tag, path, base="turngym/sandbox:latest") for tag, path in task_images()]
    serve_image = only in (None, SERVE_IMAGE)  # `turngym serve --docker`'s, FROM the sandbox image (last)
    if only:
        specs = [s for s in specs if s.tag == only]
        if not specs and not serve_image:
            typer.echo(f"error: no image {only!r}; the images are {', '.join(s.tag for s in project_images())} ...", err=True)
            raise typer.Exit(2)
    for spec in specs:
        try:
            image_id = build_image(client, spec, base=base or DEFAULT_BASE)
        except SandboxError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"built {spec.tag} ({image_id[7:19]}) from {spec.context}")
    if serve_image:
        try:
            image_id = build_serve_image(client, log=typer.echo)
        except SandboxError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"built {SERVE_IMAGE} ({image_id[7:19]}) from turngym/sandboxes/images/serve and this turngym")


@app.command("ls")
def ls() -> None:
    """Every turngym container: id, status, run, owner and whether the owner still runs."""
    from rich.console import Console
    from rich.table import Table

    from turngym.sandboxes.reaper import list_sandboxes

    records = list_sandboxes(_client())
    table = Table(title=f"{len(records)} turngym container{'s' if len(records) != 1 else ''}")
    for col in ("id", "name", "image", "status", "run", "owner", "owner alive"):
        table.add_column(col, overflow="fold")
    for r in records:
        alive = {True: "yes", False: "no (gc removes it)", None: "other host"}[r.owner_alive]
        table.add_row(r.id, r.name, r.image, r.status, r.run or "-", f"{r.owner_host}:{r.owner_pid}", alive)
    Console(width=120).print(table)


@app.command("gc")
def gc(
    all_hosts: Annotated[bool, typer.Option("--all-hosts", help="Also remove containers owned on other hosts.")] = False,
    everything: Annotated[
        bool, typer.Option("--everything", help="Remove every turngym container, even of live owners.")
    ] = False,
) -> None:
    """Remove turngym containers whose owner process is gone (after a crash or a SIGKILL)."""
    from turngym.sandboxes.reaper import reap

    removed = reap(_client(), all_hosts=all_hosts, everything=everything)
    for r in removed:
        typer.echo(f"removed {r.id} {r.name} (owner {r.owner_host}:{r.owner_pid}, run {r.run or '-'})")
    typer.echo(f"{len(removed)} container{'s' if len(removed) != 1 else ''} removed")

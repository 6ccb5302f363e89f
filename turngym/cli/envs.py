"""``turngym envs list|info|check``: the registry, as a table."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from turngym.cli._common import USAGE, console, fail, fail_on

app = typer.Typer(help="List, describe and check environments.", no_args_is_help=True)


@app.command("list")
def envs_list(
    all_: Annotated[bool, typer.Option("--all", help="Also list envs that cannot run here, with the reason.")] = False,
    namespace: Annotated[str | None, typer.Option(help="Only ids in this namespace, e.g. turngym.")] = None,
) -> None:
    """The registered environments."""
    from turngym.core.registry import list_envs

    infos = list_envs(include_unavailable=all_, namespace=namespace)
    title = f"{len(infos)} env{'s' if len(infos) != 1 else ''}"
    table = Table(title=title + ("" if all_ else " that can run here (--all lists every one)"))
    for col in ("id", "modality", "sandbox", "max turns"):
        table.add_column(col, no_wrap=True)
    table.add_column("description", overflow="fold", ratio=3)
    if all_:
        table.add_column("unavailable because", overflow="fold", style="yellow", ratio=2)
    for info in infos:
        row = [info.id, info.modality, info.sandbox, str(info.max_turns or "-"), info.description]
        if all_:
            row.append(info.unavailable_reason() or "")
        table.add_row(*row)
    console.print(table)


@app.command("info")
def envs_info(env_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Everything the registry knows about one env."""
    from turngym.core.errors import RegistryError
    from turngym.core.registry import env_info

    try:
        info = env_info(env_id)
    except RegistryError as e:
        raise fail_on(e) from None
    table = Table(show_header=False, title=info.id)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    reason = info.unavailable_reason()
    fields: dict[str, Any] = {
        "description": info.description,
        "entry point": info.entry_point,
        "modality": info.modality,
        "sandbox": info.sandbox,
        "max turns": info.max_turns,
        "reward range": info.reward_range,
        "tags": ", ".join(info.tags),
        "scripted expert": info.expert or "-",
        "requires": ", ".join(info.requires) or "-",
        "kwargs": info.kwargs or "-",
        "source": info.source,
        "can run here": "yes" if reason is None else f"no: {reason}",
    }
    for k, v in fields.items():
        table.add_row(k, str(v))
    console.print(table)


@app.command("check")
def envs_check(
    env_id: Annotated[str | None, typer.Argument(metavar="ID", help="The env to check.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Check every env that can run here.")] = False,
) -> None:
    """Gymnasium's env checker plus turngym's: seeding, instance hashes, invalid actions, success."""
    import warnings

    from turngym.core.checker import check_registered_env
    from turngym.core.errors import RegistryError
    from turngym.core.registry import env_info, list_envs

    if (env_id is None) == (not all_):
        raise fail("give one env ID or --all (e.g. turngym envs check turngym/GuessNumber-v0)", code=USAGE)
    if all_:
        ids = [i.id for i in list_envs()]
    else:
        try:
            reason = env_info(env_id).unavailable_reason()
        except RegistryError as e:
            raise fail_on(e) from None
        if reason:
            raise fail(f"{env_id} cannot run here: {reason}", code=USAGE)
        ids = [env_id]
    failed = 0
    for i in ids:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Gymnasium's checker warns about things text envs cannot have
            problems = check_registered_env(i)
        if problems:
            failed += 1
            console.print(f"[red]FAIL[/] {i}", highlight=False)
            for p in problems:
                console.print(f"     - {p}", highlight=False, markup=False, soft_wrap=True)
        else:
            console.print(f"[green]ok[/]   {i}", highlight=False)
    if failed:
        raise fail(f"{failed} of {len(ids)} env(s) failed the checks (see above)")
    console.print(f"{len(ids)} env(s) passed every check.")

"""``turngym play``: a person plays a text env in the terminal.

Each line typed is one action, sent as typed. An empty line sends nothing. Lines starting with ``/``
are commands answered here, never sent to the env (``//x`` sends ``/x``):

    /help      list the commands          /seed     the seed of this game (replay it with --seed)
    /restart   play the same task again   /quit     end (so does end of input, Ctrl-D)

Everything the env says is printed as plain text (no Rich markup: ``[abc]`` stays ``[abc]``); a message
of a dialogue partner (Car Dealer's customer, an oracle) is headed with the partner's name.

``--env-args JSON`` passes the env's keyword arguments; a partner given there as an agent spec
(``'{"partner": "hf:PATH"}'``) is built into a model partner here (``turngym.agents.partner``).
"""

from __future__ import annotations

import asyncio
import random
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from turngym.cli._common import console, fail_on

#: the commands of the prompt and what each does
COMMANDS = {
    "/help": "list these commands",
    "/seed": "print the seed of this game (replay it with --seed SEED)",
    "/restart": "play the same task again from its start",
    "/quit": "end the game (so does end of input, Ctrl-D)",
}


def play(
    env_id: Annotated[str, typer.Argument(metavar="ID")],
    seed: Annotated[
        int | None, typer.Option(help="The task instance (same seed, same task). [default: a random one, printed]")
    ] = None,
    env_args: Annotated[
        str | None,
        typer.Option(
            "--env-args",
            help="The env's keyword arguments as a JSON object, e.g. '{\"partner\": \"hf:PATH\"}' (a partner given "
            "as an agent spec is built here).",
        ),
    ] = None,
) -> None:
    """Play a text env in the terminal: one line per action; /help lists the commands; /quit or Ctrl-D ends."""
    import turngym
    from turngym.agents.partner import PartnerPool
    from turngym.benchmarks.eval import _env_args
    from turngym.core.errors import TurngymError

    partners = PartnerPool()
    try:
        env = turngym.make(env_id, **partners.resolve(_env_args(env_args) if env_args else {}))
    except TurngymError as e:
        asyncio.run(partners.aclose())
        raise fail_on(e) from None
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    try:
        while _episode(env, env_id, seed):
            pass
    finally:
        env.close()
        asyncio.run(partners.aclose())


def _episode(env: Any, env_id: str, seed: int) -> bool:
    """Play one episode of ``env`` with ``seed``; True when the player asked to restart it."""
    obs, info = env.reset(seed=seed)
    console.print(
        f"[bold]{escape(env_id)}[/]  seed {seed}  task {escape(str(info.get('task_id')))}  "
        f"instance {escape(str(info.get('instance_hash')))}  [dim](/help lists the commands)[/]",
        highlight=False,
        soft_wrap=True,
    )
    _show(obs)
    total, turn = 0.0, 0
    while True:
        console.print("[bold cyan]>[/] ", end="")
        line = sys.stdin.readline()
        if line and not sys.stdin.isatty():
            console.print(line.rstrip("\n"), highlight=False, markup=False)  # echo piped input
        if not line:
            console.print("\nbye (episode not finished)", highlight=False)
            return False
        action = line.rstrip("\n")
        if not action.strip():
            continue  # an empty Enter sends nothing
        if action.startswith("/") and not action.startswith("//"):
            command = action.strip().split()[0]
            if command == "/quit":
                console.print("bye (episode not finished)", highlight=False)
                return False
            if command == "/restart":
                console.print(f"restarting with seed {seed}", highlight=False)
                return True
            _command(command, seed)
            continue
        if action.startswith("//"):
            action = action[1:]
        obs, reward, terminated, truncated, info = env.step(action)
        turn += 1
        total += float(reward)
        _show(obs)
        note = f"  invalid: {escape(str(info['action_error']))}" if info.get("action_error") else ""
        console.print(
            f"[dim]turn {turn}  reward {float(reward):g}  return {total:g}{note}[/]", highlight=False, soft_wrap=True
        )
        if terminated or truncated:
            how = "success" if info.get("success") else ("truncated" if truncated else "over")
            console.print(
                f"[bold]episode {how}[/] after {turn} turns, return {total:g} (replay it with --seed {seed})",
                highlight=False,
            )
            return False


def _command(command: str, seed: int) -> None:
    """Answer ``/help``, ``/seed`` or an unknown command."""
    if command == "/seed":
        console.print(f"seed {seed} (replay this game with --seed {seed})", highlight=False)
        return
    if command != "/help":
        console.print(
            f"unknown command {command!r}: it was not sent to the env (start the line with // to send a line "
            "that starts with /)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    for name, what in COMMANDS.items():
        console.print(f"  {name:<9} {what}", highlight=False, markup=False)
    console.print("  anything else is your action, sent to the env as typed", highlight=False, markup=False)


def _show(obs: Any) -> None:
    for m in obs.messages:
        images = f" [{len(m.images)} image(s) not shown]" if m.images else ""
        who = f"{m.role} ({m.name})" if m.name else m.role
        console.print(f"[green]{escape(who)}:[/] ", end="")
        console.print(m.text + images, highlight=False, markup=False, soft_wrap=True)
    if obs.tools:
        tools = ", ".join(t.name for t in obs.tools)
        console.print(f"tools: {tools}", style="dim", highlight=False, markup=False)

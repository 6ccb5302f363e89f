"""``turngym play``: a person plays a text env in the terminal."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from turngym.cli._common import console, fail_on


def play(
    env_id: Annotated[str, typer.Argument(metavar="ID")],
    seed: Annotated[int | None, typer.Option(help="The task instance (same seed, same task).")] = None,
) -> None:
    """Play a text env in the terminal: one line per action; /quit or end of input (Ctrl-D) ends."""
    import turngym
    from turngym.core.errors import TurngymError

    try:
        env = turngym.make(env_id)
    except TurngymError as e:
        raise fail_on(e) from None
    try:
        obs, info = env.reset(seed=seed)
        console.print(f"[bold]{env_id}[/]  task {info.get('task_id')}  instance {info.get('instance_hash')}", highlight=False)
        _show(obs)
        total, turn = 0.0, 0
        while True:
            console.print("[bold cyan]>[/] ", end="")
            line = sys.stdin.readline()
            if line and not sys.stdin.isatty():
                console.print(line.rstrip("\n"), highlight=False, markup=False)  # echo piped input
            if not line or line.strip() == "/quit":
                console.print("\nbye (episode not finished)", highlight=False)
                return
            obs, reward, terminated, truncated, info = env.step(line.rstrip("\n"))
            turn += 1
            total += float(reward)
            _show(obs)
            note = f"  invalid: {info['action_error']}" if info.get("action_error") else ""
            console.print(
                f"[dim]turn {turn}  reward {float(reward):g}  return {total:g}{note}[/]", highlight=False, soft_wrap=True
            )
            if terminated or truncated:
                how = "success" if info.get("success") else ("truncated" if truncated else "over")
                console.print(f"[bold]episode {how}[/] after {turn} turns, return {total:g}", highlight=False)
                return
    finally:
        env.close()


def _show(obs: Any) -> None:
    for m in obs.messages:
        images = f" [{len(m.images)} image(s) not shown]" if m.images else ""
        console.print(f"[green]{m.role}:[/] ", end="")
        console.print(m.text + images, highlight=False, markup=False, soft_wrap=True)
    if obs.tools:
        console.print("[dim]tools: " + ", ".join(t.name for t in obs.tools) + "[/]", highlight=False)

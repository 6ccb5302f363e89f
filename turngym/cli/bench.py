"""``turngym bench ...``: measure an env, a Docker sandbox, the browser and the rollout runner on this machine.

    turngym bench env ID [--episodes N] [--seed S] [--agent auto|scripted|random|SPEC]
    turngym bench sandbox [--samples N] [--creates N] [--image IMAGE]
    turngym bench browser [--episodes N] [--steps N] [--task NAME ...] [--screenshot]
    turngym bench rollout --agent SPEC --env ID [--episodes N] [--concurrency C] [--max-turns T]

Each prints a table, or with ``--json`` the result as JSON. The measuring lives in
:mod:`turngym.benchmarks.bench`; this module only parses options and prints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from turngym.cli._common import USAGE, console, fail, fail_on

app = typer.Typer(
    help="Speed on this machine: an env's reset/step latency, Docker sandboxes, the browser, the rollout runner.",
    no_args_is_help=True,
)

Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON instead of a table.")]

#: metric-name suffix -> (unit shown, how many decimals)
_UNITS = (("_ms", "ms", 3), ("_per_s", "/s", 1), ("_rate", "", 3), ("_s", "s", 3))


def _run(measure: Callable[[], Any], as_json: bool) -> None:
    """Run ``measure`` (a bench function), then print its result; a turngym error ends with its message."""
    from turngym.core.errors import EnvUnavailable, TurngymError

    try:
        result = measure()
    except EnvUnavailable as e:  # Docker or Chromium missing: the user's machine, not the run, must change
        raise fail(str(e), code=USAGE) from None
    except TurngymError as e:
        raise fail_on(e) from None
    except KeyboardInterrupt:
        raise fail("interrupted", code=130) from None
    if as_json:
        print(result.model_dump_json(indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    params = ", ".join(f"{k} {v}" for k, v in result.params.items() if v is not None)
    console.print(f"[bold]turngym bench {result.bench}[/]: {params}", highlight=False, soft_wrap=True)
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for name, value in result.metrics.items():
        table.add_row(*_row(name, value))
    console.print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)


def _row(name: str, value: float) -> tuple[str, str, str]:
    for suffix, unit, decimals in _UNITS:
        if name.endswith(suffix):
            label = name[: -len(suffix)].replace("_", " ") + {"_rate": " rate", "_per_s": " per second"}.get(suffix, "")
            return label, f"{value:,.{decimals}f}", unit
    return name.replace("_", " "), f"{value:,.0f}", ""


@app.command("env")
def env(
    env_id: Annotated[str, typer.Argument(metavar="ID", help="A registered env id, e.g. turngym/Wordle-v0.")],
    episodes: Annotated[int, typer.Option(min=1, help="Episodes to play, one after another.")] = 20,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the first episode (then seed+1, ...).")] = 0,
    agent: Annotated[str, typer.Option(help="Who plays: auto (the env's scripted expert, else random), or any agent spec.")] = "auto",
    as_json: Json = False,
) -> None:
    """Reset and step latency (p50, p95) of one env and its steps per second of env time."""
    from turngym.benchmarks.bench import bench_env

    _run(lambda: bench_env(env_id, episodes=episodes, seed=seed, agent=agent), as_json)


@app.command("sandbox")
def sandbox(
    samples: Annotated[int, typer.Option(min=1, help="Exec and reset calls to time.")] = 20,
    creates: Annotated[int, typer.Option(min=1, help="New containers to time.")] = 3,
    image: Annotated[str | None, typer.Option(help="Sandbox image (default: turngym/sandbox:latest).")] = None,
    as_json: Json = False,
) -> None:
    """Docker sandbox latency: create (a new container until it answers), exec round trip, reset in place."""
    from turngym.benchmarks.bench import bench_sandbox

    _run(lambda: bench_sandbox(samples=samples, creates=creates, image=image), as_json)


@app.command("browser")
def browser(
    episodes: Annotated[int, typer.Option(min=1, help="Episodes per task.")] = 3,
    steps: Annotated[int, typer.Option(min=1, help="Steps per episode (each clicks a text box).")] = 3,
    task: Annotated[list[str] | None, typer.Option(help="MiniWoB++ task with a text box (repeatable).")] = None,
    screenshot: Annotated[bool, typer.Option(help="Also take a screenshot with every observation.")] = False,
    as_json: Json = False,
) -> None:
    """Chromium latency on MiniWoB++ pages: reset (a new page) and step (a click and the new observation)."""
    from turngym.benchmarks.bench import BROWSER_TASKS, bench_browser

    tasks = tuple(task) if task else BROWSER_TASKS
    _run(lambda: bench_browser(episodes=episodes, steps=steps, tasks=tasks, screenshot=screenshot), as_json)


@app.command("rollout")
def rollout(
    agent: Annotated[str, typer.Option(help="Agent spec: scripted, random, hf:PATH, vllm:PATH, openai:URL#MODEL.")],
    env_id: Annotated[str, typer.Option("--env", help="A registered env id.")],
    episodes: Annotated[int, typer.Option(min=1, help="Episodes to time (after a warm-up).")] = 32,
    concurrency: Annotated[int, typer.Option(min=1, help="Episodes in flight at once.")] = 8,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the first episode.")] = 0,
    max_turns: Annotated[int | None, typer.Option(min=1, help="Turn limit (default: the env's).")] = None,
    as_json: Json = False,
) -> None:
    """Episodes, turns and sampled tokens per second through the rollout runner."""
    from turngym.benchmarks.bench import bench_rollout

    _run(
        lambda: bench_rollout(agent, env_id, episodes=episodes, concurrency=concurrency, seed=seed, max_turns=max_turns),
        as_json,
    )

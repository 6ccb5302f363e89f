"""``turngym eval``: run an agent on a suite, with a progress bar and the summary table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from turngym.cli._common import INTERRUPTED, console, err_console, fail, fail_on


def eval_(
    suite: Annotated[str, typer.Option(help="A shipped suite name (smoke, text-games) or a suite YAML path.")],
    agent: Annotated[str, typer.Option(help="Agent spec: scripted, random, hf:PATH, vllm:PATH, openai:URL#MODEL.")],
    episodes: Annotated[int | None, typer.Option(help="Task instances per env (overrides the suite).")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Episodes in flight. [default: 8]")] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory [default: runs/<suite>-<agent>-<time>]; rerun with the same --out to resume.")] = None,
    group_size: Annotated[int | None, typer.Option(help="Episodes per task instance (overrides the suite).")] = None,
    turn_timeout: Annotated[float | None, typer.Option(help="Seconds for one agent act plus env step.")] = None,
    episode_timeout: Annotated[float | None, typer.Option(help="Seconds for a whole episode.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Config override KEY=VALUE, e.g. agent.temperature=0.7 (repeatable).")] = None,
) -> None:
    """Evaluate an agent on a suite; writes config, episodes, summary.json and report.html."""
    from turngym.benchmarks.eval import default_run_dir, eval_config, plan_run
    from turngym.core.errors import TurngymError

    try:
        cfg = eval_config(
            suite,
            agent=agent,
            overrides=set_ or [],
            episodes=episodes,
            concurrency=concurrency,
            group_size=group_size,
            turn_timeout=turn_timeout,
            episode_timeout=episode_timeout,
        )
        run_dir = out if out is not None else default_run_dir(cfg)
        plan = plan_run(cfg, run_dir)
    except TurngymError as e:
        raise fail_on(e) from None
    for name, reason in plan.skipped.items():
        err_console.print(f"[yellow]skipped[/] {name}: {reason}", highlight=False, soft_wrap=True)
    if plan.done:
        console.print(f"resuming {run_dir}: {len(plan.done)} of {len(plan.tasks)} episodes already stored", highlight=False, soft_wrap=True)
    summary = _run_with_progress(plan)
    console.print(summary_table(summary))
    console.print(f"run directory: {run_dir}\nreport: {run_dir / 'report.html'}", highlight=False, soft_wrap=True)


def _run_with_progress(plan: Any) -> Any:
    """``execute(plan)`` under a progress bar (on stderr, so stdout keeps only the results)."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from turngym.benchmarks.eval import execute
    from turngym.core.errors import TurngymError

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )
    stats = {"ok": sum(bool(e.success) for e in plan.done), "err": sum(bool(e.error) for e in plan.done)}
    task = progress.add_task(plan.cfg.suite.name, total=len(plan.tasks), completed=len(plan.done), stats="")

    def advance(ep: Any) -> None:
        stats["ok"] += bool(ep.success)
        stats["err"] += bool(ep.error)
        progress.update(task, advance=1, stats=f"success {stats['ok']}  errors {stats['err']}")

    try:
        with progress:
            return asyncio.run(execute(plan, on_episode=advance))
    except KeyboardInterrupt:
        raise fail(
            f"interrupted; the finished episodes are stored in {plan.run_dir}: rerun the same command to resume",
            code=INTERRUPTED,
        ) from None
    except TurngymError as e:
        raise fail_on(e) from None


def summary_table(summary: Any) -> Table:
    """The terminal table of a run's summary."""
    skipped = [s for s in summary.envs.values() if s.skipped is not None]
    caption = "\n".join(f"{s.env} skipped: {s.skipped}" for s in skipped) or None
    table = Table(title=f"{summary.suite} / {summary.agent}", caption=caption, caption_justify="left")
    table.add_column("env", no_wrap=True)
    for col in ("episodes", "success", "95% CI", "return", "turns", "invalid", "errors"):
        table.add_column(col, justify="right", no_wrap=True)

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    rows = list(summary.envs.values())
    for s in [*rows, summary.overall]:
        if s.skipped is not None:
            table.add_row(s.env, "-", "[yellow]skipped[/]", "", "", "", "", "")
            continue
        if s is summary.overall:
            table.add_section()
        table.add_row(
            s.env,
            str(s.episodes),
            pct(s.success_rate),
            f"{100 * s.ci95[0]:.0f}-{100 * s.ci95[1]:.0f}%" if s.ci95 else "-",
            "-" if s.mean_return is None else f"{s.mean_return:.3f}",
            "-" if s.mean_turns is None else f"{s.mean_turns:.1f}",
            pct(s.invalid_action_rate),
            f"[red]{s.errors}[/]" if s.errors else "0",
        )
    return table

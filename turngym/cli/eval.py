"""``turngym eval``: run an agent on a suite (or on ``--env`` ids), with a progress bar and the summary table."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from turngym.cli._common import INTERRUPTED, console, err_console, fail, fail_on


def _suite_help() -> str:
    from turngym.benchmarks.suite import suite_names

    return f"A shipped suite ({', '.join(suite_names())}) or a suite YAML path. Or use --env."


def eval_(
    agent: Annotated[str, typer.Option(help="Agent spec: scripted, random, hf:PATH, vllm:PATH, openai:URL#MODEL.")],
    suite: Annotated[str | None, typer.Option(help=_suite_help())] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env", help="An env id to evaluate without a suite file (repeatable), e.g. turngym/GuessNumber-v0."
        ),
    ] = None,
    env_args: Annotated[
        list[str] | None,
        typer.Option(
            "--env-args",
            help="""The --env's keyword arguments as a JSON object, e.g. '{"high": 16}': once for every --env, or once per --env in order.""",
        ),
    ] = None,
    episodes: Annotated[
        int | None,
        typer.Option(
            help="Task instances per env, the same for every env (overrides the suite; an env that lists its seeds plays its first N). [default: the suite's, 10 with --env]"
        ),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option(help="Episodes in flight (on each worker, with --ray). [default: 8]")
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="[ADDRESS]",
            help="Play on Ray rollout workers: --ray alone (or --ray local) starts a local Ray instance for the run; "
            "--ray auto or --ray HOST:PORT joins a running cluster (needs turngym\\[ray]).",
        ),
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Ray rollout workers, with --ray. [default: 2]")] = None,
    engines: Annotated[
        int | None,
        typer.Option(
            help="With --ray and an hf: or vllm: agent: N inference engine actors serve every worker's requests (each "
            "to the least loaded) instead of a copy of the model in each worker. [default: 0]"
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Run directory [default: runs/<suite>-<agent>-<time>]; rerun with the same --out to resume."),
    ] = None,
    group_size: Annotated[int | None, typer.Option(help="Episodes per task instance (overrides the suite).")] = None,
    turn_timeout: Annotated[float | None, typer.Option(help="Seconds for one agent act plus env step.")] = None,
    episode_timeout: Annotated[float | None, typer.Option(help="Seconds for a whole episode.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Config override KEY=VALUE, e.g. agent.temperature=0.7 (repeatable)."),
    ] = None,
) -> None:
    """Evaluate an agent on a suite or on --env ids; writes config, episodes, summary.json and report.html.

    Every mistake in the options, the suite or the agent (a model directory that does not exist) is reported
    before any episode is played.
    """
    from turngym.benchmarks.eval import default_run_dir, eval_config, plan_run, prepare_agent
    from turngym.core.errors import ConfigError, TurngymError

    try:
        for flag, value in (("--workers", workers), ("--engines", engines)):
            if value is not None and ray is None:
                raise ConfigError(
                    f"{flag} {value} goes with --ray: add --ray (a local Ray instance) or --ray ADDRESS (a cluster), "
                    f"or drop {flag} to play on the local runner (its width is --concurrency)"
                )
        ray_options = {
            "address": ray, **({"workers": workers} if workers is not None else {}),
            **({"engines": engines} if engines is not None else {}),
        }
        cfg = eval_config(
            suite,
            agent=agent,
            envs=env or [],
            env_args=env_args or [],
            overrides=set_ or [],
            episodes=episodes,
            concurrency=concurrency,
            group_size=group_size,
            turn_timeout=turn_timeout,
            episode_timeout=episode_timeout,
            ray=None if ray is None else ray_options,
        )
        run_dir = out if out is not None else default_run_dir(cfg)
        plan = plan_run(cfg, run_dir)
        for name, reason in plan.skipped.items():
            err_console.print(f"[yellow]skipped[/] {name}: {reason}", highlight=False, soft_wrap=True)
        if plan.done:
            console.print(
                f"resuming {run_dir}: {len(plan.done)} of {len(plan.tasks)} episodes already stored",
                highlight=False,
                soft_wrap=True,
            )
        err_console.print(plan_line(plan), highlight=False, soft_wrap=True)
        built = prepare_agent(plan)  # a model that does not load stops here, before the progress bar
    except TurngymError as e:
        raise fail_on(e) from None
    summary = _run_with_progress(plan, built)
    console.print(summary_table(summary))
    console.print(f"run directory: {run_dir}\nreport: {run_dir / 'report.html'}", highlight=False, soft_wrap=True)
    warn_cut_replies(summary)


def plan_line(plan: Any) -> str:
    """What the run plays, per env: ``code: 32 episodes; task instances per env: PythonTool-v0 8, PythonTool-v0
    (tagged) 8 (the first 8 of its 10 listed seeds), ...; group size 1`` (so --episodes N is never a surprise)."""
    from collections import Counter

    instances = Counter(plan.env_of[gid] for gid in {t.group_id for t in plan.tasks})
    listed = {e.name: len(e.seeds) for e in plan.cfg.suite.envs if e.seeds is not None}
    parts = []
    for name in plan.order:
        if name not in instances:
            continue
        n, of = instances[name], listed.get(name)
        parts.append(
            f"{name} {n}" + (f" (the first {n} of its {of} listed seeds)" if of is not None and n < of else "")
        )
    group_size = plan.cfg.group_size or plan.cfg.suite.group_size
    return (
        f"{plan.cfg.suite.name}: {len(plan.tasks)} episodes; task instances per env: {', '.join(parts) or 'none'}; "
        f"group size {group_size}"
    )


def warn_cut_replies(summary: Any) -> None:
    """Print the warning of ``summary.cut_warning`` (replies cut at max_new_tokens), if any."""
    from turngym.benchmarks.summary import cut_warning

    text = cut_warning(summary)
    if text:
        err_console.print(f"[bold yellow]warning:[/] {escape(text)}", highlight=False, soft_wrap=True)


def _run_with_progress(plan: Any, agent: Any = None) -> Any:
    """``execute(plan)`` under a progress bar (on stderr, so stdout keeps only the results)."""
    import asyncio

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

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

    def event(line: str) -> None:
        progress.console.print(line, highlight=False, soft_wrap=True)

    try:
        with progress:
            return asyncio.run(execute(plan, on_episode=advance, agent=agent, on_event=event))
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
    cut = any(s.cut_reply_rate is not None for s in summary.envs.values())  # an LLM agent: replies cut at the budget
    for col in ("episodes", "success", "95% CI", "return", "turns", "invalid", "errors", *(["cut"] if cut else [])):
        table.add_column(col, justify="right", no_wrap=True)

    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    rows = list(summary.envs.values())
    for s in [*rows, summary.overall]:
        if s.skipped is not None:
            table.add_row(s.env, "-", "[yellow]skipped[/]", "", "", "", "", "", *([""] if cut else []))
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
            *([pct(s.cut_reply_rate)] if cut else []),
        )
    return table

"""The ``turngym`` command line (typer + rich).

    turngym envs list [--all]            turngym envs info ID           turngym envs check ID|--all
    turngym eval --suite smoke --agent scripted [--episodes N] [--concurrency C] [--out DIR] [--set k=v]
    turngym play ID [--seed N]           turngym view RUN_DIR
    turngym sandbox ...                  turngym models ...

Heavy modules (matplotlib, agents, Docker, Playwright) are imported inside the commands that need
them, so ``turngym envs list`` starts fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from turngym.cli.models import app as models_app
from turngym.cli.sandbox import app as sandbox_app

app = typer.Typer(
    name="turngym",
    help="A gym for LLM agents that act over many turns: environments, evaluation, training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
envs_app = typer.Typer(help="List, describe and check environments.", no_args_is_help=True)
app.add_typer(envs_app, name="envs")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(models_app, name="models")


def _width(stream: Any) -> int | None:
    """The terminal's width, or 120 columns when output goes to a pipe or file (logs, CI)."""
    return None if stream.isatty() or "COLUMNS" in os.environ else 120


console = Console(width=_width(sys.stdout))
err_console = Console(stderr=True, width=_width(sys.stderr))


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


# -- envs ----------------------------------------------------------------------------------------
@envs_app.command("list")
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


@envs_app.command("info")
def envs_info(env_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Everything the registry knows about one env."""
    from turngym.core.errors import RegistryError
    from turngym.core.registry import env_info

    try:
        info = env_info(env_id)
    except RegistryError as e:
        raise _fail(str(e)) from None
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


@envs_app.command("check")
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
        raise _fail("give one env ID or --all (e.g. turngym envs check turngym/GuessNumber-v0)", code=2)
    if all_:
        ids = [i.id for i in list_envs()]
    else:
        try:
            reason = env_info(env_id).unavailable_reason()
        except RegistryError as e:
            raise _fail(str(e)) from None
        if reason:
            raise _fail(f"{env_id} cannot run here: {reason}")
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
        raise _fail(f"{failed} of {len(ids)} env(s) failed the checks (see above)")
    console.print(f"{len(ids)} env(s) passed every check.")


# -- eval ----------------------------------------------------------------------------------------
@app.command("eval")
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
        raise _fail(str(e)) from None
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
        raise _fail(
            f"interrupted; the finished episodes are stored in {plan.run_dir}: rerun the same command to resume",
            code=130,
        ) from None
    except TurngymError as e:
        raise _fail(str(e)) from None


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


# -- play ----------------------------------------------------------------------------------------
@app.command("play")
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
        raise _fail(str(e)) from None
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


# -- view ----------------------------------------------------------------------------------------
@app.command("view")
def view(run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR")]) -> None:
    """Print the path of a run's report.html and open it in a browser where a display exists."""
    report = run_dir / "report.html"
    if not report.is_file():
        raise _fail(f"{report} does not exist: is {run_dir} a finished `turngym eval` run directory?")
    console.print(str(report.resolve()), highlight=False)
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform in ("darwin", "win32"):
        import webbrowser

        webbrowser.open(report.resolve().as_uri())


# -- later issues --------------------------------------------------------------------------------
def _later(verb: str) -> None:
    raise _fail(f"`turngym {verb}` is not built yet: it arrives with a later issue of the project.", code=2)


@app.command("train")
def train(
    config: Annotated[Path, typer.Option("--config", "-c", help="The run's YAML config (env or suite, algorithm, model, hyper-parameters).")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Config override KEY=VALUE, e.g. optim.lr=1e-5 (repeatable).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in run_dir from its newest checkpoint.")] = False,
) -> None:
    """Train an agent with multi-turn RL (grpo, rloo, flow_grpo, mt_grpo, gigpo, archer)."""
    from turngym.core.errors import TurngymError
    from turngym.trainers.train import make_trainer, train_config

    try:
        cfg = train_config(config, set_ or [])
        summary = make_trainer(cfg).run(resume=resume)
    except TurngymError as e:
        raise _fail(str(e)) from None
    except KeyboardInterrupt:
        raise _fail("interrupted: continue the run with the same command and --resume", code=130) from None
    console.print(f"run directory: {summary['run_dir']}  iterations: {summary['iterations']}  "
                  f"episodes: {summary['episodes_seen']}", highlight=False, soft_wrap=True)
    if summary.get("eval"):
        console.print(f"held-out eval: " + "  ".join(f"{k} {v:.3f}" for k, v in summary["eval"].items()), highlight=False)


@app.command("bench", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench() -> None:
    """Speed benchmarks (arrives with a later issue)."""
    _later("bench")


@app.command("quickstart")
def quickstart(
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/quickstart"),
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override the demo config, e.g. iterations=50 (repeatable).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted quickstart run.")] = False,
) -> None:
    """Train a tiny model from scratch to play GuessNumber (Flow-GRPO, CPU): eval before, train, eval after."""
    from turngym.core.errors import TurngymError
    from turngym.trainers.quickstart import quickstart as run_quickstart

    if not resume and (out / "metrics.jsonl").exists():
        raise _fail(f"{out} already holds a quickstart run: pass --resume to continue it, or --out another directory")
    console.print("Training a tiny model from scratch on GuessNumber 1..16 (6 turns) with Flow-GRPO.\n"
                  "Before and after: success on 64 held-out secrets, greedy.", highlight=False)
    try:
        summary = run_quickstart(out=out, overrides=set_ or [], resume=resume)
    except TurngymError as e:
        raise _fail(str(e)) from None
    except KeyboardInterrupt:
        raise _fail(f"interrupted: continue with `turngym quickstart --out {out} --resume`", code=130) from None
    table = Table(title="GuessNumber 1..16, held-out seeds")
    for col in ("", "success", "return", "turns"):
        table.add_column(col, justify="right" if col else "left")
    for name in ("before", "after"):
        m = summary[name]
        table.add_row(f"{name} training", f"{m['success']:.3f}", f"{m['return']:.3f}", f"{m['turns']:.2f}")
    console.print(table)
    console.print(f"{summary['episodes_seen']} episodes, {summary['seconds'] / 60:.1f} min\nreport: {summary['report']}",
                  highlight=False, soft_wrap=True)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

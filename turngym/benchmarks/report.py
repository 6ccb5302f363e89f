"""``report.html``: one self-contained page per run (plots as embedded PNGs, tables, sample transcripts,
the final screenshot of one episode per env where the env shows images).

One writer for both kinds of run. An eval run (turngym.benchmarks.eval.execute) reports its summary and
episodes. A training run adds the train section (``TrainSection``): the learning curve of train and
held-out eval success from its metrics.jsonl (embedded, and as curve.png), the table of its evals, then
its last eval reported as an eval run is; ``write_train_report(run_dir)`` gathers that from the run
directory (the training loop calls it at each eval and at the end; ``turngym view`` where none exists).
"""

from __future__ import annotations

import base64
import html
import io
import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turngym.benchmarks.store import EPISODES_FILE, read_episodes, read_records
from turngym.benchmarks.summary import EnvSummary, Summary, summarize
from turngym.core.types import Episode, ImagePart, Message

__all__ = ["CURVE_FILE", "REPORT_FILE", "TrainSection", "learning_curve", "success_plot", "write_report", "write_train_report"]

REPORT_FILE = "report.html"
#: the training run's learning curve, also embedded in its report
CURVE_FILE = "curve.png"

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}tr.overall td{font-weight:600}td.skip{color:#888;text-align:left}
pre{background:#f7f7f7;padding:.5rem;white-space:pre-wrap;font-size:.8rem;max-height:30rem;overflow:auto}
img.plot{max-width:100%}img.shot{max-width:480px;border:1px solid #ccc}.muted{color:#777;font-size:.85rem}
"""


@dataclass
class TrainSection:
    """What a training run's report adds: its title, its metrics.jsonl records (kind ``train`` / ``eval``),
    its config.yaml text."""

    title: str
    records: Sequence[Mapping[str, Any]] = field(default_factory=list)
    config: str = ""


def write_report(
    path: Path,
    summary: Summary | None,
    episodes: Sequence[Episode],
    *,
    env_of: Mapping[str, str] | None = None,
    run_dir: Path,
    train: TrainSection | None = None,
) -> Path:
    """Write the report of a run to ``path``; image paths in episodes are relative to ``run_dir``. ``train``:
    a training run's section (then ``summary`` and ``episodes`` are its last eval's, or None and none)."""
    env_of = env_of or {}
    parts = [""]
    if train is not None:
        title = train.title
        parts += _train_section(train, run_dir)
    elif summary is None:
        raise ValueError("write_report: an eval run's report needs its summary (only a training run's may lack one)")
    else:
        title = f"turngym eval: {summary.suite} / {summary.agent}"
    parts[0] = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{_e(title)}</h1>"
    )
    if summary is not None:
        parts += _eval_section(summary, episodes, env_of=env_of, run_dir=run_dir, heading=train is not None)
    if train is not None and train.config:
        parts.append(f"<h2>Config</h2><pre>{_e(train.config)}</pre>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def write_train_report(
    run_dir: str | Path, *, last_eval: tuple[Summary, Sequence[Episode]] | None = None
) -> Path:
    """A training run's report.html from its directory: metrics.jsonl, config.yaml and its last eval,
    ``last_eval`` (summary, episodes) or else read from the episode store (run_id ``eval{k}``)."""
    import yaml

    run_dir = Path(run_dir)
    records = read_records(run_dir / "metrics.jsonl")
    config_path = run_dir / "config.yaml"
    config = config_path.read_text(encoding="utf-8") if config_path.is_file() else ""
    cfg = (yaml.safe_load(config) if config else None) or {}
    algorithm = (cfg.get("algorithm") or {}).get("name", "?") if isinstance(cfg.get("algorithm"), dict) else "?"
    target = (cfg.get("env") or {}).get("id") if isinstance(cfg.get("env"), dict) else cfg.get("suite")
    evals = [r for r in records if r.get("kind") == "eval"]
    if last_eval is None and evals:
        k = evals[-1].get("iteration", 0)
        episodes = read_episodes(run_dir / EPISODES_FILE, run_ids=[f"eval{k}"])
        if episodes:
            last_eval = (summarize(episodes, agent=str((cfg.get("model") or {}).get("path", ""))), episodes)
    summary, episodes = last_eval if last_eval is not None else (None, [])
    section = TrainSection(title=f"turngym train: {algorithm} on {target or '?'}", records=records, config=config)
    return write_report(run_dir / REPORT_FILE, summary, list(episodes), run_dir=run_dir, train=section)


def _eval_section(
    summary: Summary, episodes: Sequence[Episode], *, env_of: Mapping[str, str], run_dir: Path, heading: bool
) -> list[str]:
    by_env: dict[str, list[Episode]] = {}
    for e in episodes:
        by_env.setdefault(env_of.get(e.group_id, e.env_id), []).append(e)
    parts = []
    if heading:
        which = f" (iteration {episodes[0].run_id.removeprefix('eval')})" if episodes else ""
        parts.append(f"<h2>Last held-out eval{_e(which)}</h2>")
    parts.append(
        f"<p class='muted'>{summary.overall.episodes} episodes; success rate with 95% Wilson interval. "
        f"Wall-clock time {summary.elapsed:.1f} s.</p>"
    )
    ran = [s for s in summary.envs.values() if s.skipped is None and s.episodes]
    if ran:
        parts.append(f"<img class='plot' alt='success per env' src='data:image/png;base64,{success_plot(ran)}'>")
    parts.append(_summary_table(summary))
    parts.append(_timing_table(summary))
    for name, eps in by_env.items():
        parts.append(f"<h2>{_e(name)}</h2>")
        shot = _final_image(eps, run_dir)
        if shot is not None:
            parts.append(f"<p class='muted'>Final screenshot of {_e(shot[0])}:</p><img class='shot' src='{shot[1]}'>")
        parts.append(_transcript(_pick_example(eps)))
    return parts


def _train_section(train: TrainSection, run_dir: Path) -> list[str]:
    steps = [r for r in train.records if r.get("kind") == "train"]
    evals = [r for r in train.records if r.get("kind") == "eval"]
    seen = steps[-1].get("episodes_seen", 0) if steps else 0
    parts = [f"<p class='muted'>{len(steps)} iterations, {seen} training episodes, {len(evals)} held-out evals.</p>"]
    if steps or evals:
        png = learning_curve(train.records)
        (run_dir / CURVE_FILE).write_bytes(png)
        parts.append("<h2>Learning curve</h2>")
        parts.append(f"<img class='plot' alt='learning curve' src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
    if evals:
        head = ["iteration", "episodes seen", "success", "mean return", "mean turns", "errors"]
        rows = [f"<tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>"]
        for r in evals:
            cells = [str(r.get("iteration", "")), str(r.get("episodes_seen", "")), _pct(r.get("success")),
                     _num(r.get("return")), _num(r.get("turns"), 2), str(int(r.get("errors", 0)))]
            rows.append(f"<tr>{''.join(f'<td>{c}</td>' for c in cells)}</tr>")
        parts.append("<h2>Held-out evals</h2><table>" + "".join(rows) + "</table>")
    return parts


def learning_curve(records: Sequence[Mapping[str, Any]], *, smooth: int = 10) -> bytes:
    """A PNG: training success per iteration (and its moving mean over ``smooth``) and held-out eval success,
    against environment episodes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in records if r.get("kind") == "train" and "success" in r]
    evals = [r for r in records if r.get("kind") == "eval" and "success" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if train:
        x = [r.get("episodes_seen", r.get("iteration", 0)) for r in train]
        y = [r["success"] for r in train]
        mean = [sum(y[max(0, i - smooth + 1) : i + 1]) / len(y[max(0, i - smooth + 1) : i + 1]) for i in range(len(y))]
        ax.plot(x, y, color="tab:blue", alpha=0.25, lw=1, label="train (sampled, per iteration)")
        ax.plot(x, mean, color="tab:blue", lw=2, label=f"train, mean of {smooth}")
    if evals:
        ax.plot([r.get("episodes_seen", 0) for r in evals], [r["success"] for r in evals], "o-", color="tab:red",
                lw=2, label="held-out eval")
    ax.set_xlabel("environment episodes")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    if train or evals:
        ax.legend(loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def success_plot(rows: Sequence[EnvSummary]) -> str:
    """A bar chart of success rate per env with 95% CI error bars, as base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.env for r in rows]
    rates = [r.success_rate or 0.0 for r in rows]
    lo = [max(0.0, rate - r.ci95[0]) if r.ci95 else 0.0 for rate, r in zip(rates, rows, strict=True)]
    hi = [max(0.0, r.ci95[1] - rate) if r.ci95 else 0.0 for rate, r in zip(rates, rows, strict=True)]
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(rows) + 2), 3.6), dpi=100)
    ax.bar(range(len(rows)), rates, yerr=[lo, hi], capsize=4, color="#4c72b0")
    ax.set_xticks(range(len(rows)), [n.split("/")[-1] for n in names], rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success rate")
    ax.set_title("Success per env (95% Wilson interval)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _summary_table(summary: Summary) -> str:
    head = ["env", "episodes", "success", "95% CI", "mean return", "mean turns", "invalid actions", "errors", "tokens"]
    rows = [f"<tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>"]
    for s in [*summary.envs.values(), summary.overall]:
        if s.skipped is not None:
            rows.append(f"<tr><td>{_e(s.env)}</td><td class='skip' colspan='{len(head) - 1}'>skipped: {_e(s.skipped)}</td></tr>")
            continue
        cls = " class='overall'" if s is summary.overall else ""
        cells = [
            _e(s.env),
            str(s.episodes),
            _pct(s.success_rate),
            f"{_pct(s.ci95[0])} - {_pct(s.ci95[1])}" if s.ci95 else "-",
            _num(s.mean_return),
            _num(s.mean_turns, 1),
            _pct(s.invalid_action_rate),
            str(s.errors),
            str(s.tokens),
        ]
        rows.append(f"<tr{cls}>{''.join(f'<td>{c}</td>' for c in cells)}</tr>")
    return "<h2>Summary</h2><table>" + "".join(rows) + "</table>"


def _timing_table(summary: Summary) -> str:
    rows = ["<tr><th>env</th><th>env s</th><th>agent s</th><th>total s</th></tr>"]
    for s in [*summary.envs.values(), summary.overall]:
        if s.skipped is None:
            w = s.wall_time
            rows.append(f"<tr><td>{_e(s.env)}</td><td>{w.env:.3f}</td><td>{w.agent:.3f}</td><td>{w.total:.3f}</td></tr>")
    return "<h2>Time per phase (summed over episodes)</h2><table>" + "".join(rows) + "</table>"


def _pick_example(eps: Sequence[Episode]) -> Episode:
    """A successful episode if there is one (the most instructive), else the first."""
    return next((e for e in eps if e.success), eps[0])


def _transcript(e: Episode) -> str:
    lines = [f"episode {e.episode_id}  seed={e.seed}  success={e.success}  return={e.total_return:g}"]
    if e.error:
        lines.append(f"ERROR: {e.error}")
    lines += [f"[{m.role}] {_message_text(m)}" for m in e.prompt]
    for t in e.turns:
        lines.append(f"[assistant] {t.action}" + (f"  (tool_calls: {len(t.tool_calls)})" if t.tool_calls else ""))
        lines += [f"[{m.role}] {_message_text(m)}" for m in t.observation]
        lines.append(f"    reward={t.reward:g}" + (f"  action_error={t.action_error}" if t.action_error else ""))
    return f"<details><summary>Example transcript ({_e(e.episode_id)})</summary><pre>{_e(chr(10).join(lines))}</pre></details>"


def _message_text(m: Message) -> str:
    n = len(m.images)
    return m.text + (f" [{n} image{'s' if n > 1 else ''}]" if n else "")


def _final_image(eps: Sequence[Episode], run_dir: Path) -> tuple[str, str] | None:
    """(episode id, data URL) of the last image of the first episode that has one."""
    for e in eps:
        messages = [m for t in e.turns for m in t.observation] or list(e.prompt)
        for m in reversed(messages):
            images: list[ImagePart] = m.images
            if images:
                return e.episode_id, _inline(images[-1].url, run_dir)
    return None


def _inline(url: str, run_dir: Path) -> str:
    if url.startswith(("data:", "http://", "https://")):
        return url
    path = run_dir / url
    if not path.is_file():
        return url
    mime = mimetypes.guess_type(path.name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _e(text: object) -> str:
    return html.escape(str(text))

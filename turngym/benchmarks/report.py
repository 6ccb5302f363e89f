"""``report.html``: one self-contained page per run (plots as embedded PNGs, tables, sample transcripts,
the final screenshot of one episode per env where the env shows images)."""

from __future__ import annotations

import base64
import html
import io
import mimetypes
from collections.abc import Mapping, Sequence
from pathlib import Path

from turngym.benchmarks.summary import EnvSummary, Summary
from turngym.core.types import Episode, ImagePart, Message

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}th:first-child,td:first-child{text-align:left}
th{background:#f3f3f3}tr.overall td{font-weight:600}td.skip{color:#888;text-align:left}
pre{background:#f7f7f7;padding:.5rem;white-space:pre-wrap;font-size:.8rem;max-height:30rem;overflow:auto}
img.plot{max-width:100%}img.shot{max-width:480px;border:1px solid #ccc}.muted{color:#777;font-size:.85rem}
"""


def write_report(
    path: Path,
    summary: Summary,
    episodes: Sequence[Episode],
    *,
    env_of: Mapping[str, str],
    run_dir: Path,
) -> Path:
    """Write the report of a run to ``path``; image paths in episodes are relative to ``run_dir``."""
    by_env: dict[str, list[Episode]] = {}
    for e in episodes:
        by_env.setdefault(env_of.get(e.group_id, e.env_id), []).append(e)
    title = f"turngym eval: {summary.suite} / {summary.agent}"
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='muted'>{summary.overall.episodes} episodes; success rate with 95% Wilson interval. "
        f"Wall-clock time {summary.elapsed:.1f} s.</p>",
    ]
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
    parts.append("</body></html>")
    path.write_text("\n".join(parts))
    return path


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

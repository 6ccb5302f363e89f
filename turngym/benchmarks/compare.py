"""Two runs side by side: ``compare.html`` with per-env deltas (B - A) of success rate, with a 95% interval
of the difference (Newcombe's hybrid score interval, ``newcombe_interval``), of mean return and of mean
turns, and the two runs' metadata side by side. Self-contained like report.html (turngym.benchmarks.report).

    figures_a, figures_b = run_figures("runs/a"), run_figures("runs/b")
    write_compare(Path("compare.html"), figures_a, figures_b)

A run is an eval run directory (its summary.json, else its episodes summarised) or a training run
directory (its last held-out eval). The interval treats the two runs' episodes as independent samples;
where both played the same seeds it is conservative (a paired test would be narrower).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from turngym.benchmarks.report import _asset, _e, _num, _pct, read_last_eval, run_metadata
from turngym.benchmarks.store import EPISODES_FILE, read_episodes
from turngym.benchmarks.summary import Z95, EnvSummary, Summary, summarize
from turngym.benchmarks.summary import wilson_interval as wilson
from turngym.core.errors import ConfigError

__all__ = ["RunFigures", "newcombe_interval", "run_figures", "write_compare"]


def newcombe_interval(k_a: int, n_a: int, k_b: int, n_b: int, z: float = Z95) -> tuple[float, float]:
    """Interval for p_b - p_a of two independent proportions: Newcombe's hybrid score interval (Newcombe 1998,
    method 10), built from each run's Wilson interval [l, u]:

        d = p_b - p_a;  lower = d - sqrt((p_b - l_b)^2 + (u_a - p_a)^2);  upper = d + sqrt((u_b - p_b)^2 + (p_a - l_a)^2)
    """
    if n_a <= 0 or n_b <= 0:
        return (-1.0, 1.0)
    p_a, p_b = k_a / n_a, k_b / n_b
    l_a, u_a = wilson(k_a, n_a, z)
    l_b, u_b = wilson(k_b, n_b, z)
    d = p_b - p_a
    return (
        max(-1.0, d - math.sqrt((p_b - l_b) ** 2 + (u_a - p_a) ** 2)),
        min(1.0, d + math.sqrt((u_b - p_b) ** 2 + (p_a - l_a) ** 2)),
    )


@dataclass
class RunFigures:
    """A run's summary (per env) and metadata, as compared."""

    path: Path
    summary: Summary
    meta: dict[str, str]


def run_figures(run_dir: str | Path) -> RunFigures:
    """The figures of an eval run (summary.json, else its episodes summarised) or of a training run (its last
    held-out eval)."""
    run_dir = Path(run_dir)
    summary: Summary | None = None
    if (run_dir / "metrics.jsonl").is_file():
        last = read_last_eval(run_dir)
        summary = last[0] if last is not None else None
    elif (run_dir / "summary.json").is_file():
        summary = Summary.model_validate_json((run_dir / "summary.json").read_text(encoding="utf-8"))
    elif (run_dir / EPISODES_FILE).is_file():
        summary = summarize(read_episodes(run_dir / EPISODES_FILE))
    if summary is None:
        raise ConfigError(
            f"{str(run_dir)!r} has nothing to compare: it is neither an eval run directory (summary.json or "
            "episodes.jsonl) nor a training run with a held-out eval (metrics.jsonl with an eval record); pass the "
            "directory `turngym eval` or `turngym train` wrote"
        )
    return RunFigures(path=run_dir, summary=summary, meta=run_metadata(run_dir, summary=summary))


def write_compare(path: Path, a: RunFigures, b: RunFigures) -> Path:
    """Write the comparison page of runs ``a`` and ``b`` (deltas are B - A) to ``path``."""
    title = f"turngym compare: {a.path.name} (A) vs {b.path.name} (B)"
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<style>{_asset('report.css')}</style></head><body><h1>{_e(title)}</h1>"
        f"{_delta_table(a, b)}"
        "<p class='muted'>Deltas are B - A. The success interval is the 95% interval of the difference of two "
        "independent proportions by Newcombe's hybrid score method (from each run's Wilson interval); "
        "<span class='good'>green</span> / <span class='bad'>red</span>: the interval excludes 0. Where both runs "
        "played the same seeds the interval is conservative.</p>"
        f"{_meta_table(a, b)}</body></html>"
    )
    path.write_text(page, encoding="utf-8")
    return path


def _delta_table(a: RunFigures, b: RunFigures) -> str:
    envs_a, envs_b = a.summary.envs, b.summary.envs
    names = [*envs_a, *(n for n in envs_b if n not in envs_a)]
    head = [
        "env",
        "episodes A / B",
        "success A",
        "success B",
        "Δ success",
        "95% CI of Δ",
        "mean return A",
        "mean return B",
        "Δ return",
        "mean turns A",
        "mean turns B",
        "Δ turns",
    ]
    rows = [f"<tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>"]
    for name in [*names, None]:
        sa = a.summary.overall if name is None else envs_a.get(name)
        sb = b.summary.overall if name is None else envs_b.get(name)
        rows.append(_delta_row("overall" if name is None else name, _ran(sa), _ran(sb)))
    return "<h2>Per-env deltas</h2><table id='deltas'>" + "".join(rows) + "</table>"


def _delta_row(name: str, sa: EnvSummary | None, sb: EnvSummary | None) -> str:
    cls = "overall delta" if name == "overall" else "delta"
    cells = [_e(name), f"{sa.episodes if sa else '-'} / {sb.episodes if sb else '-'}"]
    rate_a, rate_b = (sa.success_rate if sa else None), (sb.success_rate if sb else None)
    cells += [_pct(rate_a), _pct(rate_b)]
    if sa and sb and rate_a is not None and rate_b is not None:
        lo, hi = newcombe_interval(sa.successes, sa.episodes, sb.successes, sb.episodes)
        sign = " class='good'" if lo > 0 else " class='bad'" if hi < 0 else ""
        cells += [f"<span{sign}>{_signed_pct(rate_b - rate_a)}</span>", f"{_signed_pct(lo)} … {_signed_pct(hi)}"]
    else:
        cells += ["-", "-"]
    for field, digits in (("mean_return", 3), ("mean_turns", 2)):
        xa, xb = (getattr(sa, field) if sa else None), (getattr(sb, field) if sb else None)
        delta = f"{xb - xa:+.{digits}f}" if xa is not None and xb is not None else "-"
        cells += [_num(xa, digits), _num(xb, digits), delta]
    return f"<tr class='{cls}' data-env='{_e(name)}'>{''.join(f'<td>{c}</td>' for c in cells)}</tr>"


def _meta_table(a: RunFigures, b: RunFigures) -> str:
    keys = ["run", "kind", "agent", "model", "sampling", "algorithm", "envs", "turngym", "started", "written"]
    rows = ["<tr><th></th><th>A</th><th>B</th></tr>"]
    for k in keys:
        if k in a.meta or k in b.meta:
            va, vb = a.meta.get(k, "-"), b.meta.get(k, "-")
            mark = "" if va == vb else " class='diff'"
            rows.append(f"<tr><th>{k}</th><td>{_e(va)}</td><td{mark}>{_e(vb)}</td></tr>")
    rows.append(f"<tr><th>path</th><td>{_e(a.path)}</td><td>{_e(b.path)}</td></tr>")
    configs = "".join(
        f"<details><summary>config.yaml of {label}</summary><pre>{_e(f.meta.get('config', '(none)'))}</pre></details>"
        for label, f in (("A", a), ("B", b))
    )
    return (
        "<h2>Runs</h2><p class='muted'>Highlighted: where B differs from A.</p>"
        f"<table class='meta' id='runs'>{''.join(rows)}</table>{configs}"
    )


def _ran(s: EnvSummary | None) -> EnvSummary | None:
    return s if s is not None and s.skipped is None and s.episodes else None


def _signed_pct(x: float) -> str:
    return f"{100 * x:+.1f}%"

"""``report.html``: one self-contained page per run, to read a run and debug it offline (``file://``, no CDN).

The page is data plus a template (STYLE.md): the writer embeds one JSON document (``#report-data``) and
the viewer's CSS and JS (``report_assets/``) inline. It shows the run's metadata (agent, model, sampling,
config, turngym version, dates), the summary per env with its plot, each distinct error text once, and
a table of episodes (env, seed, group, outcome, return, turns, tokens, invalid actions, error, time) that
filters by outcome, env and text and sorts by any column; a click on an episode opens its transcript
turn by turn (actions and tool calls, observations with their images, per-turn reward and tokens).

Bounded for big runs: the table holds at most ``TABLE_CAP`` episodes and transcripts are embedded for at
most ``TRANSCRIPTS_PER_ENV`` episodes per env (``TRANSCRIPTS_CAP`` in all; each outcome of an env gets
its share), each message cut at ``MESSAGE_CHARS`` characters; the page says so. Images stay the files
the evaluator wrote next to the run (``images/``, turngym.benchmarks.eval.externalize_images) and are
linked relatively, so the page stays small.

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
import json
import mimetypes
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turngym.benchmarks.store import EPISODES_FILE, read_episodes, read_records
from turngym.benchmarks.summary import EnvSummary, Summary, summarize
from turngym.core.types import Episode, ImagePart, Message

__all__ = [
    "CURVE_FILE",
    "MESSAGE_CHARS",
    "REPORT_FILE",
    "TABLE_CAP",
    "TRANSCRIPTS_CAP",
    "TRANSCRIPTS_PER_ENV",
    "TrainSection",
    "learning_curve",
    "read_last_eval",
    "run_metadata",
    "success_plot",
    "write_report",
    "write_train_report",
]

REPORT_FILE = "report.html"
#: the training run's learning curve, also embedded in its report
CURVE_FILE = "curve.png"
#: episodes listed in the table at most (the first ones, in the run's order)
TABLE_CAP = 20_000
#: transcripts embedded per env, and in all
TRANSCRIPTS_PER_ENV = 50
TRANSCRIPTS_CAP = 500
#: characters of one message (or action) kept in a transcript
MESSAGE_CHARS = 8_000

_ASSETS = Path(__file__).with_name("report_assets")
#: the table's columns, in the order of the embedded rows
_COLS = ["id", "env", "seed", "group", "outcome", "return", "turns", "tokens", "invalid", "error", "time", "transcript"]
_HEAD = [
    ("id", "episode"),
    ("env", "env"),
    ("seed", "seed"),
    ("group", "group"),
    ("outcome", "outcome"),
    ("return", "return"),
    ("turns", "turns"),
    ("tokens", "tokens"),
    ("invalid", "invalid"),
    ("error", "error"),
    ("time", "time s"),
]


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
    run_dir = Path(run_dir)
    if train is not None:
        title = train.title
    elif summary is None:
        raise ValueError("write_report: an eval run's report needs its summary (only a training run's may lack one)")
    else:
        title = f"turngym eval: {summary.suite} / {summary.agent}"
    meta = run_metadata(run_dir, summary=summary)
    data = _page_data(episodes, env_of=env_of, run_dir=run_dir, page_dir=Path(path).parent, meta=meta)
    parts = [
        (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{_asset('report.css')}</style></head><body><h1>{_e(title)}</h1>"
        ),
        _meta_table(meta),
    ]
    if train is not None:
        parts += _train_section(train, run_dir)
    if summary is not None:
        parts += _eval_section(summary, episodes, heading=train is not None)
        parts.append(_final_screenshots(episodes, env_of=env_of, run_dir=run_dir))
    parts += _errors_section(data), _episodes_section(data, train is not None)
    config = train.config if train is not None else meta.get("config", "")
    if config:
        parts.append(f"<h2>Config</h2><details><summary>config.yaml</summary><pre>{_e(config)}</pre></details>")
    blob = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/").replace("<!--", "<\\!--")
    parts.append(f"<script type='application/json' id='report-data'>{blob}</script>")
    parts.append(f"<script>{_asset('viewer.js')}</script></body></html>")
    Path(path).write_text("\n".join(parts), encoding="utf-8")
    return Path(path)


def write_train_report(run_dir: str | Path, *, last_eval: tuple[Summary, Sequence[Episode]] | None = None) -> Path:
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
    if last_eval is None:
        last_eval = read_last_eval(run_dir, records=records)
    summary, episodes = last_eval if last_eval is not None else (None, [])
    section = TrainSection(title=f"turngym train: {algorithm} on {target or '?'}", records=records, config=config)
    return write_report(run_dir / REPORT_FILE, summary, list(episodes), run_dir=run_dir, train=section)


def read_last_eval(
    run_dir: str | Path, *, records: Sequence[Mapping[str, Any]] | None = None
) -> tuple[Summary, list[Episode]] | None:
    """A training run's last held-out eval (summary, episodes), read from its episode store (run_id
    ``eval{k}`` of the last ``eval`` record of metrics.jsonl); None where it has none."""
    run_dir = Path(run_dir)
    records = read_records(run_dir / "metrics.jsonl") if records is None else records
    evals = [r for r in records if r.get("kind") == "eval"]
    if not evals:
        return None
    episodes = read_episodes(run_dir / EPISODES_FILE, run_ids=[f"eval{evals[-1].get('iteration', 0)}"])
    if not episodes:
        return None
    cfg = _read_config(run_dir)
    model = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    return summarize(episodes, agent=str(model.get("path", ""))), episodes


def run_metadata(run_dir: str | Path, *, summary: Summary | None = None) -> dict[str, str]:
    """What a run was: its kind, agent, model, sampling, suite or env, turngym version, when it started (its
    config.yaml's time) and when this was written, its config text, from ``run_dir/config.yaml`` (an eval
    run's EvalConfig or a training run's TrainConfig)."""
    import turngym

    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    cfg = _read_config(run_dir)
    meta: dict[str, str] = {"run": run_dir.name}
    if isinstance(cfg.get("model"), dict):  # a training run
        model = cfg["model"]
        meta["kind"] = "train"
        meta["agent"] = f"{model.get('backend', 'hf')}:{model.get('path', '?')}"
        meta["model"] = str(model.get("path", "?"))
        meta["sampling"] = _inline_dict(cfg.get("sampling") or {})
        env = cfg.get("env") if isinstance(cfg.get("env"), dict) else None
        meta["envs"] = str(env.get("id")) if env else str(cfg.get("suite", "?"))
        algorithm = cfg.get("algorithm")
        meta["algorithm"] = str(algorithm.get("name", "?") if isinstance(algorithm, dict) else algorithm or "?")
    else:
        agent = cfg.get("agent") if isinstance(cfg.get("agent"), dict) else {}
        spec = str(agent.get("spec", summary.agent if summary else "?"))
        meta["kind"] = "eval"
        meta["agent"] = spec
        meta["model"] = _model_of(spec)
        meta["sampling"] = _inline_dict({k: v for k, v in agent.items() if k != "spec"}) or "agent defaults"
        suite = cfg.get("suite") if isinstance(cfg.get("suite"), dict) else {}
        meta["envs"] = str(suite.get("name", summary.suite if summary else "?"))
    meta["turngym"] = turngym.__version__
    if cfg_path.is_file():
        meta["started"] = _utc(cfg_path.stat().st_mtime)
        meta["config"] = cfg_path.read_text(encoding="utf-8")
    meta["written"] = _utc(time.time())
    return meta


# -- the page's data ---------------------------------------------------------------------------------------
def _page_data(
    episodes: Sequence[Episode], *, env_of: Mapping[str, str], run_dir: Path, page_dir: Path, meta: Mapping[str, str]
) -> dict[str, Any]:
    listed = list(episodes[:TABLE_CAP])
    envs: dict[str, int] = {}
    errors: dict[str, int] = {}
    error_count: dict[int, int] = {}
    error_eps: dict[int, list[str]] = {}
    rows = []
    for e in listed:
        env = envs.setdefault(env_of.get(e.group_id, e.env_id), len(envs))
        err = -1
        if e.error:
            err = errors.setdefault(e.error, len(errors))
            error_count[err] = error_count.get(err, 0) + 1
            error_eps.setdefault(err, []).append(e.episode_id)
        rows.append(
            [
                e.episode_id,
                env,
                e.seed,
                _group(e),
                _outcome(e),
                round(e.total_return, 6),
                e.num_turns,
                len(e.tokens),
                e.invalid_actions,
                err,
                round(e.wall_time, 4),
                -1,
            ]
        )
    transcripts = []
    for i in _transcript_rows(rows, len(envs)):
        rows[i][-1] = len(transcripts)
        transcripts.append(_transcript(listed[i], run_dir=run_dir, page_dir=page_dir))
    n_transcripts = len(transcripts)
    caps = {
        "table": f"the table lists {len(listed)} of {len(episodes)} episodes"
        + (f" (at most {TABLE_CAP})" if len(episodes) > TABLE_CAP else ""),
        "transcripts": f"transcripts are embedded for {n_transcripts} episodes: at most {TRANSCRIPTS_PER_ENV} per env "
        f"and {TRANSCRIPTS_CAP} in all, each outcome of an env getting its share; messages cut at "
        f"{MESSAGE_CHARS} characters",
    }
    return {
        "cols": _COLS,
        "rows": rows,
        "envs": list(envs),
        "errors": list(errors),
        "transcripts": transcripts,
        "caps": caps,
        "meta": {"run_id": listed[0].run_id if listed else meta.get("run", "")},
        "error_counts": [error_count[i] for i in range(len(errors))],
        "error_episodes": [error_eps[i][:5] for i in range(len(errors))],
    }


def _transcript_rows(rows: Sequence[Sequence[Any]], n_envs: int) -> list[int]:
    """The rows whose transcripts are embedded: per env up to its share of the caps, taken in turn from its
    errors, failures, successes and ungraded episodes, so each outcome is there to read."""
    per_env = min(TRANSCRIPTS_PER_ENV, max(1, TRANSCRIPTS_CAP // max(1, n_envs)))
    by_env: dict[int, dict[str, list[int]]] = {}
    for i, r in enumerate(rows):
        by_env.setdefault(r[1], {}).setdefault(r[4], []).append(i)
    chosen: list[int] = []
    for outcomes in by_env.values():
        queues = [outcomes.get(o, []) for o in ("error", "failure", "success", "none")]
        picked: list[int] = []
        depth = 0
        while len(picked) < per_env and any(depth < len(q) for q in queues):
            picked += [q[depth] for q in queues if depth < len(q)][: per_env - len(picked)]
            depth += 1
        chosen += picked
    return sorted(chosen)


def _transcript(e: Episode, *, run_dir: Path, page_dir: Path) -> dict[str, Any]:
    def span(s: tuple[int, int] | None) -> int | None:
        return None if s is None else s[1] - s[0]

    turns = []
    for t in e.turns:
        calls = [[c.name, json.dumps(c.arguments, ensure_ascii=False)[:MESSAGE_CHARS]] for c in t.tool_calls or []]
        action, _ = _cut(t.action)
        turns.append(
            {
                "i": t.index,
                "action": action,
                "calls": calls,
                "obs": [_message(m, run_dir=run_dir, page_dir=page_dir) for m in t.observation],
                "reward": round(t.reward, 6),
                "aerr": t.action_error,
                "atok": span(t.action_span),
                "otok": span(t.observation_span),
                "dur": round(t.duration, 4),
                "term": t.terminated,
                "trunc": t.truncated,
            }
        )
    info = {k: v for k, v in e.info.items() if k not in ("success",)}
    return {
        "prompt": [_message(m, run_dir=run_dir, page_dir=page_dir) for m in e.prompt],
        "turns": turns,
        "info": json.dumps(info, ensure_ascii=False, default=str)[:MESSAGE_CHARS] if info else "",
    }


def _message(m: Message, *, run_dir: Path, page_dir: Path) -> dict[str, Any]:
    text, cut = _cut(m.text)
    out: dict[str, Any] = {"r": m.role, "t": text}
    if cut:
        out["cut"] = cut
    if m.tool_calls:
        out["t"] += "".join(f"\n[tool call {c.name}({json.dumps(c.arguments)})]" for c in m.tool_calls)
    images: list[ImagePart] = m.images
    if images:
        out["img"] = [_image(p.url, run_dir=run_dir, page_dir=page_dir) for p in images]
    return out


def _image(url: str, *, run_dir: Path, page_dir: Path) -> dict[str, Any]:
    """An image's src for the page: a data or http URL as it is, a file of the run relative to the page."""
    if url.startswith(("data:", "http://", "https://", "file:")):
        return {"src": url}
    path = run_dir / url
    if not path.is_file():
        return {"src": url, "missing": True}
    return {"src": Path(os.path.relpath(path, page_dir)).as_posix()}


def _cut(text: str) -> tuple[str, int]:
    return (text, 0) if len(text) <= MESSAGE_CHARS else (text[:MESSAGE_CHARS], len(text) - MESSAGE_CHARS)


def _outcome(e: Episode) -> str:
    if e.error:
        return "error"
    return "none" if e.success is None else "success" if e.success else "failure"


_GROUP_INDEX = re.compile(r"/(g\d+)$")


def _group(e: Episode) -> str:
    """The episode's place in its group (``g1``, from its id ``<env>/s<seed>/g<k>``), else its group id."""
    m = _GROUP_INDEX.search(e.episode_id)
    return m.group(1) if m else e.group_id


# -- the page's sections ------------------------------------------------------------------------------------
def _meta_table(meta: Mapping[str, str]) -> str:
    labels = [
        ("run", "run"),
        ("kind", "kind"),
        ("agent", "agent"),
        ("model", "model"),
        ("sampling", "sampling"),
        ("algorithm", "algorithm"),
        ("envs", "suite / env"),
        ("turngym", "turngym version"),
        ("started", "started"),
        ("written", "report written"),
    ]
    rows = "".join(f"<tr><th>{label}</th><td>{_e(meta[k])}</td></tr>" for k, label in labels if k in meta)
    return f"<table class='meta' id='meta'>{rows}</table>"


def _eval_section(summary: Summary, episodes: Sequence[Episode], *, heading: bool) -> list[str]:
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
    return parts


def _final_screenshots(episodes: Sequence[Episode], *, env_of: Mapping[str, str], run_dir: Path) -> str:
    """Per env that shows images, the last image of its first episode that has one, inlined (one per env, so the
    page keeps an overview when copied alone)."""
    by_env: dict[str, list[Episode]] = {}
    for e in episodes:
        by_env.setdefault(env_of.get(e.group_id, e.env_id), []).append(e)
    shots = []
    for name, eps in by_env.items():
        shot = _final_image(eps, run_dir)
        if shot is not None:
            shots.append(
                f"<figure><figcaption class='muted'>{_e(name)}: final screenshot of {_e(shot[0])}</figcaption>"
                f"<img class='shot' alt='final screenshot' src='{shot[1]}'></figure>"
            )
    return f"<h2>Final screenshots</h2>{''.join(shots)}" if shots else ""


def _final_image(eps: Sequence[Episode], run_dir: Path) -> tuple[str, str] | None:
    """(episode id, data URL) of the last image of the first episode that has one."""
    for e in eps:
        messages = [m for t in e.turns for m in t.observation] or list(e.prompt)
        for m in reversed(messages):
            images: list[ImagePart] = m.images
            if images:
                url = images[-1].url
                path = run_dir / url
                if url.startswith(("data:", "http://", "https://")) or not path.is_file():
                    return (e.episode_id, _e(url)) if url.startswith("data:") else None
                mime = mimetypes.guess_type(path.name)[0] or "image/png"
                return e.episode_id, f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
    return None


def _errors_section(data: Mapping[str, Any]) -> str:
    if not data["errors"]:
        return ""
    rows = ["<tr><th>episodes</th><th class='l'>error</th><th class='l'>e.g.</th></tr>"]
    for i, text in enumerate(data["errors"]):
        eps = ", ".join(data["error_episodes"][i])
        rows.append(
            f"<tr><td><a href='#episodes' data-filter-error='{i}'>{data['error_counts'][i]}</a></td>"
            f"<td class='l'><pre>{_e(text)}</pre></td><td class='l'>{_e(eps)}</td></tr>"
        )
    return (
        "<h2>Errors</h2><p class='muted'>Each distinct error text once; a click on its count lists its episodes."
        f"</p><table id='errors'>{''.join(rows)}</table>"
    )


def _episodes_section(data: Mapping[str, Any], train: bool) -> str:
    caps = data["caps"]
    which = "the last held-out eval's episodes (training episodes stay in episodes.jsonl)" if train else "episodes"
    head = "".join(f"<th data-key='{k}'>{label}</th>" for k, label in _HEAD)
    return (
        f"<h2>Episodes</h2><p class='muted' id='caps'>The table lists {which}: {_e(caps['table'])}; "
        f"{_e(caps['transcripts'])}. A click on an episode opens its transcript; a click on a column sorts.</p>"
        "<div id='controls'><label>outcome <select id='f-outcome'><option value=''>all</option>"
        "<option value='success'>success</option><option value='failure'>failure</option>"
        "<option value='error'>error</option><option value='none'>ungraded</option></select></label>"
        "<label>env <select id='f-env'><option value=''>all</option></select></label>"
        "<input type='search' id='f-text' placeholder='search ids, errors, transcripts'>"
        "<span class='muted' id='count'></span></div>"
        f"<table id='episodes'><thead><tr>{head}</tr></thead><tbody></tbody></table>"
        "<button id='more' hidden>show more</button>"
    )


def _train_section(train: TrainSection, run_dir: Path) -> list[str]:
    steps = [r for r in train.records if r.get("kind") == "train"]
    evals = [r for r in train.records if r.get("kind") == "eval"]
    seen = steps[-1].get("episodes_seen", 0) if steps else 0
    parts = [f"<p class='muted'>{len(steps)} iterations, {seen} training episodes, {len(evals)} held-out evals.</p>"]
    if steps or evals:
        png = learning_curve(train.records)
        (run_dir / CURVE_FILE).write_bytes(png)
        parts.append("<h2>Learning curve</h2>")
        parts.append(
            f"<img class='plot' alt='learning curve' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        )
    if evals:
        head = ["iteration", "episodes seen", "success", "mean return", "mean turns", "errors"]
        rows = [f"<tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>"]
        for r in evals:
            cells = [
                str(r.get("iteration", "")),
                str(r.get("episodes_seen", "")),
                _pct(r.get("success")),
                _num(r.get("return")),
                _num(r.get("turns"), 2),
                str(int(r.get("errors", 0))),
            ]
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
        ax.plot(
            [r.get("episodes_seen", 0) for r in evals],
            [r["success"] for r in evals],
            "o-",
            color="tab:red",
            lw=2,
            label="held-out eval",
        )
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
    """A horizontal bar chart of success rate per env (full env ids) with 95% CI error bars, as base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.env for r in rows]
    rates = [r.success_rate or 0.0 for r in rows]
    lo = [max(0.0, rate - r.ci95[0]) if r.ci95 else 0.0 for rate, r in zip(rates, rows, strict=True)]
    hi = [max(0.0, r.ci95[1] - rate) if r.ci95 else 0.0 for rate, r in zip(rates, rows, strict=True)]
    width = 6.5 + 0.07 * max(len(n) for n in names)
    fig, ax = plt.subplots(figsize=(width, 1.0 + 0.38 * len(rows)), dpi=100)
    y = range(len(rows))
    ax.barh(y, rates, xerr=[lo, hi], capsize=3, color="#4c72b0")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("success rate")
    ax.set_title("Success per env (95% Wilson interval)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


#: the summary's optional per-env figure of replies cut at max_new_tokens (added by turngym.benchmarks.summary
#: where the agent reports it); the report shows it where the summary has it
_CUT_FIELD = "cut_reply_rate"


def _summary_table(summary: Summary) -> str:
    rows_of = [*summary.envs.values(), summary.overall]
    cut = any(getattr(s, _CUT_FIELD, None) is not None for s in rows_of)
    head = ["env", "episodes", "success", "95% CI", "mean return", "mean turns", "invalid actions", "errors", "tokens"]
    head += ["cut at max_new_tokens"] if cut else []
    head += ["env s", "agent s", "total s"]
    rows = [f"<tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>"]
    for s in rows_of:
        if s.skipped is not None:
            rows.append(
                f"<tr><td>{_e(s.env)}</td><td class='skip' colspan='{len(head) - 1}'>skipped: {_e(s.skipped)}</td></tr>"
            )
            continue
        cls = " class='overall'" if s is summary.overall else ""
        w = s.wall_time
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
            *([_pct(getattr(s, _CUT_FIELD, None))] if cut else []),
            f"{w.env:.2f}",
            f"{w.agent:.2f}",
            f"{w.total:.2f}",
        ]
        rows.append(f"<tr{cls}>{''.join(f'<td>{c}</td>' for c in cells)}</tr>")
    return (
        "<h2>Summary</h2><table id='summary'>" + "".join(rows) + "</table>"
        "<p class='muted'>Times in seconds, summed over episodes: in the env (make, reset, step), in the agent, "
        "and in total.</p>"
    )


def _read_config(run_dir: Path) -> dict[str, Any]:
    import yaml

    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return {}
    return cfg if isinstance(cfg, dict) else {}


def _model_of(spec: str) -> str:
    """The model an agent spec names: ``hf:PATH`` / ``vllm:PATH`` -> PATH, ``openai:URL#MODEL`` -> MODEL."""
    kind, _, rest = spec.partition(":")
    if kind == "openai":
        return rest.partition("#")[2] or rest or "?"
    return rest if kind in ("hf", "vllm") and rest else f"none ({kind} agent)"


def _inline_dict(d: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())


def _utc(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


def _asset(name: str) -> str:
    return (_ASSETS / name).read_text(encoding="utf-8")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _e(text: object) -> str:
    return html.escape(str(text))

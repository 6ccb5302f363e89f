"""Evaluate an agent on a suite into a run directory, resuming where an interrupted run stopped.

    cfg = eval_config("smoke", agent="scripted", overrides=["concurrency=4"])
    plan = plan_run(cfg, Path("runs/x"))      # tasks, the ones already stored, skipped envs
    summary = asyncio.run(execute(plan))      # plays the rest; writes summary.json and report.html

The one evaluator: ``play`` (tasks -> episodes, each appended to the run's episode store as it finishes)
serves eval runs (``execute``) and a training run's held-out eval (turngym.trainers.rollout.evaluate);
both summarise with turngym.benchmarks.summary and report with turngym.benchmarks.report.

The run directory holds:

    config.yaml      the resolved EvalConfig (suite inline); a resume must match it
    episodes.jsonl   one line per finished episode (turngym.benchmarks.store)
    images/          image parts of observations, as files (the episodes keep relative paths)
    summary.json     turngym.benchmarks.summary.Summary
    report.html      self-contained report with plots (turngym.benchmarks.report)

Episode ids are ``<env name>/s<seed>/g<k>`` (env name = the suite entry's label or id, k = index in
the group), so rerunning the same command skips the episodes already stored and plays only the rest.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from turngym.agents.base import Agent
from turngym.agents.runner import EpisodeTask, group_tasks, run_episodes
from turngym.benchmarks.store import EPISODES_FILE, EpisodeStore, read_episodes
from turngym.benchmarks.suite import Suite, env_suite, load_suite, suite_names
from turngym.benchmarks.summary import Summary, summarize
from turngym.core.config import apply_overrides, config_diff, describe_change, dump_config, read_yaml, validate_config
from turngym.core.errors import ConfigError, did_you_mean
from turngym.core.registry import env_info
from turngym.core.types import Episode, ImagePart, Message
from turngym.distributed.ray_rollout import RayOptions

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
IMAGES_DIR = "images"

#: fields that may change between an interrupted run and its resume (they do not change the tasks)
RESUMABLE_CHANGES = frozenset({"concurrency", "ray"})


class AgentConfig(BaseModel):
    """``spec`` picks the agent (``make_agent(spec)``); every other key is an option passed to it
    (``--set agent.temperature=0.7``)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    spec: str

    @field_validator("spec")
    @classmethod
    def _known_kind(cls, spec: str) -> str:
        from turngym.agents.base import AGENT_FACTORIES

        if spec.partition(":")[0] not in AGENT_FACTORIES:
            raise ValueError(
                f"unknown agent spec {spec!r}: it must start with one of {', '.join(sorted(AGENT_FACTORIES))} "
                "(e.g. scripted, random, hf:PATH, vllm:PATH, openai:URL#MODEL)"
            )
        return spec

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    suite: Suite
    agent: AgentConfig
    #: task instances per env (overrides the suite's counts; an env that lists its seeds plays its first N)
    episodes: int | None = Field(default=None, ge=1)
    #: episodes per task instance (overrides the suite's group_size)
    group_size: int | None = Field(default=None, ge=1)
    #: episodes in flight (on each Ray rollout worker, with ``ray``)
    concurrency: int = Field(default=8, ge=1)
    #: play on Ray rollout workers (``--ray [ADDRESS] --workers N``) instead of the local runner
    ray: RayOptions | None = None
    #: seconds for one agent act plus one env step
    turn_timeout: float | None = Field(default=None, gt=0)
    episode_timeout: float | None = Field(default=None, gt=0)


def eval_config(
    suite: str | Suite | None = None,
    *,
    agent: str,
    overrides: list[str] | tuple[str, ...] = (),
    envs: Sequence[str] = (),
    env_args: Sequence[str | Mapping[str, Any]] = (),
    **fields: Any,
) -> EvalConfig:
    """The resolved config: the suite (a name, a path, a ``Suite``, or the envs ``envs`` with ``env_args``:
    ``--env ID --env-args JSON``) loaded inline, ``fields`` (None = unset), then the ``--set`` overrides
    (``agent.temperature=0.7``, ``suite.seed=5``, ``concurrency=4``). A mistake raises ``ConfigError`` naming
    the option or key it came from."""
    if (suite is None) == (not envs):
        raise ConfigError(
            "give --suite NAME_OR_FILE or --env ID (repeatable), not both"
            if envs
            else "nothing to evaluate: give --env ID (e.g. --env turngym/GuessNumber-v0) or --suite NAME_OR_FILE "
            f"(shipped suites: {', '.join(suite_names())})"
        )
    if env_args and not envs:
        raise ConfigError("--env-args goes with --env ID; for a suite, set kwargs in the suite file or with --set")
    check_agent_spec(agent)
    if envs:
        resolved = env_suite(list(envs), [_env_args(a) for a in env_args])
    else:
        resolved = suite if isinstance(suite, Suite) else load_suite(str(suite))
    data: dict[str, Any] = {
        "suite": resolved.model_dump(mode="json"),
        "agent": {"spec": agent},
        **{k: v for k, v in fields.items() if v is not None},
    }
    set_keys = {text.partition("=")[0].strip(): text for text in overrides}

    def origin(key: str) -> str | None:
        for k in sorted(set_keys, key=len, reverse=True):
            if key == k or key.startswith(k + "."):
                return f"--set {set_keys[k]}"
        top = key.split(".")[0]
        if key == "agent.spec":
            return "--agent"
        if top in fields and fields[top] is not None:
            return f"--{top.replace('_', '-')}"
        return None

    cfg = validate_config(
        EvalConfig,
        apply_overrides(data, overrides),
        source="the eval config",
        fix="Fix the option (see `turngym eval --help`) or the --set KEY=VALUE named.",
        origin=origin,
    )
    check_partner_specs(cfg.suite)
    return cfg


def check_partner_specs(suite: Suite) -> None:
    """``check_agent_spec`` on the dialogue partners given as agent specs in the envs' kwargs (``partner=``,
    ``oracle=``: turngym.core.partner), so a wrong one stops the run before any episode."""
    for entry in suite.envs:
        check_partner_kwargs(entry.kwargs, where=f"env {entry.name!r}, kwarg")


def check_partner_kwargs(kwargs: Mapping[str, Any], *, where: str) -> None:
    """``check_agent_spec`` on each partner spec in one env's ``kwargs`` (nothing is built); the ConfigError
    starts with ``where`` and the option (``--kwargs oracle: ...``)."""
    from turngym.agents.partner import partner_spec
    from turngym.core.partner import PARTNER_OPTIONS, is_partner_spec

    for option in PARTNER_OPTIONS:
        value = kwargs.get(option)
        if is_partner_spec(value):
            try:
                spec, _ = partner_spec(value)
            except ConfigError as e:
                raise ConfigError(f"{where} {option}: {e}") from None
            check_agent_spec(spec, where=f"{where} {option}:")


def _env_args(value: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    try:
        data = json.loads(value)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"--env-args {value!r} is not JSON ({e.msg} at character {e.pos}): write a JSON object of the env's "
            """keyword arguments, e.g. --env-args '{"high": 16}'"""
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"--env-args {value!r} is JSON but not an object: write the env's keyword arguments as one, "
            """e.g. --env-args '{"high": 16}'"""
        )
    return data


def check_agent_spec(spec: str, *, where: str = "--agent") -> None:
    """What can be checked of an agent spec without building the agent: a known kind, and for ``hf:PATH`` /
    ``vllm:PATH`` a local model directory (so a mistake stops the run before any episode starts)."""
    from turngym.agents.base import AGENT_FACTORIES

    kind, _, rest = spec.partition(":")
    if kind not in AGENT_FACTORIES:
        raise ConfigError(
            f"{where} {spec!r}: unknown agent kind {kind!r}.{did_you_mean(kind, list(AGENT_FACTORIES))} An agent spec "
            f"starts with one of {', '.join(sorted(AGENT_FACTORIES))}: pass e.g. --agent scripted, --agent random, "
            "--agent hf:PATH (a local model directory), --agent vllm:PATH or --agent openai:URL#MODEL"
        )
    if kind in ("hf", "vllm"):
        path = Path(rest)
        build = "build a small one with `turngym models tiny --out DIR`"
        if not rest:
            raise ConfigError(
                f"{where} {spec!r}: the {kind} agent needs a model directory: --agent {kind}:PATH ({build})"
            )
        if not path.exists():
            raise ConfigError(
                f"{where} {spec!r}: the model directory {rest!r} does not exist. Pass a local Hugging Face model "
                f"directory (one holding config.json and the weights), or {build}"
            )
        if not path.is_dir() or not (path / "config.json").is_file():
            what = "is a file, not a directory" if not path.is_dir() else "holds no config.json, so it is not a model"
            raise ConfigError(
                f"{where} {spec!r}: {rest!r} {what}. Pass a local Hugging Face model directory (one holding "
                f"config.json and the weights, e.g. what save_pretrained writes), or {build}"
            )


def default_run_dir(cfg: EvalConfig, root: str | Path = "runs") -> Path:
    """``runs/<suite>-<agent>-<UTC timestamp>``."""
    agent = re.sub(r"[^A-Za-z0-9_.-]+", "_", cfg.agent.spec).strip("_")[:40] or "agent"
    return Path(root) / f"{cfg.suite.name}-{agent}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


@dataclass
class RunPlan:
    cfg: EvalConfig
    run_dir: Path
    tasks: list[EpisodeTask]
    #: env name of each group id
    env_of: dict[str, str]
    #: env names in suite order
    order: list[str]
    #: env name -> why it cannot run here
    skipped: dict[str, str]
    #: episodes already in the store (of this plan's tasks)
    done: list[Episode] = field(default_factory=list)

    @property
    def pending(self) -> list[EpisodeTask]:
        ids = {e.episode_id for e in self.done}
        return [t for t in self.tasks if t.episode_id not in ids]


def plan_run(cfg: EvalConfig, run_dir: str | Path) -> RunPlan:
    """Check or write ``config.yaml`` in ``run_dir``, list the tasks, and find those already stored."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(
            f"--out {str(run_dir)!r} is a file, not a directory: pass a directory path for the run (a new one, or "
            "the run directory of an interrupted eval to resume it)"
        )
    if (run_dir / "checkpoints").exists() or (run_dir / "metrics.jsonl").exists():
        raise ConfigError(
            f"--out {str(run_dir)!r} holds a training run (checkpoints/, metrics.jsonl): an eval there would overwrite "
            "its config.yaml; pass a new --out directory (to evaluate the run's model: `turngym export model "
            f"{run_dir} --out DIR`, then --agent hf:DIR)"
        )
    suite = cfg.suite
    group_size = cfg.group_size or suite.group_size
    names = [e.name for e in suite.envs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(
            f"suite {suite.name!r} lists {', '.join(dup)} more than once: give each entry a distinct 'label'"
        )
    tasks: list[EpisodeTask] = []
    env_of: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for entry in suite.envs:
        reason = env_info(entry.id).unavailable_reason()  # RegistryError (with close matches) if unknown
        if reason:
            skipped[entry.name] = reason
            continue
        seeds = suite.seeds_for(entry, cfg.episodes)
        env_tasks = group_tasks(
            entry.id,
            seeds,
            group_size=group_size,
            env_kwargs=entry.kwargs,
            max_turns=entry.max_turns,
            prefix=entry.name,
        )
        env_of.update((t.group_id, entry.name) for t in env_tasks)
        tasks.extend(env_tasks)
    _claim_run_dir(cfg, run_dir)  # only once the tasks are known: a plan that fails writes nothing
    wanted = {t.episode_id for t in tasks}
    done = [e for e in read_episodes(run_dir / EPISODES_FILE) if e.episode_id in wanted]
    return RunPlan(cfg=cfg, run_dir=run_dir, tasks=tasks, env_of=env_of, order=names, skipped=skipped, done=done)


async def play(
    tasks: Sequence[EpisodeTask],
    agent: Agent | AgentConfig,
    *,
    store: EpisodeStore,
    run_dir: Path,
    run_id: str,
    concurrency: int,
    turn_timeout: float | None = None,
    episode_timeout: float | None = None,
    on_episode: Callable[[Episode], None] | None = None,
    ray: RayOptions | None = None,
    on_event: Callable[[str], None] | None = None,
) -> list[Episode]:
    """Play ``tasks`` with ``agent`` (which stays open); each finished episode, its images written to files
    under ``run_dir``, is appended to ``store`` as it finishes. The episodes, in task order. With ``ray``, the
    tasks are played on Ray rollout workers that build the agent from ``agent`` (an ``AgentConfig``) on their
    nodes (turngym.distributed.ray_rollout); ``on_event`` sees a line for their placement and for each one lost."""
    if not tasks:
        return []

    def record(ep: Episode) -> None:
        ep = externalize_images(ep, run_dir)
        store.append(ep)
        stored[ep.episode_id] = ep
        if on_episode is not None:
            on_episode(ep)

    stored: dict[str, Episode] = {}
    timeouts = {"turn_timeout": turn_timeout, "episode_timeout": episode_timeout}
    if ray is not None:
        from turngym.distributed.ray_rollout import run_episodes_ray

        if not isinstance(agent, AgentConfig):
            raise TypeError("with ray=, play() takes the agent as an AgentConfig (each worker builds its own)")
        await run_episodes_ray(
            tasks, agent.spec, agent_options=agent.options, ray=ray, concurrency=concurrency, run_id=run_id,
            on_episode=record, on_event=on_event, **timeouts,
        )
    else:
        await run_episodes(tasks, agent, concurrency=concurrency, run_id=run_id, on_episode=record, **timeouts)
    return [stored[t.episode_id] for t in tasks if t.episode_id in stored]


def prepare_agent(plan: RunPlan) -> Agent | None:
    """The agent of ``plan`` (None when nothing is pending, or when Ray workers build their own), built now: a model
    that does not load or an agent option that is wrong stops the run before any episode (``execute(plan,
    agent=...)`` then plays with it)."""
    if not plan.pending or plan.cfg.ray is not None:
        return None
    from turngym.agents.base import make_agent

    return make_agent(plan.cfg.agent.spec, **plan.cfg.agent.options)


async def execute(
    plan: RunPlan,
    *,
    on_episode: Callable[[Episode], None] | None = None,
    agent: Agent | None = None,
    on_event: Callable[[str], None] | None = None,
) -> Summary:
    """Play the pending tasks of ``plan``, append each episode to the store, then write the summary
    and the report. ``on_episode`` sees each new episode (progress bars), ``on_event`` the Ray workers' lines.
    ``agent``: one made beforehand (``prepare_agent``), which ``execute`` closes; by default it is made here
    (with ``cfg.ray``, each rollout worker makes its own)."""
    from turngym.benchmarks.report import write_report

    cfg, run_dir = plan.cfg, plan.run_dir
    start = time.perf_counter()
    new: list[Episode] = []
    pending = plan.pending
    if not pending and agent is not None:
        await agent.aclose()
    if pending:
        if cfg.ray is not None and agent is not None:  # the workers build their own
            await agent.aclose()
            agent = None
        built = agent if agent is not None or cfg.ray is not None else prepare_agent(plan)
        with EpisodeStore(path=run_dir / EPISODES_FILE) as store:
            try:
                new = await play(
                    pending,
                    cfg.agent if built is None else built,
                    store=store,
                    run_dir=run_dir,
                    run_id=run_dir.name,
                    concurrency=cfg.concurrency,
                    turn_timeout=cfg.turn_timeout,
                    episode_timeout=cfg.episode_timeout,
                    on_episode=on_episode,
                    ray=cfg.ray,
                    on_event=on_event,
                )
            finally:
                if built is not None:
                    await built.aclose()
    episodes = _in_task_order(plan, [*plan.done, *new])
    elapsed = time.perf_counter() - start
    previous = run_dir / SUMMARY_FILE
    if plan.done and previous.is_file():  # a resume: add the time of the earlier invocations
        elapsed += Summary.model_validate_json(previous.read_text()).elapsed
    summary = summarize(
        episodes,
        env_of=plan.env_of,
        order=plan.order,
        skipped=plan.skipped,
        agent=cfg.agent.spec,
        suite=cfg.suite.name,
        elapsed=elapsed,
    )
    (run_dir / SUMMARY_FILE).write_text(summary.model_dump_json(indent=2))
    write_report(run_dir / REPORT_FILE, summary, episodes, env_of=plan.env_of, run_dir=run_dir)
    return summary


def load_run(run_dir: str | Path) -> tuple[EvalConfig, Summary | None, list[Episode]]:
    """A run directory's config, summary (None if the run never finished once) and episodes."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(f"{str(run_dir)!r} is not a turngym run directory: it has no {CONFIG_FILE}")
    cfg = validate_config(EvalConfig, read_yaml(run_dir / CONFIG_FILE), source=str(run_dir / CONFIG_FILE))
    summary_path = run_dir / SUMMARY_FILE
    summary = Summary.model_validate_json(summary_path.read_text()) if summary_path.is_file() else None
    return cfg, summary, read_episodes(run_dir / EPISODES_FILE)


def externalize_images(episode: Episode, run_dir: Path) -> Episode:
    """``episode`` with every data-URL image part written to ``run_dir/images/`` and replaced by the
    file's path relative to ``run_dir`` (episodes stay small and the report can show them)."""
    if not any(_has_data_image(m) for m in episode.prompt) and not any(
        _has_data_image(m) for t in episode.turns for m in t.observation
    ):
        return episode
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", episode.episode_id)
    counter = iter(range(1_000_000))

    def convert(messages: list[Message], where: str) -> list[Message]:
        out = []
        for m in messages:
            if not _has_data_image(m):
                out.append(m)
                continue
            parts = [
                ImagePart(url=_save_data_url(p.url, run_dir, f"{stem}-{where}-{next(counter)}"))
                if isinstance(p, ImagePart) and p.url.startswith("data:")
                else p
                for p in m.content  # type: ignore[union-attr]  # _has_data_image: a list
            ]
            out.append(m.model_copy(update={"content": parts}))
        return out

    turns = [
        t.model_copy(update={"observation": convert(t.observation, f"t{t.index}")})
        if any(_has_data_image(m) for m in t.observation)
        else t
        for t in episode.turns
    ]
    return episode.model_copy(update={"prompt": convert(episode.prompt, "reset"), "turns": turns})


_DATA_URL = re.compile(r"data:image/([A-Za-z0-9.+-]+);base64,(.*)", re.DOTALL)


def _has_data_image(m: Message) -> bool:
    return not isinstance(m.content, str) and any(
        isinstance(p, ImagePart) and p.url.startswith("data:") for p in m.content
    )


def _save_data_url(url: str, run_dir: Path, stem: str) -> str:
    match = _DATA_URL.fullmatch(url)
    if match is None:
        return url  # not a base64 image: keep it inline
    ext = {"jpeg": "jpg", "svg+xml": "svg"}.get(match.group(1).lower(), match.group(1).lower())
    try:
        blob = base64.b64decode(match.group(2), validate=False)
    except (binascii.Error, ValueError):
        return url
    rel = f"{IMAGES_DIR}/{stem}.{ext}"
    path = run_dir / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return rel


def _claim_run_dir(cfg: EvalConfig, run_dir: Path) -> None:
    """Write ``config.yaml``, or check that the stored one matches ``cfg`` (a resume of a run that
    stored episodes; a run that stored none is simply started afresh)."""
    path = run_dir / CONFIG_FILE
    if path.is_file() and read_episodes(run_dir / EPISODES_FILE):
        stored = read_yaml(path)
        diffs = resume_changes(stored, cfg)
        if diffs:
            raise ConfigError(
                f"--out {str(run_dir)!r} holds a run with a different config, so it cannot be resumed with this one "
                f"({'; '.join(diffs[:5])}{f'; and {len(diffs) - 5} more' if len(diffs) > 5 else ''}). "
                f"Rerun with the stored settings ({path}), or pass a new --out directory."
            )
    elif run_dir.exists() and (run_dir / EPISODES_FILE).exists():
        raise ConfigError(
            f"{str(run_dir)!r} holds episodes but no {CONFIG_FILE}: it is not a turngym run; pass a new --out directory"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_config(cfg))


def resume_changes(stored: Mapping[str, Any], cfg: EvalConfig) -> list[str]:
    """What differs between a run directory's stored config and ``cfg``, one readable line per change, the
    changes a resume allows (``RESUMABLE_CHANGES``) left out. A changed suite env is named by its label or id
    (``suite env 'turngym/GuessNumber-v0' (envs.0) kwargs.high: stored 16, now 32``); a different number of
    envs is one line listing the envs on each side."""
    current = cfg.model_dump(mode="json")
    try:  # defaults the stored file predates are filled in, so only what was set differently counts
        stored = EvalConfig.model_validate(stored).model_dump(mode="json")
    except ValueError:
        pass
    stored_envs = ((stored.get("suite") or {}).get("envs")) or []
    out = []
    for key, old, new in config_diff(dict(stored), current):
        if key.split(".")[0] in RESUMABLE_CHANGES:
            continue
        parts = key.split(".")
        if parts[:2] == ["suite", "envs"] and len(parts) > 2 and parts[2].isdigit():
            i = int(parts[2])
            entry = stored_envs[i] if i < len(stored_envs) and isinstance(stored_envs[i], dict) else {}
            name = entry.get("label") or entry.get("id") or f"#{i}"
            out.append(f"suite env {name!r} (envs.{i}) " + describe_change(".".join(parts[3:]) or "entry", old, new))
        elif key == "suite.envs":

            def names(envs: Any) -> str:
                return ", ".join(str(e.get("label") or e.get("id")) for e in envs if isinstance(e, dict)) or "none"

            out.append(f"suite envs: stored {names(old)}; now {names(new)}")
        else:
            top = key.split(".")[0]
            label = f"{key} (--{top.replace('_', '-')})" if top in _OPTION_KEYS and "." not in key else key
            out.append(describe_change(label, old, new))
    return out


#: EvalConfig keys that are also eval options
_OPTION_KEYS = frozenset({"episodes", "group_size", "turn_timeout", "episode_timeout"})


def _in_task_order(plan: RunPlan, episodes: list[Episode]) -> list[Episode]:
    by_id = {e.episode_id: e for e in episodes}
    return [by_id[t.episode_id] for t in plan.tasks if t.episode_id in by_id]


__all__ = [
    "AgentConfig",
    "EvalConfig",
    "RunPlan",
    "check_agent_spec",
    "check_partner_kwargs",
    "check_partner_specs",
    "default_run_dir",
    "eval_config",
    "execute",
    "externalize_images",
    "load_run",
    "plan_run",
    "play",
    "prepare_agent",
    "resume_changes",
]

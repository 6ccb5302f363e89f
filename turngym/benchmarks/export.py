"""A run's episodes in the formats the trainers people already run read (``turngym export episodes``).

One small pure function per format turns stored ``Episode`` records into rows; :func:`export_episodes`
reads a run directory's episode store and writes them:

    ==========  ==================  ===========================================================================
    format      function            written to ``out/``
    ==========  ==================  ===========================================================================
    ``hf``      :func:`hf_rows`     a Hugging Face ``datasets`` dataset (``Dataset.save_to_disk``; read it with
                                    ``datasets.load_from_disk(out)``): one row per episode, ids, env, seed,
                                    group, messages, per-turn rewards, return, success, the token stream
    ``sft``     :func:`sft_records` ``sft.jsonl``: ``{"messages": [...]}`` per episode, what TRL's SFTTrainer
                                    reads; train with ``SFTConfig(assistant_only_loss=True)`` so the loss
                                    covers the assistant's messages (the agent's turns) and nothing else
    ``dpo``     :func:`dpo_records` ``dpo.jsonl``: TRL's conversational preference format, ``prompt``,
                                    ``chosen``, ``rejected``: two episodes of one group (one task instance),
                                    the higher return chosen
    ``tokens``  :func:`token_records` ``tokens.jsonl``: the token stream of each episode as stored (ids, loss
                                    mask = 1 where the policy sampled, sampled logprobs, turn spans)
    ==========  ==================  ===========================================================================

The chat messages of an episode (:func:`episode_messages`) are the OpenAI-format dicts of its first
observation, then each turn's action (an assistant message, with its tool calls) and the env's answer. The
store keeps no system prompt (the agent adds it): ``system`` gives one per episode (the CLI's default is
the prompt an ``hf:``/``vllm:`` agent shows for the env: its description and action format).

Errors (:class:`~turngym.core.errors.ConfigError`) name the value, the cause and the fix: a path that is
not a run directory, ``tokens`` on a run played without token streams, ``dpo`` on a run without groups.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from turngym.benchmarks.store import EPISODES_FILE, read_episodes
from turngym.core.errors import ConfigError
from turngym.core.types import Episode, Message

__all__ = [
    "FORMATS",
    "ExportResult",
    "dpo_records",
    "env_system_prompt",
    "episode_messages",
    "export_episodes",
    "hf_rows",
    "sft_records",
    "token_records",
]

Format = Literal["hf", "sft", "dpo", "tokens"]
Pairs = Literal["best-worst", "all"]
#: a system prompt for an episode (None: no system message)
SystemPrompt = Callable[[Episode], "str | None"]


# -- messages ---------------------------------------------------------------------------------------
def episode_messages(ep: Episode, *, system: str | None = None, trailing: bool = True) -> list[dict[str, Any]]:
    """The episode as OpenAI chat dicts: ``system`` (if given), the first observation, then per turn the
    assistant's action and the env's answer. ``trailing=False`` leaves out what follows the last action
    (the env's last answer, which no one trains on)."""
    return [m.to_openai() for m in _messages(ep, system=system, trailing=trailing)]


def _messages(ep: Episode, *, system: str | None, trailing: bool = True) -> list[Message]:
    out = [Message(role="system", content=system)] if system else []
    out += ep.prompt
    for turn in ep.turns:
        out.append(Message(role="assistant", content=turn.action, tool_calls=turn.tool_calls or None))
        out += turn.observation
    if not trailing:
        while out and out[-1].role != "assistant":
            out.pop()
    return out


def _system(system: SystemPrompt | None, ep: Episode) -> str | None:
    return system(ep) if system is not None else None


def env_system_prompt() -> SystemPrompt:
    """The system prompt an ``hf:``/``vllm:`` agent shows for an episode's env (its description and action
    format: ``turngym.agents.llm.system_prompt``), the env made once per (env id, kwargs)."""
    from turngym.agents.llm import system_prompt
    from turngym.core.registry import make

    cache: dict[str, str | None] = {}

    def prompt(ep: Episode) -> str | None:
        key = json.dumps([ep.env_id, ep.env_kwargs], sort_keys=True, default=str)
        if key not in cache:
            try:
                env = make(ep.env_id, **ep.env_kwargs)
            except Exception as e:
                raise ConfigError(
                    f"the system prompt of {ep.env_id} (kwargs {ep.env_kwargs}) needs the env, which cannot be "
                    f"made here ({type(e).__name__}: {e}): install what it needs, or export with --system none"
                ) from e
            try:
                cache[key] = system_prompt(env) or None
            finally:
                env.close()
        return cache[key]

    return prompt


# -- hf -----------------------------------------------------------------------------------------------
def hf_rows(episodes: Iterable[Episode], *, system: SystemPrompt | None = None) -> list[dict[str, Any]]:
    """One row per episode, with a fixed schema (:func:`hf_features`): ``env_kwargs`` and ``info`` as JSON
    text (their values differ in type between envs), a message's content as its text (its image URLs in
    the row's ``images``), tool calls as in the OpenAI format (arguments as JSON text), the token stream
    empty for agents without one."""
    rows = []
    for ep in episodes:
        messages = _messages(ep, system=_system(system, ep))
        rows.append(
            {
                "run_id": ep.run_id,
                "episode_id": ep.episode_id,
                "group_id": ep.group_id,
                "task_id": ep.task_id,
                "instance_hash": ep.instance_hash,
                "env_id": ep.env_id,
                "env_kwargs": json.dumps(ep.env_kwargs, sort_keys=True, default=str),
                "seed": ep.seed,
                "agent": ep.agent,
                "messages": [
                    {
                        "role": m.role,
                        "content": m.text,
                        "tool_calls": [c.to_openai() for c in m.tool_calls] if m.tool_calls else None,
                        "tool_call_id": m.tool_call_id,
                        "name": m.name,
                    }
                    for m in messages
                ],
                "images": [p.url for m in messages for p in m.images],
                "rewards": [t.reward for t in ep.turns],
                "return": ep.total_return,
                "success": ep.success,
                "num_turns": ep.num_turns,
                "invalid_actions": ep.invalid_actions,
                "truncated": ep.truncated,
                "error": ep.error,
                "trainable": ep.trainable,
                "tokens": list(ep.tokens),
                "mask": list(ep.mask),
                "logprobs": list(ep.logprobs),
                "action_spans": [list(t.action_span) if t.action_span else [] for t in ep.turns],
                "observation_spans": [list(t.observation_span) if t.observation_span else [] for t in ep.turns],
                "wall_time": ep.wall_time,
                "info": json.dumps(ep.info, sort_keys=True, default=str),
            }
        )
    return rows


def hf_features() -> Any:
    """The ``datasets.Features`` of :func:`hf_rows` (so an empty or all-text export has the same schema)."""
    from datasets import Features, List, Value

    call = {"id": Value("string"), "type": Value("string"),
            "function": {"name": Value("string"), "arguments": Value("string")}}  # fmt: skip
    message = {"role": Value("string"), "content": Value("string"), "tool_calls": List(call),
               "tool_call_id": Value("string"), "name": Value("string")}  # fmt: skip
    return Features(
        {
            **{k: Value("string") for k in ("run_id", "episode_id", "group_id", "task_id", "instance_hash")},
            "env_id": Value("string"),
            "env_kwargs": Value("string"),
            "seed": Value("int64"),
            "agent": Value("string"),
            "messages": List(message),
            "images": List(Value("string")),
            "rewards": List(Value("float64")),
            "return": Value("float64"),
            "success": Value("bool"),
            "num_turns": Value("int64"),
            "invalid_actions": Value("int64"),
            "truncated": Value("bool"),
            "error": Value("string"),
            "trainable": Value("bool"),
            "tokens": List(Value("int64")),
            "mask": List(Value("int8")),
            "logprobs": List(Value("float64")),
            "action_spans": List(List(Value("int64"))),
            "observation_spans": List(List(Value("int64"))),
            "wall_time": Value("float64"),
            "info": Value("string"),
        }
    )


# -- sft ----------------------------------------------------------------------------------------------
def sft_records(
    episodes: Iterable[Episode], *, only_success: bool = False, system: SystemPrompt | None = None
) -> list[dict[str, Any]]:
    """``{"messages": [...]}`` per episode with at least one action and no error (ending at the last action),
    plus its ids, return and success. ``only_success``: only the episodes with ``success`` true."""
    out = []
    for ep in episodes:
        if ep.error is not None or not ep.turns or (only_success and ep.success is not True):
            continue
        out.append(
            {
                "messages": episode_messages(ep, system=_system(system, ep), trailing=False),
                **_ids(ep),
                "return": ep.total_return,
                "success": ep.success,
            }
        )
    return out


def _ids(ep: Episode) -> dict[str, Any]:
    return {"episode_id": ep.episode_id, "group_id": ep.group_id, "env_id": ep.env_id, "seed": ep.seed}


# -- dpo ----------------------------------------------------------------------------------------------
def dpo_records(
    episodes: Iterable[Episode], *, pairs: Pairs = "best-worst", system: SystemPrompt | None = None
) -> list[dict[str, Any]]:
    """Preference pairs within each group (one task instance, ``group_id``): ``prompt`` (the messages up to
    the first action), ``chosen`` and ``rejected`` (the rest of two episodes, to their last action), the
    chosen one's return strictly higher. ``pairs``: ``best-worst`` one pair per group (the highest return
    against the lowest, the first of equals), ``all`` every pair with different returns. Episodes with an
    error or no action take no part. TRL's DPOTrainer scores every token of a completion, the env's
    messages inside it too."""
    groups: dict[str, list[Episode]] = defaultdict(list)
    for ep in episodes:
        if ep.group_id and ep.error is None and ep.turns:
            groups[ep.group_id].append(ep)
    out = []
    for group_id, members in groups.items():
        ranked = sorted(members, key=lambda e: -e.total_return)  # stable: the first of equals first
        if pairs == "best-worst":
            chosen_rejected = [(ranked[0], ranked[-1])]
        else:
            chosen_rejected = [(a, b) for i, a in enumerate(ranked) for b in ranked[i + 1 :]]
        for chosen, rejected in chosen_rejected:
            if chosen.total_return <= rejected.total_return:
                continue
            sys_c = _system(system, chosen)
            c = episode_messages(chosen, system=sys_c, trailing=False)
            r = episode_messages(rejected, system=_system(system, rejected), trailing=False)
            start = len(chosen.prompt) + (1 if sys_c else 0)
            if c[:start] != r[:start]:
                continue  # not one prompt: the group's instances differ
            out.append(
                {
                    "prompt": c[:start],
                    "chosen": c[start:],
                    "rejected": r[start:],
                    "group_id": group_id,
                    "chosen_episode": chosen.episode_id,
                    "rejected_episode": rejected.episode_id,
                    "chosen_return": chosen.total_return,
                    "rejected_return": rejected.total_return,
                }
            )
    return out


# -- tokens -------------------------------------------------------------------------------------------
def token_records(episodes: Iterable[Episode]) -> list[dict[str, Any]]:
    """The stored token stream of each episode that has one, id for id: ``tokens``, ``mask`` (1 = sampled by
    the policy: the loss mask), ``logprobs`` (the sampler's, 0.0 where not sampled), each turn's
    ``action_spans`` / ``observation_spans`` ([start, end) into ``tokens``) and ``rewards``."""
    return [
        {
            **_ids(ep),
            "run_id": ep.run_id,
            "tokens": list(ep.tokens),
            "mask": list(ep.mask),
            "logprobs": list(ep.logprobs),
            "action_spans": [list(t.action_span) if t.action_span else None for t in ep.turns],
            "observation_spans": [list(t.observation_span) if t.observation_span else None for t in ep.turns],
            "rewards": [t.reward for t in ep.turns],
            "return": ep.total_return,
            "success": ep.success,
            "trainable": ep.trainable,
            "error": ep.error,
        }
        for ep in episodes
        if ep.tokens
    ]


# -- writing ------------------------------------------------------------------------------------------
FORMATS: dict[str, str] = {
    "hf": "a Hugging Face datasets dataset (save_to_disk), one row per episode",
    "sft": "sft.jsonl: {'messages': [...]} per episode (TRL SFTTrainer, assistant_only_loss=True)",
    "dpo": "dpo.jsonl: prompt / chosen / rejected pairs within each group (TRL DPOTrainer)",
    "tokens": "tokens.jsonl: token ids, loss mask, logprobs and turn spans per episode",
}


@dataclass
class ExportResult:
    """What :func:`export_episodes` wrote: ``path`` (the dataset directory or the JSONL file), ``rows``
    written from ``episodes`` read, and how many episodes were left out, by reason."""

    path: Path
    rows: int
    episodes: int
    left_out: dict[str, int] = field(default_factory=dict)


def export_episodes(
    run_dir: str | Path,
    fmt: Format,
    out: str | Path,
    *,
    only_success: bool = False,
    pairs: Pairs = "best-worst",
    system: SystemPrompt | None = None,
    run_ids: Sequence[str] | None = None,
) -> ExportResult:
    """Write the episodes of the run directory ``run_dir`` (an eval or a train run) as ``fmt`` into the new
    or empty directory ``out``. ``run_ids``: only these runs' episodes (``it3``, ``eval3``: a train run's
    iteration 3 and the held-out eval after it)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    if only_success and fmt == "dpo":
        raise ConfigError("--only-success does not apply to dpo: a pair needs a lower-return episode; leave it out")
    episodes = _run_episodes(Path(run_dir), run_ids)
    out = Path(out)
    _check_empty(out)
    left_out: Counter[str] = Counter()
    if fmt == "hf":
        kept = [e for e in episodes if not only_success or e.success is True]
        left_out["not successful"] = len(episodes) - len(kept)
        path = _write_hf(hf_rows(kept, system=system), out)
        rows = len(kept)
    elif fmt == "sft":
        records = sft_records(episodes, only_success=only_success, system=system)
        left_out["error"] = sum(e.error is not None for e in episodes)
        left_out["no action"] = sum(e.error is None and not e.turns for e in episodes)
        left_out["not successful"] = len(episodes) - len(records) - left_out["error"] - left_out["no action"]
        path, rows = _write_jsonl(records, out / "sft.jsonl"), len(records)
    elif fmt == "dpo":
        _check_groups(run_dir, episodes)
        records = dpo_records(episodes, pairs=pairs, system=system)
        if not records:
            raise ConfigError(
                f"{run_dir}: no group has two episodes with different returns (every pair ties), so there is no "
                "preference pair: sample the group's episodes differently (a model agent with "
                "--set agent.temperature=1.0; the scripted and random agents play a task instance the same way "
                "each time) or with more episodes per group (--group-size 8)"
            )
        path, rows = _write_jsonl(records, out / "dpo.jsonl"), len(records)
    else:
        _check_tokens(run_dir, episodes)
        kept = [e for e in episodes if not only_success or e.success is True]
        records = token_records(kept)
        left_out["not successful"] = len(episodes) - len(kept)
        left_out["no token stream"] = len(kept) - len(records)
        path, rows = _write_jsonl(records, out / "tokens.jsonl"), len(records)
    return ExportResult(path=path, rows=rows, episodes=len(episodes), left_out={k: v for k, v in left_out.items() if v})


def _run_episodes(run_dir: Path, run_ids: Sequence[str] | None) -> list[Episode]:
    if not run_dir.is_dir():
        hint = (
            f"pass its directory, {run_dir.parent}"
            if run_dir.name == EPISODES_FILE
            else "pass a directory that `turngym eval` or `turngym train` wrote (runs/NAME)"
        )
        what = "does not exist" if not run_dir.exists() else "is a file, not a run directory"
        raise ConfigError(f"{run_dir} {what}: {hint}")
    store = run_dir / EPISODES_FILE
    if not store.is_file():
        raise ConfigError(
            f"{run_dir} is not a run directory: it holds no {EPISODES_FILE}; pass a directory that "
            "`turngym eval` or `turngym train` wrote (runs/NAME)"
        )
    episodes = read_episodes(store, run_ids=run_ids)
    if not episodes:
        which = f" of the runs {', '.join(run_ids)}" if run_ids else ""
        present = sorted({e.run_id for e in read_episodes(store)}) if run_ids else []
        fix = f"its run ids are {', '.join(present[:12])}" if present else "run the eval or training first"
        raise ConfigError(f"{store} holds no episode{which}: {fix}")
    return episodes


def _check_groups(run_dir: str | Path, episodes: list[Episode]) -> None:
    sizes = Counter(e.group_id for e in episodes if e.group_id)
    if not sizes or max(sizes.values()) < 2:
        raise ConfigError(
            f"{run_dir} has no group of two or more episodes (group_size 1: every task instance was played "
            "once), and dpo pairs the episodes of one group: evaluate with --group-size 4 (or more), or "
            "export sft or hf instead"
        )


def _check_tokens(run_dir: str | Path, episodes: list[Episode]) -> None:
    if any(e.tokens for e in episodes):
        return
    agents = sorted({e.agent for e in episodes if e.agent}) or ["?"]
    raise ConfigError(
        f"{run_dir} holds no token streams: its episodes were played by {', '.join(agents)}, which records no "
        "tokens (scripted, random and chat-API agents do not); play with a model agent (--agent hf:PATH or "
        "vllm:PATH), or export hf or sft (chat messages) instead"
    )


def _check_empty(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out} is not an empty directory: choose a new directory or empty this one")


def _write_jsonl(records: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    tmp.replace(path)
    return path


def _write_hf(rows: list[dict[str, Any]], out: Path) -> Path:
    try:
        from datasets import Dataset
    except ImportError:
        raise ConfigError(
            "--format hf needs the datasets package, which is not installed: pip install datasets"
        ) from None
    from datasets import (
        disable_progress_bars,
        enable_progress_bars,
        is_progress_bar_enabled,
    )

    shown = is_progress_bar_enabled()
    disable_progress_bars()
    try:
        Dataset.from_list(rows, features=hf_features()).save_to_disk(str(out))
    finally:
        if shown:
            enable_progress_bars()
    return out

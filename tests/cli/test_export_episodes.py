"""`turngym export episodes RUN --format hf|sft|dpo|tokens`: each format read back and compared with the run's
stored episodes (real GuessNumber eval runs: random agents for text, the nano hf model for token streams),
the CLI through a subprocess, and its errors (exit 2, no traceback, nothing written)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.agents.conftest import tiny_model
from turngym.benchmarks.eval import eval_config, execute, plan_run
from turngym.benchmarks.export import (
    env_system_prompt,
    episode_messages,
    export_episodes,
)
from turngym.benchmarks.store import EPISODES_FILE, EpisodeStore, read_episodes
from turngym.benchmarks.suite import Suite
from turngym.core.types import Episode

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "turngym.cli.app", "export", "episodes"]
SYSTEM = env_system_prompt()


def _eval(run_dir: Path, agent: str, *, episodes: int, group_size: int, kwargs: dict, sets=()) -> Path:
    suite = Suite.model_validate(
        {"name": "gn", "episodes": episodes, "seed": 0, "envs": [{"id": "turngym/GuessNumber-v0", "kwargs": kwargs}]}
    )
    cfg = eval_config(suite, agent=agent, overrides=list(sets), group_size=group_size, concurrency=4)
    asyncio.run(execute(plan_run(cfg, run_dir)))
    return run_dir


@pytest.fixture(scope="module")
def text_run(tmp_path_factory) -> Path:
    """Random play, 4 task instances x groups of 2, half the turns GuessNumber allows: some succeed."""
    return _eval(tmp_path_factory.mktemp("x") / "text", "random", episodes=4, group_size=2,
                 kwargs={"high": 8, "max_turns": 4})  # fmt: skip


@pytest.fixture(scope="module")
def token_run(tmp_path_factory) -> Path:
    """The nano GuessNumber model (hf backend): token streams, masks, logprobs, spans."""
    model = tiny_model("gn-nano", size="nano", tokenizer="task:guess_number", init_std=0.02)
    return _eval(tmp_path_factory.mktemp("x") / "tokens", f"hf:{model}", episodes=2, group_size=2,
                 kwargs={"high": 8, "max_turns": 3}, sets=["agent.max_new_tokens=6"])  # fmt: skip


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory) -> Path:
    """Groups whose episodes differ: the random agent plays a task instance the same way each time, so each
    group member comes from a differently seeded random agent (random:k), stored under one group id."""
    root = tmp_path_factory.mktemp("x")
    episodes: list[Episode] = []
    for k in range(3):
        run = _eval(root / f"r{k}", f"random:{k}", episodes=6, group_size=1, kwargs={"high": 4, "max_turns": 2})
        for ep in read_episodes(run / EPISODES_FILE):
            episodes.append(ep.model_copy(update={"run_id": "pairs", "episode_id": f"{ep.group_id}/g{k}"}))
    with EpisodeStore(path=root / "pairs" / EPISODES_FILE) as store:
        store.extend(episodes)
    return root / "pairs"


def _stored(run: Path) -> dict[str, Episode]:
    return {e.episode_id: e for e in read_episodes(run / EPISODES_FILE)}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _expected_messages(ep: Episode) -> list[dict]:
    """system, first observation, then per turn the action and the env's answer, from the stored record."""
    out = [{"role": "system", "content": SYSTEM(ep)}, *(m.to_openai() for m in ep.prompt)]
    for t in ep.turns:
        out += [{"role": "assistant", "content": t.action}, *(m.to_openai() for m in t.observation)]
    return out


# -- hf -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["text_run", "token_run"])
def test_hf_export_loads_with_datasets(which, request, tmp_path):
    from datasets import load_from_disk

    run = request.getfixturevalue(which)
    res = export_episodes(run, "hf", tmp_path / "ds", system=SYSTEM)
    ds = load_from_disk(str(tmp_path / "ds"))
    stored = _stored(run)
    assert res.rows == len(ds) == len(stored) and res.path == tmp_path / "ds"
    for row in ds:
        ep = stored[row["episode_id"]]
        assert (row["run_id"], row["group_id"], row["env_id"], row["seed"], row["task_id"], row["instance_hash"]) == (
            ep.run_id, ep.group_id, ep.env_id, ep.seed, ep.task_id, ep.instance_hash)  # fmt: skip
        assert json.loads(row["env_kwargs"]) == ep.env_kwargs and row["agent"] == ep.agent
        assert [(m["role"], m["content"]) for m in row["messages"]] == [
            (m["role"], m["content"]) for m in _expected_messages(ep)
        ]
        assert row["rewards"] == [t.reward for t in ep.turns] and row["return"] == ep.total_return
        assert (row["success"], row["num_turns"], row["truncated"], row["error"]) == (
            ep.success, ep.num_turns, ep.truncated, ep.error)  # fmt: skip
        assert (row["tokens"], row["mask"], row["logprobs"]) == (ep.tokens, ep.mask, ep.logprobs)
        assert row["action_spans"] == [list(t.action_span) if t.action_span else [] for t in ep.turns]
    if which == "token_run":
        assert all(row["tokens"] and row["trainable"] for row in ds)


# -- sft ----------------------------------------------------------------------------------------------
def test_sft_export_is_the_conversation_up_to_the_last_action(text_run, tmp_path):
    stored = _stored(text_run)
    res = export_episodes(text_run, "sft", tmp_path / "all", system=SYSTEM)
    records = _jsonl(tmp_path / "all" / "sft.jsonl")
    assert res.rows == len(records) == len(stored) and res.path.name == "sft.jsonl"
    for r in records:
        ep = stored[r["episode_id"]]
        want = _expected_messages(ep)
        last = max(i for i, m in enumerate(want) if m["role"] == "assistant")
        assert r["messages"] == want[: last + 1]  # the env's last answer is not trained on: left out
        assert [m["content"] for m in r["messages"] if m["role"] == "assistant"] == [t.action for t in ep.turns]
        assert (r["return"], r["success"], r["group_id"]) == (ep.total_return, ep.success, ep.group_id)
    # --only-success keeps exactly the successful episodes (the random player wins some, loses some)
    won = {i for i, e in stored.items() if e.success}
    assert 0 < len(won) < len(stored)
    res = export_episodes(text_run, "sft", tmp_path / "won", only_success=True)
    assert {r["episode_id"] for r in _jsonl(res.path)} == won
    assert res.left_out == {"not successful": len(stored) - len(won)}
    assert all(r["messages"][0]["role"] == "user" for r in _jsonl(res.path))  # no system prompt given


#: ChatML with {% generation %} markers around the assistant's turns: how TRL's assistant_only_loss (transformers'
#: return_assistant_tokens_mask) decides which tokens carry the loss
GENERATION_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'assistant' %}<|im_start|>assistant\n{% generation %}"
    "{{ m['content'] }}<|im_end|>{% endgeneration %}\n{% else %}<|im_start|>{{ m['role'] }}\n"
    "{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
)


def test_sft_loss_mask_covers_exactly_the_assistant_turns(text_run, tmp_path):
    """Rendered as TRL renders it with assistant_only_loss=True: the masked tokens are the agent's actions."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model("tiny"))
    export_episodes(text_run, "sft", tmp_path / "sft", system=SYSTEM)
    stored = _stored(text_run)
    for r in _jsonl(tmp_path / "sft" / "sft.jsonl"):
        out = tok.apply_chat_template(r["messages"], chat_template=GENERATION_TEMPLATE, tokenize=True,
                                      return_dict=True, return_assistant_tokens_mask=True)  # fmt: skip
        ids, mask = out["input_ids"], out["assistant_masks"]
        runs, cur = [], []
        for i, m in zip(ids, mask):
            if m:
                cur.append(i)
            elif cur:
                runs.append(cur)
                cur = []
        runs += [cur] if cur else []
        actions = [t.action + "<|im_end|>" for t in stored[r["episode_id"]].turns]
        assert [tok.decode(run) for run in runs] == actions


# -- dpo ----------------------------------------------------------------------------------------------
def test_dpo_pairs_the_episodes_of_a_group(pair_run, tmp_path):
    stored = _stored(pair_run)
    groups: dict[str, list[Episode]] = {}
    for ep in stored.values():
        groups.setdefault(ep.group_id, []).append(ep)
    res = export_episodes(pair_run, "dpo", tmp_path / "bw", system=SYSTEM)
    pairs = _jsonl(res.path)
    mixed = {g for g, eps in groups.items() if len({e.total_return for e in eps}) > 1}
    assert mixed and {p["group_id"] for p in pairs} == mixed and len(pairs) == len(mixed)  # one pair per group
    for p in pairs:
        chosen, rejected = stored[p["chosen_episode"]], stored[p["rejected_episode"]]
        assert chosen.group_id == rejected.group_id == p["group_id"]
        assert chosen.total_return == p["chosen_return"] > p["rejected_return"] == rejected.total_return
        assert chosen.total_return == max(e.total_return for e in groups[p["group_id"]])
        assert rejected.total_return == min(e.total_return for e in groups[p["group_id"]])
        assert p["prompt"] == [{"role": "system", "content": SYSTEM(chosen)}, *(m.to_openai() for m in chosen.prompt)]
        for side, ep in (("chosen", chosen), ("rejected", rejected)):
            full = episode_messages(ep, system=SYSTEM(ep), trailing=False)
            assert p["prompt"] + p[side] == full and p[side][-1]["role"] == "assistant"
    every = _jsonl(export_episodes(pair_run, "dpo", tmp_path / "all", pairs="all").path)
    want = sum(1 for eps in groups.values() for a in eps for b in eps if a.total_return > b.total_return)
    assert len(every) == want > len(pairs)


# -- tokens -------------------------------------------------------------------------------------------
def test_tokens_export_is_the_stored_stream(token_run, tmp_path):
    stored = _stored(token_run)
    res = export_episodes(token_run, "tokens", tmp_path / "t")
    records = _jsonl(res.path)
    assert res.rows == len(records) == len(stored)
    for r in records:
        ep = stored[r["episode_id"]]
        assert r["tokens"] == ep.tokens and r["mask"] == ep.mask and r["logprobs"] == ep.logprobs
        assert len(r["tokens"]) == len(r["mask"]) == len(r["logprobs"]) > 0
        assert r["action_spans"] == [list(t.action_span) if t.action_span else None for t in ep.turns]
        assert r["observation_spans"] == [list(t.observation_span) if t.observation_span else None for t in ep.turns]
        assert r["rewards"] == [t.reward for t in ep.turns] and r["trainable"] is True
        # the loss mask is the actions' tokens, span for span
        sampled = {i for s, e in (t.action_span for t in ep.turns) for i in range(s, e)}
        assert {i for i, m in enumerate(r["mask"]) if m} <= sampled


# -- the command line ---------------------------------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], check=False, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_cli_writes_the_export(text_run, tmp_path):
    proc = _cli(text_run, "--format", "sft", "--only-success", "--out", tmp_path / "sft")
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = _jsonl(tmp_path / "sft" / "sft.jsonl")
    assert f"wrote {tmp_path / 'sft' / 'sft.jsonl'}: {len(records)} rows from 8 episodes" in proc.stdout
    assert all(r["success"] for r in records)
    assert records[0]["messages"][0] == {
        "role": "system",
        "content": SYSTEM(read_episodes(text_run / EPISODES_FILE)[0]),
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}", "--format", "hf"], "does not exist: pass a directory that `turngym eval` or `turngym train`"),
        (["{empty}", "--format", "sft"], "is not a run directory: it holds no episodes.jsonl"),
        (["{text}", "--format", "tokens"], "holds no token streams: its episodes were played by random"),
        (["{single}", "--format", "dpo"], "has no group of two or more episodes (group_size 1"),
        (["{text}", "--format", "dpo"], "no group has two episodes with different returns"),
        (["{text}", "--format", "dpo", "--only-success"], "--only-success does not apply to dpo"),
        (["{text}", "--format", "sft", "--run-id", "it3"], "holds no episode of the runs it3: its run ids are text"),
    ],
)
def test_cli_errors_exit_2_without_a_traceback(text_run, pair_run, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    paths = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "text": text_run,
             "single": pair_run.parent / "r0"}  # fmt: skip
    proc = _cli(*[a.format(**paths) for a in args], "--out", tmp_path / "out")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in " ".join(proc.stderr.split()), proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_cli_refuses_a_directory_that_holds_files(text_run, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    proc = _cli(text_run, "--format", "sft", "--out", tmp_path / "out")
    assert proc.returncode == 2 and "is not an empty directory" in proc.stderr
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]

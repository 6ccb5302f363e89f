"""MCPTools-v0 for real: the MCP reference servers run inside the sandbox, the oracle solves every
shipped task through them, wrong answers and untouched work fail, and no server outlives its episode."""

from __future__ import annotations

import asyncio

import pytest

from turngym.agents.base import make_agent
from turngym.agents.runner import EpisodeTask, run_episodes
from turngym.core.errors import ConfigError, EpisodeOver, SandboxError
from turngym.core.registry import make
from turngym.core.types import Message, ToolCall
from turngym.envs.tools.mcp_tools import (
    MCP_IMAGE,
    SERVERS,
    answer_matches,
    load_task,
    tasks,
)

pytestmark = pytest.mark.docker
ENV = "turngym/MCPTools-v0"
TOOL_FAILURES = ("[tool error]", "[tool failed]", "Error", "error:")


@pytest.fixture(scope="module", autouse=True)
def mcp_image():
    """The image, built here if this machine lacks it (the set-up step builds it once per machine)."""
    import docker.errors

    from turngym.sandboxes.images import build_image, project_images
    from turngym.sandboxes.reaper import docker_client

    client = docker_client()
    try:
        client.images.get(MCP_IMAGE)
    except docker.errors.ImageNotFound:
        build_image(client, next(s for s in project_images() if s.tag == MCP_IMAGE))


def submit(answer: str) -> Message:
    return Message(role="assistant", content="", tool_calls=[ToolCall(id="s", name="submit", arguments={"answer": answer})])


def test_ships_at_least_ten_tasks_on_both_servers():
    assert len(tasks()) >= 10
    loaded = [load_task(name) for name in tasks()]
    assert {t.server for t in loaded} == set(SERVERS)
    assert sum(t.check is not None for t in loaded) >= 4, "some tasks must be jobs that change state"
    with pytest.raises(ConfigError, match="git-commit-count"):
        load_task("no-such-task")


def test_answer_matching():
    assert answer_matches(" `Grace Hopper`. ", "Grace Hopper\n", "exact")
    assert not answer_matches("Grace", "Grace Hopper", "exact")
    assert answer_matches("46.490", "46.49\n", "number") and answer_matches("7", "7", "number")
    assert not answer_matches("seven", "7", "number") and not answer_matches("8", "7", "number")
    full = "e2e8fe8c57b64683e58a2366964a247428ed8653"
    assert answer_matches("E2E8FE8", full, "hash") and answer_matches(full, full + "\n", "hash")
    assert not answer_matches("e2e8f", full, "hash") and not answer_matches("a463fc2", full, "hash")


async def test_oracle_solves_every_task_through_the_real_servers():
    # native tool calls for every task, the JSON tool-call format for one more
    jobs = [EpisodeTask(env_id=ENV, env_kwargs={"task": t}, episode_id=f"native/{t}") for t in tasks()]
    jobs.append(
        EpisodeTask(env_id=ENV, env_kwargs={"task": "git-file-origin", "action_format": "json"}, episode_id="json/git-file-origin")
    )
    episodes = await run_episodes(jobs, make_agent("scripted"), concurrency=4)
    failed = {e.episode_id: (e.error, [t.observation[-1].text[-300:] for t in e.turns]) for e in episodes if not e.success}
    assert not failed
    for e in episodes:
        name = e.episode_id.split("/", 1)[1]
        assert e.total_return == 1.0 and e.num_turns == len(load_task(name).solution), e.episode_id
        replies = [t.observation[-1].text for t in e.turns[:-1]]
        assert all(r.strip() and not any(f in r for f in TOOL_FAILURES) for r in replies), (e.episode_id, replies)


PLAUSIBLY_WRONG = {"git-commit-count": "6", "git-fix-author": "Ada Lovelace", "git-file-origin": "a463fc2",
                   "git-branch-contains": "hotfix", "git-old-timeout": "60", "sqlite-city-count": "2",
                   "sqlite-top-product": "Notebook", "sqlite-customer-spend": "46.5"}  # fmt: skip


async def test_wrong_answers_and_untouched_work_fail_every_task():
    """Every task, reset by a seed one lap on (``tasks()[seed % len(tasks())]``): a plausible wrong
    answer, or ``done`` with the job not done, gets reward 0. Three envs at once, one of them JSON."""
    assert set(PLAUSIBLY_WRONG) <= set(tasks())
    lanes = 3
    envs = [make(ENV, action_format="json" if i == 0 else "native") for i in range(lanes)]

    async def lane(k: int) -> None:
        env = envs[k]
        for i in range(k, len(tasks()), lanes):
            name = tasks()[i]
            obs, info = await env.areset(seed=i + len(tasks()))
            assert info["task"] == name and info["instance_hash"], name
            answer = PLAUSIBLY_WRONG.get(name, "done")
            if env.unwrapped.style == "json":
                assert not obs.tools and "<tool_call>" in obs.last_text  # the tools are described in the text
                obs, _, terminated, _, info = await env.astep("the answer, without a tool call")
                assert "action_error" in info and not terminated
                action = f'<tool_call>{{"name": "submit", "arguments": {{"answer": "{answer}"}}}}</tool_call>'
            else:
                action = submit(answer)
            obs, reward, terminated, _, info = await env.astep(action)
            assert terminated and reward == 0.0 and info["success"] is False, f"{name}: {answer!r} passed"

    try:
        await asyncio.gather(*(lane(k) for k in range(lanes)))
    finally:
        for env in envs:
            await env.aclose()


async def test_tools_are_the_servers_and_errors_are_observations():
    env = make(ENV, task="sqlite-city-count")
    try:
        obs, info = await env.areset(seed=0)
        names = [t.name for t in obs.tools]
        assert names[-1] == "submit" and {"read_query", "write_query", "list_tables", "describe_table"} <= set(names)
        assert info["task_id"] == ENV and info["instance_hash"]
        call = ToolCall(id="c1", name="read_query", arguments={"query": "SELECT name FROM customers WHERE id = 3"})
        obs, reward, terminated, _, info = await env.astep(Message(role="assistant", content="", tool_calls=[call]))
        assert "Sara Lind" in obs.last_text and obs.messages[0].role == "tool" and not terminated
        bad = ToolCall(id="c2", name="read_query", arguments={"sql": "SELECT 1"})  # the schema wants "query"
        obs, reward, terminated, _, info = await env.astep(Message(role="assistant", content="", tool_calls=[bad]))
        assert "action_error" in info and "query" in info["action_error"] and not terminated
        nope = ToolCall(id="c3", name="read_query", arguments={"query": "SELECT * FROM nope"})
        obs, *_ = await env.astep(Message(role="assistant", content="", tool_calls=[nope]))
        assert "no such table" in obs.last_text
        obs, reward, terminated, _, info = await env.astep(submit("3"))
        assert terminated and reward == 1.0 and info["success"]
        with pytest.raises(EpisodeOver, match="reset"):  # a finished episode takes no more calls
            await env.astep(submit("3"))
    finally:
        await env.aclose()


async def test_the_server_lives_in_the_sandbox_and_dies_with_the_episode():
    from turngym.sandboxes.docker import DockerSandbox, SandboxConfig
    from turngym.sandboxes.stdio import McpConnection

    def servers(ps: str) -> list[str]:
        return [line for line in ps.splitlines() if "mcp-server" in line]

    ps = "for p in /proc/[0-9]*; do echo \"$(stat -c %u $p) $(tr '\\0' ' ' < $p/cmdline)\"; done 2>/dev/null"
    async with await DockerSandbox.create(config=SandboxConfig(image=MCP_IMAGE)) as sb:
        await sb.exec("git init -q repo", 10)
        git = SERVERS["git"]
        conn = await McpConnection.start(sb, git.command, env=git.env)
        running = servers((await sb.exec(ps, 10)).stdout)
        assert len(running) == 1 and running[0].startswith("1000 "), running  # in the container, as the sandbox user
        result = await conn.call_tool("git_status", {"repo_path": "/work/repo"})
        assert "branch" in result.content[0].text.lower()
        await conn.aclose()
        await conn.aclose()  # twice is fine
        assert servers((await sb.exec(ps, 10)).stdout) == []
        with pytest.raises(SandboxError, match="not running"):
            await conn.call_tool("git_status", {"repo_path": "/work/repo"})
        # a server nobody closed dies with the sandbox's reset (what the pool does to a returned sandbox)
        await McpConnection.start(sb, git.command, env=git.env)
        assert len(servers((await sb.exec(ps, 10)).stdout)) == 1
        await sb.reset()
        assert servers((await sb.exec(ps, 10)).stdout) == []
        with pytest.raises(SandboxError, match="did not initialize|failed to start"):
            await McpConnection.start(sb, ["/bin/sh", "-c", "echo broken >&2; sleep 60"], startup_timeout=2)

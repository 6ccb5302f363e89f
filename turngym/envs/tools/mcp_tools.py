"""MCPTools: tasks solved with the tools of an MCP server that runs inside the episode's sandbox.

Every episode leases a sandbox (image ``turngym/mcp:latest``, built by ``turngym sandbox build``),
builds the task's data there with a deterministic script (a git repository, a SQLite database),
starts the task's MCP server in it over stdio (``turngym.sandboxes.stdio``: a ``docker exec`` in
the container, so the server has no network and the sandbox's limits) and offers the server's tools
plus ``submit(answer)``. The server stops when the episode ends; the pool's cleaning kills whatever
is left in the container.

The servers are the MCP reference servers from PyPI, each in its own virtualenv in the image:

    git      mcp-server-git --repository /work/repo     git_log, git_show, git_add, git_commit, ...
    sqlite   mcp-server-sqlite --db-path /work/shop.db  read_query, write_query, create_table, ...

Tasks, one YAML file each in ``mcp_tasks/``:

    server: git | sqlite
    fixture: NAME          mcp_tasks/fixtures/NAME.sh, run in /work at reset (builds the data)
    setup: |               optional, run after the fixture (changes this task's data)
    instruction: ...
    expected: |            a question: a script printing the true answer, compared by ``match``:
    match: exact           exact (case and surrounding quotes ignored) | number | hash (a prefix of 7+)
    check: |               or a job to do: a script that exits 0 when the sandbox is in the right state
    solution:              the oracle: tool calls in order, the last one ``submit``
      - {tool: git_log, arguments: {repo_path: /work/repo}}
      - {tool: submit, arguments: {answer: "7"}}

The checker scripts run only after ``submit``, passed to bash directly (never as a file the agent
could read), with the answer in ``$ANSWER``. Reward 1 and ``success`` when the check passes, else 0.

Actions, by ``action_format``: ``"native"`` tool calls, or ``"json"``: ``<tool_call>{"name": ...,
"arguments": {...}}</tool_call>`` in the reply text. The task is chosen by ``task=NAME``, or else by
the seed (``tasks()[seed % len(tasks())]``).
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from turngym.core.actions import JsonToolCall, NativeToolCalls
from turngym.core.errors import ConfigError, SandboxError
from turngym.core.types import Action, Message, Observation, ToolCall, ToolSpec
from turngym.envs.tools.sandboxed import SandboxEnv, clip, tool_reply
from turngym.sandboxes.docker import SandboxConfig

TASKS_DIR = Path(__file__).with_name("mcp_tasks")
MCP_IMAGE = "turngym/mcp:latest"
SUBMIT = ToolSpec(
    name="submit",
    description="Give your final answer (or 'done' when the task was a job to do); the checker runs and the episode ends.",
    parameters={"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]},
)
ActionStyle = Literal["native", "json"]
_GIT_ID = {"GIT_AUTHOR_NAME": "turngym agent", "GIT_AUTHOR_EMAIL": "agent@turngym.invalid",
           "GIT_COMMITTER_NAME": "turngym agent", "GIT_COMMITTER_EMAIL": "agent@turngym.invalid",
           "GIT_CONFIG_NOSYSTEM": "1"}  # fmt: skip


class McpServer(BaseModel):
    """How one MCP server starts in the image."""

    model_config = ConfigDict(frozen=True)
    command: tuple[str, ...]
    env: dict[str, str] = Field(default_factory=dict)


SERVERS: dict[str, McpServer] = {
    "git": McpServer(command=("/opt/mcp/git/bin/mcp-server-git", "--repository", "/work/repo"), env=_GIT_ID),
    "sqlite": McpServer(command=("/opt/mcp/sqlite/bin/mcp-server-sqlite", "--db-path", "/work/shop.db")),
}


class SolutionStep(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class McpTask(BaseModel):
    """One task file, read and validated."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    server: Literal["git", "sqlite"]
    fixture: str
    setup: str | None = None
    instruction: str
    expected: str | None = None
    match: Literal["exact", "number", "hash"] = "exact"
    check: str | None = None
    solution: tuple[SolutionStep, ...]
    timeout: float = 30.0

    @model_validator(mode="after")
    def _one_checker(self) -> McpTask:
        if (self.expected is None) == (self.check is None):
            raise ValueError(f"MCP task {self.name!r} needs exactly one of 'expected' (a question) or 'check' (a job)")
        if not self.solution or self.solution[-1].tool != "submit":
            raise ValueError(f"the solution of MCP task {self.name!r} must end with a call of 'submit'")
        if not (TASKS_DIR / "fixtures" / f"{self.fixture}.sh").is_file():
            raise ValueError(f"MCP task {self.name!r}: no fixture {self.fixture!r} in {TASKS_DIR / 'fixtures'}")
        return self

    def fixture_script(self) -> str:
        return (TASKS_DIR / "fixtures" / f"{self.fixture}.sh").read_text()


@cache
def tasks() -> tuple[str, ...]:
    """The shipped task names, sorted."""
    return tuple(sorted(p.stem for p in TASKS_DIR.glob("*.yaml")))


@cache
def load_task(name: str) -> McpTask:
    path = TASKS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no MCPTools task {name!r}: the tasks are {', '.join(tasks())}")
    return McpTask(name=name, **yaml.safe_load(path.read_text()))


def to_tool_spec(tool: Any) -> ToolSpec:
    """An MCP tool (``mcp_types.Tool``) as a turngym ToolSpec (its input schema is the parameters)."""
    schema = dict(tool.input_schema or {})
    schema.setdefault("type", "object")
    return ToolSpec(name=tool.name, description=tool.description or tool.title or "", parameters=schema)


def result_text(result: Any) -> str:
    """The text of an MCP ``CallToolResult``: its text blocks; other blocks named; errors marked."""
    parts = []
    for block in result.content:
        text = getattr(block, "text", None)
        parts.append(text if text is not None else f"[{getattr(block, 'type', 'content')} block]")
    text = "\n".join(parts) or "(no output)"
    return f"[tool error] {text}" if result.is_error else text


def answer_matches(answer: str, expected: str, match: str) -> bool:
    """Whether ``answer`` is ``expected``, by the task's ``match``."""
    norm = _normalize(answer)
    truth = _normalize(expected)
    if match == "number":
        try:
            return math.isclose(float(norm.replace(",", "")), float(truth), abs_tol=0.005)
        except ValueError:
            return False
    if match == "hash":
        return bool(re.fullmatch(r"[0-9a-f]{7,40}", norm)) and truth.startswith(norm)
    return norm == truth


def _normalize(text: str) -> str:
    """Case, spacing, surrounding quotes or backticks and a final full stop ignored."""
    return " ".join(re.sub(r"^[\s`'\"]+|[\s`'\".]+$", "", text).split()).casefold()


class MCPToolsEnv(SandboxEnv):
    """See the module docstring."""

    def __init__(
        self,
        *,
        task: str | None = None,
        action_format: ActionStyle = "native",
        call_timeout: float = 30.0,
        sandbox: SandboxConfig | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if sandbox is None or isinstance(sandbox, dict):
            sandbox = SandboxConfig(**{"image": MCP_IMAGE, **(sandbox or {})})
        super().__init__(sandbox=sandbox, **kwargs)
        if action_format not in ("native", "json"):
            raise ConfigError(f"MCPTools action_format must be 'native' or 'json', got {action_format!r}")
        if task is not None:
            load_task(task)  # fail now, naming the tasks
        self.fixed_task = task
        self.style = action_format
        self.call_timeout = call_timeout
        self.task = load_task(task or tasks()[0])
        self.tools: list[ToolSpec] = [SUBMIT]
        self.conn: Any = None  # the episode's McpConnection

    async def areset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        await super().areset(seed=seed)
        await self._stop_server()
        names = tasks()
        self.task = load_task(self.fixed_task or names[(seed or 0) % len(names)])
        sb = await self.fresh_sandbox()
        for what, script in (("fixture", self.task.fixture_script()), ("set-up", self.task.setup)):
            if script is None:
                continue
            r = await sb.exec(["bash", "-c", script], self.task.timeout)
            if not r.ok:
                raise ConfigError(
                    f"the {what} of MCPTools task {self.task.name!r} failed (exit {r.exit_code}): {r.output[-500:]}"
                )
        from turngym.sandboxes.stdio import McpConnection

        server = SERVERS[self.task.server]
        self.conn = await McpConnection.start(sb, server.command, env=server.env, request_timeout=self.call_timeout)
        served = [to_tool_spec(t) for t in self.conn.tools]
        if any(t.name == SUBMIT.name for t in served):
            raise ConfigError(f"the MCP server {self.task.server!r} has its own tool 'submit', which clashes with the env's")
        self.tools = [*served, SUBMIT]
        self.action_format = NativeToolCalls(self.tools) if self.style == "native" else JsonToolCall(self.tools)
        text = (
            f"{self.task.instruction.strip()}\n\nYou work through the tools of an MCP server ({self.task.server}) "
            f"on a Linux machine without network. {self.action_format.describe()}\n"
            "When you are done, call submit with your answer."
        )
        return Observation.text(text, tools=self._offered()), {"task": self.task.name, "server": self.task.server}

    async def astep(self, action: Action):
        calls: list[ToolCall] = list(self.action_format.parse(action))
        conn = self._require_conn()
        replies: list[Message] = []
        for call in calls:
            if call.name == SUBMIT.name:
                answer = str(call.arguments.get("answer", ""))
                success = await self._check(answer)
                reward = 1.0 if success else 0.0
                replies.append(self._reply(call, f"Submitted. The checker gave reward {reward:g}."))
                await self._stop_server()
                self.end_episode()
                return Observation(messages=replies), reward, True, False, {"success": success, "task": self.task.name}
            try:
                text = result_text(await conn.call_tool(call.name, dict(call.arguments), self.call_timeout))
            except SandboxError as e:
                text = f"[tool failed] {e}"
            replies.append(self._reply(call, clip(text)))
        return Observation(messages=replies, tools=self._offered()), 0.0, False, False, {}

    def _reply(self, call: ToolCall, text: str) -> Message:
        if self.style == "json":
            return Message(role="user", content=f"<tool_response>\n{text}\n</tool_response>")
        return tool_reply(call, text)

    def _offered(self) -> list[ToolSpec]:
        return self.tools if self.style == "native" else []

    def _require_conn(self) -> Any:
        self.require_sandbox()
        if self.conn is None:
            raise SandboxError("MCPTools: the episode's MCP server is not running: call reset() first")
        return self.conn

    async def _check(self, answer: str) -> bool:
        sandbox = self.require_sandbox()
        task = self.task
        script = task.expected if task.expected is not None else task.check
        r = await sandbox.exec(["bash", "-e", "-o", "pipefail", "-c", script], task.timeout, env={"ANSWER": answer})
        if task.check is not None:
            return r.ok
        if not r.ok:
            raise ConfigError(f"the 'expected' script of MCPTools task {task.name!r} failed (exit {r.exit_code}): {r.output[-500:]}")
        return answer_matches(answer, r.stdout, task.match)

    async def _stop_server(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            await conn.aclose()

    async def aclose(self) -> None:
        await self._stop_server()
        await super().aclose()

    def instance_state(self) -> Any:
        return {"task": self.task.name}


def expert(env: MCPToolsEnv):
    """The oracle: the task's solution, one tool call per turn (the calls are read when each turn comes)."""
    step = 0

    def policy(_obs: Observation) -> Action:
        nonlocal step
        steps = env.task.solution
        s = steps[min(step, len(steps) - 1)]
        step += 1
        return call_action(env.style, s.tool, s.arguments, step)

    return policy


def call_action(style: ActionStyle, name: str, arguments: dict[str, Any], n: int = 0) -> Action:
    """An action calling one tool, in the env's format."""
    if style == "native":
        return Message(role="assistant", content="", tool_calls=[ToolCall(id=f"call_{n}", name=name, arguments=arguments)])
    return f'<tool_call>{json.dumps({"name": name, "arguments": arguments})}</tool_call>'

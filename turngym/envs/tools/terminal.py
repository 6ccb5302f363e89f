"""Terminal: shell tasks in the style of Terminal-Bench, each in its own directory.

    terminal_tasks/<name>/
        task.yaml      instruction (and optional timeout)
        Dockerfile     optional: the task's image, ``FROM ${BASE}`` (the sandbox image);
                       built by ``turngym sandbox build`` as turngym/terminal-<name>:latest
        files/         optional: copied into the work directory before set-up
        setup.sh       optional: run in the work directory at reset
        check.sh       the checker: writes the reward (0..1) into the file named by $REWARD_FILE
        solution.sh    the oracle solution

The agent runs shell commands (each a fresh ``bash -c`` in /work, output shown) and submits when
done; then the checker runs and its reward ends the episode (``success`` = reward 1). The checker
is copied in only at submit time, into a fresh directory with a random name.

Actions, by ``action_format``: ``"native"`` tool calls ``bash(command)`` and ``submit()``, or
``"tagged"`` blocks ``<bash>...</bash>`` and ``<submit>done</submit>``. The task is chosen by
``task=NAME``, or else by the seed (``tasks()[seed % len(tasks())]``).
"""

from __future__ import annotations

import secrets
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from turngym.core.errors import ConfigError, SandboxError
from turngym.core.types import Action, Message, Observation, ToolSpec
from turngym.envs.tools.sandboxed import (
    ActionStyle, SandboxEnv, as_calls, call_action, call_then, clip, tool_format, tool_reply,
)

TASKS_DIR = Path(__file__).with_name("terminal_tasks")

TOOLS = [
    ToolSpec(
        name="bash",
        description="Run a bash command in /work (a fresh shell each time) and see its output.",
        parameters={"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
    ),
    ToolSpec(name="submit", description="Say the task is done; the checker then runs and the episode ends."),
]
TAGS = {"bash": ("bash", "command"), "submit": ("submit", "")}


class TerminalTask(BaseModel):
    """One task directory, read."""

    model_config = ConfigDict(frozen=True)
    name: str
    instruction: str
    timeout: float = 30.0
    dir: Path
    image: str | None = None  # the task's own image, when it has a Dockerfile

    def read(self, name: str) -> str | None:
        path = self.dir / name
        return path.read_text() if path.is_file() else None

    def files(self) -> list[tuple[str, bytes, int]]:
        root = self.dir / "files"
        if not root.is_dir():
            return []
        return [
            (str(p.relative_to(root)), p.read_bytes(), p.stat().st_mode & 0o777)
            for p in sorted(root.rglob("*"))
            if p.is_file()
        ]


@cache
def tasks() -> tuple[str, ...]:
    """The shipped task names, sorted."""
    return tuple(sorted(d.name for d in TASKS_DIR.iterdir() if (d / "task.yaml").is_file()))


@cache
def load_task(name: str) -> TerminalTask:
    d = TASKS_DIR / name
    if not (d / "task.yaml").is_file():
        raise ConfigError(f"no Terminal task {name!r}: the tasks are {', '.join(tasks())}")
    meta = yaml.safe_load((d / "task.yaml").read_text())
    image = f"turngym/terminal-{name}:latest" if (d / "Dockerfile").is_file() else None
    return TerminalTask(name=name, dir=d, image=image, **meta)


def task_images() -> list[tuple[str, Path]]:
    """(tag, Dockerfile directory) of every task with its own image; ``turngym sandbox build`` builds them."""
    return [(t.image, t.dir) for t in map(load_task, tasks()) if t.image]


class TerminalEnv(SandboxEnv):
    def __init__(
        self,
        *,
        task: str | None = None,
        action_format: ActionStyle = "native",
        command_timeout: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if task is not None:
            load_task(task)  # fail now, naming the tasks
        self.fixed_task = task
        self.style = action_format
        self.action_format = tool_format(action_format, TOOLS, tuple(TAGS))
        self.command_timeout = command_timeout
        self.task = load_task(task or tasks()[0])

    async def areset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        await super().areset(seed=seed)
        names = tasks()
        name = self.fixed_task or names[(seed or 0) % len(names)]
        self.task = load_task(name)
        config = self.sandbox_config
        if self.task.image:
            config = config.model_copy(update={"image": self.task.image})
        sb = await self.fresh_sandbox(config)
        for rel, data, mode in self.task.files():
            await sb.write_file(rel, data, mode=mode)
        setup = self.task.read("setup.sh")
        if setup is not None:
            r = await sb.exec(["bash", "-c", setup], self.task.timeout)
            if not r.ok:
                raise ConfigError(f"the set-up of Terminal task {name!r} failed (exit {r.exit_code}): {r.output[-500:]}")
        how = self.action_format.describe()
        if self.style == "tagged":
            how = (
                "Run a shell command by writing <bash>...</bash> (a fresh bash in /work each time); "
                "when the task is done, write <submit>done</submit>. One block per reply."
            )
        text = f"{self.task.instruction.strip()}\n\nYou are in /work on a Linux machine without network. {how}"
        return Observation.text(text, tools=TOOLS if self.style == "native" else []), {"task": name}

    async def astep(self, action: Action):
        calls = as_calls(self.action_format.parse(action), TAGS)
        replies: list[Message] = []
        sandbox = self.require_sandbox()
        for call in calls:
            if call.name == "submit":
                reward = await self._check()
                replies.append(tool_reply(call, f"Submitted. The checker gave reward {reward:g}."))
                info = {"success": reward >= 1.0, "task": self.task.name}
                self.end_episode()
                return Observation(messages=replies), reward, True, False, info
            r = await sandbox.exec(["bash", "-c", str(call.arguments.get("command", ""))], self.command_timeout)
            text = clip(r.output) or "(no output)"
            if r.timed_out:
                text += f"\n[killed after {self.command_timeout:g}s]"
            elif r.exit_code != 0:
                text += f"\n[exit code {r.exit_code}]"
            replies.append(tool_reply(call, text))
        return Observation(messages=replies, tools=TOOLS if self.style == "native" else []), 0.0, False, False, {}

    async def _check(self) -> float:
        sandbox = self.require_sandbox()
        check = self.task.read("check.sh")
        if check is None:
            raise ConfigError(f"Terminal task {self.task.name!r} has no check.sh")
        where = f"/tmp/.check-{secrets.token_hex(8)}"
        await sandbox.write_file(f"{where}/check.sh", check, mode=0o755)
        await sandbox.exec(["bash", f"{where}/check.sh"], self.task.timeout, env={"REWARD_FILE": f"{where}/reward"})
        try:
            text = (await sandbox.read_file(f"{where}/reward")).decode().strip()
            return max(0.0, min(1.0, float(text)))
        except (SandboxError, ValueError):  # no reward written: the checker found the work wrong
            return 0.0

    def instance_state(self) -> Any:
        return {"task": self.task.name}


def expert(env: TerminalEnv):
    """The oracle: runs the task's solution.sh as one command, then submits."""
    return call_then(
        lambda _: call_action(env.style, "bash", "command", env.task.read("solution.sh") or "true", "bash"),
        lambda _: call_action(env.style, "submit", None, "done", "submit"),
    )

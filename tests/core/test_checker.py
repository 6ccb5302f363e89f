"""turngym's env checker catches the broken promises it is meant to catch."""

from __future__ import annotations

import warnings

import pytest

import turngym
from turngym.core.actions import BracketedMove, FreeText
from turngym.core.checker import check_registered_env
from turngym.core.types import Observation


class Good(turngym.TurnEnv):
    action_format = BracketedMove(choices=["a", "b"], example="[a]")

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.secret = int(self.np_random.integers(1000))
        return Observation.text("pick"), {}

    def step(self, action):
        move = self.action_format.parse(action)
        return Observation.text(move), 1.0, True, False, {"success": move == "a"}

    def instance_state(self):
        return self.secret


class IgnoresSeed(Good):
    def reset(self, *, seed=None, options=None):
        obs, info = super().reset(seed=None)  # the bug: seed dropped
        return obs, info


class RaisesOnGarbage(Good):
    action_format = FreeText()

    def step(self, action):
        if not action.strip():
            raise KeyError("empty")
        return Observation.text("ok"), 0.0, True, False, {"success": True}


class NoSuccess(Good):
    def step(self, action):
        self.action_format.parse(action)
        return Observation.text("done"), 0.0, True, False, {}


class Chat(Good):
    """A free-text game: every reply is an utterance; "[a]" ends it."""

    action_format = FreeText()
    accepts_any_text = True

    def step(self, action):
        done = action.strip() == "[a]"
        return Observation.text(f"heard {action!r}"), 0.0, done, False, {"success": True} if done else {}


class ChatUndeclared(Chat):
    accepts_any_text = False


class ChatBreaksAfterGarbage(Chat):
    """Takes an empty reply, then breaks."""

    def reset(self, *, seed=None, options=None):
        self.heard = []
        return super().reset(seed=seed, options=options)

    def step(self, action):
        if self.heard and not self.heard[-1].strip():
            raise RuntimeError("the game broke")
        self.heard.append(action)
        return super().step(action)


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (Good, None),
        (IgnoresSeed, "same seed, same instance: seed 0 gave instance_hash"),
        (RaisesOnGarbage, "garbage action: step('') raised KeyError"),
        (NoSuccess, "success at episode end: the final step of seed 0 has info['success']=None"),
        (Chat, None),  # declares accepts_any_text: a garbage reply is speech, and the game goes on
        (ChatUndeclared, "garbage action: none of the garbage actions"),
        (ChatBreaksAfterGarbage, "garbage action: after step('') was taken as a move (accepts_any_text), the next"),
    ],
)
def test_checker(cls, expected):
    turngym.register(f"checkertest/{cls.__name__}-v0", cls, max_turns=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        problems = check_registered_env(f"checkertest/{cls.__name__}-v0")
    if expected is None:
        assert problems == []
    else:
        assert any(p.startswith(expected) for p in problems), problems


def good_expert(env):
    return lambda obs: "[a]"


NOT_CALLABLE = 42


def returns_text(env):
    return "[a]"


@pytest.mark.parametrize(
    ("expert", "expected"),
    [
        ("tests.core.test_checker:good_expert", None),
        (
            "tests.core.test_checker:no_such_expert",
            "expert: expert='tests.core.test_checker:no_such_expert' does not import (AttributeError",
        ),
        (
            "nosuchmodz9.experts:expert",
            "expert: expert='nosuchmodz9.experts:expert' does not import (ModuleNotFoundError",
        ),
        (
            "tests.core.test_checker:NOT_CALLABLE",
            "expert: expert='tests.core.test_checker:NOT_CALLABLE' is a int, not callable",
        ),
        (
            "tests.core.test_checker:returns_text",
            "expert: expert='tests.core.test_checker:returns_text' returned a str, not a policy",
        ),
    ],
)
def test_the_checker_names_a_broken_expert_and_the_fix(expert, expected):
    env_id = f"checkertest/Expert{abs(hash(expert)) % 10**6}-v0"
    turngym.register(env_id, Good, max_turns=3, expert=expert)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        problems = check_registered_env(env_id)
    if expected is None:
        assert problems == []
    else:
        assert len(problems) == 1 and problems[0].startswith(expected), problems
        assert "register(..., expert='module:function') must name a function" in problems[0]

"""``JavaTextWorld``: the base of the text worlds whose engine is a JVM (ScienceWorld, TextWorldExpress).

A subclass names its engine (``engine_spec``) and the task instances of a split (``instance_numbers``:
the engine's variation numbers or game seeds; ``instance_for``: one as a dict), loads one (``load``: the
first observation's text), plays one command (``act``: an ``Outcome``), and lists the gold path
(``gold_actions``) and the valid commands now (``valid_commands``); it calls the engine as
``self.engine.server``. The base class does the rest:

- the seed picks the instance: uniformly among the split's, with the env's own RNG;

- one JVM per env (``jvm.JavaEngine``), started when the env is made and stopped at ``close``;
- commands in square brackets (``[open door to kitchen]``); a reply without one is an invalid action,
  a command the engine does not understand is the engine's answer (a turn, as in the original games);
- reward: the change of the engine's score (normalised to 1 for a solved task); ``info["success"]``
  when the engine ends the task; ``info["score"]`` after every step;
- a JVM that dies mid-episode ends that episode (truncated, ``info["error"]``, success False), never
  the run; the next reset starts a fresh JVM (a reset that meets a dead JVM retries once on a new one).

Snapshots are unsupported: the world's state lives in the JVM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar

from turngym.core.actions import BracketedMove
from turngym.core.env import TurnEnv
from turngym.core.errors import ActionError, SandboxError
from turngym.core.types import Action, Observation
from turngym.envs.textworlds.jvm import JavaEngine

Split = Literal["train", "dev", "test"]
SPLITS: tuple[str, ...] = ("train", "dev", "test")
T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    """What one command did."""

    text: str
    #: the task's score now, 1.0 when it is solved (negative where the engine marks a failure)
    score: float
    #: the engine ended the task (solved or failed)
    done: bool
    success: bool


class JavaTextWorld(TurnEnv):
    """Base of the JVM text worlds; see the module docstring."""

    snapshot_unsupported: ClassVar[str | None] = (
        "the world's state lives in the engine's JVM, which offers no save of it"
    )
    blocking = True
    action_format = BracketedMove(example="[look around]", what="command")

    def __init__(self, *, split: Split = "train", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if split not in SPLITS:
            raise ValueError(
                f"split={split!r} is not one of {SPLITS}: the engine keeps its task instances in three "
                "disjoint sets; train on 'train', tune on 'dev', report on 'test'"
            )
        self.split = split
        self.instance: dict[str, Any] = {}
        self.moves = 0
        self._score = 0.0
        self.engine = JavaEngine(**self.engine_spec())
        self.engine.ensure_running()

    # -- what a subclass implements ---------------------------------------------------------------
    def engine_spec(self) -> dict[str, Any]:
        """``JavaEngine``'s arguments: name, jar, cwd, entry (and java_opts)."""
        raise NotImplementedError

    def instance_numbers(self) -> list[int]:
        """The engine's numbers of the task instances of ``self.split`` (variations, game seeds)."""
        raise NotImplementedError

    def instance_for(self, number: int) -> dict[str, Any]:
        """The task instance ``number`` (JSON-able; hashed into ``instance_hash``)."""
        raise NotImplementedError

    def load(self, instance: dict[str, Any]) -> str:
        """Start ``instance`` in the engine; the text of the first observation."""
        raise NotImplementedError

    def act(self, command: str) -> Outcome:
        raise NotImplementedError

    def gold_actions(self) -> list[str]:
        """The engine's gold path from the start of this episode (call it right after reset)."""
        raise NotImplementedError

    def valid_commands(self) -> list[str]:
        return []

    # -- the episode --------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        numbers = self.with_engine(self.instance_numbers, "reset")
        self.instance = self.instance_for(numbers[int(self.np_random.integers(len(numbers)))])
        text = self.with_engine(lambda: self.load(self.instance), "reset")
        self.moves, self._score = 0, 0.0
        return Observation.text(text), {"split": self.split}

    def step(self, action: Action):
        command = " ".join(self.action_format.parse(action).split())
        if not command:
            raise ActionError(
                f"the command is empty: write one in the brackets, for example {self.action_format.example}"
            )
        try:
            out = self.engine.call(lambda: self.act(command), f"step {self.moves + 1} ({command!r})")
        except SandboxError as e:
            text = f"The game engine failed, so this episode ends here: {e}"
            return Observation.text(text), 0.0, False, True, {"error": str(e), "success": False}
        self.moves += 1
        reward, self._score = round(out.score - self._score, 6), out.score
        info: dict[str, Any] = {"score": out.score}
        if out.done:
            info["success"] = out.success
        return Observation.text(out.text), reward, out.done, False, info

    def with_engine(self, fn: Callable[[], T], what: str) -> T:
        """``fn()`` on a running engine; where the JVM died, once more on a fresh one (for resets)."""
        for attempt in (1, 2):
            self.engine.ensure_running()
            try:
                return self.engine.call(fn, what)
            except SandboxError:
                if attempt == 2 or self.engine.running:  # a failure in Java itself: a new JVM would not help
                    raise
        raise AssertionError("unreachable")

    def instance_state(self) -> Any:
        return self.instance

    def legal_actions(self) -> list[str] | None:
        try:
            return [f"[{c}]" for c in self.engine.call(self.valid_commands, "valid commands")] or None
        except SandboxError:
            return None

    def close(self) -> None:
        self.engine.stop()
        super().close()


def gold_path_policy(actions: list[str]) -> Callable[[Observation], str]:
    """A policy that plays ``actions`` in order, one bracketed command a turn (then looks around)."""
    it = iter(actions)

    def policy(obs: Observation) -> str:
        return f"[{next(it, 'look around')}]"

    return policy

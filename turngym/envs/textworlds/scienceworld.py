"""ScienceWorld (Wang et al. 2022): 30 elementary-science tasks in a simulated house, ``scienceworld/<task>-v0``.

Each task has variations (which substance to boil, which animal to find...), kept by the engine in
three disjoint sets: ``split="train"`` (the default), ``"dev"``, ``"test"``. The seed picks a variation
of the split uniformly (the env's own RNG), so equal seeds give the same variation. ``simplifications``
passes the engine's options ("easy", or a comma-separated list such as "teleportAction,openDoors").

Determinism: the engine keeps a room's objects in hash sets keyed by Java's identity hashes, which are
random, so the same variation was described in another order from one load to the next; the JVM runs
with constant identity hashes (``DETERMINISTIC_HASHES``), which fixes the order (and costs some speed).

The first observation is the task, the command templates and the room; each command (in square
brackets, ``[open door to kitchen]``) is answered with the engine's text. Reward: the change of the
task's score (0..1; the engine's 0..100 scaled, negative when it marks the task failed). The episode
ends when the engine completes the task (solved, or failed: e.g. a focus on the wrong object);
``info["success"]`` is True only for a score of 1.

``valid_actions=True`` makes ``legal_actions()`` list the engine's valid commands (random agents pick
among them). The expert plays the engine's gold action sequence, generated for the episode's variation when the
expert asks for it (the engine computes it by simulation, seconds for some tasks).
"""

from __future__ import annotations

from typing import Any

from turngym.envs.textworlds.base import JavaTextWorld, Outcome, Split, gold_path_policy
from turngym.envs.textworlds.jvm import JAVA_OPTS

ENTRY = "scienceworld.runtime.pythonapi.PythonInterface"
#: every object's identity hash the same, so that the engine lists a room's objects in one order: with Java's
#: default (random) hashes the same variation is described in another order from one load to the next
DETERMINISTIC_HASHES = ("-XX:+UnlockExperimentalVMOptions", "-XX:hashCode=2")


class ScienceWorldEnv(JavaTextWorld):
    def __init__(
        self,
        *,
        task: str,
        split: Split = "train",
        simplifications: str = "",
        valid_actions: bool = False,
        **kwargs: Any,
    ) -> None:
        """``valid_actions``: ``legal_actions()`` lists the engine's valid commands now (hundreds; for random
        agents). Off by default: the engine takes about a second to list them on a busy 2-core machine."""
        self.task, self.simplifications, self.valid_actions = task, simplifications, valid_actions
        self._numbers: list[int] | None = None
        self._gold: list[str] | None = None
        super().__init__(split=split, **kwargs)

    def engine_spec(self) -> dict[str, Any]:
        from scienceworld.constants import BASEPATH, JAR_PATH

        return {
            "name": f"ScienceWorld ({self.task})",
            "jar": JAR_PATH,
            "cwd": BASEPATH,
            "entry": ENTRY,
            "java_opts": (*JAVA_OPTS, *DETERMINISTIC_HASHES),
        }

    def instance_numbers(self) -> list[int]:
        if self._numbers is None:
            server = self.engine.server
            known = list(server.getTaskNames())
            if self.task not in known:
                raise ValueError(f"ScienceWorld has no task {self.task!r}; its tasks: {', '.join(known)}")
            server.load(self.task, 0, self.simplifications, False)
            lists = {
                "train": server.getVariationsTrain,
                "dev": server.getVariationsDev,
                "test": server.getVariationsTest,
            }
            self._numbers = sorted(int(v) for v in lists[self.split]())
        return self._numbers

    def instance_for(self, number: int) -> dict[str, Any]:
        return {"task": self.task, "split": self.split, "variation": number, "simplifications": self.simplifications}

    def load(self, instance: dict[str, Any]) -> str:
        server = self.engine.server
        server.load(self.task, instance["variation"], self.simplifications, False)
        self._gold = None
        templates = ", ".join(f"[{a}]" for a in server.getPossibleActions())
        return f"{server.freeActionTaskDesc().strip()}\n\nCommands: {templates}\n\n{server.freeActionLook().strip()}"

    def act(self, command: str) -> Outcome:
        server = self.engine.server
        text = server.step(command)
        score = round(100 * server.getScore()) / 100
        done = bool(server.getCompleted()) or score < 0
        return Outcome(text=text.strip(), score=score, done=done, success=done and score >= 1.0)

    def gold_actions(self) -> list[str]:
        if self._gold is None:
            if self.moves:
                raise RuntimeError(
                    f"the gold path of {self.task} variation {self.instance['variation']} is generated at the start "
                    "of an episode: ask for it right after reset, before any step"
                )
            server = self.engine.server
            server.load(self.task, self.instance["variation"], self.simplifications, True)
            self._gold = [str(a) for a in server.getGoldActionSequence()]
        return list(self._gold)

    def valid_commands(self) -> list[str]:
        if not self.valid_actions:
            return []
        return sorted(str(a) for a in self.engine.server.getValidActionObjectCombinations())


def expert(env: ScienceWorldEnv):
    """The gold action sequence of the episode's variation, one command a turn."""
    return gold_path_policy(env.with_engine(env.gold_actions, "gold path"))

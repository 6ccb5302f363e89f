"""TextNav: a small text adventure in a house; carry an object to a container in another room.

Each seed builds a house: rooms on a 3x3 grid joined by doors (a random tree, so every room can be
reached), one container (closed at the start) and one surface per room, and a few objects on the
surfaces, on the floor or inside containers. The goal reads like LMRL-Gym's Text-Nav task, e.g.
"Put the apple in the chest in the bedroom." Each observation describes the current room only (its
exits, furniture, visible objects) and what you carry, and lists the valid commands now.

Commands (bracketed; "the" may be left out):

    [go north|south|east|west]   [take OBJECT]   [open CONTAINER]   [close CONTAINER]
    [put OBJECT in CONTAINER]    [put OBJECT on SURFACE]            [look]

Reward as in LMRL-Gym's Text-Nav (TextWorld's score): 1 when the object is in the goal container,
which ends the episode with ``info["success"] = True``; 0 for every other step. A command that
does not parse or cannot be done here (no such object, the container is closed, ...) is an invalid
action: the observation says why, and the episode ends after ``max_invalid_actions`` of them.

``reward="subgoals"`` adds a turn reward: ``SUBGOAL_REWARD`` (0.25) the first time in the episode
each of three sub-goals holds after a step: the goal object is carried ("take"), the goal container
is open ("open"), the object is carried in the goal room ("carry"). Each is paid once per episode:
closing and opening the container again, or leaving the room and coming back, pays nothing more.
The sub-goals reached are ``self.reached`` (snapshots save it). Every successful episode reaches the
three (the object starts outside the goal room, the container starts closed, and putting the object
in needs both), so a success returns 1 + 3 * 0.25 = 1.75 whatever its path, and its final step
still pays 1. This is potential-based shaping (Ng et al. 1999, gamma 1) over the state together
with the record of sub-goals reached, potential 0.25 per sub-goal reached; it leaves the best
policies those of the sparse reward (a failed episode gets at most 0.75, a success 1.75). A potential
over the world state alone (as Maze's) would charge the sub-goal back when it is undone, the final
[put] included (it lets go of the object), so the once-paid form is kept.

The expert is an oracle: it reads the env's map and plans shortest paths (breadth-first search).
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any, Literal

from turngym.core.actions import BracketedMove
from turngym.core.env import TurnEnv
from turngym.core.errors import ActionError
from turngym.core.types import Action, Observation

ROOMS = ("kitchen", "living room", "bedroom", "bathroom", "office", "dining room", "hallway", "garage", "pantry")
CONTAINERS = ("fridge", "chest", "cabinet", "wardrobe", "cupboard", "box", "basket", "drawer", "safe")
SURFACES = ("table", "shelf", "counter", "desk", "bench", "stool", "sideboard", "nightstand", "workbench")
OBJECTS = ("apple", "book", "key", "cup", "sock", "coin", "pen", "banana", "hat", "candle", "plate", "phone")
#: the turn reward of ``reward="subgoals"`` per sub-goal, paid the first time it is reached
SUBGOAL_REWARD = 0.25
SUBGOALS = ("take", "open", "carry")
_STEP = {"north": (-1, 0), "south": (1, 0), "west": (0, -1), "east": (0, 1)}
_BACK = {"north": "south", "south": "north", "east": "west", "west": "east"}
GRID = 3

_GO = re.compile(r"go (north|south|east|west)")
_TAKE = re.compile(r"(?:take|get|pick up) (.+?)(?: (?:from|off|out of) .+)?")
_OPEN = re.compile(r"(open|close) (.+)")
_PUT = re.compile(r"(?:put|place|insert) (.+?) (in|into|inside|on|onto) (.+)")
_THE = re.compile(r"\bthe\s+")
_NAME = r"(the )?[a-z]{1,12}"
#: the command grammar, bounded: a constrained sampler must reach "]" (an open pattern such as [A-Za-z ]+ let a
#: tiny model run on to its token budget in every reply); every form _do accepts, "the" optional
COMMAND = (
    rf"look|go (north|south|east|west)|(take|get|pick up) {_NAME}( (from|off|out of) {_NAME})?"
    rf"|(open|close) {_NAME}|(put|place|insert) {_NAME} (in|into|inside|on|onto) {_NAME}"
)
_SPACES = re.compile(r"\s+")


class TextNavEnv(TurnEnv):
    #: the whole state is picklable attributes: TurnEnv.snapshot() saves them
    snapshot_unsupported = None

    def __init__(
        self,
        *,
        n_rooms: int = 6,
        n_objects: int = 5,
        show_commands: bool = True,
        reward: Literal["sparse", "subgoals"] = "sparse",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 2 <= n_rooms <= len(ROOMS):
            raise ValueError(f"n_rooms must be in 2..{len(ROOMS)}, got {n_rooms}")
        if not 1 <= n_objects <= len(OBJECTS):
            raise ValueError(f"n_objects must be in 1..{len(OBJECTS)}, got {n_objects}")
        if reward not in ("sparse", "subgoals"):
            raise ValueError(
                f"TextNav reward={reward!r} is not a reward scheme: use 'sparse' (1 when the object is in the "
                f"container, LMRL-Gym's) or 'subgoals' (plus {SUBGOAL_REWARD} the first time the object is taken, "
                "the container opened, the object carried into the goal room)"
            )
        self.n_rooms, self.n_objects, self.show_commands, self.reward = n_rooms, n_objects, show_commands, reward
        self.reached: list[str] = []  # subgoals: the sub-goals reached this episode, in order
        self.action_format = BracketedMove(move_pattern=COMMAND, example="[go north]", what="command")
        self.rooms: list[str] = []
        self.doors: list[dict[str, int]] = []
        self.furniture: dict[str, tuple[int, str]] = {}  # name -> (room, "container" | "surface")
        self.is_open: dict[str, bool] = {}
        self.where: dict[str, tuple[str, Any]] = {}  # object -> ("floor", room) | ("in"/"on", furniture) | ("hand", None)
        self.room = 0
        self.goal = ("apple", "chest")
        self.description = ""

    # -- the world ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        u = iter(rng.random(4 * self.n_rooms + 2 * self.n_objects + 2).tolist())  # all draws at once (fast)

        def pick(n: int) -> int:
            return int(next(u) * n)

        self.rooms = [ROOMS[i] for i in rng.permutation(len(ROOMS))[: self.n_rooms]]
        cells = [(pick(GRID), pick(GRID))]
        self.doors = [{}]
        while len(cells) < self.n_rooms:  # grow a random tree of rooms on the grid
            frontier = [
                (i, d, (r + dr, c + dc))
                for i, (r, c) in enumerate(cells)
                for d, (dr, dc) in _STEP.items()
                if 0 <= r + dr < GRID and 0 <= c + dc < GRID and (r + dr, c + dc) not in cells
            ]
            i, d, cell = frontier[pick(len(frontier))]
            cells.append(cell)
            self.doors.append({_BACK[d]: i})
            self.doors[i][d] = len(cells) - 1
        containers = [CONTAINERS[i] for i in rng.permutation(len(CONTAINERS))[: self.n_rooms]]
        surfaces = [SURFACES[i] for i in rng.permutation(len(SURFACES))[: self.n_rooms]]
        self.furniture = {}
        for room, (box, top) in enumerate(zip(containers, surfaces)):
            self.furniture[box] = (room, "container")
            self.furniture[top] = (room, "surface")
        self.is_open = dict.fromkeys(containers, False)
        objects = [OBJECTS[i] for i in rng.permutation(len(OBJECTS))[: self.n_objects]]
        self.where = {}
        for obj in objects:
            spot, room = pick(3), pick(self.n_rooms)
            self.where[obj] = ("floor", room) if spot == 0 else ("in", containers[room]) if spot == 1 else ("on", surfaces[room])
        target = objects[0]
        item_room = self._room_of(target)
        others = [r for r in range(self.n_rooms) if r != item_room]
        goal_room = others[pick(len(others))]
        self.goal = (target, containers[goal_room])
        self.room = pick(self.n_rooms)
        self.description = (
            f"You are in a house. Your task: put the {target} in the {containers[goal_room]} in the "
            f"{self.rooms[goal_room]}. Commands: [go north|south|east|west], [take OBJECT], [open CONTAINER], "
            "[close CONTAINER], [put OBJECT in CONTAINER], [put OBJECT on SURFACE], [look]."
        )
        if self.reward == "subgoals":
            self.description += (
                f" Taking the {target}, opening the {containers[goal_room]} and carrying the {target} into the "
                f"{self.rooms[goal_room]} each earn {SUBGOAL_REWARD} points the first time."
            )
        self.reached = []
        return Observation.text(f"{self.description}\n\n{self._describe()}"), {}

    def step(self, action: Action):
        command = _SPACES.sub(" ", _THE.sub("", self.action_format.parse(action).lower())).strip()
        text = self._do(command)
        obj, box = self.goal
        if self.where[obj] == ("in", box):  # every sub-goal was reached before: the final step pays 1
            return Observation.text(f"{text}\nDone: the {obj} is in the {box}."), 1.0, True, False, {"success": True}
        reward = SUBGOAL_REWARD * self._new_subgoals() if self.reward == "subgoals" else 0.0
        return Observation.text(f"{text}\n\n{self._describe()}"), reward, False, False, {}

    def _do(self, command: str) -> str:
        if command == "look":
            return "You look around."
        if m := _GO.fullmatch(command):
            nxt = self.doors[self.room].get(m.group(1))
            if nxt is None:
                raise ActionError(f"there is no exit to the {m.group(1)} here: use one of the exits listed")
            self.room = nxt
            return f"You go {m.group(1)}."
        if m := _PUT.fullmatch(command):
            obj, prep, dest = m.groups()
            if self.where.get(obj, ("",))[0] != "hand":
                raise ActionError(f"you are not carrying a {obj}: take it first")
            room, kind = self._furniture_here(dest)
            if kind == "container" and prep in ("on", "onto"):
                raise ActionError(f"put things in the {dest}, not on it: [put {obj} in {dest}]")
            if kind == "surface" and prep not in ("on", "onto"):
                raise ActionError(f"put things on the {dest}, not in it: [put {obj} on {dest}]")
            if kind == "container" and not self.is_open[dest]:
                raise ActionError(f"the {dest} is closed: [open {dest}] first")
            self.where[obj] = ("in" if kind == "container" else "on", dest)
            return f"You put the {obj} {'in' if kind == 'container' else 'on'} the {dest}."
        if m := _OPEN.fullmatch(command):
            verb, name = m.groups()
            _, kind = self._furniture_here(name)
            if kind != "container":
                raise ActionError(f"the {name} cannot be opened or closed")
            if self.is_open[name] == (verb == "open"):
                raise ActionError(f"the {name} is already {'open' if verb == 'open' else 'closed'}")
            self.is_open[name] = verb == "open"
            return f"You {verb} the {name}."
        if m := _TAKE.fullmatch(command):
            obj = m.group(1)
            if obj not in self._visible():
                raise ActionError(f"there is no {obj} you can take here: take one of the objects you see")
            self.where[obj] = ("hand", None)
            return f"You take the {obj}."
        raise ActionError(
            f"{command!r} is not a command: use [go DIRECTION], [take OBJECT], [open X], [close X], "
            "[put OBJECT in X], [put OBJECT on X] or [look]"
        )

    # -- helpers --------------------------------------------------------------------------------
    def _new_subgoals(self) -> int:
        """Record the sub-goals that hold now and were not reached before; how many they are."""
        obj, box = self.goal
        carried = self.where[obj][0] == "hand"
        holds = {"take": carried, "open": self.is_open[box], "carry": carried and self.room == self.furniture[box][0]}
        new = [goal for goal in SUBGOALS if holds[goal] and goal not in self.reached]
        self.reached += new
        return len(new)

    def _room_of(self, obj: str) -> int:
        kind, at = self.where[obj]
        if kind == "hand":
            return self.room
        return at if kind == "floor" else self.furniture[at][0]

    def _furniture_here(self, name: str) -> tuple[int, str]:
        spot = self.furniture.get(name)
        if spot is None or spot[0] != self.room:
            raise ActionError(f"there is no {name} here: use the furniture of this room")
        return spot

    def _visible(self) -> list[str]:
        out = []
        for obj, (kind, at) in self.where.items():
            if kind == "floor" and at == self.room:
                out.append(obj)
            elif kind in ("in", "on") and self.furniture[at][0] == self.room and (kind == "on" or self.is_open[at]):
                out.append(obj)
        return out

    def _describe(self) -> str:
        lines = [f"You are in the {self.rooms[self.room]}. Exits: {', '.join(self.doors[self.room])}."]
        for name, (room, kind) in self.furniture.items():
            if room != self.room:
                continue
            if kind == "container" and not self.is_open[name]:
                lines.append(f"There is a {name} (closed).")
                continue
            inside = [o for o, (k, at) in self.where.items() if at == name]
            what = ", ".join(inside) if inside else "nothing"
            lines.append(f"There is a {name} ({'open, ' if kind == 'container' else ''}{'in' if kind == 'container' else 'on'} it: {what}).")
        floor = [o for o, (k, at) in self.where.items() if k == "floor" and at == self.room]
        if floor:
            lines.append(f"On the floor: {', '.join(floor)}.")
        carried = [o for o, (k, _) in self.where.items() if k == "hand"]
        lines.append(f"You carry: {', '.join(carried) or 'nothing'}.")
        if self.show_commands:
            lines.append("Valid commands: " + ", ".join(self.legal_actions()))
        return "\n".join(lines)

    def instance_state(self) -> Any:
        return {
            "rooms": self.rooms,
            "doors": self.doors,
            "furniture": sorted(self.furniture.items()),
            "where": sorted(self.where.items()),
            "room": self.room,
            "goal": self.goal,
        }

    def legal_actions(self) -> list[str]:
        out = [f"[go {d}]" for d in self.doors[self.room]]
        out += [f"[take {o}]" for o in self._visible()]
        carried = [o for o, (k, _) in self.where.items() if k == "hand"]
        for name, (room, kind) in self.furniture.items():
            if room != self.room:
                continue
            if kind == "container":
                out.append(f"[{'close' if self.is_open[name] else 'open'} {name}]")
                if self.is_open[name]:
                    out += [f"[put {o} in {name}]" for o in carried]
            else:
                out += [f"[put {o} on {name}]" for o in carried]
        out.append("[look]")
        return out

    def path(self, target: int) -> list[str]:
        """Shortest list of directions from the current room to ``target`` (breadth-first search)."""
        prev: dict[int, tuple[int, str] | None] = {self.room: None}
        queue = deque([self.room])
        while queue:
            room = queue.popleft()
            for d, nxt in self.doors[room].items():
                if nxt not in prev:
                    prev[nxt] = (room, d)
                    queue.append(nxt)
        moves = []
        while prev[target] is not None:
            target, d = prev[target]  # type: ignore[misc]
            moves.append(d)
        return moves[::-1]


def expert(env: TextNavEnv):
    """Oracle: replans from the env's state every turn (fetch the object, carry it, open, put)."""

    def policy(obs: Observation) -> str:
        obj, box = env.goal
        box_room = env.furniture[box][0]
        kind, at = env.where[obj]
        if kind != "hand":
            room = env._room_of(obj)
            if room != env.room:
                return f"[go {env.path(room)[0]}]"
            if kind == "in" and not env.is_open[at]:
                return f"[open {at}]"
            return f"[take {obj}]"
        if env.room != box_room:
            return f"[go {env.path(box_room)[0]}]"
        if not env.is_open[box]:
            return f"[open {box}]"
        return f"[put {obj} in {box}]"

    return policy

"""Maze: walk through a grid maze to the goal, seeing only the walls around you.

The maze is a perfect maze (one path between any two cells) carved by a randomised depth-first
search from the seed; the goal is the cell farthest from the start. Like LMRL-Gym's partially
observed maze, each observation gives the agent's position, the goal's position and which of the
four directions are open; the map itself is never shown. Actions: ``[up]``, ``[down]``, ``[left]``,
``[right]``. Row 0 is the top row, column 0 the left column.

Reward (LMRL-Gym ``standard_reward``): -1 per move (a move into a wall leaves the agent in place and
also costs -1), 0 for the move that reaches the goal, which ends the episode with
``info["success"] = True``. A reply that is not one of the four moves is an invalid action with
LMRL-Gym's illegal-action reward, -4.

``reward="shaped"`` adds a turn-level signal, potential-based (Ng, Harada and Russell 1999, with
potential -d(cell), d the path distance to the goal through the maze, and gamma = 1), so the best
policy stays the same: each move's reward is the standard one plus d(before) - d(after). A move
along the path to the goal gets 0 (the goal itself +1), a move away from it -2, a move into a wall -1;
an episode's shaped return is its standard return plus d(start).

The expert explores from the observations alone (depth-first search with memory, trying first the
open directions that lead towards the goal): it needs at most 2 * (cells - 1) moves.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any, Literal

from turngym.core.actions import BracketedMove
from turngym.core.env import TurnEnv
from turngym.core.types import Action, Observation

DIRECTIONS = ("up", "down", "left", "right")
_DELTA = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
_OPPOSITE = {"up": "down", "down": "up", "left": "right", "right": "left"}
_BIT = {d: 1 << i for i, d in enumerate(DIRECTIONS)}


@cache
def neighbours(rows: int, cols: int) -> tuple[tuple[tuple[int, int, int], ...], ...]:
    """Per cell, its (direction bit, opposite bit, neighbour cell) inside the grid."""
    out = []
    for cell in range(rows * cols):
        r, c = divmod(cell, cols)
        out.append(tuple(
            (_BIT[d], _BIT[_OPPOSITE[d]], (r + dr) * cols + c + dc)
            for d, (dr, dc) in _DELTA.items()
            if 0 <= r + dr < rows and 0 <= c + dc < cols
        ))
    return tuple(out)


def carve_maze(rows: int, cols: int, rng: Any) -> list[int]:
    """A perfect maze by randomised depth-first search: per cell, a bit mask of its open directions."""
    near = neighbours(rows, cols)
    open_dirs = [0] * (rows * cols)
    seen = [False] * (rows * cols)
    draws = iter(rng.random(rows * cols).tolist())  # one draw per carved passage, taken at once (fast)
    stack = [int(rng.integers(rows * cols))]
    seen[stack[0]] = True
    while stack:
        cell = stack[-1]
        options = [n for n in near[cell] if not seen[n[2]]]
        if not options:
            stack.pop()
            continue
        bit, back, nxt = options[int(next(draws) * len(options))]
        open_dirs[cell] |= bit
        open_dirs[nxt] |= back
        seen[nxt] = True
        stack.append(nxt)
    return open_dirs


def path_distances(open_dirs: list[int], rows: int, cols: int, start: int) -> list[int]:
    """Per cell, the number of moves from ``start`` through the maze."""
    return _breadth_first(open_dirs, rows, cols, start)[0]


def farthest_cell(open_dirs: list[int], rows: int, cols: int, start: int) -> int:
    """The cell with the longest path from ``start`` (the last one breadth-first search reaches)."""
    return _breadth_first(open_dirs, rows, cols, start)[1]


def _breadth_first(open_dirs: list[int], rows: int, cols: int, start: int) -> tuple[list[int], int]:
    """Breadth-first search from ``start``: per cell its distance, and the last cell reached."""
    near = neighbours(rows, cols)
    dist = [-1] * (rows * cols)
    dist[start] = 0
    frontier = [start]
    last = start
    while frontier:
        nxt = []
        for cell in frontier:
            for bit, _, n in near[cell]:
                if open_dirs[cell] & bit and dist[n] < 0:
                    dist[n] = dist[cell] + 1
                    nxt.append(n)
                    last = n
        frontier = nxt
    return dist, last


class MazeEnv(TurnEnv):
    #: the whole state is picklable attributes: TurnEnv.snapshot() saves them
    snapshot_unsupported = None
    invalid_penalty = -4.0
    action_format = BracketedMove(choices=DIRECTIONS, example="[up]", what="move")

    def __init__(
        self, *, rows: int = 5, cols: int = 5, reward: Literal["standard", "shaped"] = "standard", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        if rows < 2 or cols < 2:
            raise ValueError(f"the maze needs at least 2 rows and 2 columns, got rows={rows}, cols={cols}")
        if reward not in ("standard", "shaped"):
            raise ValueError(
                f"Maze reward={reward!r} is not a reward scheme: use 'standard' (-1 a move, LMRL-Gym's) or "
                "'shaped' (plus the decrease of the path distance to the goal, a reward every turn)"
            )
        self.rows, self.cols, self.reward = rows, cols, reward
        self.description = (
            f"You are in a maze of {rows} rows and {cols} columns (row 0 is the top, column 0 the left). "
            "Reach the goal. After each move you learn your position and which directions are open; "
            "moving into a wall leaves you where you are. Each move costs 1 point."
        )
        if reward == "shaped":
            self.description += " A move that brings you 1 step closer to the goal along the maze earns it back."
        self.open_dirs = [0] * (rows * cols)
        self.to_goal = [0] * (rows * cols)  # shaped: the path distance to the goal per cell (the potential)
        self.start = self.position = self.goal = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.open_dirs = carve_maze(self.rows, self.cols, self.np_random)
        self.start = self.position = int(self.np_random.integers(self.rows * self.cols))
        self.goal = farthest_cell(self.open_dirs, self.rows, self.cols, self.start)
        if self.reward == "shaped":  # the standard reward needs no distances: no second search per reset
            self.to_goal = path_distances(self.open_dirs, self.rows, self.cols, self.goal)
        return Observation.text(f"{self.description} {self.action_format.describe()}\n{self._where()}"), {}

    def step(self, action: Action):
        move = self.action_format.parse(action)
        if not self.open_dirs[self.position] & _BIT[move]:
            return Observation.text(f"You hit a wall. {self._where()}"), -1.0, False, False, {}
        before = self.position
        dr, dc = _DELTA[move]
        self.position += dr * self.cols + dc
        shaping = self.to_goal[before] - self.to_goal[self.position] if self.reward == "shaped" else 0
        if self.position == self.goal:
            return Observation.text("You reached the goal!"), float(shaping), True, False, {"success": True}
        return Observation.text(self._where()), float(shaping - 1), False, False, {}

    def _where(self) -> str:
        r, c = divmod(self.position, self.cols)
        gr, gc = divmod(self.goal, self.cols)
        mask = self.open_dirs[self.position]
        opened = ", ".join(d for d in DIRECTIONS if mask & _BIT[d])
        walls = ", ".join(d for d in DIRECTIONS if not mask & _BIT[d]) or "none"
        return f"You are at row {r}, column {c}; the goal is at row {gr}, column {gc}. Open: {opened}. Walls: {walls}."

    def instance_state(self) -> Any:
        return {"rows": self.rows, "cols": self.cols, "open": self.open_dirs, "start": self.start, "goal": self.goal}

    def legal_actions(self) -> list[str]:
        mask = self.open_dirs[self.position]
        return [f"[{d}]" for d in DIRECTIONS if mask & _BIT[d]]


_WHERE = re.compile(r"You are at row (\d+), column (\d+); the goal is at row (\d+), column (\d+)\. Open: ([a-z, ]*)\.")


def expert(env: MazeEnv):
    """Depth-first exploration with memory, from the observations only (not the map)."""
    visited: set[tuple[int, int]] = set()
    path: list[str] = []  # moves from the start to here, for backtracking
    last: str | None = None

    def policy(obs: Observation) -> str:
        nonlocal last
        m = _WHERE.search(obs.last_text)
        if m is None:  # e.g. an error message: repeat nothing, try the first direction
            return "[up]"
        r, c, gr, gc = (int(x) for x in m.groups()[:4])
        opened = [d for d in m.group(5).split(", ") if d]
        if last is not None and (r, c) not in visited:
            path.append(last)
        visited.add((r, c))
        fresh = [d for d in opened if (r + _DELTA[d][0], c + _DELTA[d][1]) not in visited]
        if fresh:
            fresh.sort(key=lambda d: abs(r + _DELTA[d][0] - gr) + abs(c + _DELTA[d][1] - gc))
            last = fresh[0]
            return f"[{last}]"
        back = _OPPOSITE[path.pop()] if path else opened[0]
        last = None
        return f"[{back}]"

    return policy

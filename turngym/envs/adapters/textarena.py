"""TextArena games as turngym envs: ``turngym.make("textarena/TicTacToe-v0")``.

``TextArenaEnv`` wraps TextArena's raw env (no TextArena wrappers) for one learner, player 0:

- observation: the messages TextArena sent player 0 since its last move, one per line as
  ``[GAME] ...`` / ``[Player 1] ...`` (the form of TextArena's ``LLMObservationWrapper``, but only the
  new messages, since a turngym agent keeps the conversation); the learner's own move is not echoed.
- action: the raw reply text, passed to TextArena as is; where TextArena's default id adds square
  brackets to a reply that has none (its ``ActionFormattingWrapper``), so does the adapter.
- invalid moves: TextArena's own rules decide. A move it rejects becomes the turngym invalid-action
  path (``info["action_error"]``, the error observation, ``invalid_penalty``); when TextArena ends the
  game for repeated invalid moves, the last step carries ``info["action_error"]`` and TextArena's reward.
- reward and ``info["success"]``: TextArena's final reward for player 0, given on the last step;
  success is reward >= 1 in one-player games and "more than every opponent" otherwise.
  ``info["textarena"]`` holds TextArena's game info (reason, turn count, invalid_move).
- other players: ``opponent`` plays them: ``"random"`` (default), ``"first-legal"`` or a callable
  ``str -> str`` (see ``textarena_moves``). They move inside ``reset``/``step`` until it is player 0's turn.
- seeds: the game draws from the env's own random streams (``_routing``), seeded at ``reset(seed)``,
  so equal seeds give equal observations and ``instance_hash``, two envs stepped in turn draw as each
  alone, and the caller's global ``random`` and ``numpy.random`` states are never touched. ``reset()``
  without a seed plays the game of a seed drawn from ``np_random``, so it too follows from the last seed.
- bounded steps: a step (the learner's move and the opponents' answers) that runs over
  ``step_time_limit`` seconds is cut inside the game (``_deadline``), and opponents that make
  ``MAX_OPPONENT_MOVES`` moves without giving the turn back are stopped; either way the episode ends
  truncated, with ``info["error"]`` naming the cause. A game without a turn limit of its own
  (``max_turns=None``) gets none, where TextArena would compare the turn with None.
- free-text games: where any reply is a legal utterance (negotiation, conversation, the talk phases of
  social games), ``accepts_any_text`` is True: a reply that is no move goes to the game as speech,
  not as an action error. TextArena's printing goes to the log (``_routing``).
- making: the first env of a game in a process makes TextArena's engine; the next ones copy it, sharing
  its big read-only containers (word lists), so a group of envs costs one make (``_engine``).
- snapshots: ``snapshot()`` pickles TextArena's engine, the random streams and the opponents
  (``textarena_snapshot``); an engine with an LLM judge or player, or an opponent callable that does
  not pickle, sets the env's ``snapshot_unsupported`` to why.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import json
import math
import random
import re
from collections.abc import Iterator
from typing import Any

import gymnasium
import numpy
from gymnasium.utils import seeding

from turngym.core.actions import BracketedMove
from turngym.core.env import TurnEnv
from turngym.core.errors import ActionError, EnvUnavailable, GameStuck, SnapshotError
from turngym.core.types import Action, Observation, action_text
from turngym.envs.adapters import _routing, textarena_snapshot
from turngym.envs.adapters._deadline import TimeUp, call_within
from turngym.envs.adapters.textarena_moves import Opponent, candidate_moves, family, make_opponent

#: the opponents' stream is seeded with seed + this, apart from the game's stream
_OPPONENT_SEED_OFFSET = 0x9E3779B97F4A7C15
#: opponent moves allowed between two learner moves before the episode is cut (a stuck opponent)
MAX_OPPONENT_MOVES = 1000
#: seconds a step (or the opponents' moves in reset) may take before the game is cut inside
STEP_TIME_LIMIT = 10.0
#: seeds drawn for ``reset()`` without one stay below this (numpy's legacy seeding takes 32 bits)
_SEED_BOUND = 2**31
#: TextArena families in which any reply is a legal utterance, in some phase at least (``accepts_any_text``)
FREE_TEXT_FAMILIES = frozenset({
    "DontSayIt", "IteratedPrisonersDilemma", "MarketEntryGame", "PublicGoodsGame", "SecretMafia",
    "SimpleBlindAuction", "SimpleNegotiation", "Taboo", "ThreePlayerIPD", "TruthAndDeception",
})  # fmt: skip
#: TextArena families that punish a malformed move by their own rule (the turn is skipped, the snake dies)
#: instead of asking again: the message that says so, which makes the step's ``info["action_error"]``
RULED_INVALID = {
    "Codenames": re.compile(r"did not provide a valid (clue|guess)"),
    "Snake": re.compile(r"died due to invalid move"),
    "Surround": re.compile(r"died due to invalid move"),
}


class TextArenaEnv(TurnEnv):
    """One TextArena game, the learner as player 0. See the module docstring."""

    #: set per env where the game cannot be saved (``textarena_snapshot.unsupported_reason``)
    snapshot_unsupported = None
    #: made with the game, equal in every env of the same id and arguments: not saved
    snapshot_exclude = ("_pristine", "_resources", "snapshot_unsupported")
    action_format = BracketedMove(example="[move]", what="move")
    #: TextArena's own rules end a game for invalid moves (most after two in a row); turngym's
    #: per-episode count only applies when set lower (``max_invalid_actions=N``)
    max_invalid_actions = 1_000_000
    _lazy_np_random: numpy.random.Generator | None = None
    _pending_np_seed: int | None = None

    def __init__(
        self,
        *,
        game: str,
        num_players: int = 1,
        opponent: str | Opponent = "random",
        add_brackets: bool | None = None,
        game_kwargs: dict[str, Any] | None = None,
        step_time_limit: float | None = STEP_TIME_LIMIT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if num_players < 1:
            raise ValueError(f"num_players must be >= 1, got {num_players}")
        if step_time_limit is not None and not step_time_limit > 0:
            raise ValueError(f"step_time_limit must be > 0 seconds or None (no limit), got {step_time_limit!r}")
        if not callable(opponent) and opponent not in ("random", "first-legal"):
            raise ValueError(f"opponent {opponent!r} is unknown: use 'random', 'first-legal' or a callable str -> str")
        self.game, self.num_players, self.opponent = game, num_players, opponent
        self.step_time_limit = step_time_limit
        self.accepts_any_text = family(game) in FREE_TEXT_FAMILIES
        self._streams = _routing.Streams(0)
        self._opponent_rng = random.Random(0)
        self._ta, default_brackets = _engine(game, game_kwargs or {}, self._streams)
        self.add_brackets = default_brackets if add_brackets is None else add_brackets
        # some games keep state across resets (KuhnPoker shuffles its deck in place): each reset
        # starts from the attributes the game had when it was made
        self._pristine = _small_containers(vars(self._ta))
        self._resources = textarena_snapshot.read_only_resources(self._ta, self._pristine)
        self.snapshot_unsupported = textarena_snapshot.unsupported_reason(game, self._ta, opponent, self._resources)
        self.description = f"The TextArena game {game}" + (
            f" against {num_players - 1} opponent(s)." if num_players > 1 else "."
        )
        self._opponents: dict[int, Opponent] = {}
        self._history: list[str] = []  # what player 0 saw this episode, for legal_actions
        self._first_text = ""
        self._seed: int | None = None
        self._lazy_np_random: numpy.random.Generator | None = None
        self._pending_np_seed: int | None = None
        self._done = True
        self._cut: str | None = None  # why the opponents' moves in reset() were cut

    # -- the TurnEnv pair -----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._seed_np_random(seed)
        else:  # the game of a seed drawn from np_random: reset() too follows from the last seed
            seed = int(self.np_random.integers(_SEED_BOUND))
        self._seed = seed
        self._streams.seed(seed)
        if self.num_players > 1:
            self._opponent_rng.seed(seed + _OPPONENT_SEED_OFFSET)
            self._opponents = {
                pid: make_opponent(self.opponent, self.game, self._opponent_rng) for pid in range(1, self.num_players)
            }
        self._history, self._cut = [], None
        if self._pristine:
            _restore(self._ta, self._pristine)
        prev = _routing.use(self._streams)
        try:
            self._ta.reset(num_players=self.num_players, seed=seed)
            _no_turn_limit_fixed(self._ta.state)
            self._done = self._bounded(self._play_opponents, False) if self.num_players > 1 else False
            text = self._learner_text()
        except GameStuck as e:  # the opponents could not give player 0 the turn: the first step ends it
            self._done, self._cut, text = True, str(e), ""
        finally:
            _routing.use(prev)
        self._first_text = text
        if self._done and self._cut is None:  # the opponents ended the game before player 0 moved (rare)
            text += self._outcome_text()
        return Observation.text(text), {}

    def step(self, action: Action):
        if self._done:
            if not self._history and self._cut is None:  # reset() fills them
                raise ActionError("no game has started: call reset() first")
            if self._cut is not None:
                return self._cut_result(self._cut)
            # the opponents ended the game in reset(), before player 0 moved: this step ends the episode
            reward, info = self._outcome()
            return Observation.text(self._outcome_text().lstrip("\n")), reward, True, False, info
        text = action if type(action) is str else action_text(action)
        if self.add_brackets and "[" not in text and "]" not in text:
            text = f"[{text}]"
        prev = _routing.use(self._streams)
        try:
            done, obs_text, ruled_invalid = self._bounded(self._play_turn, text)
        except GameStuck as e:
            return self._cut_result(str(e))
        finally:
            _routing.use(prev)
        reward, info = self._outcome() if done else (0.0, {})
        if ruled_invalid:
            info.setdefault("action_error", ruled_invalid)
        if not done:
            return Observation.text(obs_text), reward, False, False, info
        self._done = True
        return Observation.text(obs_text + self._outcome_text()), reward, True, False, info

    def _play_turn(self, text: str) -> tuple[bool, str, str | None]:
        """Player 0's move ``text``, then the opponents' until player 0 is to move again: whether the game
        ended, what player 0 saw, and the game's message where its own rule punished a malformed move
        (``RULED_INVALID``). ``ActionError`` for a move the game rejects and asks again."""
        state = self._ta.state
        errors_before = getattr(state, "error_count", 0)
        done, _ = self._ta.step(text)
        if not done and state.current_player_id == 0 and getattr(state, "error_count", 0) > errors_before:
            messages = self._learner_messages()
            self._history.append(_format(messages, self._ta, skip_from=0))
            raise ActionError(_invalid_reason(messages))
        ruled_invalid = _ruled_invalid(self.game, state.observations.get(0, []))
        if self.num_players > 1:
            done = self._play_opponents(done)
        return done, self._learner_text(), ruled_invalid

    def _bounded(self, fn: Any, *args: Any) -> Any:
        """``fn(*args)`` cut after ``step_time_limit`` seconds (``GameStuck`` then)."""
        if self.step_time_limit is None:
            return fn(*args)
        try:
            return call_within(self.step_time_limit, fn, *args)
        except TimeUp:
            raise GameStuck(
                f"TextArena's {self.game} took over {self.step_time_limit:g} s for one step (its own loop or its "
                "opponents' moves do not end), so the episode was cut: pass step_time_limit=<seconds> to allow more"
            ) from None

    def _cut_result(self, cause: str):
        self._done = True
        text = f"[GAME] The episode was stopped: {cause}."
        return Observation.text(text), 0.0, False, True, {"error": cause, "success": False}

    # -- gymnasium's np_random, seeded lazily: TextArena games never draw from it ------------------
    def _seed_np_random(self, seed: int) -> None:
        if type(seed) is not int or seed < 0:
            gymnasium.Env.reset(self, seed=seed)  # gymnasium's own error for a bad seed
        self._lazy_np_random, self._np_random_seed, self._pending_np_seed = None, seed, seed

    @property
    def _np_random(self) -> numpy.random.Generator | None:  # type: ignore[override]
        if self._lazy_np_random is None and self._pending_np_seed is not None:
            self._lazy_np_random, _ = seeding.np_random(self._pending_np_seed)
            self._pending_np_seed = None
        return self._lazy_np_random

    @_np_random.setter
    def _np_random(self, value: numpy.random.Generator | None) -> None:
        self._lazy_np_random, self._pending_np_seed = value, None

    # -- hooks ----------------------------------------------------------------------------------
    def instance_state(self) -> Any:
        """The first observation, TextArena's game state and the seed: the seed fixes the game's draws
        and the opponents' choices, so it is part of the instance even where the start is fixed."""
        game_state = getattr(getattr(self._ta, "state", None), "game_state", None)
        try:  # most game states are plain JSON already (sets and objects are not)
            state: Any = _STRICT_JSON.encode(game_state)
        except (TypeError, ValueError):
            state = _jsonable(game_state)
        return {"observation": self._first_text, "state": state, "seed": self._seed}

    def legal_actions(self) -> list[str] | None:
        return candidate_moves(self.game, self._history) or None

    def _snapshot_state(self) -> dict[str, Any]:
        data = textarena_snapshot.dumps(super()._snapshot_state(), self._resources, self.game)
        return {"game": (self.game, self.num_players), "pickle": data}

    def _restore_state(self, state: dict[str, Any]) -> None:
        if state["game"] != (self.game, self.num_players):  # make() checks the id; a TextArenaEnv(...) may differ
            game, players = state["game"]
            raise SnapshotError(
                f"the snapshot is of TextArena's {game} for {players} player(s), this env plays {self.game} for "
                f"{self.num_players}: restore it into an env made with game={game!r}, num_players={players}"
            )
        super()._restore_state(textarena_snapshot.loads(state["pickle"], self._resources, self.game))

    # -- internals ------------------------------------------------------------------------------
    def _play_opponents(self, done: bool) -> bool:
        state = self._ta.state
        for _ in range(MAX_OPPONENT_MOVES):
            if done or state.current_player_id == 0:
                return done
            pid, messages = self._ta.get_observation()
            move = self._opponents[pid](_format(messages, self._ta))
            done, _ = self._ta.step(move)
        raise GameStuck(
            f"the opponents of TextArena's {self.game} made {MAX_OPPONENT_MOVES} moves without giving player 0 "
            "the turn back (they keep sending invalid moves, or player 0 is out of the game): pass "
            "opponent='first-legal' or a callable that plays this game"
        )

    def _learner_messages(self) -> list:
        state = self._ta.state
        if not state.done and state.current_player_id == 0:
            return self._ta.get_observation()[1]
        messages = state.observations.get(0, [])
        state.observations[0] = []
        return messages

    def _learner_text(self) -> str:
        text = _format(self._learner_messages(), self._ta, skip_from=0)
        self._history.append(text)
        return text

    def _outcome(self) -> tuple[float, dict[str, Any]]:
        state = self._ta.state
        # a few games pass set_invalid_move's arguments swapped, leaving the reason as the reward
        rewards = {pid: _number(r) for pid, r in (state.rewards or {}).items()}
        reward = rewards.get(0, 0.0)
        others = [r for pid, r in rewards.items() if pid != 0]
        success = reward >= 1.0 if not others else reward > max(others)
        game_info = dict(state.game_info.get(0, {})) if isinstance(state.game_info, dict) else {}
        info: dict[str, Any] = {"success": success, "textarena": _jsonable(game_info), "rewards": rewards}
        if game_info.get("invalid_move"):
            info["action_error"] = str(game_info.get("reason", "invalid move"))
        return reward, info

    def _outcome_text(self) -> str:
        game_info = self._ta.state.game_info
        reason = game_info.get(0, {}).get("reason") if isinstance(game_info, dict) else None
        return f"\n[GAME] Game over. {reason}" if reason else "\n[GAME] Game over."


_PLAYER_ACTION = _GAME_ADMIN = None  # TextArena's ObservationType members, set by _make


def _no_turn_limit_fixed(state: Any) -> None:
    """A state made with ``max_turns=None`` (an "unlimited" variant) gets no limit: TextArena 0.7.4's
    ``check_turn_limit`` compares the turn with None and raises ``TypeError`` on the first move."""
    if getattr(state, "max_turns", 0) is None:
        state.max_turns = math.inf


_STRICT_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))  # no default=: raises on non-JSON


def _number(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return 0.0


_SCALARS = (type(None), bool, int, float, str, bytes)


def _small_containers(attrs: dict[str, Any], limit: int = 1000) -> dict[str, tuple[Any, bool]]:
    """Copies of the small mutable containers among ``attrs`` (big ones, such as word lists, are taken
    as read-only), each with whether it holds only scalars (then a shallow copy restores it)."""
    out = {}
    for name, value in attrs.items():
        if name != "state" and isinstance(value, (list, dict, set)) and len(value) <= limit:
            items = value.values() if isinstance(value, dict) else value
            out[name] = (copy.deepcopy(value), all(type(v) in _SCALARS for v in items))
    return out


def _restore(target: Any, pristine: dict[str, tuple[Any, bool]]) -> None:
    attrs = vars(target)
    for name, (value, flat) in pristine.items():
        attrs[name] = value.copy() if flat else copy.deepcopy(value)


def _format(messages: list, ta_env: Any, *, skip_from: int | None = None) -> str:
    """TextArena messages as ``[SENDER] text`` lines, like its ``LLMObservationWrapper``; a move of
    player ``skip_from`` is left out (the agent wrote it)."""
    roles = ta_env.state.role_mapping
    lines = []
    for sender, text, kind in messages:
        if skip_from is not None and sender in (skip_from, -1) and kind is _PLAYER_ACTION:
            continue
        lines.append(f"[{'GAME' if sender == -1 else roles.get(sender, f'Player {sender}')}] {text}")
    return "\n".join(lines)


def _ruled_invalid(game: str, messages: list) -> str | None:
    """The game's message among ``messages`` that says it punished player 0's malformed move by its rule."""
    pattern = RULED_INVALID.get(family(game))
    if pattern is not None:
        for sender, text, _ in messages:
            if sender == -1 and pattern.search(text) and ("Player 0" in text or "Snake 0" in text):
                return text
    return None


def _invalid_reason(messages: list) -> str:
    for _, text, kind in reversed(messages):
        if kind is _GAME_ADMIN:
            return text
    return "TextArena rejected the move: follow the game's move format"


def _jsonable(x: Any) -> Any:
    """``x`` as plain JSON data, stable across runs (no object addresses)."""
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (set, frozenset)):
        return sorted((_jsonable(v) for v in x), key=lambda v: json.dumps(v, sort_keys=True, default=str))
    if hasattr(x, "tolist"):  # numpy arrays and scalars
        return _jsonable(x.tolist())
    if hasattr(x, "name") and type(x).__module__ == "enum":
        return x.name
    text = str(x)
    return type(x).__name__ if " at 0x" in text else text


#: (game, its arguments) -> the engine made first in this process, the streams it was made with, brackets
_PROTOTYPES: dict[tuple[str, str], tuple[Any, _routing.Streams, bool]] = {}


def _engine(game: str, game_kwargs: dict[str, Any], streams: _routing.Streams) -> tuple[Any, bool]:
    """A fresh TextArena engine for ``game`` drawing from ``streams``, and whether replies get brackets:
    a copy of the engine made first in this process (making one can take a minute: the word games tag
    235k words one at a time), sharing its big read-only containers (``textarena_snapshot``'s resources)."""
    key = (game, repr(sorted(game_kwargs.items())))
    if key not in _PROTOTYPES:
        made = _routing.Streams(0)
        with _routing.activate(made):
            engine, brackets = _make(game, game_kwargs)
        _PROTOTYPES[key] = (engine, made, brackets)
    proto, made, brackets = _PROTOTYPES[key]
    shared = textarena_snapshot.read_only_resources(proto, _small_containers(vars(proto)))
    memo: dict[int, Any] = {id(value): value for value in shared.values()}
    memo[id(made)], memo[id(made.py)] = streams, streams.py
    try:
        engine = copy.deepcopy(proto, memo)
    except Exception:  # noqa: BLE001 - an engine that does not copy (a client, a lock) is made anew
        with _routing.activate(streams):
            return _make(game, game_kwargs)
    _rebind_draws(engine, made, streams)
    return engine, brackets


def _rebind_draws(engine: Any, made: _routing.Streams, streams: _routing.Streams) -> None:
    """Methods of ``made``'s streams that the game bound when made (Secretary's ``value_sampler =
    random.random``), bound to ``streams`` instead: ``deepcopy`` keeps a builtin method as it is."""
    for name, value in list(vars(engine).items()):
        owner = getattr(value, "__self__", None)
        if owner is made.py:
            setattr(engine, name, getattr(streams.py, value.__name__))
        elif owner is not None and owner is made._np:
            setattr(engine, name, getattr(streams.np, value.__name__))


def _make(game: str, game_kwargs: dict[str, Any]) -> tuple[Any, bool]:
    """TextArena's raw env for ``game`` (no TextArena wrappers), with NLTK kept offline, and whether
    TextArena's default id brackets replies (``ActionFormattingWrapper``)."""
    try:
        with _global_random_kept():  # rich, imported by textarena, draws from random at import
            import textarena as ta
        from textarena.envs.registration import ENV_REGISTRY
    except ImportError as e:
        raise EnvUnavailable(f"textarena is not installed ({e}): pip install 'turngym[textarena]'") from None
    global _PLAYER_ACTION, _GAME_ADMIN
    _PLAYER_ACTION, _GAME_ADMIN = ta.ObservationType.PLAYER_ACTION, ta.ObservationType.GAME_ADMIN
    spec = ENV_REGISTRY.get(game)
    if spec is None:
        raise EnvUnavailable(f"TextArena {ta.__version__} has no game {game!r}: install textarena==0.7.4")
    brackets = any(w.__name__ == "ActionFormattingWrapper" for w in spec.default_wrappers or ())
    made = f"{game}-raw" if f"{game}-raw" in ENV_REGISTRY else game
    with _offline_nltk(), _global_random_kept():
        random.seed(0)  # draws while a game module loads: the same in every process
        numpy.random.seed(0)
        # the game's module is routed before the game is made: what the game draws or binds then
        # (Secretary binds random.random) is the env's streams, not the global ones
        entry_point = ENV_REGISTRY[made].entry_point
        if isinstance(entry_point, str):
            with contextlib.suppress(Exception):  # a module that does not import: ta.make says why
                importlib.import_module(entry_point.partition(":")[0])
        _routing.route_textarena_modules()
        env = ta.make(made, **game_kwargs)
    _routing.route_textarena_modules()  # modules that making the game imported
    while isinstance(env, ta.Wrapper):  # an id without a -raw twin
        env = env.env
    return env, brackets


@contextlib.contextmanager
def _global_random_kept() -> Iterator[None]:
    """Restore the global ``random`` and ``numpy.random`` states afterwards (slow: make-time only)."""
    py_state, np_state = random.getstate(), numpy.random.get_state()
    try:
        yield
    finally:
        random.setstate(py_state)
        numpy.random.set_state(np_state)


@contextlib.contextmanager
def _offline_nltk() -> Iterator[None]:
    """TextArena's modules call ``nltk.download`` at import, which would reach the network: answer
    from the local NLTK data instead, and say how to build it when it is missing."""
    try:
        import nltk
    except ImportError:
        yield
        return
    real = nltk.download

    def download(info_or_id: Any = None, *args: Any, **kwargs: Any) -> bool:
        ids = [info_or_id] if isinstance(info_or_id, str) else list(info_or_id or [])
        for rid in ids:
            kind = "taggers" if "tagger" in rid else "corpora"
            try:
                nltk.data.find(f"{kind}/{rid}")
            except LookupError:
                raise EnvUnavailable(
                    f"the NLTK resource {rid!r} is missing and cannot be downloaded here: "
                    "run scripts/setup/30-textarena-data.sh (make setup does)"
                ) from None
        return True

    # nltk.pos_tag loads the tagger from disk on every call; the word games tag their word lists one
    # word at a time (minutes for a 235k-word list), so the loaded tagger is reused while they load
    import nltk.tag

    real_tagger = nltk.tag._get_tagger
    nltk.download, nltk.tag._get_tagger = download, functools.cache(real_tagger)
    try:
        yield
    finally:
        nltk.download, nltk.tag._get_tagger = real, real_tagger

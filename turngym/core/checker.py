"""``turngym envs check``: Gymnasium's env checker plus the promises every turngym env makes.

    problems = check_registered_env("turngym/Wordle-v0")   # [] when the env keeps every promise

The checks (DESIGN.md, Environments):

- ``gymnasium.utils.env_checker.check_env`` passes on the unwrapped env;
- the same seed gives the same ``instance_hash`` and the same observations over a few steps of a
  seeded random player, in two separate env instances;
- different seeds give mostly different ``instance_hash`` values;
- ``reset`` returns ``task_id`` and ``instance_hash`` in ``info``;
- a garbage action yields ``info["action_error"]`` and no exception; in an env that declares
  ``accepts_any_text = True`` (a free-text game: negotiation, conversation, where any reply is a legal
  utterance) it may be taken as a move instead: then the step must return a valid observation and the
  episode must go on (a further random step works) or end with ``info["success"]`` set;
- at the end of an episode ``info["success"]`` is set (a bool);
- a registered ``expert`` imports, is callable, and its policy plays an episode of seed 0 to the end
  without raising;
- where the env supports snapshots (``snapshot_unsupported`` is None): a snapshot after a few random
  steps, restored into a fresh env instance, replays the same actions with the same observations,
  rewards, ends and instance, and a restored env takes other actions too (it is not frozen).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np

from turngym.core.env import instance_hash
from turngym.core.errors import CheckFailed, EpisodeOver
from turngym.core.registry import env_info, load_object, make

GARBAGE_ACTIONS = ("", "\x00 ]][[ not an action {{")


def check_registered_env(env_id: str, *, seeds: int = 6, steps: int = 5, max_episode_steps: int = 500) -> list[str]:
    """Run every check on a registered env; the list of problems found (empty if none).

    The checks share one env instance (making one can take seconds: a browser, a container, a word
    list), so each also proves that ``reset`` clears what the one before left; the determinism and
    snapshot checks make their second instance themselves."""
    problems: list[str] = []
    shared = _SharedEnv(env_id)
    checks: list[tuple[str, Callable[[], None]]] = [
        ("gymnasium check_env", lambda: _gymnasium_check(shared.env)),
        ("reset info", lambda: _check_reset_info(shared.env)),
        ("same seed, same instance", lambda: _check_determinism(shared.env, env_id, seeds=min(seeds, 3), steps=steps)),
        ("different seeds, different instances", lambda: _check_seeds_differ(shared.env, seeds=seeds)),
        ("garbage action", lambda: _check_garbage_action(shared.env)),
        ("success at episode end", lambda: _check_success(shared.env, max_steps=max_episode_steps)),
        ("expert", lambda: _check_expert(shared, env_id, max_steps=max_episode_steps)),
        ("snapshot and restore", lambda: _check_snapshot(shared.env, env_id, steps=steps)),
    ]
    try:
        for name, check in checks:
            try:
                check()
            except CheckFailed as e:
                problems.append(f"{name}: {e}")
            except Exception as e:
                problems.append(f"{name}: raised {type(e).__name__}: {e}")
    finally:
        shared.close()
    return problems


class _SharedEnv:
    """One env of ``env_id``, made when a check first asks for it and closed at the end."""

    def __init__(self, env_id: str) -> None:
        self.env_id = env_id
        self._env: gymnasium.Env | None = None

    @property
    def env(self) -> gymnasium.Env:
        if self._env is None:
            self._env = _make(self.env_id)
        return self._env

    def close(self) -> None:
        if self._env is not None:
            self._env.close()


def _make(env_id: str) -> gymnasium.Env:
    return make(env_id)


def _random_action(env: gymnasium.Env, rng: np.random.Generator) -> Any:
    """A legal action where the env lists them, else a sample of its action space."""
    legal = env.unwrapped.legal_actions() if hasattr(env.unwrapped, "legal_actions") else None
    if legal:
        return legal[int(rng.integers(len(legal)))]
    return env.action_space.sample()


def _gymnasium_check(env: gymnasium.Env) -> None:
    from gymnasium.utils.env_checker import check_env

    check_env(env.unwrapped, skip_render_check=True)


def _check_reset_info(env: gymnasium.Env) -> None:
    _, info = env.reset(seed=0)
    for key in ("task_id", "instance_hash"):
        if not info.get(key):
            raise CheckFailed(
                f"reset(seed=0) returned no info[{key!r}]; TurnEnv sets it unless the env's reset removes it"
            )


def _trace(env: gymnasium.Env, seed: int, steps: int) -> tuple[str, list[Any]]:
    """The instance hash and the observations of ``steps`` random steps from ``reset(seed)``."""
    obs, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    out = [obs.model_dump(mode="json")]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(_random_action(env, rng))
        out.append([obs.model_dump(mode="json"), float(reward), terminated, truncated])
        if terminated or truncated:
            break
    return str(info.get("instance_hash")), out


def _check_determinism(env: gymnasium.Env, env_id: str, *, seeds: int, steps: int) -> None:
    """Seeds 0..seeds-1 played in ``env`` and in a second instance give the same traces."""
    other = _make(env_id)
    try:
        for seed in range(seeds):
            _compare_traces(seed, _trace(env, seed, steps), _trace(other, seed, steps))
    finally:
        other.close()


def _compare_traces(seed: int, first: tuple[str, list[Any]], second: tuple[str, list[Any]]) -> None:
    (h1, obs1), (h2, obs2) = first, second
    if h1 != h2:
        raise CheckFailed(
            f"seed {seed} gave instance_hash {h1} and then {h2}: reset must draw the instance from "
            "self.np_random (seeded by super().reset(seed=seed)), never from the global RNG"
        )
    if obs1 != obs2:
        at = next((i for i, (a, b) in enumerate(zip(obs1, obs2, strict=False)) if a != b), min(len(obs1), len(obs2)))
        raise CheckFailed(
            f"seed {seed}: two envs gave different observations at step {at} for the same actions: "
            "the env's dynamics must depend only on the seed and the actions"
        )


def _check_seeds_differ(env: gymnasium.Env, *, seeds: int) -> None:
    hashes = [env.reset(seed=s)[1].get("instance_hash") for s in range(seeds)]
    distinct = len(set(hashes))
    if distinct * 2 < seeds:
        raise CheckFailed(
            f"seeds 0..{seeds - 1} gave only {distinct} distinct instance_hash values: the seed is probably "
            "ignored (reset must pass seed to super().reset and draw the instance from self.np_random)"
        )


def _check_garbage_action(env: gymnasium.Env) -> None:
    free_text = bool(getattr(env.unwrapped, "accepts_any_text", False))
    flagged = []
    for action in GARBAGE_ACTIONS:
        env.reset(seed=0)
        try:
            result = env.step(action)
        except Exception as e:
            raise CheckFailed(
                f"step({action!r}) raised {type(e).__name__}: {e}; an invalid action must come back as "
                "an observation with info['action_error'] (raise ActionError inside step)"
            ) from None
        flagged.append(bool(result[4].get("action_error")))
        if free_text and not flagged[-1]:
            _check_taken_as_speech(env, action, result)
    if not any(flagged) and not free_text:
        raise CheckFailed(
            f"none of the garbage actions {GARBAGE_ACTIONS!r} set info['action_error']; parse actions with the "
            "env's action_format, which raises ActionError for a reply that does not parse (a free-text game, "
            "where any reply is a legal utterance, sets accepts_any_text = True)"
        )


def _check_taken_as_speech(env: gymnasium.Env, action: str, result: tuple) -> None:
    """In a free-text env, ``action`` was taken as a move: the game goes on, or ends cleanly."""
    obs, _, terminated, truncated, info = result
    if obs not in env.observation_space:
        raise CheckFailed(f"step({action!r}) returned {_short(obs)}, not an Observation of the env's observation_space")
    if terminated or truncated:
        if not isinstance(info.get("success"), bool):
            raise CheckFailed(
                f"step({action!r}) ended the episode with info['success']={info.get('success')!r}; set "
                "info['success'] (a bool) when the episode ends"
            )
        return
    try:
        env.step(_random_action(env, np.random.default_rng(0)))
    except Exception as e:  # noqa: BLE001 - whatever the env raises is the problem to report
        raise CheckFailed(
            f"after step({action!r}) was taken as a move (accepts_any_text), the next step raised "
            f"{type(e).__name__}: {e}; the game must go on after any reply"
        ) from None


def _check_success(env: gymnasium.Env, *, max_steps: int) -> None:
    for seed in range(2):
        env.reset(seed=seed)
        rng = np.random.default_rng(100 + seed)
        env.action_space.seed(100 + seed)
        for _ in range(max_steps):
            _, _, terminated, truncated, info = env.step(_random_action(env, rng))
            if terminated or truncated:
                break
        else:
            raise CheckFailed(
                f"a random player's episode (seed {seed}) did not end within {max_steps} steps: "
                "register the env with max_turns so episodes always end"
            )
        if not isinstance(info.get("success"), bool):
            raise CheckFailed(
                f"the final step of seed {seed} has info['success']={info.get('success')!r}; "
                "set info['success'] (a bool) when the episode ends"
            )


_EXPERT_FIX = (
    "register(..., expert='module:function') must name a function that takes the unwrapped env (after reset) "
    "and returns a policy Observation -> action"
)


def _check_expert(shared: _SharedEnv, env_id: str, *, max_steps: int) -> None:
    path = env_info(env_id).expert
    if path is None:
        return
    try:
        fn = load_object(path)
    except Exception as e:
        raise CheckFailed(f"expert={path!r} does not import ({type(e).__name__}: {e}); {_EXPERT_FIX}") from None
    if not callable(fn):
        raise CheckFailed(f"expert={path!r} is a {type(fn).__name__}, not callable; {_EXPERT_FIX}")
    env = shared.env
    obs, _ = env.reset(seed=0)
    try:
        policy = fn(env.unwrapped)
    except Exception as e:
        raise CheckFailed(f"expert={path!r} raised {type(e).__name__}: {e} when called; {_EXPERT_FIX}") from None
    if not callable(policy):
        raise CheckFailed(f"expert={path!r} returned a {type(policy).__name__}, not a policy; {_EXPERT_FIX}")
    for step in range(max_steps):
        try:
            action = policy(obs)
            if inspect.isawaitable(action):
                action = asyncio.run(_awaited(action))
        except Exception as e:
            raise CheckFailed(
                f"the policy of expert={path!r} raised {type(e).__name__}: {e} at step {step} of seed 0; "
                "it must return an action for every observation of its episode"
            ) from None
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            return
    raise CheckFailed(f"the expert's episode (seed 0) did not end within {max_steps} steps; register max_turns")


def _outcome(result: tuple) -> list[Any]:
    obs, reward, terminated, truncated, _ = result
    return [obs.model_dump(mode="json"), float(reward), bool(terminated), bool(truncated)]


_OUTCOME_PARTS = ("observation", "reward", "terminated", "truncated")


def _check_snapshot(env: gymnasium.Env, env_id: str, *, steps: int, prefix: int = 3) -> None:
    """Where the env supports snapshots: snapshot after ``prefix`` random steps, record ``steps`` more,
    restore into a fresh env, replay."""
    if getattr(env.unwrapped, "snapshot_unsupported", "") is not None:
        return
    fresh = _make(env_id)
    try:
        for seed in range(5):  # a seed whose random prefix leaves the episode running
            env.reset(seed=seed)
            rng = np.random.default_rng(1000 + seed)  # not the stream reset(seed) drew the instance from
            env.action_space.seed(seed)
            ended = any(_outcome(env.step(_random_action(env, rng)))[2:] != [False, False] for _ in range(prefix))
            if not ended:
                break
        data, instance = env.snapshot(), _instance(env)
        if ended:  # every prefix ended its episode: the restored one must be over too
            _check_restored_over(fresh, data, seed=seed)
            return
        actions, recorded = [], []
        for _ in range(steps):
            actions.append(_random_action(env, rng))
            recorded.append(_outcome(env.step(actions[-1])))
            if recorded[-1][2] or recorded[-1][3]:
                break
        fresh.restore(data)
        if _instance(fresh) != instance:
            raise CheckFailed(
                f"seed {seed}: the env restored from a snapshot has another instance: its instance_state() hashes "
                f"to {_instance(fresh)}, the original's to {instance}; snapshot() must save every attribute the "
                "instance is drawn into"
            )
        for i, (action, want) in enumerate(zip(actions, recorded, strict=True)):
            got = _outcome(fresh.step(action))
            for part, a, b in zip(_OUTCOME_PARTS, want, got, strict=True):
                if a != b:
                    raise CheckFailed(
                        f"seed {seed}: restored into a fresh env, step {prefix + i + 1} ({action!r}) gave the "
                        f"{part} {_short(b)}, the original episode {_short(a)}: snapshot() must save every "
                        "attribute the episode changes (name only per-process ones in snapshot_exclude)"
                    )
        _check_not_frozen(env, data, actions[0], recorded[0], seed=seed, step=prefix + 1)
    finally:
        fresh.close()


def _instance(env: gymnasium.Env) -> str:
    """The hash of the env's ``instance_state()`` now (what ``info["instance_hash"]`` hashes at reset)."""
    return instance_hash(env.unwrapped._task_id(), env.unwrapped.instance_state())


def _check_restored_over(env: gymnasium.Env, data: bytes, *, seed: int) -> None:
    env.restore(data)
    try:
        env.step(_random_action(env, np.random.default_rng(seed)))
    except EpisodeOver:
        return
    raise CheckFailed(
        f"seed {seed}: a snapshot of a finished episode, restored, took another step: snapshot() must save "
        "that the episode ended (TurnEnv's _ended, TurnLimit's count)"
    )


def _check_not_frozen(
    env: gymnasium.Env, data: bytes, action: Any, recorded: list[Any], *, seed: int, step: int
) -> None:
    """Restored, the env answers some other action than ``action`` with another observation or, where the
    observation does not show the move (a game that answers with the opponent's move), another state."""
    env.restore(data)
    others = [a for a in (env.unwrapped.legal_actions() or []) if a != action][:20]
    env.step(action)
    state = env.snapshot()
    tried = []
    for other in others or [env.action_space.sample() for _ in range(5)]:
        env.restore(data)
        got = _outcome(env.step(other))
        if got[0] != recorded[0] or env.snapshot() != state:
            return
        tried.append(other)
    if tried:
        raise CheckFailed(
            f"seed {seed}: restored, the env answered every other action at step {step} ({_short(tried)}) with "
            f"the observation and state of {action!r}, {_short(recorded[0])}: restore() must leave an env that "
            "plays on"
        )


def _short(value: Any, n: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= n else text[:n] + "..."


async def _awaited(awaitable: Any) -> Any:
    return await awaitable

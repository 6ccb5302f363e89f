"""``turngym envs check``: Gymnasium's env checker plus the promises every turngym env makes.

    problems = check_registered_env("turngym/Wordle-v0")   # [] when the env keeps every promise

The checks (DESIGN.md, Environments):

- ``gymnasium.utils.env_checker.check_env`` passes on the unwrapped env;
- the same seed gives the same ``instance_hash`` and the same observations over a few steps of a
  seeded random player, in two separate env instances;
- different seeds give mostly different ``instance_hash`` values;
- ``reset`` returns ``task_id`` and ``instance_hash`` in ``info``;
- a garbage action yields ``info["action_error"]`` and no exception;
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
    """Run every check on a registered env; the list of problems found (empty if none)."""
    problems: list[str] = []
    checks: list[tuple[str, Callable[[], None]]] = [
        ("gymnasium check_env", lambda: _gymnasium_check(env_id)),
        ("reset info", lambda: _check_reset_info(env_id)),
        ("same seed, same instance", lambda: _check_determinism(env_id, seeds=min(seeds, 3), steps=steps)),
        ("different seeds, different instances", lambda: _check_seeds_differ(env_id, seeds=seeds)),
        ("garbage action", lambda: _check_garbage_action(env_id)),
        ("success at episode end", lambda: _check_success(env_id, max_steps=max_episode_steps)),
        ("expert", lambda: _check_expert(env_id, max_steps=max_episode_steps)),
    ]
    if _supports_snapshots(env_id):
        checks.append(("snapshot and restore", lambda: _check_snapshot(env_id, steps=steps)))
    for name, check in checks:
        try:
            check()
        except CheckFailed as e:
            problems.append(f"{name}: {e}")
        except Exception as e:
            problems.append(f"{name}: raised {type(e).__name__}: {e}")
    return problems


def _make(env_id: str) -> gymnasium.Env:
    return make(env_id)


def _random_action(env: gymnasium.Env, rng: np.random.Generator) -> Any:
    """A legal action where the env lists them, else a sample of its action space."""
    legal = env.unwrapped.legal_actions() if hasattr(env.unwrapped, "legal_actions") else None
    if legal:
        return legal[int(rng.integers(len(legal)))]
    return env.action_space.sample()


def _gymnasium_check(env_id: str) -> None:
    from gymnasium.utils.env_checker import check_env

    env = _make(env_id)
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def _check_reset_info(env_id: str) -> None:
    env = _make(env_id)
    try:
        _, info = env.reset(seed=0)
    finally:
        env.close()
    for key in ("task_id", "instance_hash"):
        if not info.get(key):
            raise CheckFailed(
                f"reset(seed=0) returned no info[{key!r}]; TurnEnv sets it unless the env's reset removes it"
            )


def _trace(env_id: str, seed: int, steps: int) -> tuple[str, list[Any]]:
    """The instance hash and the observations of ``steps`` random steps from ``reset(seed)``."""
    env = _make(env_id)
    try:
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
    finally:
        env.close()


def _check_determinism(env_id: str, *, seeds: int, steps: int) -> None:
    for seed in range(seeds):
        (h1, obs1), (h2, obs2) = _trace(env_id, seed, steps), _trace(env_id, seed, steps)
        if h1 != h2:
            raise CheckFailed(
                f"seed {seed} gave instance_hash {h1} and then {h2}: reset must draw the instance from "
                "self.np_random (seeded by super().reset(seed=seed)), never from the global RNG"
            )
        if obs1 != obs2:
            at = next(
                (i for i, (a, b) in enumerate(zip(obs1, obs2, strict=False)) if a != b), min(len(obs1), len(obs2))
            )
            raise CheckFailed(
                f"seed {seed}: two envs gave different observations at step {at} for the same actions: "
                "the env's dynamics must depend only on the seed and the actions"
            )


def _check_seeds_differ(env_id: str, *, seeds: int) -> None:
    env = _make(env_id)
    try:
        hashes = [env.reset(seed=s)[1].get("instance_hash") for s in range(seeds)]
    finally:
        env.close()
    distinct = len(set(hashes))
    if distinct * 2 < seeds:
        raise CheckFailed(
            f"seeds 0..{seeds - 1} gave only {distinct} distinct instance_hash values: the seed is probably "
            "ignored (reset must pass seed to super().reset and draw the instance from self.np_random)"
        )


def _check_garbage_action(env_id: str) -> None:
    env = _make(env_id)
    try:
        flagged = []
        for action in GARBAGE_ACTIONS:
            env.reset(seed=0)
            try:
                _, _, _, _, info = env.step(action)
            except Exception as e:
                raise CheckFailed(
                    f"step({action!r}) raised {type(e).__name__}: {e}; an invalid action must come back as "
                    "an observation with info['action_error'] (raise ActionError inside step)"
                ) from None
            flagged.append(bool(info.get("action_error")))
        if not any(flagged):
            raise CheckFailed(
                f"none of the garbage actions {GARBAGE_ACTIONS!r} set info['action_error']; parse actions with the "
                "env's action_format, which raises ActionError for a reply that does not parse"
            )
    finally:
        env.close()


def _check_success(env_id: str, *, max_steps: int) -> None:
    env = _make(env_id)
    try:
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
    finally:
        env.close()


_EXPERT_FIX = (
    "register(..., expert='module:function') must name a function that takes the unwrapped env (after reset) "
    "and returns a policy Observation -> action"
)


def _check_expert(env_id: str, *, max_steps: int) -> None:
    path = env_info(env_id).expert
    if path is None:
        return
    try:
        fn = load_object(path)
    except Exception as e:
        raise CheckFailed(f"expert={path!r} does not import ({type(e).__name__}: {e}); {_EXPERT_FIX}") from None
    if not callable(fn):
        raise CheckFailed(f"expert={path!r} is a {type(fn).__name__}, not callable; {_EXPERT_FIX}")
    env = _make(env_id)
    try:
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
    finally:
        env.close()


def _supports_snapshots(env_id: str) -> bool:
    env = _make(env_id)
    try:
        return getattr(env.unwrapped, "snapshot_unsupported", "") is None
    finally:
        env.close()


def _outcome(result: tuple) -> list[Any]:
    obs, reward, terminated, truncated, _ = result
    return [obs.model_dump(mode="json"), float(reward), bool(terminated), bool(truncated)]


_OUTCOME_PARTS = ("observation", "reward", "terminated", "truncated")


def _check_snapshot(env_id: str, *, steps: int, prefix: int = 3) -> None:
    """Snapshot after ``prefix`` random steps, record ``steps`` more, restore into a fresh env, replay."""
    env, fresh = _make(env_id), _make(env_id)
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
        env.close()
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

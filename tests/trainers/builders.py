"""Small hand-made episodes for the trainer tests.

Stream layout of every episode: ``prompt_len`` prompt tokens (mask 0), then per turn its action
tokens (mask 1, logprob -0.5) and ``obs_len`` observation tokens (mask 0). Token ids are
``base + position`` so a test can say which tokens a view must hold.
"""

from __future__ import annotations

from collections.abc import Sequence

from turngym.core.types import Episode, Turn, user


def episode(
    eid: str,
    gid: str,
    rewards: Sequence[float],
    *,
    states: Sequence[str] | None = None,
    action_lens: Sequence[int] | None = None,
    base: int = 0,
    prompt_len: int = 2,
    obs_len: int = 1,
    instance_hash: str | None = None,
    success: bool | None = None,
) -> Episode:
    T = len(rewards)
    states = list(states) if states is not None else [f"{gid} state {t}" for t in range(T)]
    action_lens = list(action_lens) if action_lens is not None else [1] * T
    mask = [0] * prompt_len
    logprobs = [0.0] * prompt_len
    turns = []
    for t in range(T):
        a = (len(mask), len(mask) + action_lens[t])
        mask += [1] * action_lens[t]
        logprobs += [-0.5] * action_lens[t]
        o = (len(mask), len(mask) + obs_len)
        mask += [0] * obs_len
        logprobs += [0.0] * obs_len
        next_state = states[t + 1] if t + 1 < T else "the end"
        turns.append(
            Turn(
                index=t,
                action=f"a{t}",
                observation=[user(next_state)],
                reward=rewards[t],
                action_span=a,
                observation_span=o,
            )
        )
    return Episode(
        episode_id=eid,
        group_id=gid,
        env_id="test/Hand-v0",
        task_id=f"task-{gid}",
        instance_hash=instance_hash if instance_hash is not None else f"hash-{gid}",
        prompt=[user(states[0])],
        turns=turns,
        tokens=[base + k for k in range(len(mask))],
        mask=mask,
        logprobs=logprobs,
        trainable=True,
        success=success,
    )

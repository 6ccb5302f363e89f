"""Tabular check: on a small deterministic multi-turn MDP the double-Q / double-V critic, trained as ArCHer
trains it (TD targets from the target V, V targets from the target Q on a~ ~ pi, Polyak averaging), converges
to the true Q^pi and V^pi of the fixed stochastic policy pi, computed by exact dynamic programming.

The MDP, a chain of 5 states, 2 utterances per state, gamma = 0.95:
    state s, "a0" (go on):  reward GO[s], next state s + 1; from the last state the episode ends
    state s, "a1" (stop):   reward STOP[s], the episode ends
The critic estimates Q^pi, V^pi (not Q*, V*): its V target is Qbar(s, a~) with a~ ~ pi, i.e. E_pi[Q].
Data: episodes with random start states and a uniform behaviour policy (off-policy), recorded as
``Episode`` records and sampled from the ``ReplayBuffer``; phi is a one-hot encoding of the last message.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from turngym.core.types import Episode, Turn, user
from turngym.trainers.archer.buffer import ReplayBuffer, collate
from turngym.trainers.archer.critic import DoubleCritic, critic_losses, make_target
from turngym.trainers.archer.math import polyak_update

GAMMA = 0.95
N = 5
GO = [-0.1, -0.2, 0.0, -0.1, 1.0]
STOP = [0.2, 0.0, 0.5, -0.5, 0.3]
PI_GO = [0.8, 0.6, 0.7, 0.5, 0.9]  # the fixed stochastic policy pi(a0 | s)
ACTIONS = ["a0", "a1"]
TOL = 0.05  # max abs error of every head on every (s, a) and s; values are of order 1


def true_values(pi_go: list[float] | None) -> tuple[np.ndarray, np.ndarray]:
    """Q[s, a], V[s] by backward dynamic programming; pi_go None gives the optimal Q*, V*."""
    q, v = np.zeros((N, 2)), np.zeros(N + 1)  # v[N] = 0: past the end
    for s in reversed(range(N)):
        q[s, 0] = GO[s] + GAMMA * (v[s + 1] if s + 1 < N else 0.0)
        q[s, 1] = STOP[s]
        v[s] = q[s].max() if pi_go is None else pi_go[s] * q[s, 0] + (1 - pi_go[s]) * q[s, 1]
    return q, v[:N]


def record_episodes(n: int, rng: np.random.Generator) -> list[Episode]:
    episodes = []
    for e in range(n):
        s = int(rng.integers(N))
        ep = Episode(episode_id=f"e{e}", env_id="test/Chain-v0", prompt=[user(f"state {s}")])
        while True:
            a = int(rng.integers(2))  # the behaviour policy: uniform
            end = a == 1 or s == N - 1
            ep.turns.append(
                Turn(
                    index=len(ep.turns),
                    action=ACTIONS[a],
                    reward=STOP[s] if a else GO[s],
                    observation=[user("end" if end else f"state {s + 1}")],
                    terminated=end,
                )
            )
            if end:
                break
            s += 1
        episodes.append(ep)
    return episodes


class OneHot(nn.Module):
    """phi for the tabular states and utterances: one-hot of the history's last line (or the utterance)."""

    KEYS = [*(f"user: state {s}" for s in range(N)), "user: end", *ACTIONS]

    def __init__(self):
        super().__init__()
        self.index = {k: i for i, k in enumerate(self.KEYS)}
        self.dim = len(self.KEYS)

    def forward(self, texts: list[str]) -> torch.Tensor:
        idx = torch.tensor([self.index[t.rsplit("\n", 1)[-1]] for t in texts])
        return nn.functional.one_hot(idx, self.dim).float()


def state_of(text: str) -> int:
    return int(text.rsplit("\n", 1)[-1].removeprefix("user: state "))


def test_critic_converges_to_true_q_and_v_of_a_fixed_policy():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    buffer = ReplayBuffer(capacity=100_000, seed=0)
    buffer.add_episodes(record_episodes(400, rng))
    critic = DoubleCritic(encoder=OneHot(), hidden_dim=64)
    target = make_target(critic)
    steps = 800
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 - i / steps)  # decay: the a~ noise averages out
    for _ in range(steps):
        batch = collate(buffer.sample(64))
        a_tilde = [ACTIONS[int(rng.random() >= PI_GO[state_of(s)])] for s in batch.states]  # a~ ~ pi(.|s)
        losses = critic_losses(
            critic,
            target,
            states=batch.states,
            actions=batch.actions,
            next_states=batch.next_states,
            pi_actions=a_tilde,
            rewards=batch.rewards,
            dones=batch.dones,
            gamma=GAMMA,
        )
        loss = losses.q_loss + losses.v_loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(critic.parameters(), 1.0)
        opt.step()
        sched.step()
        polyak_update(target, critic, tau=0.1)

    q_true, v_true = true_values(PI_GO)
    states = [f"user: state {s}" for s in range(N)]
    with torch.no_grad():
        q_go = critic(states, ["a0"] * N).q  # [K, N]
        q_stop, v = critic(states, ["a1"] * N)
    q_hat = torch.stack([q_go, q_stop], dim=-1).numpy()  # [K, N, 2]
    v_hat = v.numpy()  # [K, N]
    for k in range(2):  # each head on its own, and hence the min over heads used by the actor
        assert np.abs(q_hat[k] - q_true).max() < TOL, (k, q_hat[k], q_true)
        assert np.abs(v_hat[k] - v_true).max() < TOL, (k, v_hat[k], v_true)
    # it learned the values of pi, not the optimal ones (which differ by more than the tolerance here)
    q_star, v_star = true_values(None)
    assert np.abs(v_star - v_true).max() > 4 * TOL
    assert np.abs(v_hat.min(0) - v_true).max() < np.abs(v_hat.min(0) - v_star).max()

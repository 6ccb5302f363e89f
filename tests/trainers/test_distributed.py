"""The data-parallel learner (turngym.trainers.distributed) on real gloo with 2 CPU processes: each rank takes
its half of every minibatch; one update on 2 processes equals one process on the whole batch (token_mean and
turn_mean, halves of very different sizes, where a mean of rank means would differ); a `learner.processes: 2`
run writes a checkpoint that 1 process resumes; a killed worker stops the run with LearnerError, promptly.

Tolerance: float32 parameters after SGD steps of lr 1.0 / 0.1 (the step is the gradient itself, moving parameters
by up to 0.2) agree with one process's within atol 1e-6 (measured: 2e-8, float reassociation of the sums), and the
two ranks' bitwise; a mean of rank means misses by 0.03 to 0.4."""

from __future__ import annotations

import copy
import datetime
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.trainers.builders import episode
from turngym.core.errors import LearnerError
from turngym.trainers.advantages import compute_advantages, estimator_config
from turngym.trainers.config import LossConfig, OptimConfig, TrainConfig
from turngym.trainers.distributed import HOST, ONE, Ranks, join
from turngym.trainers.table import TurnTable

ATOL, RTOL = 1e-6, 0.0
SIZE = 2


def _order(n: int, seed: int = 0) -> np.ndarray:
    """The first epoch's shuffle of n rows, as policy_update draws it from a generator seeded ``seed``."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()


def _token_mean_case() -> tuple:
    """8 episodes, one minibatch: those the shuffle sends to rank 0 have 3 turns of 6 action tokens (72 tokens in
    all), rank 1's 1 turn of 1 token (4 in all); two micro-batches a rank. Token ids differ between episodes
    (identical streams with opposite advantages would cancel to a zero gradient)."""
    long = set(_order(8)[0::2].tolist())
    eps = [
        episode(f"e{i}", "g0", [0.0, 0.0, float(i % 2)], action_lens=[6, 6, 6], base=5 + 7 * i) if i in long
        else episode(f"e{i}", "g0", [float(i % 2)], action_lens=[1], base=5 + 7 * i)
        for i in range(8)
    ]
    optim = OptimConfig(lr=1.0, grad_clip=0, micro_batch_size=2, recompute_old_logprobs=True)
    return eps, optim, LossConfig(aggregation="token_mean"), 1.0


def _turn_mean_case() -> tuple:
    """6 episodes of 1 to 3 turns, minibatches of 3 (2 episodes on rank 0, 1 on rank 1), 2 epochs: 4 steps."""
    eps = [episode(f"e{i}", "g0", [0.0] * (i % 3) + [float(i % 2)], action_lens=[1 + i] * (1 + i % 3), base=5 + 7 * i)
           for i in range(6)]
    optim = OptimConfig(lr=0.1, grad_clip=0, epochs=2, minibatch_size=3, micro_batch_size=1,
                        recompute_old_logprobs=True)
    return eps, optim, LossConfig(aggregation="turn_mean"), 0.1


CASES = {"token_mean": _token_mean_case, "turn_mean": _turn_mean_case}


@dataclass(frozen=True)
class RankMeans(Ranks):
    """What a mean of rank means would do (DDP averaging each rank's own loss mean): the weights' denominator
    is the rank's own units, the gradients are averaged."""

    def total(self, n: int) -> int:
        return n

    def sum_gradients(self, params) -> None:
        super().sum_gradients(params)
        for p in params:
            if p.grad is not None:
                p.grad /= self.size


def _update(model_path: Path, case: str, ranks: Ranks, seen: list | None = None) -> tuple[torch.Tensor, dict]:
    """One policy_update of ``case`` from the model at ``model_path`` on ``ranks``: the parameters after it, and
    its metrics. ``seen``: filled with the episode ids of every micro-batch this rank collates."""
    from transformers import AutoModelForCausalLM

    from turngym.trainers import update

    eps, optim, loss, lr = CASES[case]()
    table = TurnTable.from_episodes(eps)
    adv = compute_advantages(table, estimator_config("grpo"))
    model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32).eval()
    opt = torch.optim.SGD(model.parameters(), lr=lr)  # the step is the gradient itself
    collate = update.collate_episodes

    def spy(table, rows, **kwargs):
        if seen is not None:
            seen.append([str(table.episode_id[r]) for r in rows])
        return collate(table, rows, **kwargs)

    update.collate_episodes = spy
    try:
        stats = update.policy_update(model, opt, table, adv, optim=optim, loss=loss,
                                     generator=torch.Generator().manual_seed(0), ranks=ranks)
    finally:
        update.collate_episodes = collate
    return torch.cat([p.detach().flatten() for p in model.parameters()]), stats


def _rank_results(rank: int, port: int, model_path: Path) -> dict:
    """Rank ``rank``'s part of every case, with the exact ranks and with RankMeans."""
    store = dist.TCPStore(HOST, port, SIZE, is_master=False, timeout=datetime.timedelta(seconds=60))
    ranks = join(store, rank, SIZE, backend="gloo", timeout=60)
    naive = RankMeans(rank=ranks.rank, size=ranks.size, cpu=ranks.cpu)
    results = {}
    try:
        for case in CASES:
            seen: list = []
            params, stats = _update(model_path, case, ranks, seen)
            results[case] = {"params": params, "stats": stats, "seen": seen,
                             "naive": _update(model_path, case, naive)[0]}
    finally:
        dist.destroy_process_group()
    return results


def _rank_main(rank: int, port: int, model_path: Path, out: Path) -> None:
    """A forked rank: its results saved to ``out``."""
    torch.set_num_threads(1)
    torch.save(_rank_results(rank, port, model_path), out / f"rank{rank}.pt")
    os._exit(0)  # skip the interpreter's teardown of torch (seconds on a busy machine)


@pytest.fixture(scope="module")
def two_ranks(gn_model, tmp_path_factory):
    """Both ranks' results of every case: rank 1 a forked process (it inherits torch, transformers and the model
    class loaded here: a spawned one would import them again, 30 s on a busy machine), rank 0 this process."""
    out = tmp_path_factory.mktemp("ranks")
    torch.set_num_threads(1)
    _base(gn_model)  # transformers and the model's modules imported before the fork
    store = dist.TCPStore(HOST, 0, SIZE, is_master=True, wait_for_workers=False,
                          timeout=datetime.timedelta(seconds=60))
    other = mp.get_context("fork").Process(target=_rank_main, args=(1, store.port, gn_model, out))
    other.start()
    try:
        mine = _rank_results(0, store.port, gn_model)
    finally:
        other.join(timeout=60)
        if other.exitcode is None:
            other.kill()
    assert other.exitcode == 0
    return [mine, torch.load(out / "rank1.pt", weights_only=False)]


def test_each_rank_collates_its_half_of_every_minibatch(two_ranks):
    for case, make in CASES.items():
        eps, optim, _, _ = make()
        ids = np.array([e.episode_id for e in eps])
        generator = torch.Generator().manual_seed(0)
        expected: list[list[str]] = [[], []]
        for _ in range(optim.epochs):
            order = ids[torch.randperm(len(ids), generator=generator).numpy()]
            mb = optim.minibatch_size or len(ids)
            for start in range(0, len(ids), mb):
                for r in range(SIZE):
                    expected[r] += order[start : start + mb][r::SIZE].tolist()
        for r in range(SIZE):
            calls = two_ranks[r][case]["seen"]
            # first the old policy's logprobs (recompute_old_logprobs) of the rows this rank trains on, once each
            mine = sorted(set(expected[r]), key=lambda e: int(e[1:]))
            first = -(-len(mine) // optim.micro_batch_size)
            assert [e for micro in calls[:first] for e in micro] == mine, (case, r)
            seen = [e for micro in calls[first:] for e in micro]
            # epochs * rows / 2 each (an odd minibatch gives rank 0 the extra row), and the rows r::2 of each
            assert seen == expected[r], (case, r)
            assert all(len(micro) <= optim.micro_batch_size for micro in calls)
        assert sorted(expected[0] + expected[1]) == sorted(ids.tolist() * optim.epochs)


@pytest.mark.parametrize("case", list(CASES))
def test_two_processes_give_the_parameters_of_one_process_on_the_whole_batch(two_ranks, gn_model, case):
    single, stats = _update(gn_model, case, ONE)
    base = torch.cat([p.detach().flatten() for p in _base(gn_model).parameters()])
    assert (single - base).abs().max() > 1e-3, "the update must move the parameters"
    torch.testing.assert_close(two_ranks[0][case]["params"], single, atol=ATOL, rtol=RTOL)
    assert torch.equal(two_ranks[0][case]["params"], two_ranks[1][case]["params"])  # one step on one summed gradient
    # the metrics are the whole batch's on every rank (the loss summed over the ranks' shares, the counts added)
    for r in range(SIZE):
        theirs = two_ranks[r][case]["stats"]
        for key in ("action_tokens", "episodes", "steps"):
            assert theirs[key] == stats[key], (key, r)
        for key in ("pg_loss", "loss", "grad_norm"):
            assert theirs[key] == pytest.approx(stats[key], abs=1e-6), (key, r)
    # what the test catches: a mean of rank means (the halves differ in size) gives other parameters
    assert (two_ranks[0][case]["naive"] - single).abs().max() > 100 * ATOL


def _base(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)


# ---- the training run ---------------------------------------------------------------------------------------
def _two_process_config(tmp_path: Path, model: Path, **over) -> TrainConfig:
    from tests.trainers.test_onpolicy import config

    return TrainConfig(**config(tmp_path, model, **{
        "eval.every": 0, "torch_threads": 1, "learner": {"processes": 2, "timeout": 60}, **over}))


@pytest.fixture
def started(monkeypatch) -> list:
    """The Learners that OnPolicyTrainer runs start, recorded (their worker processes outlive the run's handle)."""
    from turngym.trainers import onpolicy

    made: list = []
    real = onpolicy.start_learners

    def record(cfg, device):
        made.append(real(cfg, device))
        return made[-1]

    monkeypatch.setattr(onpolicy, "start_learners", record)
    return made


def test_a_two_process_run_checkpoints_and_one_process_resumes_it(tmp_path, gn_model, started):
    from turngym.trainers.onpolicy import OnPolicyTrainer

    cfg = _two_process_config(tmp_path, gn_model)
    trainer = OnPolicyTrainer(cfg)
    summary = trainer.run(progress=False)
    assert summary["iterations"] == 2 and summary["train"]["update/steps"] > 0
    # the worker was told to stop and exited cleanly; the group is gone
    assert [p.returncode for p in started[0].procs] == [0] and trainer.learners is None and not dist.is_initialized()
    run = Path(cfg.run_dir)
    assert (run / "checkpoints" / "LATEST").read_text() == "iter-000002"
    two = copy.deepcopy(trainer.model)
    one = TrainConfig(**{**cfg.model_dump(mode="json"), "learner": {"processes": 1}, "iterations": 3})
    resumed = OnPolicyTrainer(one)
    summary = resumed.run(resume=True, progress=False)  # learner is safe to change on resume
    assert started[1] is None  # one process: no worker
    assert summary["iterations"] == 3 and (run / "checkpoints" / "LATEST").read_text() == "iter-000003"
    assert summary["train"]["update/steps"] > 0
    moved = max((p - q).abs().max() for p, q in zip(resumed.model.parameters(), two.parameters(), strict=True))
    assert moved > 0  # iteration 3 trained on from the 2-process weights


def test_a_killed_worker_stops_the_run_with_a_named_error(tmp_path, gn_model, started, monkeypatch):
    """The worker is SIGKILLed while rank 0 sums the gradients of iteration 1: rank 0's collective fails, and the
    run ends with LearnerError naming the worker, well before learner.timeout (60 s); no process is left."""
    from turngym.trainers.onpolicy import OnPolicyTrainer

    trainer = OnPolicyTrainer(_two_process_config(tmp_path, gn_model, iterations=1, **{"checkpoint.every": 0}))
    real = Ranks.sum_gradients
    killed: list[float] = []

    def kill_then_sum(self, params):
        if not killed:
            started[0].procs[0].kill()
            killed.append(time.monotonic())
        return real(self, params)

    monkeypatch.setattr(Ranks, "sum_gradients", kill_then_sum)
    with pytest.raises(LearnerError, match=r"worker rank 1 \(pid \d+\) exited with code -9 during the update"):
        trainer.run(progress=False)
    assert killed and time.monotonic() - killed[0] < 30
    assert all(p.poll() is not None for p in started[0].procs) and not dist.is_initialized()

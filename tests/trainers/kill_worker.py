"""A `turngym train` that kills itself (SIGKILL, as kill -9) in the middle of iteration K's rollout or update.

    python tests/trainers/kill_worker.py CONFIG.yaml rollout|update K [KEY=VALUE ...]

rollout: once the first reply of iteration K is sampled (the episodes in flight); update: right after the
first optimizer step of iteration K (the weights in memory changed, nothing of it written; ArCHer: its first
critic step). KEY=VALUE: the config overrides, as `turngym train --set` takes them."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import turngym.trainers.rollout as rollout  # noqa: E402
from turngym.trainers.train import make_trainer, train_config  # noqa: E402


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(config: str, where: str, k: int, overrides: list[str]) -> None:
    trainer = make_trainer(train_config(config, overrides))
    if where == "rollout":
        real = rollout.collect

        async def collect(tasks, agent, cfg, *, run_id=""):
            if run_id != f"it{k}":
                return await real(tasks, agent, cfg, run_id=run_id)
            started = asyncio.ensure_future(real(tasks, agent, cfg, run_id=run_id))
            stats = trainer.backend.stats  # the hf backend's counters
            served = stats["requests"]
            while stats["requests"] == served:  # the first reply of iteration K sampled: the rollout is under way
                assert not started.done(), "the rollout ended before the kill"
                await asyncio.sleep(0.001)
            die()

        rollout.collect = collect  # what collect_iteration calls
    else:
        optimizer = trainer.critic_opt if trainer.cfg.algorithm_name == "archer" else trainer.optimizer
        step = optimizer.step

        def first_step(*args, **kwargs):
            out = step(*args, **kwargs)
            if trainer.loop.iteration == k - 1:
                die()
            return out

        optimizer.step = first_step
    trainer.run(progress=False)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:])

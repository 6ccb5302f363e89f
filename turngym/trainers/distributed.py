"""The data-parallel learner: the policy update on ``learner.processes`` processes (torch.distributed).

    learner: {processes: 2}            # in the run's YAML (or --set learner.processes=2)

Rank 0 is the run as with one process: rollouts, advantages, the episode store, eval, checkpoints. At its
start it launches ``processes - 1`` workers on this machine (``python -m turngym.trainers.distributed``), each
loading its own copy of the policy and optimizer while rank 0 plays the first episodes; at the first update it
sends them its weights and optimizer state (a resumed run's checkpoint). At each update it sends them the
batch (turn table, advantages, automaton states, the lr and the minibatch generator's state), and every rank
runs the same ``update.policy_update`` with ``ranks=``:

    same minibatches  the generator's state travels with the batch: every rank draws the same shuffle
    its rows          rank r takes rows r::N of each minibatch (then cuts them into micro-batches)
    exact loss        a micro-batch's weight is its units over the minibatch's units on ALL ranks (one
                      all_reduce of the counts): tokens (token_mean), sequences (seq_mean), episodes
                      (turn_mean), so the loss is the whole batch's mean, not a mean of rank means
    summed gradients  one all_reduce SUM of the accumulated gradients per optimizer step: the sum is the
                      gradient one process gets on the whole minibatch (up to float reassociation)
    same step         every rank steps the same optimizer on the same gradient, so the parameters stay
                      identical: checked after every update (each parameter's sum, gathered from every rank)

Not torch's DDP wrapper: ``sequence_logprobs`` calls the decoder and the output layer directly, not the
wrapper's forward, which is what arms DDP's reducer; and one all_reduce after the accumulation is what DDP
does under ``no_sync`` anyway, with the SUM we need instead of its mean. The state does not depend on N:
rank 0 alone writes the checkpoint (one model, one optimizer), and a run resumes on any number of processes.

Messages go through the TCPStore that rank 0 serves (a worker waits there while rank 0 plays episodes, with no
timeout); data and gradients through the process group: gloo on CPU, NCCL where the device is CUDA (then
rank r uses cuda:r, and a gloo group carries the small CPU tensors). A worker whose rank 0 is gone (killed)
exits with an error naming it; rank 0 stops with ``LearnerError`` naming a worker that died, and with the
collective's error after ``learner.timeout`` seconds where a rank hangs. ``Learners.close`` (safe twice)
stops and reaps every worker, also after an error.

GPU paths (NCCL, cuda:r, bf16 autocast) are written to run on CUDA unchanged but are tested on CPU only.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Self

import numpy as np
import torch
import torch.distributed as dist

from turngym.core.errors import ConfigError, LearnerError
from turngym.trainers.config import TrainConfig

__all__ = ["ONE", "Learners", "Ranks", "join", "rank_device", "start_learners"]

#: where rank 0 serves the store and the process group (the workers run on this machine)
HOST = "127.0.0.1"
#: elements per all_reduce of the gradients
BUCKET = 1 << 24
#: seconds between a waiting worker's looks at the store
POLL = 0.02
#: seconds ``close`` gives a worker to exit before killing it
GRACE = 10.0


# ---- one rank's view: what policy_update calls ------------------------------------------------------
@dataclass(frozen=True)
class Ranks:
    """This process's place in the learner group (``ONE``: a single process, every method a no-op)."""

    rank: int = 0
    size: int = 1
    #: the process group of the gradients (None: the default group)
    group: Any = None
    #: a gloo group for counts, flags and Python objects (CPU); the default group where that is gloo
    cpu: Any = None

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """This rank's rows of a minibatch: rows r::N."""
        return rows[self.rank :: self.size]

    def total(self, n: int) -> int:
        """``n`` summed over the ranks."""
        if self.size == 1:
            return n
        t = torch.tensor([n], dtype=torch.int64)
        dist.all_reduce(t, group=self.cpu)
        return int(t.item())

    def sum_gradients(self, params: Sequence[torch.Tensor]) -> None:
        """Every rank's gradients summed in place; a parameter with a gradient on some rank only gets zeros
        from the others (as one process would give it a gradient), one with none anywhere keeps None."""
        if self.size == 1:
            return
        held = torch.tensor([p.grad is not None for p in params], dtype=torch.int32)
        dist.all_reduce(held, group=self.cpu)
        live = [p for p, h in zip(params, held.tolist(), strict=True) if h]
        for p in live:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        for bucket in _buckets(live):
            flat = torch.cat([p.grad.reshape(-1) for p in bucket])  # type: ignore[union-attr]
            dist.all_reduce(flat, group=self.group)
            for p, g in zip(bucket, flat.split([p.numel() for p in bucket]), strict=True):
                p.grad.copy_(g.view_as(p))  # type: ignore[union-attr]

    def sum_stats(self, sums: dict[str, float]) -> dict[str, float]:
        """Each key's value summed over the ranks (a key missing on a rank counts 0)."""
        if self.size == 1:
            return dict(sums)
        every: list[Any] = [None] * self.size
        dist.all_gather_object(every, dict(sums), group=self.cpu)
        out: dict[str, float] = {}
        for part in every:
            for key, value in part.items():
                out[key] = out.get(key, 0.0) + value
        return out

    def check_same(self, params: Sequence[torch.Tensor]) -> None:
        """LearnerError unless every rank holds the same parameters (each one's float64 sum, compared)."""
        if self.size == 1:
            return
        mine = torch.stack([p.detach().double().sum() for p in params]).cpu()
        every = [torch.empty_like(mine) for _ in range(self.size)]
        dist.all_gather(every, mine, group=self.cpu)
        differ = [r for r, theirs in enumerate(every) if not torch.equal(theirs, every[0])]
        if differ:
            raise LearnerError(
                f"after the update the parameters of rank(s) {differ} differ from rank 0's: the ranks must take the "
                "same optimizer step on the same summed gradient. This is a bug of the data-parallel learner: "
                "report it, and train with learner.processes: 1 meanwhile"
            )


#: a single process
ONE = Ranks()


def _buckets(params: Sequence[torch.Tensor]) -> Iterator[list[torch.Tensor]]:
    """Runs of ``params`` of one dtype and device, about BUCKET elements each."""
    bucket: list[torch.Tensor] = []
    size = 0
    for p in params:
        if bucket and (size + p.numel() > BUCKET or (p.dtype, p.device) != (bucket[0].dtype, bucket[0].device)):
            yield bucket
            bucket, size = [], 0
        bucket.append(p)
        size += p.numel()
    if bucket:
        yield bucket


def rank_device(device: torch.device, rank: int) -> torch.device:
    """Rank ``rank``'s device: cuda:rank where the run's device is CUDA, else the run's device."""
    return torch.device("cuda", rank) if device.type == "cuda" else device


def backend_of(cfg: TrainConfig, device: torch.device) -> str:
    """The process group's backend: ``learner.backend``, "auto" being nccl on CUDA and gloo otherwise."""
    backend = cfg.learner.backend
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise ConfigError(
            f"learner.backend=nccl needs CUDA, and this run's device is {device}: set learner.backend to gloo "
            "(or auto), or model.device to cuda on a machine with GPUs"
        )
    return backend


def join(store: Any, rank: int, size: int, *, backend: str, timeout: float) -> Ranks:
    """Join the learner group as ``rank`` of ``size`` through ``store`` (a TCPStore); collectives raise
    after ``timeout`` seconds."""
    wait = timedelta(seconds=timeout)
    dist.init_process_group(backend, store=store, rank=rank, world_size=size, timeout=wait)
    cpu = dist.new_group(backend="gloo", timeout=wait) if backend != "gloo" else None
    return Ranks(rank=rank, size=size, cpu=cpu)


def _pack(payload: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


def _unpack(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def broadcast_weights(ranks: Ranks, model: torch.nn.Module) -> None:
    """Every rank's parameters set to rank 0's (in place)."""
    with torch.no_grad():
        for p in model.parameters():
            dist.broadcast(p.data, src=0, group=ranks.group)


def update_as_rank(ranks: Ranks, model: torch.nn.Module, optimizer: torch.optim.Optimizer, job: dict[str, Any],
                   **kwargs: Any) -> dict[str, float]:
    """One rank's part of an update: ``policy_update`` on its rows of the batch ``job``, then the check that
    every rank holds the same parameters. ``kwargs``: policy_update's optim, loss, device, ref_model, generator."""
    from turngym.trainers.update import policy_update

    stats = policy_update(model, optimizer, job["table"], job["advantages"], fsm_states=job["fsm_states"],
                          allowed=job["allowed"], pad_id=job["pad_id"], truncated_is=job.get("truncated_is"),
                          ranks=ranks, **kwargs)
    ranks.check_same(list(model.parameters()))
    return stats


# ---- rank 0: the workers, the messages ------------------------------------------------------------
class Learners:
    """Rank 0's side of the learner group: the worker processes, the store that carries messages to them, this
    process's ``Ranks``. Made by ``start_learners``; ``close()`` stops and reaps the workers (safe twice)."""

    def __init__(self, procs: list[subprocess.Popen[bytes]], store: Any, *, backend: str, timeout: float) -> None:
        self.procs = procs
        self.store = store
        #: this process's place in the group (ONE until the workers have joined, at the first update)
        self.ranks = ONE
        self.backend = backend
        self.timeout = timeout
        self._sent = 0
        self._closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def join(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Wait for the workers to load their policy, form the group, send them rank 0's weights and optimizer
        state. LearnerError when a worker exits first, or does not start within ``timeout`` seconds."""
        self._wait_ready()
        self._send("state", optimizer.state_dict())  # a worker joins the group on its first state
        with self.guard("forming the group and sending the weights"):
            self.ranks = join(self.store, 0, len(self.procs) + 1, backend=self.backend, timeout=self.timeout)
            broadcast_weights(self.ranks, model)
            self.ranks.check_same(list(model.parameters()))

    def update(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, job: dict[str, Any], *,
               generator: torch.Generator, **kwargs: Any) -> dict[str, float]:
        """One policy update of the batch ``job`` (table, advantages, fsm_states, allowed, pad_id) on every
        rank; rank 0's metrics (summed over the ranks). The first one joins the workers first."""
        if self.ranks is ONE:
            self.join(model, optimizer)
        lr = optimizer.param_groups[0]["lr"]
        self._send("update", {**job, "lr": lr, "generator": generator.get_state()})
        with self.guard("the update"):
            return update_as_rank(self.ranks, model, optimizer, job, generator=generator, **kwargs)

    @contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """A collective that fails because a worker died (or timed out) raises LearnerError naming it."""
        try:
            yield
        except RuntimeError as e:
            if isinstance(e, LearnerError):
                raise
            dead = self._dead(wait=1.0)
            if dead:
                raise LearnerError(f"{dead} during {what}: {_first_line(e)}. {_RESTART}") from e
            if _broken_group(e):
                raise LearnerError(f"a collective of the learner group failed during {what}: {_first_line(e)}. "
                                   f"A rank hung or its connection broke (learner.timeout bounds the wait). {_RESTART}") from e
            raise

    def _wait_ready(self) -> None:
        """Until every worker has loaded its policy (its ``ready/r`` key is set); LearnerError if one exits first
        or ``timeout`` seconds pass."""
        keys = [f"ready/{r}" for r in range(1, len(self.procs) + 1)]
        deadline = time.monotonic() + self.timeout
        while not self.store.check(keys):
            dead = self._dead()
            if dead:
                raise LearnerError(f"{dead} while starting. {_RESTART}")
            if time.monotonic() > deadline:
                raise LearnerError(
                    f"the learner's workers did not start within learner.timeout={self.timeout} s: raise "
                    "learner.timeout on a slow or busy machine"
                )
            time.sleep(0.05)

    def _dead(self, *, wait: float = 0.0) -> str:
        """'worker rank r (pid p) exited with code c', for the first worker that has exited, else ''."""
        deadline = time.monotonic() + wait
        while True:
            for rank, proc in enumerate(self.procs, start=1):
                if proc.poll() is not None:
                    return f"worker rank {rank} (pid {proc.pid}) exited with code {proc.returncode}"
            if time.monotonic() >= deadline:
                return ""
            time.sleep(0.05)

    def _send(self, kind: str, payload: Any) -> None:
        dead = self._dead()
        if dead:
            raise LearnerError(f"{dead} before {kind!r} was sent to it. {_RESTART}")
        self.store.set(f"msg/{self._sent}", _pack((kind, payload)))
        if self._sent > 0:  # every worker has read the one before: its collectives needed all of them
            self.store.delete_key(f"msg/{self._sent - 1}")
        self._sent += 1

    def close(self) -> None:
        """Tell the workers to stop, leave the process group (a worker stuck in a collective then fails
        fast), reap them, killing the ones still running after GRACE seconds. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.store.set(f"msg/{self._sent}", _pack(("stop", None)))
        if self.ranks is not ONE and dist.is_initialized():
            dist.destroy_process_group()
        deadline = time.monotonic() + GRACE
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.store = None  # the store's server goes with it


_RESTART = "Its error, if any, is above. Resume the run (--resume), with learner.processes: 1 if the workers cannot run"


def _broken_group(e: BaseException) -> bool:
    """``e`` is a collective's or the store's failure (a rank gone, or hung past the timeout), not a bug."""
    return isinstance(e, dist.DistError) or "gloo" in str(e) or "NCCL" in str(e)


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def start_learners(cfg: TrainConfig, device: torch.device) -> Learners | None:
    """The learner group of ``cfg.learner`` with this process as rank 0 (None for one process): its workers
    started (they join at the first update, ``Learners.join``)."""
    size = cfg.learner.processes
    if size == 1:
        return None
    backend = backend_of(cfg, device)
    if device.type == "cuda" and size > torch.cuda.device_count():
        raise ConfigError(
            f"learner.processes={size} needs one GPU per process and this machine has {torch.cuda.device_count()}: "
            "lower learner.processes"
        )
    if device.type == "cuda":
        torch.cuda.set_device(rank_device(device, 0))
    store = dist.TCPStore(HOST, 0, size, is_master=True, wait_for_workers=False,
                          timeout=timedelta(seconds=cfg.learner.timeout))
    procs = [_spawn(cfg, rank, size, store.port) for rank in range(1, size)]
    return Learners(procs, store, backend=backend, timeout=cfg.learner.timeout)


def _spawn(cfg: TrainConfig, rank: int, size: int, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TORCH_CPP_LOG_LEVEL": os.environ.get("TORCH_CPP_LOG_LEVEL", "ERROR")}
    command = [sys.executable, "-m", "turngym.trainers.distributed", str(rank), str(size), str(port),
               cfg.model_dump_json()]
    return subprocess.Popen(command, env=env)


# ---- a worker -------------------------------------------------------------------------------------
def _next_message(store: Any, n: int, parent: int) -> tuple[str, Any]:
    """Message ``n`` from rank 0, waited for with no timeout; LearnerError once rank 0 is gone."""
    key = f"msg/{n}"
    while True:
        try:
            if store.check([key]):
                return _unpack(store.get(key))
        except dist.DistError as e:
            raise LearnerError(f"rank 0 (pid {parent}) is gone: its store does not answer ({_first_line(e)})") from e
        if os.getppid() != parent:
            raise LearnerError(f"rank 0 (pid {parent}) is gone: this worker's parent process exited")
        time.sleep(POLL)


def serve(cfg: TrainConfig, rank: int, size: int, port: int) -> None:
    """Worker ``rank``: load the policy, join the group, then run the updates rank 0 sends until it says stop."""
    from turngym.trainers.engine import resolve_device
    from turngym.trainers.losses import frozen_reference
    from turngym.trainers.policy import load_policy
    from turngym.trainers.update import make_optimizer

    parent = os.getppid()
    threads = cfg.update_threads or cfg.torch_threads
    if threads:
        torch.set_num_threads(threads)
    run_device = resolve_device(cfg)
    device = rank_device(run_device, rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    store = dist.TCPStore(HOST, port, size, is_master=False, timeout=timedelta(seconds=cfg.learner.timeout))
    model = load_policy(cfg, device)
    optimizer = make_optimizer(model, cfg.optim)
    ref = frozen_reference(model) if cfg.loss.beta > 0 else None
    generator = torch.Generator()
    store.set(f"ready/{rank}", b"1")
    ranks = ONE  # joined at the first state (a run that never updates stops its workers before)
    n = 0
    while True:
        kind, payload = _next_message(store, n, parent)
        n += 1
        if kind == "stop":
            break
        if kind == "state":
            if ranks is ONE:
                ranks = join(store, rank, size, backend=backend_of(cfg, run_device), timeout=cfg.learner.timeout)
            optimizer.load_state_dict(payload)
            broadcast_weights(ranks, model)
            ranks.check_same(list(model.parameters()))
        else:
            for group in optimizer.param_groups:
                group["lr"] = payload["lr"]
            generator.set_state(payload["generator"])
            update_as_rank(ranks, model, optimizer, payload, optim=cfg.optim, loss=cfg.loss, device=device,
                           ref_model=ref, generator=generator)
    if ranks is not ONE:
        dist.destroy_process_group()


def main(argv: Sequence[str]) -> int:
    """``python -m turngym.trainers.distributed RANK SIZE PORT CONFIG_JSON`` (started by rank 0)."""
    rank, size, port, config = int(argv[0]), int(argv[1]), int(argv[2]), argv[3]
    try:
        serve(TrainConfig.model_validate_json(config), rank, size, port)
    except RuntimeError as e:
        if not (isinstance(e, LearnerError) or _broken_group(e)):
            raise  # a bug: with its traceback
        cause = "" if isinstance(e, LearnerError) else "the learner group broke (rank 0 or another rank is gone): "
        print(f"turngym learner worker rank {rank}: {cause}{_first_line(e)}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    from turngym.trainers.distributed import main as package_main  # the package's copy of this module: one Ranks

    code = package_main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # not the interpreter's teardown of torch: seconds on a busy machine, and nothing left to save

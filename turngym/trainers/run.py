"""A training run's directory: metrics (JSONL + TensorBoard), checkpoints, episodes, and resuming.

    runs/NAME/
      config.yaml                 the resolved config (what --resume reads back)
      metrics.jsonl               one JSON object per iteration (and one per eval), fsynced
      tb/                         TensorBoard event files (the same scalars)
      episodes.jsonl              the episode store (turngym.benchmarks.store): every iteration's episodes
                                  (run_id it{k}) and every held-out eval's (run_id eval{k}), appended and
                                  fsynced once per iteration; the turn table is read from it
      report.html                 the run's report (turngym.benchmarks.report), rewritten at each eval
      checkpoints/iter-000012/    weights (HF format), trainer.pt (optimizer, RNG states, counters),
                                  plus whatever the trainer adds (ArCHer: critic, replay buffer)
      checkpoints/LATEST          the name of the newest complete checkpoint

A checkpoint directory is written under a temporary name and renamed when complete, then LATEST is
replaced atomically: a run killed at any instant (kill -9) resumes from the newest complete one.
``RunDir.resume_from()`` drops the metrics lines and stored episodes of iterations after that
checkpoint, so the resumed run counts no episode twice and loses none (they are played again with
the same seeds and RNG states).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from turngym.benchmarks.store import EPISODES_FILE, EpisodeStore, drop_after, read_records
from turngym.core.types import Episode

__all__ = ["RunDir", "capture_rng", "restore_rng"]


def capture_rng() -> dict[str, Any]:
    """The global RNG states (python, numpy, torch CPU and CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class RunDir:
    """The files of one run. ``log`` appends metrics; ``save_checkpoint``/``latest`` manage checkpoints."""

    def __init__(self, path: str | os.PathLike[str], *, tensorboard: bool = True) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.checkpoints = self.path / "checkpoints"
        self.episodes_path = self.path / EPISODES_FILE
        self._store: EpisodeStore | None = None
        self.metrics_path = self.path / "metrics.jsonl"
        self._tb_enabled = tensorboard
        self._tb: Any = None
        self._metrics: Any = None

    # -- metrics ---------------------------------------------------------------------------------
    def log(self, record: dict[str, Any]) -> None:
        """Append one record (``iteration`` and ``kind`` keys expected) to metrics.jsonl and its numbers
        to TensorBoard under ``kind/name``."""
        if self._metrics is None:
            self._metrics = open(self.metrics_path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._metrics.write(json.dumps(record, sort_keys=True) + "\n")
        self._metrics.flush()
        os.fsync(self._metrics.fileno())
        if self._tb_enabled:
            if self._tb is None:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.path / "tb"))
            step = int(record.get("episodes_seen", record.get("iteration", 0)))
            kind = record.get("kind", "train")
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("iteration",):
                    self._tb.add_scalar(f"{kind}/{key}", value, step)

    def read_metrics(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The records of metrics.jsonl (those of ``kind`` only, if given); a line cut by a kill is left out."""
        return [r for r in read_records(self.metrics_path) if kind is None or r.get("kind") == kind]

    # -- episodes --------------------------------------------------------------------------------
    @property
    def store(self) -> EpisodeStore:
        """The run's episode store (opened for append on first use)."""
        if self._store is None:
            self._store = EpisodeStore(path=self.episodes_path)
        return self._store

    def append_episodes(self, episodes: Sequence[Episode]) -> int:
        """Append an iteration's episodes to the run's store: one write, one fsync. Their run_id names the
        iteration (``it{k}``; a held-out eval's ``eval{k}``), so a resume can drop what it plays again."""
        return self.store.extend(episodes)

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self, iteration: int, write: Any, *, keep: int = 2) -> Path:
        """Call ``write(tmp_dir)`` to fill a new checkpoint, then publish it as the latest; keep the newest
        ``keep`` checkpoints."""
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        name = f"iter-{iteration:06d}"
        tmp = self.checkpoints / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        write(tmp)
        for f in tmp.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        final = self.checkpoints / name
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        latest_tmp = self.checkpoints / "LATEST.tmp"
        latest_tmp.write_text(name)
        with open(latest_tmp, "rb") as fh:
            os.fsync(fh.fileno())
        latest_tmp.replace(self.checkpoints / "LATEST")
        _fsync_dir(self.checkpoints)
        done = sorted(p for p in self.checkpoints.glob("iter-*") if p.is_dir())
        for old in done[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def latest(self) -> Path | None:
        marker = self.checkpoints / "LATEST"
        if not marker.exists():
            return None
        path = self.checkpoints / marker.read_text().strip()
        return path if path.is_dir() else None

    def resume_from(self) -> tuple[Path | None, int]:
        """The newest checkpoint and its iteration (0 and None for a fresh run); drops the metrics and
        episode files of later iterations, which the resumed run plays again."""
        ckpt = self.latest()
        done = int(ckpt.name.removeprefix("iter-")) if ckpt is not None else 0
        if self.metrics_path.exists():
            keep = [json.dumps(r, sort_keys=True) for r in self.read_metrics() if int(r.get("iteration", 0)) <= done]
            tmp = self.metrics_path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
            tmp.replace(self.metrics_path)
        if self._store is not None:
            self._store.close()
            self._store = None
        # and the episodes of those iterations, and of an eval whose record is missing (killed mid-eval)
        evaluated = {int(r.get("iteration", 0)) for r in self.read_metrics("eval")}
        drop_after(self.episodes_path, done, evaluated=evaluated)
        return ckpt, done

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._metrics is not None:
            self._metrics.close()
            self._metrics = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None

"""The one report writer's train section: a training run's report from its directory alone (what `turngym view`
writes for a run that has none yet): the learning curve, the evals, the last eval read from the episode store."""

from __future__ import annotations

import json

import yaml

from turngym.benchmarks.report import write_train_report
from turngym.benchmarks.store import EpisodeStore
from turngym.core.types import Episode, Turn, user


def _ep(run_id: str, seed: int, success: bool) -> Episode:
    turn = Turn(index=0, action="[8]", observation=[user("right!" if success else "lower")], reward=float(success),
                terminated=True)
    return Episode(run_id=run_id, episode_id=f"eval/GN/s{seed}/g0", env_id="turngym/GuessNumber-v0", seed=seed,
                   prompt=[user("Guess 1-16.")], turns=[turn], success=success)


def test_a_training_runs_report_from_its_directory(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(
        {"algorithm": {"name": "grpo"}, "env": {"id": "turngym/GuessNumber-v0"}, "model": {"path": "m"}}))
    records = [{"kind": "eval", "iteration": 0, "episodes_seen": 0, "success": 0.0, "return": 0.0, "turns": 1.0, "errors": 0.0}]
    records += [{"kind": "train", "iteration": k, "episodes_seen": 8 * k, "success": k / 4} for k in (1, 2)]
    records += [{"kind": "eval", "iteration": 2, "episodes_seen": 16, "success": 0.5, "return": 0.5, "turns": 1.0, "errors": 0.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with EpisodeStore(path=tmp_path / "episodes.jsonl") as store:
        store.extend([_ep("eval0", 100, False), _ep("eval0", 101, False), _ep("eval2", 100, True), _ep("eval2", 101, False)])

    page = write_train_report(tmp_path).read_text()
    assert "turngym train: grpo on turngym/GuessNumber-v0" in page and "2 iterations, 16 training episodes" in page
    assert page.count("data:image/png;base64,") == 2  # the learning curve and the last eval's success per env
    assert "Last held-out eval (iteration 2)" in page and "50.0%" in page  # eval2's table, read from the store
    assert "right!" in page  # a transcript (the successful episode)
    assert (tmp_path / "curve.png").stat().st_size > 1000

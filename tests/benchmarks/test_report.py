"""The one report writer's train section: a training run's report from its directory alone (what `turngym view`
writes for a run that has none yet): the learning curve, the evals, the last eval read from the episode store."""

from __future__ import annotations

import json

import yaml

from turngym.benchmarks import report
from turngym.benchmarks.compare import newcombe_interval
from turngym.benchmarks.report import write_train_report
from turngym.benchmarks.store import EpisodeStore
from turngym.benchmarks.summary import summarize
from turngym.core.types import Episode, Turn, user


def _ep(run_id: str, seed: int, success: bool) -> Episode:
    turn = Turn(
        index=0,
        action="[8]",
        observation=[user("right!" if success else "lower")],
        reward=float(success),
        terminated=True,
    )
    return Episode(
        run_id=run_id,
        episode_id=f"eval/GN/s{seed}/g0",
        env_id="turngym/GuessNumber-v0",
        seed=seed,
        prompt=[user("Guess 1-16.")],
        turns=[turn],
        success=success,
    )


def test_a_training_runs_report_from_its_directory(tmp_path):
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump({"algorithm": {"name": "grpo"}, "env": {"id": "turngym/GuessNumber-v0"}, "model": {"path": "m"}})
    )
    records = [
        {"kind": "eval", "iteration": 0, "episodes_seen": 0, "success": 0.0, "return": 0.0, "turns": 1.0, "errors": 0.0}
    ]
    records += [{"kind": "train", "iteration": k, "episodes_seen": 8 * k, "success": k / 4} for k in (1, 2)]
    records += [
        {
            "kind": "eval",
            "iteration": 2,
            "episodes_seen": 16,
            "success": 0.5,
            "return": 0.5,
            "turns": 1.0,
            "errors": 0.0,
        }
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    with EpisodeStore(path=tmp_path / "episodes.jsonl") as store:
        store.extend(
            [_ep("eval0", 100, False), _ep("eval0", 101, False), _ep("eval2", 100, True), _ep("eval2", 101, False)]
        )

    page = write_train_report(tmp_path).read_text()
    assert "turngym train: grpo on turngym/GuessNumber-v0" in page and "2 iterations, 16 training episodes" in page
    assert page.count("data:image/png;base64,") == 2  # the learning curve and the last eval's success per env
    assert "Last held-out eval (iteration 2)" in page and "50.0%" in page  # eval2's table, read from the store
    assert "right!" in page  # a transcript (the successful episode)
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_newcombe_interval_matches_the_paper():
    """Newcombe (1998), Table II, example (a): 56/70 vs 48/80, method 10: 0.0524 to 0.3339."""
    lo, hi = newcombe_interval(48, 80, 56, 70)
    assert round(lo, 4) == 0.0524 and round(hi, 4) == 0.3339
    assert newcombe_interval(0, 10, 0, 10)[0] < 0 < newcombe_interval(0, 10, 0, 10)[1]
    assert newcombe_interval(0, 0, 3, 5) == (-1.0, 1.0)


def test_an_eval_report_is_self_contained_and_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "TRANSCRIPTS_CAP", 4)
    episodes = [_ep("r", seed, seed % 3 == 0) for seed in range(12)]
    episodes[1] = episodes[1].model_copy(update={"error": "Boom: the env fell over", "success": None})
    episodes[2] = episodes[2].model_copy(update={"error": "Boom: the env fell over", "success": None})
    summary = summarize(episodes, agent="random", suite="s")
    page = report.write_report(tmp_path / "report.html", summary, episodes, run_dir=tmp_path).read_text()
    assert "src='http" not in page and "<link" not in page and "<script src" not in page
    assert page.count("Boom: the env fell over") == 2  # once in the errors section, once in the page's data
    data = json.loads(page.split("id='report-data'>")[1].split("</script>")[0].replace("<\\/", "</"))
    assert len(data["rows"]) == 12 and len(data["transcripts"]) == 4
    outcomes = {data["rows"][i][4] for i, r in enumerate(data["rows"]) if r[-1] >= 0}
    assert outcomes == {"error", "failure", "success"}  # each outcome gets its share of the transcripts
    assert "transcripts are embedded for 4 episodes" in page

"""The episode store, the one episode format: batch appends, (run_id, episode_id) identity, a training run's
resume dropping the iterations it plays again (and a torn last line)."""

from __future__ import annotations

from turngym.benchmarks.store import EpisodeStore, drop_after, iteration_of, read_episodes
from turngym.core.types import Episode, Turn


def _ep(run_id: str, eid: str) -> Episode:
    return Episode(run_id=run_id, episode_id=eid, env_id="test/E-v0", turns=[Turn(index=0, action="a", terminated=True)])


def test_extend_appends_a_batch_and_identity_is_run_and_episode(tmp_path):
    path = tmp_path / "episodes.jsonl"
    with EpisodeStore(path=path) as store:
        assert store.extend([_ep("it1", "g0/0"), _ep("it1", "g0/1")]) == 2
        assert store.extend([]) == 0
        store.append(_ep("eval1", "eval/x/s9/g0"))
        store.append(_ep("eval2", "eval/x/s9/g0"))  # the same task in a later eval: another episode
        store.append(_ep("it1", "g0/0"))  # the very same episode again: read once
    got = read_episodes(path)
    assert [(e.run_id, e.episode_id) for e in got] == [
        ("it1", "g0/0"), ("it1", "g0/1"), ("eval1", "eval/x/s9/g0"), ("eval2", "eval/x/s9/g0")]
    assert [e.run_id for e in read_episodes(path, run_ids=["eval2"])] == ["eval2"]
    assert (iteration_of("it12"), iteration_of("eval0"), iteration_of("smoke-scripted")) == (12, 0, None)


def test_drop_after_keeps_what_a_checkpoint_covers(tmp_path):
    path = tmp_path / "episodes.jsonl"
    with EpisodeStore(path=path) as store:
        store.extend([_ep("eval0", "e"), _ep("it1", "a"), _ep("it2", "a"), _ep("eval2", "e"), _ep("it3", "a")])
    with open(path, "ab") as f:
        f.write(b'{"run_id":"it3","episode_id":"b","env')  # torn by a kill mid-write
    assert drop_after(path, 2, evaluated=[0]) == 2  # it3 (after the checkpoint) and eval2 (its record was lost)
    assert [e.run_id for e in read_episodes(path)] == ["eval0", "it1", "it2"]
    assert path.read_bytes().endswith(b"\n") and not list(tmp_path.glob("*.tmp"))
    assert drop_after(path, 2) == 0


def test_a_line_leaves_out_defaults_and_reads_back_equal(tmp_path):
    from turngym.core.types import Message

    ep = Episode(
        run_id="it1", episode_id="g0/0", env_id="test/E-v0", prompt=[Message(role="user", content="hi")],
        turns=[Turn(index=0, action="[3]", observation=[Message(role="user", content="lower")], reward=0.0)],
        tokens=[1, 2, 3], mask=[0, 1, 1], logprobs=[0.0, -0.5, -1.25], trainable=True,
    )
    path = tmp_path / "episodes.jsonl"
    with EpisodeStore(path=path) as store:
        store.append(ep)
    line = path.read_text()
    assert "null" not in line and '"info"' not in line and '"truncated"' not in line
    assert read_episodes(path) == [ep]

"""ArcherTrainer end to end on a nano GuessNumber model, hf backend, CPU: online and offline iterations,
the weight sync and its probe (a sabotaged sync must stop the run), checkpoint + resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from turngym.benchmarks.store import read_episodes
from turngym.trainers.archer.trainer import ArcherTrainer, load_offline_episodes
from turngym.trainers.config import TrainConfig
from turngym.trainers.table import TurnTable

ENV = {"id": "turngym/GuessNumber-v0", "kwargs": {"low": 1, "high": 16}, "max_turns": 6}


def make_cfg(
    run_dir: Path, model: Path, *, iterations: int = 1, eval_every: int = 0, optim: dict[str, Any] | None = None,
    **archer: Any,
) -> TrainConfig:
    settings: dict[str, Any] = {
        "warmup_iterations": 0,
        "batch_size": 8,
        "micro_batch_size": 4,
        "critic": {"steps_per_iteration": 2},
        "actor": {"steps_per_iteration": 1, "max_new_tokens": 6},
    }
    for k, v in archer.items():
        settings[k] = {**settings[k], **v} if isinstance(v, dict) and k in settings else v
    return TrainConfig(
        run_dir=str(run_dir), seed=0, env=ENV, model={"path": str(model)},
        sampling={"temperature": 1.0, "max_new_tokens": 6, "constrain": True},
        algorithm={"name": "archer", **settings}, iterations=iterations, eval={"every": eval_every, "seeds": 2},
        rollout={"groups": 4, "group_size": 1}, optim=optim or {},
        checkpoint={"every": 1, "keep": 3}, tensorboard=False,
    )


def test_online_iteration_trains_critic_and_actor_and_syncs(tmp_path, gn_model):
    from turngym.trainers.train import make_trainer

    trainer = make_trainer(make_cfg(tmp_path / "run", gn_model, eval_every=1))  # what `turngym train` runs
    assert isinstance(trainer, ArcherTrainer)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    critic_before = {k: v.clone() for k, v in trainer.critic.state_dict().items()}
    summary = trainer.run(resume=False, progress=False)
    assert set(summary["eval"]) >= {"success", "return"} and all(isinstance(v, float) for v in summary["eval"].values())
    rec = summary["train"]
    table = TurnTable.from_episodes(read_episodes(tmp_path / "run" / "episodes.jsonl", run_ids=["it1"]))
    assert len(table) == 4 and summary["episodes_seen"] == 4
    assert rec["buffer_size"] == len(trainer.buffer) == table.num_turn_rows  # one transition per turn
    assert all(t.state_ids is not None for t in trainer.buffer.transitions())
    assert rec["critic/q_loss"] > 0 and rec["actor/tokens"] > 0 and "actor/adv_std" in rec
    assert rec["probe_diff"] <= trainer.cfg.probe_tolerance
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert any(not torch.equal(critic_before[k], v) for k, v in trainer.critic.state_dict().items())
    served = trainer.backend.model.state_dict() if trainer._backend is not None else None
    if served is not None:  # the engine holds the trainer's new weights
        assert all(torch.equal(served[k], v) for k, v in trainer.model.state_dict().items())
    evals = trainer.run_dir.read_metrics("eval")
    assert [e["iteration"] for e in evals] == [0, 1]
    ckpt = trainer.run_dir.latest()
    assert ckpt is not None and (ckpt / "replay.jsonl").is_file() and (ckpt / "trainer.pt").is_file()
    # the buffer's checkpoint refers to the run's episode store: no episode format of its own
    header = json.loads((ckpt / "replay.jsonl").read_text().splitlines()[0])
    assert header["episodes"] == "../../episodes.jsonl" and not (ckpt / "replay.episodes.jsonl").exists()
    assert (ckpt / "model" / "config.json").is_file() and (ckpt / "model" / "chat_template.jinja").is_file()  # the loop's model/


def test_sabotaged_sync_raises_stale_weights(tmp_path, gn_model, monkeypatch):
    from turngym.agents.hf import HFBackend

    async def no_load(self, weights):  # the engine keeps its old weights
        list(weights)

    monkeypatch.setattr(HFBackend, "load_weights", no_load)
    trainer = ArcherTrainer(make_cfg(tmp_path / "run", gn_model, optim={"lr": 0.5}))
    with pytest.raises(RuntimeError, match=r"differ from the trainer's by up to .* not serving the new weights"):
        trainer.run()


def test_offline_mode_trains_on_a_saved_run(tmp_path, gn_model):
    online = ArcherTrainer(make_cfg(tmp_path / "online", gn_model, warmup_iterations=5))
    online.run()
    saved = tmp_path / "online"  # a training run: its episode store (an eval run's reads the same)
    table = TurnTable.from_episodes(read_episodes(saved / "episodes.jsonl"))
    episodes = load_offline_episodes(saved)
    assert len(episodes) == len(table) and sum(len(e.turns) for e in episodes) == table.num_turn_rows
    assert [e.turns[-1].truncated for e in episodes] == table.truncated[table.is_last_turn].tolist()  # kept

    trainer = ArcherTrainer(make_cfg(tmp_path / "offline", gn_model, eval_every=1, mode="offline", dataset=str(saved)))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    summary = trainer.run()
    rec = summary["train"]
    assert summary["episodes_seen"] == 0 and "success" not in rec  # nothing collected
    assert rec["buffer_size"] == table.num_turn_rows and rec["actor/tokens"] > 0
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert not any(e.run_id.startswith("it") for e in read_episodes(tmp_path / "offline" / "episodes.jsonl"))
    assert [e["iteration"] for e in trainer.run_dir.read_metrics("eval")] == [0, 1]  # eval through the backend


def _train_metrics(run: Path) -> list[dict[str, Any]]:
    from turngym.trainers.run import RunDir

    return [
        {k: v for k, v in r.items() if not k.startswith("time_")} for r in RunDir(run, tensorboard=False).read_metrics("train")
    ]


def test_resume_reproduces_the_uninterrupted_run(tmp_path, gn_model, monkeypatch):
    """Killed after iteration 1's checkpoint, resumed: iteration 2's metrics equal the uninterrupted run's
    to 1e-6 (the same float ops in the same order), the buffer too (contents, position, counter)."""
    full = ArcherTrainer(make_cfg(tmp_path / "full", gn_model, iterations=2))
    full.run()
    expected = _train_metrics(tmp_path / "full")

    class Killed(Exception):
        pass

    real_step = ArcherTrainer.step

    async def step(self, it):
        if it == 2:
            raise Killed
        return await real_step(self, it)

    monkeypatch.setattr(ArcherTrainer, "step", step)
    with pytest.raises(Killed):
        ArcherTrainer(make_cfg(tmp_path / "cut", gn_model, iterations=2)).run()
    monkeypatch.setattr(ArcherTrainer, "step", real_step)
    resumed = ArcherTrainer(make_cfg(tmp_path / "cut", gn_model, iterations=2))
    resumed.run(resume=True)
    got = _train_metrics(tmp_path / "cut")
    assert [r["iteration"] for r in got] == [1, 2]
    for want, have in zip(expected, got, strict=True):
        assert want.keys() == have.keys()
        for k, v in want.items():
            assert have[k] == pytest.approx(v, abs=1e-6), k
    assert got[1]["buffer_position"] == full.buffer.position == resumed.buffer.position
    assert [t.action for t in resumed.buffer.transitions()] == [t.action for t in full.buffer.transitions()]
    for k, v in full.critic.state_dict().items():
        torch.testing.assert_close(resumed.critic.state_dict()[k], v, atol=1e-6, rtol=0)


def test_sampled_utterances_obey_the_constraint_and_their_logprobs_line_up(gn_model):
    """a~ ~ pi(.|s) under the action constraint: every reply is a legal guess, and the actor's logprobs of the
    padded batch equal those of each sequence alone, renormalised over the allowed tokens."""
    import re

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from turngym.agents.sampling import TokenFSM, vocabulary
    from turngym.envs.games.guess_number import GuessNumberEnv
    from turngym.trainers.archer.trainer import _policy_forward, sample_utterances

    tok = AutoTokenizer.from_pretrained(gn_model)
    model = AutoModelForCausalLM.from_pretrained(gn_model, dtype=torch.float32).eval()
    eos = [tok.convert_tokens_to_ids("<|im_end|>")]
    fsm = TokenFSM.build(GuessNumberEnv(low=1, high=16).action_format.pattern(), vocabulary(tok), eos_ids=eos)
    prompts = [
        tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True)
        for text in ("Guess a number from 1 to 16.", "The secret is higher than 7.", "guess")
    ]
    prompts = [list(p["input_ids"] if hasattr(p, "keys") else p) for p in prompts]
    gen = torch.Generator().manual_seed(0)
    sampled = sample_utterances(
        model, tok, prompts * 4, max_new_tokens=6, temperature=1.0, eos_ids=eos, pad_id=tok.pad_token_id,
        fsm=fsm, generator=gen,
    )
    for text in sampled.texts:
        m = re.fullmatch(r"\[(\d+)\]", text)
        assert m and 1 <= int(m.group(1)) <= 16, text
    logp, mask, _ = _policy_forward(model, prompts * 4, sampled, tok.pad_token_id, hidden=False)
    assert sampled.allowed is not None
    for b, (p, a, rows) in enumerate(zip(prompts * 4, sampled.ids, sampled.fsm_rows, strict=True)):
        with torch.no_grad():
            full = torch.log_softmax(model(input_ids=torch.tensor([p + a])).logits[0].float(), -1)
        want = []
        for j, t in enumerate(a):
            row = full[len(p) + j - 1]
            want.append(float(row[t] - torch.logsumexp(row[sampled.allowed[rows[j] - 1]], 0)))
        got = logp[b][mask[b]].detach()
        torch.testing.assert_close(got, torch.tensor(want), atol=1e-4, rtol=0)


def test_sampled_utterances_use_the_backends_draw_with_top_p(gn_model):
    """a~ goes through the hf backend's draw: with a vanishing top-p only the top token survives, so two
    generators sample the same replies (the constrained greedy ones); with top_p=1 they differ."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from turngym.agents.sampling import TokenFSM, vocabulary
    from turngym.envs.games.guess_number import GuessNumberEnv
    from turngym.trainers.archer.sampler import sample_utterances

    tok = AutoTokenizer.from_pretrained(gn_model)
    model = AutoModelForCausalLM.from_pretrained(gn_model, dtype=torch.float32).eval()
    eos = [tok.convert_tokens_to_ids("<|im_end|>")]
    fsm = TokenFSM.build(GuessNumberEnv(low=1, high=16).action_format.pattern(), vocabulary(tok), eos_ids=eos)
    prompt = tok.apply_chat_template([{"role": "user", "content": "guess"}], add_generation_prompt=True, tokenize=True)
    prompts = [list(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)] * 8

    def replies(top_p: float, seed: int) -> list[list[int]]:
        return sample_utterances(
            model, tok, prompts, max_new_tokens=6, temperature=1.0, top_p=top_p, eos_ids=eos,
            pad_id=tok.pad_token_id, fsm=fsm, generator=torch.Generator().manual_seed(seed),
        ).ids

    narrow = replies(1e-9, 0)
    assert narrow == replies(1e-9, 1) and all(r == narrow[0] for r in narrow)
    assert replies(1.0, 0) != replies(1.0, 1)

"""policy_update with a real tiny model: accumulation equals one big batch, the constrained policy's
logprobs equal what the backend recorded, zero-advantage episodes are skipped, K epochs x minibatches."""

from __future__ import annotations

import asyncio
import copy

import numpy as np
import pytest
import torch

from tests.trainers.builders import episode
from turngym.agents.hf import HFBackend
from turngym.agents.llm import LLMAgent
from turngym.agents.runner import group_tasks, run_episodes
from turngym.agents.sampling import SamplingConfig, TokenFSM, vocabulary
from turngym.trainers.advantages import compute_advantages, estimator_config
from turngym.trainers.constraint import action_states, constrained_logprobs
from turngym.trainers.losses import LossConfig, token_logprobs
from turngym.trainers.table import TurnTable, collate_episodes
from turngym.trainers.update import OptimConfig, policy_update

GN = "turngym/GuessNumber-v0"
GN16 = {"low": 1, "high": 16}


@pytest.fixture(scope="module")
def constrained_run(gn_model):
    backend = HFBackend(model=str(gn_model))
    agent = LLMAgent(backend=backend, sampling=SamplingConfig(max_new_tokens=6, constrain=True, seed=1), system_prompt="")
    tasks = group_tasks(GN, seeds=range(4), group_size=4, env_kwargs=GN16, max_turns=6)
    episodes = asyncio.run(run_episodes(tasks, agent, concurrency=16))
    return backend, episodes


def _gn16_fsm(backend):
    """The automaton of GuessNumber 1..16's action pattern, as the backend sampled under it."""
    return TokenFSM.build(
        r"\[(" + "|".join(str(n) for n in range(1, 17)) + r")\]", vocabulary(backend.tokenizer), eos_ids=backend.eos_ids
    )


def _model(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32).eval()


@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean", "turn_mean"])
def test_gradient_accumulation_equals_one_big_batch(constrained_run, gn_model, aggregation):
    _, episodes = constrained_run
    table = TurnTable.from_episodes(episodes)
    adv = compute_advantages(table, estimator_config("flow_grpo"))
    assert np.abs(adv.token).sum() > 0, "the sampled groups must carry some signal for this test"
    base = _model(gn_model)
    results = []
    for micro in (0, 3):
        model = copy.deepcopy(base)
        opt = torch.optim.SGD(model.parameters(), lr=1.0)  # SGD: the step is the gradient itself
        stats = policy_update(
            model, opt, table, adv, optim=OptimConfig(lr=1.0, micro_batch_size=micro, grad_clip=0),
            loss=LossConfig(aggregation=aggregation),
        )
        results.append((torch.cat([p.detach().flatten() for p in model.parameters()]), stats))
    (a, sa), (b, sb) = results
    moved = (a - torch.cat([p.detach().flatten() for p in base.parameters()])).abs().max()
    assert moved > 1e-4
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert sa["pg_loss"] == pytest.approx(sb["pg_loss"], abs=1e-6)


@pytest.fixture(scope="module")
def constrained_batch(constrained_run, gn_model):
    """The constrained episodes collated with their automaton states, the model and its full logits."""
    backend, episodes = constrained_run
    table = TurnTable.from_episodes(episodes)
    model = _model(gn_model)
    states, allowed = action_states(table, _gn16_fsm(backend), model.config.vocab_size)
    batch = collate_episodes(table, token_columns={"fsm_state": states})
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    return model, batch, allowed, logits


def test_constrained_logprobs_equal_what_the_backend_recorded(constrained_batch):
    _, batch, allowed, logits = constrained_batch
    constrained = constrained_logprobs(logits, batch["input_ids"], batch["fsm_state"].long(), allowed)
    raw = token_logprobs(logits, batch["input_ids"])
    mask = batch["loss_mask"]
    assert int(mask.sum()) > 20
    torch.testing.assert_close(constrained[mask], batch["old_logprobs"][mask], atol=1e-4, rtol=0)
    # without the renormalisation the trainer would see another policy
    assert (raw[mask] - batch["old_logprobs"][mask]).abs().max() > 0.05


def test_an_unconstrained_action_under_a_constraint_names_the_fix(gn_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gn_model))
    fsm = TokenFSM.build(r"\[(1|2)\]", vocabulary(tok), eos_ids=[tok.eos_token_id])
    ids = tok.encode("[7]", add_special_tokens=False)
    ep = episode("e0", "g0", [1.0], action_lens=[len(ids)], prompt_len=2)
    ep.tokens = [0, 0, *ids, 0]
    with pytest.raises(ValueError, match="constrain=False"):
        action_states(TurnTable.from_episodes([ep]), fsm, len(tok))


def test_zero_advantage_episodes_are_skipped_and_steps_count_epochs_times_minibatches(gn_model):
    # group g0 has signal (rewards differ), group g1 none (all 1.0)
    eps = [episode(f"e{i}", "g0", [float(i % 2)], action_lens=[2], base=5) for i in range(4)]
    eps += [episode(f"f{i}", "g1", [1.0], action_lens=[2], base=5) for i in range(4)]
    table = TurnTable.from_episodes(eps)
    adv = compute_advantages(table, estimator_config("grpo"))
    model = _model(gn_model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    stats = policy_update(model, opt, table, adv, optim=OptimConfig(lr=1e-3, epochs=3, minibatch_size=2), loss=LossConfig())
    assert stats["episodes"] == 4
    assert stats["steps"] == 3 * 2
    stats = policy_update(
        model, opt, table, adv, optim=OptimConfig(lr=1e-3, skip_zero_advantage=False), loss=LossConfig()
    )
    assert stats["episodes"] == 8 and stats["steps"] == 1


def test_head_on_loss_positions_only_equals_the_full_logits_path(constrained_batch):
    from turngym.trainers.losses import token_entropy
    from turngym.trainers.update import sequence_logprobs

    model, batch, allowed, logits = constrained_batch
    mask = batch["loss_mask"]
    with torch.no_grad():
        full = constrained_logprobs(logits, batch["input_ids"], batch["fsm_state"].long(), allowed)
        mine, _ = sequence_logprobs(model, batch, allowed=allowed)
        plain, H = sequence_logprobs(model, batch, with_entropy=True)
    torch.testing.assert_close(mine[mask], full[mask], atol=1e-5, rtol=0)
    torch.testing.assert_close(plain[mask], token_logprobs(logits, batch["input_ids"])[mask], atol=1e-5, rtol=0)
    torch.testing.assert_close(H[mask], token_entropy(logits)[mask], atol=1e-5, rtol=0)
    assert (mine[~mask] == 0).all()


def test_an_update_moves_logprobs_with_the_sign_of_the_advantage(constrained_run, gn_model):
    """One small plain gradient step on the policy the episodes were sampled from (the constrained one,
    so the ratio starts at 1 and nothing is clipped) raises the surrogate sum_k A_k log pi(a_k)."""
    from turngym.trainers.losses import turn_mean
    from turngym.trainers.update import sequence_logprobs

    backend, episodes = constrained_run
    table = TurnTable.from_episodes(episodes)
    adv = compute_advantages(table, estimator_config("flow_grpo"))
    model = _model(gn_model)
    states, allowed = action_states(table, _gn16_fsm(backend), model.config.vocab_size)
    batch = collate_episodes(table, token_columns={"advantages": adv.token, "fsm_state": states})
    mask = batch["loss_mask"]
    with torch.no_grad():
        before, _ = sequence_logprobs(model, batch, allowed=allowed)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    stats = policy_update(
        model, opt, table, adv, optim=OptimConfig(lr=1e-3, grad_clip=0), loss=LossConfig(aggregation="turn_mean"),
        fsm_states=states, allowed=allowed,
    )
    assert stats["ratio_mean"] == pytest.approx(1.0, abs=1e-4) and stats["clip_frac_low"] == 0
    with torch.no_grad():
        after, _ = sequence_logprobs(model, batch, allowed=allowed)
    assert (after - before)[mask].abs().max() > 1e-6
    gain = turn_mean((after - before) * batch["advantages"], mask, batch["turn_ids"].long(), batch["episode"])
    assert gain > 0


def test_canonical_constraint_samples_the_tokenizers_own_tokenization_and_trains_on_it(gn_model):
    """With numbers below 100 as single tokens, "[16]" may be sampled as "[", "1", "6", "]" under a
    plain constraint; canonical=True forbids "1" then "6" (the tokenizer writes "16"), and the trainer
    walks the same automaton, so its constrained logprobs still equal the sampled ones."""
    backend = HFBackend(model=str(gn_model))
    tok = backend.tokenizer
    sampling = SamplingConfig(max_new_tokens=6, constrain=True, canonical=True, seed=3)
    agent = LLMAgent(backend=backend, sampling=sampling, system_prompt="")
    tasks = group_tasks(GN, seeds=range(6), group_size=4, env_kwargs=GN16, max_turns=6)
    episodes = asyncio.run(run_episodes(tasks, agent, concurrency=24))
    for ep in episodes:
        for t in ep.turns:
            ids = ep.tokens[t.action_span[0] : t.action_span[1]]
            assert ids[:-1] == tok.encode(t.action, add_special_tokens=False), (t.action, ids)
    pattern = r"\[(" + "|".join(str(n) for n in range(1, 17)) + r")\]"
    fsm = TokenFSM.build(pattern, vocabulary(tok), eos_ids=backend.eos_ids, canonical=tok)
    one, six = tok.convert_tokens_to_ids(["1", "6"])
    state = fsm.advance(fsm.advance(fsm.initial, tok.convert_tokens_to_ids("[")), one)
    assert six not in fsm.allowed(state)
    table = TurnTable.from_episodes(episodes)
    model = _model(gn_model)
    states, allowed = action_states(table, fsm, model.config.vocab_size)
    batch = collate_episodes(table, token_columns={"fsm_state": states})
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    mine = constrained_logprobs(logits, batch["input_ids"], batch["fsm_state"].long(), allowed)
    mask = batch["loss_mask"]
    torch.testing.assert_close(mine[mask], batch["old_logprobs"][mask], atol=1e-4, rtol=0)


def test_scheduled_lr_is_constant_linear_or_constant_then_linear():
    from turngym.trainers.update import scheduled_lr

    assert [scheduled_lr(OptimConfig(lr=1.0), k, 4) for k in (1, 4)] == [1.0, 1.0]
    linear = OptimConfig(lr=2.0, lr_schedule="linear")
    assert [scheduled_lr(linear, k, 4) for k in (1, 2, 3, 4)] == [2.0, 1.5, 1.0, 0.5]
    wsd = OptimConfig(lr=2.0, lr_schedule="wsd", lr_decay_fraction=0.5)
    assert [scheduled_lr(wsd, k, 4) for k in (1, 2, 3, 4)] == [2.0, 2.0, 2.0, 1.0]


def test_torch_threads_sets_the_count_inside_the_block_and_restores_it():
    from turngym.trainers.update import torch_threads

    before = torch.get_num_threads()
    inside = 2 if before != 2 else 1
    with torch_threads(inside):
        assert torch.get_num_threads() == inside
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), torch_threads(inside):
        raise RuntimeError("the update failed")
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before

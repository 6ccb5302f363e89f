"""The critic over real (tiny, random-init) transformers encoders and over policy features."""

from __future__ import annotations

import pytest
import torch

from turngym.core.errors import ConfigError
from turngym.trainers.archer.critic import DoubleCritic, TextEncoder, TokenBaseline, make_target, pool_hidden
from turngym.trainers.archer.math import critic_q_loss, critic_v_loss, polyak_update, td_target


def test_pool_hidden_mean_and_last_with_either_padding():
    h = torch.arange(12, dtype=torch.float32).reshape(2, 3, 2)  # [B=2, L=3, H=2]
    right = torch.tensor([[1, 1, 0], [1, 1, 1]])
    left = torch.tensor([[0, 1, 1], [1, 1, 1]])
    assert pool_hidden(h, right, "mean").tolist() == [[1.0, 2.0], [8.0, 9.0]]
    assert pool_hidden(h, right, "last").tolist() == [[2.0, 3.0], [10.0, 11.0]]
    assert pool_hidden(h, left, "last").tolist() == [[4.0, 5.0], [10.0, 11.0]]
    with pytest.raises(ValueError, match="pooling='max'"):
        pool_hidden(h, right, "max")  # type: ignore[arg-type]


@pytest.mark.parametrize(("which", "pooling"), [("bert", "mean"), ("qwen2", "last"), ("qwen2", "mean")])
def test_text_encoder_pools_each_text_independently_of_its_batch(which, pooling, request):
    path = request.getfixturevalue(f"tiny_{which}_dir")
    enc = TextEncoder.from_pretrained(path, pooling=pooling).eval()
    texts = ["user: guess the number", "user: I am thinking of a whole number from 1 to 10 ! guess it"]
    with torch.no_grad():
        both = enc(texts)
        alone = enc(texts[:1])
    assert both.shape == (2, enc.dim) == (2, 32)
    # padding must not change a text's embedding (the mask is honoured by the model and the pooling)
    assert torch.allclose(both[0], alone[0], atol=1e-5)
    assert not torch.allclose(both[0], both[1], atol=1e-3)
    if which == "qwen2":
        enc.tokenizer.padding_side = "left"
        with torch.no_grad():
            assert torch.allclose(enc(texts)[0], alone[0], atol=1e-5)


def test_text_encoder_truncates_the_oldest_history(tiny_bert_dir):
    enc = TextEncoder.from_pretrained(tiny_bert_dir, max_length=8)
    ids = enc.tokenizer(["state 1 2 3 4 5 6 7 8 9 end"], truncation=True, max_length=8)["input_ids"][0]
    assert enc.tokenizer.convert_ids_to_tokens(ids)[-2:] == ["9", "end"]


def test_text_encoder_bad_path_names_the_fix(tmp_path):
    with pytest.raises(ConfigError, match="cannot load a critic encoder from .*encoder_path"):
        TextEncoder.from_pretrained(tmp_path / "missing")


def test_critic_step_on_a_bert_encoder_trains_encoder_and_heads_and_polyak_moves_the_target(tiny_bert_dir):
    torch.manual_seed(0)
    critic = DoubleCritic(encoder=TextEncoder.from_pretrained(tiny_bert_dir), hidden_dim=16)
    target = make_target(critic)
    s = ["user: guess the number", "user: higher", "user: lower"]
    a = ["[ 50 ]", "[ 75 ]", "[ 10 ]"]
    s2 = ["user: higher", "user: lower", "user: right !"]
    r, done = torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.0, 0.0, 1.0])
    q, v = critic(s, a)
    assert q.shape == v.shape == (2, 3)
    with torch.no_grad():
        y = td_target(r, done, target.values(s2), 0.95)
        q_tilde = target(s, ["[ 9 ]", "[ 8 ]", "[ 7 ]"]).q
    loss = critic_q_loss(q, y) + critic_v_loss(v, q_tilde)
    enc_before = critic.encoder.model.embeddings.word_embeddings.weight.clone()
    opt = torch.optim.Adam(critic.parameters(), lr=1e-2)
    loss.backward()
    assert critic.encoder.model.embeddings.word_embeddings.weight.grad is not None
    torch.nn.utils.clip_grad_norm_(critic.parameters(), 1.0)
    opt.step()
    assert not torch.equal(critic.encoder.model.embeddings.word_embeddings.weight, enc_before)
    with torch.no_grad():
        q2, v2 = critic(s, a)
    assert (critic_q_loss(q2, y) + critic_v_loss(v2, q_tilde)).item() < loss.item()
    # the target did not train; Polyak moves it a tau-fraction of the way
    tgt_emb = target.encoder.model.embeddings.word_embeddings.weight
    assert torch.equal(tgt_emb, enc_before)
    polyak_update(target, critic, tau=0.1)
    assert torch.allclose(tgt_emb, 0.9 * enc_before + 0.1 * critic.encoder.model.embeddings.word_embeddings.weight)


def test_policy_features_option_takes_tensors_and_checks_their_width():
    critic = DoubleCritic(encoder=None, feature_dim=8)
    s, a = torch.randn(4, 8), torch.randn(4, 8)
    q, v = critic(s, a)
    assert q.shape == v.shape == (2, 4)
    assert critic(s).q is None
    with pytest.raises(ValueError, match=r"takes features \[B, 8\], not \(4, 6\)"):
        critic(torch.randn(4, 6))
    with pytest.raises(ConfigError, match="feature_dim"):
        DoubleCritic()


def test_token_baseline_shape():
    b = TokenBaseline(hidden_size=8)
    assert b(torch.randn(3, 5, 8)).shape == (3, 5)


def test_policy_hidden_states_option_with_a_real_decoder(tiny_qwen2_dir):
    """encoder='policy': the policy model's pooled hidden states of s and a feed heads of the critic's own;
    with the features detached, a critic step trains the heads and leaves the policy untouched."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_qwen2_dir, local_files_only=True)
    policy = AutoModel.from_pretrained(tiny_qwen2_dir, local_files_only=True)

    def features(texts: list[str]) -> torch.Tensor:
        enc = tok(texts, padding=True, return_tensors="pt")
        hidden = policy(**enc).last_hidden_state
        return pool_hidden(hidden, enc["attention_mask"], "last").detach()

    critic = DoubleCritic(encoder=None, feature_dim=policy.config.hidden_size)
    target = make_target(critic)
    phi_s, phi_a = features(["user: guess the number", "user: higher"]), features(["[ 50 ]", "[ 75 ]"])
    q, v = critic(phi_s, phi_a)
    assert q.shape == v.shape == (2, 2)
    (q.sum() + v.sum()).backward()
    assert all(p.grad is not None for p in critic.parameters())
    assert all(p.grad is None for p in policy.parameters()) and all(p.grad is None for p in target.parameters())

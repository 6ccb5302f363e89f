"""Every estimator against numbers worked out by hand (the arithmetic is in the comments).

Table A (estimators without anchors), std with ddof=1 (the unbiased std of torch.std), eps=1e-6:

    group g1: e0  r = [0.5, 1]     R = 1.5  o = 1 (final reward)  T = 2
              e1  r = [0, 0, 0]    R = 0    o = 0                 T = 3
              e2  r = [1]          R = 1    o = 1                 T = 1
    group g2: e3  r = [0, 0]       R = 0    o = 0   (zero variance)
              e4  r = [0, 0]       R = 0    o = 0

    turn rows: e0t0 e0t1 | e1t0 e1t1 e1t2 | e2t0 | e3t0 e3t1 | e4t0 e4t1
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.trainers.builders import episode
from turngym.trainers.advantages import (
    ESTIMATORS,
    BilevelGAEConfig,
    FlowGRPOConfig,
    GiGPOConfig,
    GRPOConfig,
    MTGRPOConfig,
    RLOOConfig,
    StarPOFilter,
    compute_advantages,
    estimator_config,
    starpo_s_keep,
)
from turngym.trainers.table import TurnTable

APPROX = dict(rel=1e-5, abs=1e-6)


@pytest.fixture
def table_a() -> TurnTable:
    return TurnTable.from_episodes(
        [
            episode("e0", "g1", [0.5, 1.0], base=0),
            episode("e1", "g1", [0.0, 0.0, 0.0], base=100),
            episode("e2", "g1", [1.0], base=200),
            episode("e3", "g2", [0.0, 0.0], base=300),
            episode("e4", "g2", [0.0, 0.0], base=400),
        ]
    )


def per_turn(e0, e1, e2, g2=(0.0, 0.0, 0.0, 0.0)):
    """Per-turn expectations of table A from per-episode lists."""
    return [*e0, *e1, *e2, *g2]


# ---- GRPO ---------------------------------------------------------------------------------
# g1: R = [1.5, 0, 1], mean = 2.5/3 = 5/6; R - mean = [2/3, -5/6, 1/6]
# sum of squares = 16/36 + 25/36 + 1/36 = 42/36 = 7/6; var (ddof 1) = 7/12; std = 0.7637626
# A = [0.6666667/0.7637626, -0.8333333/0.7637626, 0.1666667/0.7637626] = [0.8728716, -1.0910895, 0.2182179]
# g2: all R = 0 -> R - mean = 0 -> A = 0
GRPO_G1 = (0.8728716, -1.0910895, 0.2182179)


def test_grpo_std(table_a):
    a, b, c = GRPO_G1
    adv = ESTIMATORS["grpo"][0](table_a, GRPOConfig())
    assert adv.turn.tolist() == pytest.approx(per_turn([a, a], [b, b, b], [c]), **APPROX)


def test_grpo_mean_only(table_a):
    # A = R - mean = [2/3, -5/6, 1/6]
    adv = ESTIMATORS["grpo"][0](table_a, GRPOConfig(norm="mean"))
    assert adv.turn.tolist() == pytest.approx(per_turn([2 / 3] * 2, [-5 / 6] * 3, [1 / 6]), **APPROX)


def test_grpo_population_std(table_a):
    # ddof 0: var = (7/6)/3 = 7/18, std = 0.6236096; A = [0.6666667, -0.8333333, 0.1666667] / 0.6236096
    adv = ESTIMATORS["grpo"][0](table_a, GRPOConfig(std_ddof=0))
    assert adv.turn[[0, 2, 5]].tolist() == pytest.approx([1.0690450, -1.3363062, 0.2672612], **APPROX)


def test_grpo_broadcasts_to_action_tokens_only(table_a):
    adv = ESTIMATORS["grpo"][0](table_a, GRPOConfig())
    e0 = table_a.episode(0)
    tok = adv.token[table_a.token_offsets[0] : table_a.token_offsets[1]]
    # e0 stream: 2 prompt, a0, o0, a1, o1 -> advantages only at positions 2 and 4
    assert e0.mask.tolist() == [0, 0, 1, 0, 1, 0]
    assert tok.tolist() == pytest.approx([0, 0, GRPO_G1[0], 0, GRPO_G1[0], 0], **APPROX)


def test_grpo_group_key_is_explicit(table_a):
    # grouping all five episodes by one instance hash changes the baseline: R = [1.5, 0, 1, 0, 0],
    # mean = 2.5/5 = 0.5; e0: 1.0 / std, std = sqrt((1 + .25 + .25 + .25 + .25)/4) = sqrt(0.5) = 0.7071068
    rewards = [[0.5, 1], [0, 0, 0], [1], [0, 0], [0, 0]]
    eps = [episode(f"e{k}", f"g{k}", r, instance_hash="same") for k, r in enumerate(rewards)]
    t = TurnTable.from_episodes(eps)
    adv = ESTIMATORS["grpo"][0](t, GRPOConfig(group_key="instance_hash"))
    assert adv.turn[0] == pytest.approx(1.0 / 0.7071068, **APPROX)
    # grouped by group_id every episode is alone: a group of one gives 0
    assert np.all(ESTIMATORS["grpo"][0](t, GRPOConfig()).turn == 0)


# ---- RLOO ---------------------------------------------------------------------------------
# e0: 1.5 - (0 + 1)/2 = 1.0; e1: 0 - (1.5 + 1)/2 = -1.25; e2: 1 - (1.5 + 0)/2 = 0.25; g2: 0 - 0 = 0
def test_rloo(table_a):
    adv = ESTIMATORS["rloo"][0](table_a, RLOOConfig())
    assert adv.turn.tolist() == pytest.approx(per_turn([1.0] * 2, [-1.25] * 3, [0.25]), **APPROX)


# ---- Flow-GRPO ----------------------------------------------------------------------------
# trajectories: o = [1, 0, 1], mean 2/3, o - mean = [1/3, -2/3, 1/3], ss = 6/9, var = 1/3, std = 0.5773503
#   A = [0.5773503, -1.1547005, 0.5773503], the same for every turn of the episode
FLOW_G1 = (0.5773503, -1.1547005, 0.5773503)


def test_flow_grpo_trajectory_stats(table_a):
    a, b, c = FLOW_G1
    adv = ESTIMATORS["flow_grpo"][0](table_a, FlowGRPOConfig())
    assert adv.turn.tolist() == pytest.approx(per_turn([a] * 2, [b] * 3, [c]), **APPROX)


def test_flow_grpo_turn_rows_stats(table_a):
    # turn rows of g1 carry o = [1, 1, 0, 0, 0, 1]: mean 3/6 = 0.5, each row is +-0.5 from it,
    # ss = 6 * 0.25 = 1.5, var = 1.5/5 = 0.3, std = 0.5477226 -> A = +-0.5/0.5477226 = +-0.9128709
    adv = ESTIMATORS["flow_grpo"][0](table_a, FlowGRPOConfig(group_stats="turn_rows"))
    assert adv.turn.tolist() == pytest.approx(per_turn([0.9128709] * 2, [-0.9128709] * 3, [0.9128709]), **APPROX)


def test_flow_grpo_outcome_from_success():
    # outcome="success" ignores the rewards: o = [1, 0] -> mean .5, std (ddof 1) = sqrt(0.5) -> A = +-0.7071068
    t = TurnTable.from_episodes(
        [episode("a", "g", [0.0, 0.0], success=True), episode("b", "g", [5.0], success=False)], outcome="success"
    )
    adv = ESTIMATORS["flow_grpo"][0](t, FlowGRPOConfig())
    assert adv.turn.tolist() == pytest.approx([0.7071068, 0.7071068, -0.7071068], **APPROX)


# ---- MT-GRPO ------------------------------------------------------------------------------
# Ahat^O = the Flow-GRPO trajectory numbers [0.5773503, -1.1547005, 0.5773503].
# Turn-index groups of g1 over the turns that are not final:
#   t=0: e0 (r 0.5), e1 (r 0)   [e2's t0 is final] -> mean .25, +-.25, var = 2*.0625/1 = .125,
#        std = 0.3535534 -> Ahat^T = [+0.7071068, -0.7071068]
#   t=1: e1 alone (e0's t1 is final) -> 0
def test_mt_grpo_aae(table_a):
    o0, o1, o2 = FLOW_G1
    adv = ESTIMATORS["mt_grpo"][0](table_a, MTGRPOConfig())
    expected = per_turn(
        [o0 + 0.7071068, o0],  # e0: t0 = 0.5773503 + 0.7071068 = 1.2844571; final t1 = Ahat^O
        [o1 - 0.7071068, o1 + 0.0, o1],  # e1: -1.8618073, -1.1547005 (singleton turn group), final
        [o2],  # e2: one turn, the final one
    )
    assert adv.turn.tolist() == pytest.approx(expected, **APPROX)
    assert adv.turn[0] == pytest.approx(1.2844571, **APPROX)


def test_mt_grpo_aae_lambda(table_a):
    # lambda = 0.5: e0 t0 = 0.5773503 + 0.5 * 0.7071068 = 0.9309037
    adv = ESTIMATORS["mt_grpo"][0](table_a, MTGRPOConfig(lam=0.5))
    assert adv.turn[0] == pytest.approx(0.9309037, **APPROX)


def test_mt_grpo_cae(table_a):
    # before the final turn: normalise(R^T + gamma R^O), gamma = 1:
    #   t=0: e0 0.5 + 1 = 1.5, e1 0 + 0 = 0 -> mean .75, +-.75, var = 1.125, std = 1.0606602 -> +-0.7071068
    #   t=1: e1 alone -> 0
    # final turns: Ahat^O
    o0, o1, o2 = FLOW_G1
    adv = ESTIMATORS["mt_grpo"][0](table_a, MTGRPOConfig(mode="cae"))
    assert adv.turn.tolist() == pytest.approx(per_turn([0.7071068, o0], [-0.7071068, 0.0, o1], [o2]), **APPROX)


def test_mt_grpo_return_to_go(table_a):
    # gamma = 1: G = e0 [1.5, 1], e1 [0, 0, 0], e2 [1]; turn-index groups over all turns:
    #   t=0: [1.5, 0, 1] -> the GRPO numbers [0.8728716, -1.0910895, 0.2182179]
    #   t=1: e0 1, e1 0 -> mean .5, var .5, std 0.7071068 -> [+0.7071068, -0.7071068]
    #   t=2: e1 alone -> 0
    a, b, c = GRPO_G1
    adv = ESTIMATORS["mt_grpo"][0](table_a, MTGRPOConfig(mode="rtg"))
    assert adv.turn.tolist() == pytest.approx(per_turn([a, 0.7071068], [b, -0.7071068, 0.0], [c]), **APPROX)


# ---- GiGPO --------------------------------------------------------------------------------
S = "You stand at the start."
RA = "You are in room A. Exits: north, south."
RA2 = "You are in room A. Exits: north, south!"  # difflib ratio to RA = 2*38/78 = 0.974 >= 0.95
RB = "You are in room B. Exits: east."  # ratio to RA 0.771: never fuzzy-equal
RC = "Dark cellar."


def gigpo_table(e2_second_state: str) -> TurnTable:
    # g1: e0 states [S, RA]      r [0, 1]     R 1   G(0.95) = [0.95, 1]
    #     e1 states [S, RB, RA]  r [0, 0, 1]  R 1   G = [0.9025, 0.95, 1]
    #     e2 states [S, X]       r [0, 0]     R 0   G = [0, 0]
    # g2: e3, e4 states [S, RA]  r [0, 0]     zero variance everywhere
    return TurnTable.from_episodes(
        [
            episode("e0", "g1", [0, 1], states=[S, RA]),
            episode("e1", "g1", [0, 0, 1], states=[S, RB, RA]),
            episode("e2", "g1", [0, 0], states=[S, e2_second_state]),
            episode("e3", "g2", [0, 0], states=[S, RA]),
            episode("e4", "g2", [0, 0], states=[S, RA]),
        ]
    )


# A^E over g1: R = [1, 1, 0], mean 2/3, R - mean = [1/3, 1/3, -2/3], std sqrt(1/3) = 0.5773503
#   -> A^E = [0.5773503, 0.5773503, -1.1547005]
# anchor "S" in g1: G = [0.95, 0.9025, 0], mean 1.8525/3 = 0.6175, G - mean = [0.3325, 0.285, -0.6175],
#   ss = 0.11055625 + 0.081225 + 0.38130625 = 0.5730875, var = 0.28654375, std = 0.5352978
#   -> A^S = [0.6211496, 0.5324139, -1.1535635]
# anchor "RA" in g1 (exact): e0t1 G 1, e1t2 G 1 -> equal -> 0; "RB" and e2's RC: singletons -> 0
AE = (0.5773503, 0.5773503, -1.1547005)
AS_START = (0.6211496, 0.5324139, -1.1535635)


def test_gigpo_exact_anchors():
    adv = ESTIMATORS["gigpo"][0](gigpo_table(RC), GiGPOConfig())
    expected = [
        AE[0] + AS_START[0], AE[0] + 0.0,  # e0: start anchor, RA anchor (both G = 1) -> 0
        AE[1] + AS_START[1], AE[1] + 0.0, AE[1] + 0.0,  # e1: start, RB singleton, RA
        AE[2] + AS_START[2], AE[2] + 0.0,  # e2: start, RC singleton -> 0
        0.0, 0.0, 0.0, 0.0,  # g2
    ]  # fmt: skip
    assert adv.turn.tolist() == pytest.approx(expected, **APPROX)


def test_gigpo_exact_anchor_is_not_fuzzy():
    # RA2 differs from RA by one character: with exact anchors it is its own singleton anchor -> 0,
    # so the result equals the table with RC
    a = ESTIMATORS["gigpo"][0](gigpo_table(RA2), GiGPOConfig())
    b = ESTIMATORS["gigpo"][0](gigpo_table(RC), GiGPOConfig())
    assert a.turn.tolist() == pytest.approx(b.turn.tolist(), **APPROX)


def test_gigpo_fuzzy_anchors():
    # fuzzy: e2t1 (RA2, G 0) joins the RA anchor {e0t1 G 1, e1t2 G 1}: mean 2/3, G - mean = [1/3, 1/3, -2/3],
    # std sqrt(1/3) -> A^S = [0.5773503, 0.5773503, -1.1547005]
    adv = ESTIMATORS["gigpo"][0](gigpo_table(RA2), GiGPOConfig(anchors="fuzzy"))
    assert adv.turn[[1, 4, 6]].tolist() == pytest.approx([AE[0] + 0.5773503, AE[1] + 0.5773503, AE[2] - 1.1547005], **APPROX)
    assert adv.turn[3] == pytest.approx(AE[1], **APPROX)  # RB stays a singleton (ratio 0.77 < 0.95)


def test_gigpo_mean_norm_and_omega():
    # mean_norm: F = 1. A^E = [1/3, 1/3, -2/3]; A^S(start) = [0.3325, 0.285, -0.6175]; omega = 2
    adv = ESTIMATORS["gigpo"][0](gigpo_table(RC), GiGPOConfig(norm="mean", omega=2.0))
    expected = [1 / 3 + 2 * 0.3325, 1 / 3, 1 / 3 + 2 * 0.285, 1 / 3, 1 / 3, -2 / 3 - 2 * 0.6175, -2 / 3, 0, 0, 0, 0]
    assert adv.turn.tolist() == pytest.approx(expected, **APPROX)


def test_gigpo_episode_stats_over_turn_rows():
    # verl-agent's code: episode statistics over the 7 turn rows of g1, R = [1, 1, 1, 1, 1, 0, 0]:
    # mean 5/7, R - mean = 2/7 (x5) and -5/7 (x2), ss = 5*4/49 + 2*25/49 = 70/49 = 10/7,
    # var = (10/7)/6 = 5/21, std = 0.4879500 -> A^E = 0.2857143/0.48795 = 0.5855400 and -1.4638501
    adv = ESTIMATORS["gigpo"][0](gigpo_table(RC), GiGPOConfig(episode_stats="turn_rows", omega=0.0))
    assert adv.turn[:7].tolist() == pytest.approx([0.5855400] * 5 + [-1.4638501] * 2, **APPROX)


# ---- bi-level GAE -------------------------------------------------------------------------
def gae_table() -> tuple[TurnTable, np.ndarray]:
    # one episode: [p, p, a0, a0, o0, a1, o1]: prompt 2, turn 0 action 2 tokens, turn 1 action 1 token
    t = TurnTable.from_episodes([episode("e", "g", [0.0, 1.0], action_lens=[2, 1])])
    values = np.array([9.0, 9.0, 0.5, 0.6, 9.0, 0.8, 9.0])  # 9.0 on tokens that carry no loss: never read
    return t, values


def test_bilevel_gae_hand():
    # V(e_0) = 0.6 (last token of turn 0), V(e_1) = 0.8, gamma_turn = 0.95, gamma = lambda = 1
    # turn 1: delta_1 = 1 + 0.95*0 - 0.8 = 0.2            -> Ahat_1 = 0.2
    # turn 0: delta_0 = 0 + 0.95*0.8 - 0.6 = 0.16         -> Ahat_0 = 0.16 + 0.95*1*0.2 = 0.35
    # tokens of turn 0: last token reward 0.35 + 0.6 = 0.95:
    #   k=3: delta = 0.95 - 0.6 = 0.35 -> A = 0.35;  k=2: delta = 0 + 0.6 - 0.5 = 0.1 -> A = 0.1 + 0.35 = 0.45
    # token of turn 1: reward 0.2 + 0.8 = 1.0 -> A = 1.0 - 0.8 = 0.2
    # returns = A + V = [0.95, 0.95, 1.0]
    t, values = gae_table()
    adv = compute_advantages(t, BilevelGAEConfig(whiten=False), values=values)
    assert adv.turn.tolist() == pytest.approx([0.35, 0.2], **APPROX)
    assert adv.token.tolist() == pytest.approx([0, 0, 0.45, 0.35, 0, 0.2, 0], **APPROX)
    assert adv.returns.tolist() == pytest.approx([0, 0, 0.95, 0.95, 0, 1.0, 0], **APPROX)


def test_bilevel_gae_whitened():
    # A = [0.45, 0.35, 0.2], mean 1/3, A - mean = [0.1166667, 0.0166667, -0.1333333],
    # ss = 0.0316667, var (ddof 1) = 0.0158333, std = 0.1258306 -> [0.9271726, 0.1324532, -1.0596259]
    t, values = gae_table()
    adv = compute_advantages(t, BilevelGAEConfig(), values=values)
    assert adv.token[[2, 3, 5]].tolist() == pytest.approx([0.9271726, 0.1324532, -1.0596259], **APPROX)
    assert adv.returns[[2, 3, 5]].tolist() == pytest.approx([0.95, 0.95, 1.0], **APPROX)  # targets unwhitened


def test_bilevel_gae_lambda():
    # lambda = 0.5 at both levels: Ahat_1 = 0.2; Ahat_0 = 0.16 + 0.95*0.5*0.2 = 0.255
    # turn 0 tokens: last reward 0.255 + 0.6 -> A = 0.255; first: 0.1 + 1*0.5*0.255 = 0.2275
    t, values = gae_table()
    adv = compute_advantages(t, BilevelGAEConfig(lam=0.5, whiten=False), values=values)
    assert adv.turn.tolist() == pytest.approx([0.255, 0.2], **APPROX)
    assert adv.token[[2, 3, 5]].tolist() == pytest.approx([0.2275, 0.255, 0.2], **APPROX)


def test_bilevel_gae_needs_values():
    t, _ = gae_table()
    with pytest.raises(ValueError, match="needs critic values"):
        compute_advantages(t, BilevelGAEConfig())
    with pytest.raises(ValueError, match="one critic value per token"):
        compute_advantages(t, BilevelGAEConfig(), values=np.zeros(3))


# ---- StarPO-S filter ----------------------------------------------------------------------
def test_starpo_s_filter_keeps_high_variance_groups(table_a):
    # add g3: R = [0, 4] (var 4) and g4: R = [1, 1] (var 0). Variances (population): g1 = (7/6)/3 = 0.389,
    # g2 = 0, g3 = 4, g4 = 0. keep_fraction 0.5 of 4 groups -> the 2 highest: g3 and g1.
    eps = [episode(f"e{k}", g, r) for k, (g, r) in enumerate(
        [("g1", [0.5, 1]), ("g1", [0, 0, 0]), ("g1", [1]), ("g2", [0, 0]), ("g2", [0, 0]),
         ("g3", [0]), ("g3", [4]), ("g4", [1]), ("g4", [1])]
    )]  # fmt: skip
    t = TurnTable.from_episodes(eps)
    keep = starpo_s_keep(t, StarPOFilter(keep_fraction=0.5))
    assert keep.tolist() == [True, True, True, False, False, True, True, False, False]
    adv = compute_advantages(t, GRPOConfig(), filter=StarPOFilter(keep_fraction=0.5))
    # g1 unchanged by the filter; g3: R = [0, 4], mean 2, std (ddof 1) = sqrt(8) = 2.8284271 -> +-0.7071068
    a, b, c = GRPO_G1
    assert adv.turn.tolist() == pytest.approx([a, a, b, b, b, c, 0, 0, 0, 0, -0.7071068, 0.7071068, 0, 0], **APPROX)
    assert adv.keep.tolist() == keep.tolist()
    assert np.all(adv.token[t.token_positions_of([3, 4, 7, 8])] == 0)
    # at least one group survives a tiny fraction
    assert starpo_s_keep(t, StarPOFilter(keep_fraction=0.01)).sum() == 2  # g3's two episodes


def test_starpo_s_filter_with_critic_estimator():
    # the filter slices the critic values with the episodes it keeps
    t = TurnTable.from_episodes(
        [
            episode("a", "g1", [0.0, 1.0], action_lens=[2, 1]),
            episode("b", "g1", [0.0]),
            episode("c", "g2", [1.0]),
            episode("d", "g2", [1.0]),
        ]
    )
    values = np.zeros(len(t.tokens))
    values[:7] = [9.0, 9.0, 0.5, 0.6, 9.0, 0.8, 9.0]  # episode a: as in gae_table
    adv = compute_advantages(t, BilevelGAEConfig(whiten=False), values=values, filter=StarPOFilter(keep_fraction=0.5))
    assert adv.keep.tolist() == [True, True, False, False]
    assert adv.token[:7].tolist() == pytest.approx([0, 0, 0.45, 0.35, 0, 0.2, 0], **APPROX)


# ---- registry -----------------------------------------------------------------------------
def test_estimator_registry_and_config():
    assert set(ESTIMATORS) == {"grpo", "rloo", "flow_grpo", "mt_grpo", "gigpo", "bilevel_gae", "branch_baseline"}
    cfg = estimator_config({"name": "gigpo", "anchors": "fuzzy"})
    assert isinstance(cfg, GiGPOConfig) and cfg.anchors == "fuzzy" and cfg.similarity == 0.95
    with pytest.raises(ValueError, match="unknown advantage estimator 'ppo'"):
        estimator_config("ppo")
    with pytest.raises(ValueError):
        GiGPOConfig(anchors="approximate")  # typed Literal options


def test_empty_group_id_is_an_error():
    t = TurnTable.from_episodes([episode("a", "", [1.0]), episode("b", "", [0.0])])
    with pytest.raises(ValueError, match="empty group_id"):
        compute_advantages(t, GRPOConfig())

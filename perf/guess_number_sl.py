"""Supervised check of the quickstart's model: can it represent GuessNumber's binary search at all?

    .venv/bin/python perf/guess_number_sl.py .cache/turngym/models/guess-number-tiny

Cross-entropy on the scripted expert's actions (binary search), token streams built by the same
Conversation the agents use, 64 fresh episodes per step, AdamW lr 1e-3, 300 steps; then greedy
constrained eval on the 64 held-out seeds the quickstart uses. It separates "the model or the stream
cannot express the policy" from "RL from scratch has not found it yet".
"""

import asyncio
import sys
import time

import numpy as np
import torch

torch.set_num_threads(1)
from transformers import AutoModelForCausalLM, AutoTokenizer

import turngym
from turngym.agents.conversation import Conversation
from turngym.envs.games.guess_number import expert

path = sys.argv[1]
tok = AutoTokenizer.from_pretrained(path)
eos = tok.convert_tokens_to_ids("<|im_end|>")


def play(seed):
    env = turngym.make("turngym/GuessNumber-v0", low=1, high=16, max_turns=6)
    obs, _ = env.reset(seed=seed)
    pol = expert(env.unwrapped)
    conv = Conversation(tokenizer=tok, system=None)
    for t in range(6):
        conv.add_observation(obs.messages)
        a = pol(obs)
        ids = tok.encode(a, add_special_tokens=False) + [eos]
        conv.add_reply(ids, [0.0] * len(ids), eos_id=eos)
        obs, _reward, term, trunc, _info = env.step(a)
        if term or trunc:
            break
    return list(conv.tokens), list(conv.mask)


m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
rng = np.random.default_rng(0)
t0 = time.time()
for step in range(301):
    data = [play(int(s)) for s in rng.integers(0, 10**6, 64)]
    L = max(len(x) for x, _ in data)
    ids = torch.zeros(64, L, dtype=torch.long)
    mask = torch.zeros(64, L, dtype=torch.bool)
    att = torch.zeros(64, L, dtype=torch.long)
    for i, (x, mk) in enumerate(data):
        ids[i, : len(x)] = torch.tensor(x)
        mask[i, : len(x)] = torch.tensor(mk, dtype=torch.bool)
        att[i, : len(x)] = 1
    logits = m(input_ids=ids, attention_mask=att).logits[:, :-1]
    lp = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:, None])[..., 0]
    loss = -(lp * mask[:, 1:]).sum() / mask[:, 1:].sum()
    opt.zero_grad()
    loss.backward()
    opt.step()
    if step % 50 == 0:
        print(step, round(loss.item(), 3), round(time.time() - t0, 1), flush=True)
m.save_pretrained("/tmp/turngym-sl-model")
tok.save_pretrained("/tmp/turngym-sl-model")
import shutil

shutil.copy(path + "/chat_template.jinja", "/tmp/turngym-sl-model/chat_template.jinja")
from turngym.agents.hf import HFBackend
from turngym.agents.llm import LLMAgent
from turngym.agents.runner import group_tasks, run_episodes
from turngym.agents.sampling import SamplingConfig

b = HFBackend(model="/tmp/turngym-sl-model")
agent = LLMAgent(
    backend=b,
    sampling=SamplingConfig(
        max_new_tokens=6, constrain=True, canonical=True, temperature=0
    ),
    system_prompt="",
)
eps = asyncio.run(
    run_episodes(
        group_tasks(
            "turngym/GuessNumber-v0",
            seeds=range(10**9, 10**9 + 64),
            env_kwargs={"low": 1, "high": 16},
            max_turns=6,
        ),
        agent,
        concurrency=64,
    )
)
print("greedy success after SL", sum(bool(e.success) for e in eps) / 64)

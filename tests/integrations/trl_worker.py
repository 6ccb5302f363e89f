"""Runs inside .venv-trl (tests/integrations/test_trl.py): 2 steps of TRL's GRPOTrainer on CPU with
``environment_factory("turngym/GuessNumber-v0", high=16)``, then writes what it saw as JSON.

    python tests/integrations/trl_worker.py MODEL_DIR OUT.json

Real: TRL 1.16's GRPOTrainer (its prompt rendering, tool discovery, tool-call parsing, tool loop, reward
scoring, loss and optimizer step), the turngym env behind the generated class, and the tiny random-weight
model (a real mistral-common tokenizer) that the loss trains. Scripted: the model's ``generate``. A random
model almost never writes a valid tool call, so ``generate`` is replaced on the model instance with a
player that writes the tool calls itself, as text in the Qwen format (``<tool_call>{json}</tool_call>``),
tokenised by the real tokenizer. It binary-searches the secret from the env's hints in the conversation
TRL hands it; every second rollout of the first turn guesses [1] and then gives up, so a group's rewards
differ and the update has a non-zero advantage. The chat template is the Qwen2.5 template that TRL ships
(it recognises it and parses its tool calls), put on the tiny model's tokenizer.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
START = time.monotonic()

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import GRPOConfig, GRPOTrainer
from trl.chat_template_utils import qwen2_5_chat_template

import turngym
from turngym.integrations.trl import environment_factory

ENV_ID, HIGH, GROUP = "turngym/GuessNumber-v0", 16, 4
HINT = re.compile(r"The secret is (higher|lower) than (\d+)\.")


def scripted_reply(text: str, first_turn_row: int | None) -> str:
    """The player's next reply, from the conversation so far (the decoded prompt and completion)."""
    convo = (
        text.split("<|im_start|>assistant", 1)[1]
        if "<|im_start|>assistant" in text
        else ""
    )
    guesses = re.findall(r'"move": "\[(\d+)\]"', convo)
    if "is right!" in convo or "The episode is over." in convo:
        return "I found it.<|im_end|>"
    if (
        first_turn_row is not None
    ):  # the first turn: every second rollout starts with [1]
        guess = 1 if first_turn_row % 2 else (1 + HIGH) // 2
    elif guesses and guesses[0] == "1":  # the lazy player gives up after its first hint
        return "I give up.<|im_end|>"
    else:
        low, high = 1, HIGH
        for side, n in HINT.findall(convo):
            low, high = (
                (max(low, int(n) + 1), high)
                if side == "higher"
                else (low, min(high, int(n) - 1))
            )
        guess = (low + high) // 2
    call = json.dumps({"name": "act", "arguments": {"move": f"[{guess}]"}})
    return f"<tool_call>\n{call}\n</tool_call><|im_end|>"


def script_generate(model, tokenizer, calls: list[int]):
    def generate(input_ids, attention_mask=None, **_):
        calls.append(len(input_ids))
        first_turn = not any(
            "<tool_response>" in tokenizer.decode(row) for row in input_ids
        )
        replies = []
        for i, row in enumerate(input_ids):
            text = tokenizer.decode(
                row[attention_mask[i].bool()] if attention_mask is not None else row
            )
            replies.append(
                tokenizer.encode(
                    scripted_reply(text, i if first_turn else None),
                    add_special_tokens=False,
                )
            )
        width = max(map(len, replies))
        pad = tokenizer.pad_token_id
        new = torch.tensor(
            [r + [pad] * (width - len(r)) for r in replies], dtype=input_ids.dtype
        )
        return torch.cat([input_ids, new.to(input_ids.device)], dim=1)

    model.generate = generate


def main(model_dir: str, out: str) -> None:
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.chat_template = qwen2_5_chat_template
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    calls: list[int] = []
    script_generate(model, tokenizer, calls)

    Env = environment_factory(ENV_ID, high=HIGH)
    seen: list[dict] = []

    def recorder(environments, completions, seed, **kwargs):
        """Records what reached the reward function; adds nothing to the reward."""
        seen.append(
            {
                "seeds": [int(s) for s in seed],
                "rewards": [env.reward for env in environments],
                "turns": [env.turns for env in environments],
                "success": [env.success for env in environments],
                "secrets": [env.env.unwrapped.secret for env in environments],
                "classes": sorted({type(env).__name__ for env in environments}),
                "tool_messages": [
                    sum(m["role"] == "tool" for m in c) for c in completions
                ],
            }
        )
        return [0.0] * len(environments)

    prompt = [{"role": "user", "content": "Play the game with the act tool.\n\n"}]
    dataset = Dataset.from_list([{"prompt": prompt, "seed": s} for s in range(8)])
    args = GRPOConfig(
        output_dir=os.path.join(os.path.dirname(out), "trl-run"),
        use_cpu=True,
        bf16=False,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        max_steps=2,
        logging_steps=1,
        learning_rate=1e-2,
        beta=0.0,
        per_device_train_batch_size=GROUP,
        num_generations=GROUP,
        max_completion_length=512,
        max_tool_calling_iterations=8,
        shuffle_dataset=False,
    )
    trainer = GRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[recorder],
        train_dataset=dataset,
        args=args,
        environment_factory=Env,
    )
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    changed = sum(
        not torch.equal(before[n], p.detach()) for n, p in model.named_parameters()
    )
    # the secrets the env gives for each seed, from a fresh env: the row's seed reached reset
    expected = {}
    check_env = turngym.make(ENV_ID, high=HIGH)
    for s in sorted({s for step in seen for s in step["seeds"]}):
        check_env.reset(seed=s)
        expected[s] = check_env.unwrapped.secret
    with open(out, "w") as f:
        json.dump(
            {
                "logs": logs,
                "seen": seen,
                "generate_calls": calls,
                "params_changed": changed,
                "params": len(before),
                "expected_secrets": expected,
                "class_name": Env.__name__,
                "wall_s": time.monotonic() - START,
            },
            f,
            indent=1,
        )


if __name__ == "__main__":
    main(*sys.argv[1:3])

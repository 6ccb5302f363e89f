"""Runs inside .venv-trl (tests/integrations/test_sft_export.py): 2 steps of TRL's SFTTrainer on CPU on the
``sft.jsonl`` that ``turngym export episodes RUN --format sft`` wrote from a GuessNumber eval, then writes
what it saw as JSON.

    python tests/integrations/sft_worker.py MODEL_DIR SFT_DIR OUT.json

Real: ``datasets.load_dataset("json")`` reading the export, TRL 1.16's SFTTrainer with
``assistant_only_loss=True`` (its chat-template rendering, the assistant mask from the template's
``{% generation %}`` markers, the loss and two optimizer steps) and the tiny random-weight model with a real
tokenizer. The chat template is the Qwen2.5 template TRL ships (it has a training variant with generation
markers), put on the tiny model's tokenizer, as trl_worker.py does.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
START = time.monotonic()

import torch
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer
from trl.chat_template_utils import qwen2_5_chat_template


def main(model_dir: str, sft_dir: str, out: str) -> None:
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.chat_template = qwen2_5_chat_template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    dataset = load_dataset("json", data_files=os.path.join(sft_dir, "sft.jsonl"), split="train")
    args = SFTConfig(
        output_dir=os.path.join(os.path.dirname(out), "sft-run"),
        use_cpu=True,
        bf16=False,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        max_steps=2,
        logging_steps=1,
        learning_rate=1e-2,
        per_device_train_batch_size=2,
        assistant_only_loss=True,
        max_length=1024,
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    # the texts the loss covers in the first rows, as the trainer's collator masks them
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(min(4, len(trainer.train_dataset)))])
    trained = []
    for ids, labels in zip(batch["input_ids"], batch["labels"]):
        spans, cur = [], []
        for i, lab in zip(ids.tolist(), labels.tolist()):
            if lab != -100:
                cur.append(i)
            elif cur:
                spans.append(cur)
                cur = []
        spans += [cur] if cur else []
        trained.append([tokenizer.decode(s) for s in spans])
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    changed = sum(not torch.equal(before[n], p.detach()) for n, p in model.named_parameters())
    with open(out, "w") as f:
        json.dump(
            {
                "rows": len(dataset),
                "columns": dataset.column_names,
                "episode_ids": dataset["episode_id"][:4],
                "trained_texts": trained,
                "logs": logs,
                "params_changed": changed,
                "params": len(before),
                "wall_s": time.monotonic() - START,
            },
            f,
            indent=1,
        )


if __name__ == "__main__":
    main(*sys.argv[1:4])

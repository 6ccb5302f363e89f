"""Runs under .venv-vllm's python (vLLM is not in the main venv): two iterations of the on-policy
trainer with rollouts in the in-process vLLM engine, for tests/trainers/test_vllm_train.py.

    .venv-vllm/bin/python tests/trainers/vllm_train_worker.py MODEL_DIR RUN_DIR [--sabotage]

--sabotage replaces the engine's weight load with a no-op: the probe must stop the run.
Prints one JSON line: {"ok": bool, "error": str | null}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.trainers.test_onpolicy import config
from turngym.trainers.config import TrainConfig
from turngym.trainers.onpolicy import OnPolicyTrainer


def main(model: str, run_dir: str, sabotage: bool) -> None:
    if sabotage:
        from turngym.agents.vllm import VLLMBackend

        async def ignore(self, weights):
            list(weights)

        VLLMBackend.load_weights = ignore
    data = config(Path(run_dir), Path(model), **{
        "model.backend": "vllm", "model.backend_options": {"max_model_len": 512},
        "optim.lr": 0.05 if sabotage else 0.01, "iterations": 3 if sabotage else 2,
        "rollout.groups": 4, "eval.every": 0 if sabotage else 2, "tensorboard": False,
    })
    try:
        OnPolicyTrainer(TrainConfig(**data)).run(progress=False)
        print(json.dumps({"ok": True, "error": None}))
    except Exception as e:  # noqa: BLE001 - reported to the test
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], "--sabotage" in sys.argv[3:])

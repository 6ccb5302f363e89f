"""The trained policy as a model: loaded for training, written out as a plain Hugging Face model directory.

    model = load_policy(cfg, device)                        # float32 master weights, LoRA adapters if configured
    save_model_dir(model, cfg.model.path, "ckpt/model")     # what `hf:DIR`, `vllm:DIR` and `vllm serve DIR` load
    export_model("runs/gn", out="models/gn", checkpoint=12) # a run's checkpoint model, copied out

A model directory holds the weights with LoRA merged (computed out of place, so the training model keeps its
adapters), the model config, the tokenizer, and the base model's ``chat_template.jinja`` and
``turngym_tiny.json`` where it has them: nothing refers back to the run or to the base model.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from turngym.agents.hf.backend import quiet_hf
from turngym.core.errors import ConfigError

__all__ = ["MODEL_DIR", "export_model", "is_lora", "load_policy", "quiet_hf", "save_model_dir"]

#: the model directory inside a checkpoint
MODEL_DIR = "model"
#: files of the base model directory copied next to the weights (the tokenizer is re-saved)
_EXTRA_FILES = ("chat_template.jinja", "turngym_tiny.json")


def is_lora(model: torch.nn.Module) -> bool:
    return hasattr(model, "peft_config")


def load_policy(cfg: Any, device: torch.device) -> Any:
    """The trainable model of ``cfg.model`` (float32 master weights; LoRA adapters if configured)."""
    from transformers import AutoModelForCausalLM

    if not Path(cfg.model.path).is_dir():
        raise ConfigError(
            f"model.path {cfg.model.path!r} is not a directory: pass a local Hugging Face model "
            "(build a tiny one with `turngym models tiny --out DIR`)"
        )
    with quiet_hf():
        model = AutoModelForCausalLM.from_pretrained(cfg.model.path, dtype=torch.float32).to(device)
    if cfg.model.lora is not None:
        from peft import LoraConfig, get_peft_model

        lora = cfg.model.lora
        model = get_peft_model(
            model,
            LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.target_modules)),
        )
    return model.eval()


def save_model_dir(
    model: torch.nn.Module, base: str | os.PathLike[str], out: str | os.PathLike[str], *, tokenizer: Any = None
) -> Path:
    """Write ``model`` (LoRA merged) as a plain Hugging Face model directory ``out``, with the tokenizer and
    the extra files of the base model directory ``base``. The model itself is left as it is."""
    from turngym.trainers.engine import served_weights

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with quiet_hf():
        if is_lora(model):
            plain = model.get_base_model()  # type: ignore[attr-defined]
            weights = {name: t.contiguous() for name, t in served_weights(model)}
            plain.save_pretrained(out, state_dict=weights, safe_serialization=True)
        else:
            model.save_pretrained(out, safe_serialization=True)  # type: ignore[attr-defined]
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(base)
    tokenizer.save_pretrained(out)
    for name in _EXTRA_FILES:
        src = Path(base) / name
        if src.is_file():
            shutil.copyfile(src, out / name)
    return out


def export_model(run_dir: str | os.PathLike[str], *, out: str | os.PathLike[str], checkpoint: int | None = None) -> Path:
    """Copy the model directory of a training run's checkpoint (``checkpoint``: its iteration; None: the
    newest, ``checkpoints/LATEST``) to ``out``. ConfigError names what is missing and the fix."""
    from turngym.trainers.run import RunDir

    run = Path(run_dir)
    if not run.is_dir():
        raise ConfigError(f"{str(run)!r} does not exist: pass the run_dir of a `turngym train` run")
    ckpts = run / "checkpoints"
    done = sorted(p.name for p in ckpts.glob("iter-*") if p.is_dir()) if ckpts.is_dir() else []
    if checkpoint is None:
        ckpt = RunDir(run, tensorboard=False).latest()
        if ckpt is None:
            raise ConfigError(
                f"{str(run)!r} holds no checkpoint: it is not a `turngym train` run, or the run was stopped before "
                "its first checkpoint (resume it with `turngym train --config FILE --resume`)"
            )
    else:
        ckpt = ckpts / f"iter-{checkpoint:06d}"
        if not ckpt.is_dir():
            have = ", ".join(str(int(n.removeprefix("iter-"))) for n in done) or "none"
            raise ConfigError(
                f"{str(run)!r} has no checkpoint {checkpoint} (checkpoints kept: {have}): pass one of these to "
                "--checkpoint, or leave it out for the newest"
            )
    src = ckpt / MODEL_DIR
    if not (src / "config.json").is_file():
        raise ConfigError(
            f"checkpoint {str(ckpt)!r} holds no model directory ({MODEL_DIR}/): it was written by an older turngym; "
            "resume the run with this version to write checkpoints that hold one"
        )
    dest = Path(out)
    if dest.exists() and any(dest.iterdir()):
        raise ConfigError(f"--out {str(dest)!r} exists and is not empty: pass a new directory")
    shutil.copytree(src, dest, dirs_exist_ok=True)
    return dest

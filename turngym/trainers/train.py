"""``turngym train``: load a run's config and hand it to its trainer.

    cfg = train_config("gn.yaml", overrides=["optim.lr=1e-5"])
    summary = make_trainer(cfg).run(resume=False)

``algorithm: archer`` goes to ArCHer (turngym.trainers.archer); every other name is an advantage
estimator of the on-policy loop (turngym.trainers.onpolicy). ``make_trainer`` first checks what the
config names on this machine (``check_inputs``: the model directory, the env id or suite, ArCHer's
dataset and encoder), so a mistake ends in a named error before any model loads.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from turngym.core.config import apply_overrides, read_yaml, validate_config
from turngym.core.errors import ConfigError, RegistryError
from turngym.trainers.config import TrainConfig

__all__ = ["check_inputs", "make_trainer", "train_config"]


def train_config(path: str | os.PathLike[str], overrides: Sequence[str] = ()) -> TrainConfig:
    """The run's config from the YAML at ``path`` and ``--set`` overrides. A bare ``algorithm: NAME``
    (in the file or set by an override) is read as ``{name: NAME}`` before the next override, so
    ``--set algorithm=gigpo --set algorithm.omega=0.5`` works."""

    def expand(data: dict[str, Any]) -> dict[str, Any]:
        if isinstance(data.get("algorithm"), str):
            data["algorithm"] = {"name": data["algorithm"]}
        return data

    data = expand(read_yaml(path))
    for override in overrides:
        data = expand(apply_overrides(data, [override]))
    return validate_config(TrainConfig, data, source=str(path))


#: what ``model.path`` must be
MODEL_DIR = (
    "a local Hugging Face model directory (config.json, weights, tokenizer): build a small one with "
    "`turngym models tiny --out DIR`"
)


def check_inputs(cfg: TrainConfig) -> None:
    """What ``cfg`` names must exist here: ``model.path`` a model directory, ``env.id`` registered (or the
    suite known), ArCHer's ``dataset`` and ``critic.encoder_path``. Raises ``ConfigError`` or
    ``RegistryError`` naming the value and the fix; cheap (no model, no env is built)."""
    _check_dir("model.path", cfg.model.path, MODEL_DIR)
    if not (Path(cfg.model.path).expanduser() / "config.json").is_file():
        raise ConfigError(
            f"model.path={cfg.model.path!r} has no config.json, so it is not a model directory: it must be "
            f"{MODEL_DIR}. Fix it in the YAML file or with --set model.path=DIR."
        )
    if cfg.env is not None:
        from turngym.core.registry import env_info

        try:
            env_info(cfg.env.id)
        except RegistryError as e:
            raise RegistryError(f"env.id: {e} Fix it in the YAML file or with --set env.id=ID.") from None
    if cfg.suite is not None:
        from turngym.benchmarks.suite import load_suite

        load_suite(cfg.suite)
    algorithm = cfg.algorithm
    if algorithm.name == "archer":
        if algorithm.critic.encoder_path is not None:
            _check_dir("algorithm.critic.encoder_path", algorithm.critic.encoder_path,
                       "a local model directory for the critic's encoder (any transformers AutoModel)")
        if algorithm.mode == "offline" and not Path(algorithm.dataset or "").expanduser().exists():
            raise ConfigError(
                f"algorithm.dataset={algorithm.dataset!r} does not exist: give the saved episodes to train on "
                "(a training or an eval run directory, or its episodes.jsonl)"
            )
        if algorithm.mode == "offline":
            from turngym.trainers.archer.offline import offline_store

            offline_store(Path(algorithm.dataset or "").expanduser())  # ConfigError where it holds no episode store


def _check_dir(key: str, value: str, what: str) -> None:
    if not Path(value).expanduser().is_dir():
        cause = "is a file" if Path(value).expanduser().exists() else "does not exist"
        raise ConfigError(f"{key}={value!r} {cause}: it must be {what}. Fix it in the YAML file or with --set {key}=DIR.")


def make_trainer(cfg: TrainConfig) -> Any:
    """The trainer of ``cfg.algorithm``: an object with ``run(resume=..., progress=...) -> dict``,
    after ``check_inputs(cfg)``."""
    check_inputs(cfg)
    if cfg.algorithm_name == "archer":
        from turngym.trainers.archer.trainer import ArcherTrainer

        return ArcherTrainer(cfg)
    from turngym.trainers.onpolicy import OnPolicyTrainer

    return OnPolicyTrainer(cfg)

"""ArCHer's configuration, with the reference hyper-parameters (RESEARCH.md section 5) as defaults.

Where the paper gives a range, the default is picked inside it and the field says so. The reference
code's batch is 8 transitions x 32 gradient-accumulation steps = 256 per critic/actor step
(YifeiZhou02/ArCHer, scripts/config/archer_20q.yaml); ``batch_size`` and ``micro_batch_size`` keep that.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ArcherActorConfig", "ArcherConfig", "ArcherCriticConfig"]


class ArcherCriticConfig(BaseModel):
    """The utterance-level critic: double Q and double V heads over an encoder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    encoder: Literal["separate", "policy"] = Field(
        "separate",
        description="'separate': a small encoder model of its own (encoder_path); "
        "'policy': the policy's own hidden states, with separate heads",
    )
    encoder_path: str | None = Field(
        None,
        description="local directory of the separate encoder (any transformers AutoModel); None: the loop's default",
    )
    pooling: Literal["mean", "last"] = Field("mean", description="how a sequence's hidden states become phi(x)")
    max_length: int = Field(512, ge=8, description="encoder input tokens; longer histories lose their oldest turns")
    hidden_dim: int | None = Field(None, ge=1, description="width of the Q/V heads; None: the encoder's width")
    lr: float = Field(2e-5, gt=0, description="critic learning rate; the paper's range is 1e-5..2e-5, 2e-5 picked")
    steps_per_iteration: int = Field(50, ge=1, description="critic gradient steps per iteration")

    @model_validator(mode="after")
    def _encoder_path_only_when_separate(self) -> ArcherCriticConfig:
        if self.encoder == "policy" and self.encoder_path is not None:
            raise ValueError(
                f"critic.encoder='policy' uses the policy's hidden states, so encoder_path={self.encoder_path!r} "
                "would be ignored; drop encoder_path or set encoder='separate'"
            )
        return self


class ArcherActorConfig(BaseModel):
    """The token-level actor: REINFORCE on fresh samples with A = min_k Q_k - min_k V_k."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lr: float = Field(1e-5, gt=0, description="actor learning rate; the paper's range is 1e-6..1e-5, 1e-5 picked")
    steps_per_iteration: int = Field(3, ge=1, description="actor gradient steps per iteration")
    token_baseline: bool = Field(False, description="subtract a learned per-token baseline b(s, a~_<j) from A")
    max_new_tokens: int = Field(32, ge=1, description="tokens per sampled utterance a~")
    temperature: float = Field(1.0, gt=0, description="sampling temperature of a~ ~ pi_theta(.|s)")


class ArcherConfig(BaseModel):
    """``algorithm: {name: archer, ...}``: the options below sit under ``algorithm`` in a run's YAML.
    Frozen: validated once, read from one place."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Literal["archer"] = Field("archer", description="the algorithm: ArCHer (utterance critic + token actor)")
    mode: Literal["online", "offline"] = Field(
        "online", description="'online': collect episodes each iteration; 'offline': train on a saved run's episodes"
    )
    dataset: str | None = Field(
        None,
        description="offline: the saved episodes to train on: a run's episode store, a training or an eval run "
        "directory (runs/NAME) or its episodes.jsonl",
    )
    gamma: float = Field(0.95, ge=0.0, le=1.0, description="discount per turn")
    tau: float = Field(0.1, gt=0.0, le=1.0, description="Polyak rate of the target critic, after every critic step")
    trajectories_per_iteration: int = Field(128, ge=1, description="episodes collected per iteration (online)")
    warmup_iterations: int = Field(
        10, ge=0, description="critic-only iterations before the actor trains (the paper uses 10-20)"
    )
    batch_size: int = Field(256, ge=1, description="transitions per critic/actor step")
    micro_batch_size: int = Field(8, ge=1, description="transitions per forward pass (gradient accumulation)")
    grad_clip: float = Field(1.0, gt=0, description="max global grad norm, for critic and actor alike")
    buffer_capacity: int = Field(100_000, ge=1, description="replay buffer size in transitions")
    critic: ArcherCriticConfig = Field(
        default_factory=ArcherCriticConfig, description="the utterance-level critic (ArcherCriticConfig)"
    )
    actor: ArcherActorConfig = Field(default_factory=ArcherActorConfig, description="the token-level actor (ArcherActorConfig)")

    @model_validator(mode="after")
    def _offline_needs_dataset(self) -> ArcherConfig:
        if self.mode == "offline" and not self.dataset:
            raise ValueError(
                "mode='offline' trains on saved episodes but dataset is not set: give algorithm.dataset a run "
                "directory (training or eval: runs/NAME) or its episodes.jsonl"
            )
        return self

    @model_validator(mode="after")
    def _micro_batches_divide(self) -> ArcherConfig:
        if self.batch_size % self.micro_batch_size:
            raise ValueError(
                f"batch_size={self.batch_size} is not a multiple of micro_batch_size={self.micro_batch_size}; "
                "pick sizes so each step accumulates whole micro-batches"
            )
        return self

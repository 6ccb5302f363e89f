"""ArcherConfig: the reference hyper-parameters as defaults, validation, a light import."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

import turngym.trainers.archer as archer
from turngym.trainers.archer.config import ArcherConfig


def test_reference_defaults():
    c = ArcherConfig()
    assert (c.gamma, c.tau, c.warmup_iterations) == (0.95, 0.1, 10)
    # chosen for a CPU run (the reference code: 50 critic steps on 8 x 32 = 256 transitions); the actor's 3 steps
    c_steps, a_steps = c.critic.steps_per_iteration, c.actor.steps_per_iteration
    assert (c_steps, a_steps, c.batch_size, c.micro_batch_size) == (10, 3, 64, 16)
    assert 1e-5 <= c.critic.lr <= 2e-5  # the actor's lr is the shared optim.lr
    assert (c.critic.grad_clip, c.buffer_capacity, c.actor.max_new_tokens) == (1.0, 100_000, 32)
    assert not {"trajectories_per_iteration", "grad_clip"} & set(ArcherConfig.model_fields)  # rollout's, optim's
    assert "lr" not in type(c.actor).model_fields
    for field in ("batch_size", "micro_batch_size"):  # the reference values stay visible
        assert "reference" in (ArcherConfig.model_fields[field].description or "")
    assert "50" in (type(c.critic).model_fields["steps_per_iteration"].description or "")
    assert c.critic.encoder == "separate" and c.mode == "online" and not c.actor.token_baseline


def test_validation_names_the_value_and_the_fix():
    with pytest.raises(ValidationError, match="batch_size=100 is not a multiple of micro_batch_size=8"):
        ArcherConfig(batch_size=100, micro_batch_size=8)
    with pytest.raises(ValidationError, match="encoder_path='/m' would be ignored"):
        ArcherConfig.model_validate({"critic": {"encoder": "policy", "encoder_path": "/m"}})
    with pytest.raises(ValidationError):
        ArcherConfig(critic={"encoder": "roberta"})
    with pytest.raises(ValidationError):
        ArcherConfig(gamma=1.5)
    with pytest.raises(ValidationError):
        ArcherConfig(unknown_field=1)
    with pytest.raises(ValidationError):  # frozen: validated once, never rewritten
        ArcherConfig().gamma = 0.5  # type: ignore[misc]


def test_exports_and_the_config_import_does_not_load_torch():
    assert set(archer.__all__) >= {"ArcherConfig", "ReplayBuffer", "DoubleCritic", "TextEncoder", "make_target"}
    for name in archer.__all__:
        assert getattr(archer, name) is not None
    code = "import sys, turngym.trainers.archer.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

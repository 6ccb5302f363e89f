"""Config loading: YAML plus dotted --set overrides, validated once, errors that name the field."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from turngym.core.config import apply_overrides, dump_config, load_config, parse_override
from turngym.core.errors import ConfigError


class Sampling(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = 1.0
    stop: list[str] = []


class Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    steps: int = 10
    sampling: Sampling = Sampling()


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: run\nsampling:\n  temperature: 0.5\n  stop: [x]\n")
    cfg = load_config(Cfg, path, overrides=["steps=3", "sampling.temperature=0.7", "sampling.stop=[a, b]"])
    assert cfg == Cfg(name="run", steps=3, sampling=Sampling(temperature=0.7, stop=["a", "b"]))
    again = load_config(Cfg, None, base=__import__("yaml").safe_load(dump_config(cfg)))
    assert again == cfg


def test_override_values_are_yaml():
    assert parse_override("a.b=1") == (["a", "b"], 1)
    assert parse_override("x=true") == (["x"], True)
    assert parse_override("x=null") == (["x"], None)
    assert parse_override("x=hf:/models/tiny") == (["x"], "hf:/models/tiny")
    assert parse_override("x=a=b") == (["x"], "a=b")
    assert parse_override("x=") == (["x"], "")
    assert apply_overrides({"a": {"b": 1}}, ["a.c.d=2"]) == {"a": {"b": 1, "c": {"d": 2}}}
    envs = {"envs": [{"id": "x"}, {"id": "y"}]}
    assert apply_overrides(envs, ["envs.1.max_turns=5"]) == {"envs": [{"id": "x"}, {"id": "y", "max_turns": 5}]}
    with pytest.raises(ConfigError, match="envs is a list of 2, so it has no key '2'"):
        apply_overrides(envs, ["envs.2.id=z"])


def test_errors_name_the_field_and_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"sampling\.temperature.*'hot'.*--set"):
        load_config(Cfg, base={"name": "x"}, overrides=["sampling.temperature=hot"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("steps")
    with pytest.raises(ConfigError, match="name is 'x', so it has no key 'first'"):
        apply_overrides({"name": "x"}, ["name.first=1"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Cfg, tmp_path / "missing.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Cfg, bad)
    with pytest.raises(ConfigError, match=r"stepz: no such setting"):
        load_config(Cfg, base={"name": "x"}, overrides=["stepz=3"])

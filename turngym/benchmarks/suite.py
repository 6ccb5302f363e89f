"""Benchmark suites: YAML files validated by pydantic.

    name: smoke
    description: one quick episode set per text game
    episodes: 10          # per env, unless the env entry says otherwise
    seed: 0               # episode k of an env uses seed seed + k
    group_size: 1         # G episodes per task instance (same seed)
    envs:
      - id: turngym/GuessNumber-v0
        kwargs: {high: 16}
        max_turns: 6

Suites shipped with turngym live in ``turngym/benchmarks/suites/NAME.yaml``; ``load_suite`` takes
such a name or a path to a YAML file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from turngym.core.config import validate_config
from turngym.core.errors import ConfigError, did_you_mean


class SuiteEnv(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    kwargs: dict[str, Any] = Field(default_factory=dict)
    episodes: int | None = Field(default=None, ge=1)
    seeds: list[int] | None = None
    max_turns: int | None = Field(default=None, ge=1)
    label: str | None = None

    @property
    def name(self) -> str:
        return self.label or self.id


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    description: str = ""
    episodes: int = Field(default=10, ge=1)
    seed: int = 0
    group_size: int = Field(default=1, ge=1)
    envs: list[SuiteEnv] = Field(min_length=1)

    def seeds_for(self, env: SuiteEnv, episodes: int | None = None) -> list[int]:
        """The seeds of one env's task instances (each played ``group_size`` times)."""
        if env.seeds is not None:
            return list(env.seeds)
        n = episodes or env.episodes or self.episodes
        return [self.seed + k for k in range(n)]


def suite_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("turngym.benchmarks.suites").iterdir() if p.name.endswith(".yaml"))


def load_suite(name_or_path: str) -> Suite:
    """A shipped suite by name (``smoke``) or a suite YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.exists():
            raise ConfigError(f"suite file {name_or_path!r} does not exist")
        text = path.read_text()
    else:
        res = resources.files("turngym.benchmarks.suites") / f"{name_or_path}.yaml"
        if not res.is_file():
            raise ConfigError(
                f"no suite named {name_or_path!r}.{did_you_mean(name_or_path, suite_names())} The shipped suites are "
                f"{', '.join(suite_names())}; give one of them or the path of a suite YAML file"
            )
        text = res.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"suite {name_or_path!r} is not valid YAML: {' '.join(str(e).split())}") from None
    return validate_config(Suite, data if data is not None else {}, source=f"suite {name_or_path!r}")

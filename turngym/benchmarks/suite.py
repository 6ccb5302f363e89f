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
such a name or a path to a YAML file. ``env_suite`` builds a suite from env ids alone (``turngym eval --env ID``).

An entry that lists its ``seeds`` plays those task instances; an episode count (the entry's ``episodes``,
or ``--episodes N`` for every env) takes the first N of them (more than the list holds is an error).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
        """The seeds of one env's task instances (each played ``group_size`` times). ``episodes`` (``--episodes``)
        overrides the entry's count; an entry with ``seeds`` gives its first N (``ConfigError`` if it has fewer)."""
        n = episodes or env.episodes
        if env.seeds is not None:
            if n is not None and n > len(env.seeds):
                origin = f"--episodes {episodes}" if episodes else f"its 'episodes: {n}'"
                raise ConfigError(
                    f"suite {self.name!r}, env {env.name!r}: {origin} asks for {n} task instances, but the entry lists "
                    f"only {len(env.seeds)} seeds (key 'seeds'), and an entry with explicit seeds plays its first N. "
                    f"Pass --episodes {len(env.seeds)} or fewer, or add seeds to the entry."
                )
            return list(env.seeds[:n] if n is not None else env.seeds)
        return [self.seed + k for k in range(n or self.episodes)]


def suite_names() -> list[str]:
    return sorted(
        p.name[:-5] for p in resources.files("turngym.benchmarks.suites").iterdir() if p.name.endswith(".yaml")
    )


def load_suite(name_or_path: str) -> Suite:
    """A shipped suite by name (``smoke``) or a suite YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise ConfigError(
                f"suite {name_or_path!r}: the suite file {what}. Give a suite YAML file or a shipped suite "
                f"({', '.join(suite_names())}); `turngym eval --env ID` needs no suite file."
            )
        text, where = path.read_text(), f"suite file {name_or_path!r}"
    else:
        res = resources.files("turngym.benchmarks.suites") / f"{name_or_path}.yaml"
        if not res.is_file():
            raise ConfigError(
                f"suite {name_or_path!r}: no shipped suite has that name.{did_you_mean(name_or_path, suite_names())} "
                f"The shipped suites are {', '.join(suite_names())}; give one of them or the path of a suite YAML file "
                "(`turngym eval --env ID` needs no suite file)."
            )
        text, where = res.read_text(), f"shipped suite {name_or_path!r}"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(
            f"{where} is not valid YAML: {' '.join(str(e).split())}. Fix the YAML syntax there."
        ) from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(
            f"{where} must hold a mapping (name:, episodes:, envs: ...), got {type(data).__name__}. "
            "See README.md, 'Evaluate an agent', for the format."
        )
    return validate_config(Suite, data or {}, source=where, fix=f"Fix it in {where.removeprefix('shipped ')}.")


def env_suite(ids: Sequence[str], env_args: Sequence[Mapping[str, Any]] = ()) -> Suite:
    """A suite of ``ids`` without a file (``turngym eval --env ID [--env-args JSON]``): one entry per id, named
    by its id; ``env_args`` is one kwargs mapping for every env, or one per id (in order)."""
    if not ids:
        raise ConfigError("env_suite needs at least one env id")
    if len(env_args) not in (0, 1, len(ids)):
        raise ConfigError(
            f"--env-args was given {len(env_args)} times for {len(ids)} --env options: give it once (for every env) "
            "or once per --env, in the same order"
        )
    kwargs = [dict(env_args[0])] * len(ids) if len(env_args) == 1 else [dict(a) for a in env_args] or [{}] * len(ids)
    names = [i for i in ids]
    labels = [f"{i} #{names[:k].count(i) + 1}" if names.count(i) > 1 else None for k, i in enumerate(names)]
    short = ids[0].rpartition("/")[2] if len(ids) == 1 else f"{len(ids)}-envs"
    return Suite(
        name=short,
        description=f"--env {' --env '.join(ids)}",
        envs=[SuiteEnv(id=i, kwargs=kw, label=lb) for i, kw, lb in zip(ids, kwargs, labels, strict=True)],
    )

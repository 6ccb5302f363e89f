"""``turngym eval`` as a new user runs it: ``--env`` without a suite file, ``--episodes`` on an explicit-seeds
suite, and every mistake of the first hour answered with one paragraph, exit 2, no traceback, before any
progress bar. Each command is a subprocess of the installed console script; the mistakes run concurrently."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TURNGYM = Path(sys.executable).with_name("turngym")
GN = "turngym/GuessNumber-v0"
ENV = {**os.environ, "COLUMNS": "200"}


def turngym(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(TURNGYM), "eval", *args], check=False, capture_output=True, text=True, timeout=timeout, cwd=REPO, env=ENV
    )


def seeded_suite(tmp: Path) -> Path:
    path = tmp / "seeded.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "seeded",
                "episodes": 5,
                "envs": [
                    {"id": GN, "seeds": [10, 11, 12]},
                    {"id": GN, "label": "small", "kwargs": {"high": 8}},
                ],
            }
        )
    )
    return path


def mistakes(tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (eval arguments, texts the error must hold)."""
    (tmp / "typo.yaml").write_text("name: typo\nepisodes: 2\nenvz: []\n")
    (tmp / "nested.yaml").write_text(f"name: nested\nenvs:\n  - id: {GN}\n    kwarg: {{high: 3}}\n")
    (tmp / "not-a-model").mkdir()
    (tmp / "a-file").write_text("x")
    seeded = str(seeded_suite(tmp))
    out = str(tmp / "never")
    return {
        "nothing": (["--agent", "random"], ["nothing to evaluate", "--env ID", "smoke"]),
        "both": (["--suite", "smoke", "--env", GN, "--agent", "random"], ["not both"]),
        "suite name": (["--suite", "smok", "--agent", "random"], ["Did you mean 'smoke'", "text-games"]),
        "suite key": (
            ["--suite", str(tmp / "typo.yaml"), "--agent", "random"],
            ["typo.yaml", "envz: no such setting", "Did you mean 'envs'", "envs: missing"],
        ),
        "nested key": (
            ["--suite", str(tmp / "nested.yaml"), "--agent", "random"],
            ["nested.yaml", "envs.0.kwarg", "Did you mean 'kwargs'"],
        ),
        "agent kind": (["--env", GN, "--agent", "foo", "--out", out], ["--agent 'foo'", "--agent scripted"]),
        "hf missing": (["--env", GN, "--agent", "hf:/nonexistent", "--out", out], ["'/nonexistent' does not exist"]),
        "hf no model": (
            ["--env", GN, "--agent", f"hf:{tmp / 'not-a-model'}", "--out", out],
            ["holds no config.json", "turngym models tiny"],
        ),
        "out is a file": (["--env", GN, "--agent", "random", "--out", str(tmp / "a-file")], ["--out", "is a file"]),
        "env args json": (["--env", GN, "--env-args", "{high: 3}", "--agent", "random", "--out", out], ["not JSON"]),
        "env args list": (["--env", GN, "--env-args", "[3]", "--agent", "random", "--out", out], ["not an object"]),
        "env args twice": (
            ["--env", GN, "--env-args", "{}", "--env-args", "{}", "--env", GN, "--env", GN, "--agent", "random"],
            ["--env-args was given 2 times for 3 --env"],
        ),
        "env id": (["--env", "turngym/GuesNumber-v0", "--agent", "random", "--out", out], ["Did you mean", GN]),
        "episodes 0": (["--env", GN, "--agent", "random", "--episodes", "0", "--out", out], ["(from --episodes)"]),
        "set key": (
            ["--env", GN, "--agent", "random", "--set", "suite.seedz=3", "--out", out],
            ["(from --set suite.seedz=3)", "Did you mean 'seed'"],
        ),
        "episodes past seeds": (
            ["--suite", seeded, "--agent", "random", "--episodes", "4", "--out", out],
            ["--episodes 4", "only 3 seeds", "--episodes 3 or fewer"],
        ),
    }


@pytest.fixture(scope="module")
def mistake_runs(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, list[str], Path]]:
    tmp = tmp_path_factory.mktemp("mistakes")
    cases = mistakes(tmp)
    procs = {
        name: subprocess.Popen(
            [str(TURNGYM), "eval", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=ENV
        )
        for name, (args, _) in cases.items()
    }
    assert sorted(cases) == sorted(NAMES)
    done = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        done[name] = (subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr), cases[name][1], tmp)
    return done


NAMES = [
    "nothing", "both", "suite name", "suite key", "nested key", "agent kind", "hf missing", "hf no model",
    "out is a file", "env args json", "env args list", "env args twice", "env id", "episodes 0", "set key",
    "episodes past seeds",
]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_a_mistake_is_one_paragraph_exit_2_before_any_episode(mistake_runs, name):
    r, texts, tmp = mistake_runs[name]
    err = " ".join(r.stderr.split())  # rich wraps at the terminal width
    assert r.returncode == 2, (name, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and err.startswith("error: "), r.stderr
    assert r.stderr.strip().count("error:") == 1 and r.stdout == "", (r.stdout, r.stderr)  # no table, no bar
    assert "━" not in r.stderr and "YAML file or with --set" not in err
    for text in texts:
        assert text in err, (name, text, r.stderr)
    assert not (tmp / "never").exists()  # nothing was written for a run that could not start


def test_help_names_every_shipped_suite():
    from turngym.benchmarks.suite import suite_names

    r = subprocess.run(
        [str(TURNGYM), "eval", "--help"], check=False, capture_output=True, text=True, env=ENV, timeout=120
    )
    assert r.returncode == 0
    text = " ".join(r.stdout.split())
    assert all(name in text for name in suite_names()) and "--env" in text and "--env-args" in text
    assert "first N" in text  # what --episodes does to an env that lists its seeds


@pytest.mark.parametrize("agent", ["scripted", "random"])
def test_env_without_a_suite_file_runs_and_resumes(tmp_path, agent):
    out = tmp_path / "run"
    args = ["--env", GN, "--env-args", '{"high": 16}', "--agent", agent, "--episodes", "3", "--group-size", "2"]
    r = turngym(*args, "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "GuessNumber-v0: 6 episodes" in " ".join(r.stderr.split())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["suite"] == "GuessNumber-v0" and summary["envs"][GN]["episodes"] == 6
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["suite"]["envs"][0]["kwargs"] == {"high": 16}
    if agent == "scripted":
        assert summary["envs"][GN]["success_rate"] == 1.0
    assert summary["envs"][GN]["cut_reply_rate"] is None  # a scripted or random agent has no token budget
    # the same command resumes (nothing to play); another kwarg names the env and the key, once
    r = turngym(*args, "--out", str(out))
    assert r.returncode == 0 and "6 of 6 episodes already stored" in r.stdout, r.stderr
    r = turngym("--env", GN, "--env-args", '{"high": 32}', "--agent", agent, "--episodes", "6", "--out", str(out))
    err = " ".join(r.stderr.split())
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"suite env '{GN}' (envs.0) kwargs.high: stored 16, now 32" in err, err
    assert "episodes (--episodes): stored 3, now 6" in err and "group_size (--group-size): was 2, now not set" in err
    assert "None" not in err and err.count("high") == 1


def test_episodes_takes_the_first_seeds_of_an_env_that_lists_them(tmp_path):
    out = tmp_path / "run"
    r = turngym("--suite", str(seeded_suite(tmp_path)), "--agent", "scripted", "--episodes", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "(the first 2 of its 3 listed seeds)" in " ".join(r.stderr.split())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["envs"][GN]["episodes"] == 2 and summary["envs"]["small"]["episodes"] == 2
    seeds = sorted(json.loads(line)["seed"] for line in (out / "episodes.jsonl").read_text().splitlines())
    assert seeds == [0, 1, 10, 11]


def test_a_resume_from_unset_to_set_reads_sensibly(tmp_path):
    out = tmp_path / "run"
    assert turngym("--env", GN, "--agent", "scripted", "--episodes", "1", "--out", str(out)).returncode == 0
    r = turngym("--env", GN, "--agent", "scripted", "--episodes", "1", "--turn-timeout", "5", "--out", str(out))
    err = " ".join(r.stderr.split())
    assert r.returncode == 2 and "turn_timeout (--turn-timeout): not set before, now 5.0" in err, err


def test_an_hf_agent_option_mistake_stops_before_the_progress_bar(tmp_path):
    from tests.agents.conftest import tiny_model

    model = tiny_model("gn-nano", size="nano", tokenizer="task:guess_number", init_std=0.02)
    r = turngym("--env", GN, "--agent", f"hf:{model}", "--set", "agent.temprature=0.5", "--out", str(tmp_path / "r"))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "temprature" in r.stderr and "━" not in r.stderr and not (tmp_path / "r" / "episodes.jsonl").exists()


def test_replies_cut_at_max_new_tokens_are_counted_and_warned(tmp_path):
    from tests.agents.conftest import tiny_model

    model = tiny_model("gn-nano", size="nano", tokenizer="task:guess_number", init_std=0.02)
    out = tmp_path / "run"
    # a random model, a budget of 3 tokens and the open-ended \d+ of a guess: most replies run into the budget
    r = turngym(
        "--env", GN, "--agent", f"hf:{model}", "--episodes", "2", "--out", str(out),
        "--set", "agent.max_new_tokens=3", "--set", "agent.constrain=true", "--set", "agent.temperature=1.0",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    env = json.loads((out / "summary.json").read_text())["envs"][GN]
    assert env["cut_replies"] > 0 and env["cut_reply_rate"] > 0.2, env
    err = " ".join(r.stderr.split())
    assert "warning: replies cut at max_new_tokens" in err and "sampling.max_new_tokens" in err and "constrain" in err
    turns = [t for line in (out / "episodes.jsonl").read_text().splitlines() for t in json.loads(line)["turns"]]
    assert all("reply_cut" in t["info"] for t in turns)

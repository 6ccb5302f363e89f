"""``turngym play`` through a subprocess with piped stdin: env text printed as typed (no Rich markup),
empty lines and /commands answered locally, the seed printed so a game can be replayed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TURNGYM = Path(sys.executable).parent / "turngym"


def play(*args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TURNGYM), "play", "turngym/GuessNumber-v0", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )


def test_bracketed_env_text_is_printed_as_is():
    r = play("--seed", "3", stdin="[abc]\n")
    assert r.returncode == 0, r.stderr
    assert "invalid: [abc] is not a valid guess" in r.stdout
    assert "Invalid action: [abc] is not a valid guess" in r.stdout


def test_empty_lines_and_commands_are_not_sent_to_the_env():
    r = play("--seed", "3", stdin="\n   \n/help\n/seed\n/nosuch\n[50]\n/quit\n")
    assert r.returncode == 0, r.stderr
    for command in ("/quit", "/help", "/seed", "/restart"):
        assert command in r.stdout
    assert "seed 3 (replay this game with --seed 3)" in r.stdout
    assert "unknown command '/nosuch'" in r.stdout
    assert "turn 1 " in r.stdout and "turn 2" not in r.stdout  # only [50] was played
    assert "Invalid action" not in r.stdout and "bye" in r.stdout


def test_double_slash_sends_a_line_starting_with_slash():
    r = play("--seed", "3", stdin="//help\n")
    assert "no guess in square brackets in '/help'" in r.stdout and "turn 1 " in r.stdout


def test_the_seed_is_printed_and_replays_the_game():
    first = play(stdin="[50]\n")
    assert first.returncode == 0, first.stderr
    seed, instance = re.search(r"seed (\d+)\s+task \S+\s+instance (\w+)", first.stdout).groups()
    again = play("--seed", seed, stdin="[50]\n")
    assert f"seed {seed} " in again.stdout and f"instance {instance}" in again.stdout
    answer = [line for line in first.stdout.splitlines() if "The secret is" in line or "right" in line]
    assert answer and all(line in again.stdout for line in answer)


def test_restart_plays_the_same_task_again():
    r = play("--seed", "3", stdin="[50]\n/restart\n[50]\n")
    assert r.stdout.count("instance ") == 2 and "restarting with seed 3" in r.stdout
    assert r.stdout.count("turn 1 ") == 2


def test_a_partner_given_as_an_agent_spec_is_built_by_the_cli():
    """``--env-args`` with an hf spec as Car Dealer's customer: the CLI builds the tiny model partner (envs never
    build models); the customer's lines are headed with its name."""
    from tests.agents.conftest import tiny_model

    spec = {"spec": f"hf:{tiny_model('tiny')}", "temperature": 0, "max_new_tokens": 4}
    r = subprocess.run(
        [str(TURNGYM), "play", "turngym/CarDealer-v0", "--seed", "0", "--env-args", json.dumps({"partner": spec})],
        input="Hello!\nThe SUV for $30,000.\n", capture_output=True, text=True, timeout=300, cwd=REPO,
        env={**os.environ, "COLUMNS": "200"}, check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("user (hf-tiny): ") == 2 and "turn 2  reward 0" in r.stdout
    bad = subprocess.run(
        [str(TURNGYM), "play", "turngym/CarDealer-v0", "--env-args", '{"partner": "random"}'],
        input="", capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
    )
    assert bad.returncode == 2 and "cannot play a dialogue partner" in bad.stdout + bad.stderr

"""Find out which TextArena games run here, by playing them; write ``textarena_games.json``.

For every TextArena id except the ``-raw`` / ``-train`` twins (same game, other TextArena
observation wrappers: the adapter formats observations itself), the probe makes the adapter env,
finds the smallest player count whose reset works, checks that equal seeds give equal instance
hashes, and plays random moves for up to ``--steps`` turns. A game that fails any of that is
listed with the reason; ``register_adapters`` registers it as unavailable.

    .venv/bin/python scripts/data/probe_textarena.py            # rewrite the data file
    .venv/bin/python scripts/data/probe_textarena.py --only Wordle-v0 TicTacToe-v0 --print
    .venv/bin/python scripts/data/probe_textarena.py --only Wordle-v0-hardcore --update   # re-probe some
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

#: the data file the adapter registry reads, inside the package
DATA = Path(__file__).resolve().parents[2] / "turngym" / "envs" / "adapters" / "textarena_games.json"
MAX_PLAYERS = 8


class _Timeout(BaseException):  # not an Exception: the probe's own handlers must not catch it
    pass


def base_ids() -> list[str]:
    from textarena.envs.registration import ENV_REGISTRY

    ids = []
    for gid in ENV_REGISTRY:
        stem, _, suffix = gid.rpartition("-")
        if suffix in ("raw", "train") and stem in ENV_REGISTRY:
            continue
        ids.append(gid)
    return ids


#: what a failure means, by a piece of its text
_CAUSES = {
    "OPENROUTER_API_KEY": "needs an online LLM (OpenRouter) as judge or player",
    "SyntaxError": "TextArena's code for this game does not compile on this Python (it needs 3.12)",
    "FileNotFoundError": "TextArena's package lacks this game's data files",
    "No module named": "TextArena's package lacks this game's code or one of its dependencies",
    "opponent made": "the random opponent finds no move this game accepts: pass opponent=<callable>",
    "took over": "TextArena builds this game too slowly here",
}


def annotate(reason: str) -> str:
    """``reason`` with what it means in front, and without this machine's paths."""
    import textarena

    reason = reason.replace(str(Path(textarena.__file__).parent.parent), "site-packages")
    for piece, cause in _CAUSES.items():
        if piece in reason and not reason.startswith(cause):
            return f"{cause} ({reason})"
    return f"TextArena fails here ({reason})" if "failed:" in reason and not reason.startswith("TextArena") else reason


def _reason(phase: str, e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    text = f"{phase} failed: {type(e).__name__}: {lines[0] if lines else ''}".strip()
    return annotate(text if len(text) <= 160 else text[:157] + "...")


def _single_player(env: Any) -> bool:
    import textarena as ta

    return isinstance(env._ta.state, ta.SinglePlayerState)


def probe(game: str, *, steps: int) -> dict[str, Any]:
    from turngym.envs.adapters.textarena import TextArenaEnv

    entry: dict[str, Any] = {"id": game, "num_players": None, "unavailable": None, "description": ""}
    try:
        env = TextArenaEnv(game=game, num_players=1)
    except Exception as e:
        entry["unavailable"] = _reason("making the game", e)
        return entry
    last_error: BaseException | None = None
    chosen = fallback = None
    for n in range(1, MAX_PLAYERS + 1):
        env.num_players = n
        try:
            env.reset(seed=0)
        except (AssertionError, ValueError, KeyError, IndexError, TypeError) as e:  # wrong player count
            last_error = e
            continue
        except Exception as e:
            last_error = e
            break
        if n == 1 and not _single_player(env):  # a game for several that tolerates one: look further
            fallback = 1
            continue
        chosen = n
        break
    entry["num_players"] = chosen or fallback
    if entry["num_players"] is None:
        entry["unavailable"] = _reason(f"reset with 1..{MAX_PLAYERS} players", last_error or RuntimeError("?"))
        return entry
    env = TextArenaEnv(game=game, num_players=entry["num_players"])
    obs, _ = env.reset(seed=0)
    first = obs.last_text.removeprefix("[GAME] ").strip().splitlines()
    entry["description"] = (first[0] if first else "")[:160]
    try:
        hashes = {env.reset(seed=7)[1]["instance_hash"] for _ in range(2)}
        if len(hashes) != 1:
            entry["unavailable"] = "equal seeds give different instances (the game draws from an unseeded source)"
            return entry
        rng = random.Random(0)
        for _ in range(steps):
            moves = env.legal_actions() or ["[0]"]
            _, _, terminated, _, _ = env.step(moves[rng.randrange(len(moves))])
            if terminated:
                break
    except Exception as e:
        entry["unavailable"] = _reason("playing", e)
    return entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="probe these TextArena ids only (and do not write the file)")
    ap.add_argument("--update", action="store_true", help="with --only: replace those entries in the data file")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--timeout", type=int, default=180, help="seconds per game")
    ap.add_argument("--print", action="store_true", help="print each entry")
    args = ap.parse_args(argv)

    def on_alarm(*_: Any) -> None:
        raise _Timeout()

    signal.signal(signal.SIGALRM, on_alarm)
    import textarena

    games = args.only or base_ids()
    entries = []
    for game in games:
        t0 = time.perf_counter()
        signal.alarm(args.timeout)
        try:
            entry = probe(game, steps=args.steps)
        except _Timeout:
            entry = {"id": game, "num_players": None, "unavailable": annotate(f"making, resetting and playing it took over {args.timeout}s"),
                     "description": ""}
        finally:
            signal.alarm(0)
        entries.append(entry)
        status = "ok" if entry["unavailable"] is None else entry["unavailable"]
        print(f"{game:45s} {entry['num_players']!s:>4} {time.perf_counter() - t0:6.1f}s {status}", file=sys.stderr)
    if args.print:
        print(json.dumps(entries, indent=1))
    if args.only and args.update:
        fresh = {e["id"]: e for e in entries}
        entries = [fresh.pop(e["id"], e) for e in json.loads(DATA.read_text())["games"]] + list(fresh.values())
    if not args.only or args.update:
        DATA.write_text(json.dumps({"textarena": textarena.__version__, "games": entries}, indent=1) + "\n")
        ok = sum(e["unavailable"] is None for e in entries)
        print(f"{ok} of {len(entries)} TextArena games run here; wrote {DATA}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

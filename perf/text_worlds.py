"""The text worlds' experts: success of the gold path over 20 seeds of every task (issue 16).

One env (one JVM) per id plays the registered expert on seeds 0..N-1 of the train split (TextWorld has no
splits), through
``turngym.make`` (so with the registered turn limit). Per id: success rate, mean turns, the seconds of a
reset, of the expert's set-up (ScienceWorld generates its gold path then) and of an episode.

    nice -n 10 .venv/bin/python perf/text_worlds.py                      # every id, 20 seeds (hours on 2 busy cores)
    nice -n 10 .venv/bin/python perf/text_worlds.py --family twx --seeds 5
    nice -n 10 .venv/bin/python perf/text_worlds.py --ids scienceworld/boil-v0 --split test
    nice -n 10 .venv/bin/python perf/text_worlds.py --check             # `turngym envs check` on every id instead
    .venv/bin/python perf/text_worlds.py --report-only                  # the table of what was measured

Results merge into perf/results/text_worlds_raw.json (one entry per id and split, kept across runs) and
the table goes to perf/results/text_worlds.md and stdout. ``--check`` runs ``check_registered_env`` on each id
(CI checks one id per family, tests/envs/textworlds/test_check.py) into perf/results/text_worlds_check.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
OUT = REPO / "perf" / "results"
RAW = OUT / "text_worlds_raw.json"
CHECKS = OUT / "text_worlds_check.json"
FAMILIES = ("scienceworld", "twx", "textworld")


def family_ids(families: list[str]) -> list[str]:
    import turngym

    return sorted(e.id for e in turngym.list_envs() if e.id.split("/")[0] in families)


def split_kwargs(env_id: str, split: str) -> dict[str, str]:
    """``split`` for the families that have splits (TextWorld's games have none)."""
    return {} if env_id.startswith("textworld/") else {"split": split}


def sweep(env_id: str, seeds: int, split: str) -> dict[str, Any]:
    """The expert over seeds 0..seeds-1 of ``env_id``: per-seed outcome and timings."""
    import turngym
    from turngym.core.registry import load_object

    expert = load_object(turngym.env_info(env_id).expert)
    env = turngym.make(env_id, **split_kwargs(env_id, split))
    episodes = []
    try:
        for seed in range(seeds):
            t0 = time.perf_counter()
            obs, _ = env.reset(seed=seed)
            t1 = time.perf_counter()
            policy = expert(env.unwrapped)
            t2 = time.perf_counter()
            turns, end = 0, {}
            while True:
                obs, _, terminated, truncated, end = env.step(policy(obs))
                turns += 1
                if terminated or truncated:
                    break
            episodes.append(
                {
                    "seed": seed,
                    "instance": env.unwrapped.instance,
                    "success": bool(end.get("success")),
                    "score": end.get("score"),
                    "turns": turns,
                    "truncated": bool(truncated),
                    "error": end.get("error"),
                    "reset_s": t1 - t0,
                    "expert_s": t2 - t1,
                    "episode_s": time.perf_counter() - t2,
                }
            )
            print(f"  {env_id} seed {seed}: success={episodes[-1]['success']} turns={turns}", flush=True)
    finally:
        env.close()
    split = split_kwargs(env_id, split).get("split", "-")
    return {"id": env_id, "split": split, "seeds": seeds, "episodes": episodes, "when": time.strftime("%Y-%m-%d %H:%M")}


def summary_row(rec: dict[str, Any]) -> list[str]:
    eps = rec["episodes"]
    n = len(eps)

    def mean(key: str) -> float:
        return sum(e[key] for e in eps) / n if n else float("nan")

    failed = [str(e["seed"]) for e in eps if not e["success"]]
    return [
        rec["id"],
        rec["split"],
        str(n),
        f"{mean('success'):.2f}",
        f"{mean('turns'):.1f}",
        f"{mean('reset_s'):.2f}",
        f"{mean('expert_s'):.2f}",
        f"{mean('episode_s'):.2f}",
        " ".join(failed) or "-",
    ]


HEADER = ["id", "split", "seeds", "expert success", "turns", "reset s", "expert set-up s", "episode s", "failed seeds"]


def table(records: list[dict[str, Any]]) -> str:
    rows = [
        HEADER,
        ["---"] * len(HEADER),
        *[summary_row(r) for r in sorted(records, key=lambda r: (r["id"], r["split"]))],
    ]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def load_raw() -> dict[str, Any]:
    return json.loads(RAW.read_text()) if RAW.exists() else {}


def save(records: dict[str, Any]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    RAW.write_text(json.dumps(records, indent=1))
    text = (
        "# Text worlds: the experts' success\n\nWritten by perf/text_worlds.py (seeds 0..N-1; timings on the machine "
        "that ran it, in seconds).\n\n" + table(list(records.values())) + "\n"
    )
    (OUT / "text_worlds.md").write_text(text)


def check_all(ids: list[str]) -> None:
    """``check_registered_env`` on each id; the problems and seconds merge into CHECKS."""
    from turngym.core.checker import check_registered_env

    for env_id in ids:
        t0 = time.perf_counter()
        problems = check_registered_env(env_id)
        done = json.loads(CHECKS.read_text()) if CHECKS.exists() else {}
        done[env_id] = {"problems": problems, "seconds": round(time.perf_counter() - t0, 1)}
        CHECKS.write_text(json.dumps(done, indent=1))
        print(
            f"{'ok  ' if not problems else 'FAIL'} {env_id} ({done[env_id]['seconds']} s) {problems or ''}", flush=True
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--family", nargs="*", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--ids", nargs="*", default=None, help="these ids only (default: every id of the families)")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--split", default="train", choices=("train", "dev", "test"))
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--check", action="store_true", help="run turngym envs check on each id instead of the experts")
    args = ap.parse_args()
    if args.check:
        check_all(args.ids or family_ids(args.family))
        return
    if not args.report_only:
        for env_id in args.ids or family_ids(args.family):
            rec = sweep(env_id, args.seeds, args.split)
            save(load_raw() | {f"{env_id} {rec['split']}": rec})  # other runs may have merged meanwhile
            print("|".join(summary_row(rec)), flush=True)
    print(table(list(load_raw().values())))


if __name__ == "__main__":
    main()

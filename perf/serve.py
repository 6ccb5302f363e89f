"""Serving envs: ``turngym serve`` against OpenEnv's own server, side by side in one run.

    .venv/bin/python perf/serve.py [--quick] [--repeats 5] [--episodes 500] [--sessions 64,256,512,1024]

Needs OpenEnv 0.10 in its own venv, ``.venv-openenv`` (scripts/setup/65-openenv.sh); its half runs
in ``perf/openenv_native.py`` (a subprocess). Every server runs in its own process group on
127.0.0.1 and is killed at the end, errors included.

1. Step round trip (p50, p99) on turngym/GuessNumber-v0, one session, episodes with seeds 0, 1, ...
   played by binary search from the hints (the same ~5.8 steps per episode everywhere):
   (a) in-process ``env.step`` (turngym, no server);
   (b) ``turngym serve`` played by OpenEnv's ``GenericEnvClient`` (async; from .venv-openenv);
   (c) ``turngym serve`` played by turngym's remote env (``turngym.make("remote/ws://...")``,
       ``await env.astep``; (c') its sync ``env.step``);
   (d) the same game written natively for OpenEnv (``create_app`` around an ``Environment``
       subclass, uvicorn), played by ``GenericEnvClient``.
   A step's time is the client's call to its return (``time.perf_counter``); resets are left out.
   CPU per call (reset or step, warm-up included): the server process's user+system time from
   /proc over the run, and the client's ``time.process_time``: robust to the other load on the machine.
   The variants run in turn within each repeat (the order rotates), so they share the machine's
   load; p50 and p99 are per repeat, then the median over repeats.
2. Sessions held at once: N WebSocket sessions opened concurrently (one asyncio client process)
   against ``turngym serve --max-sessions 1024``, each resets and plays 3 steps, and all stay open
   until every one has; errors, the time to get all N there, ``/health``'s session count while they
   are open and the server's RSS then. A fresh server per N. The same against OpenEnv's own server
   (``max_concurrent_envs=1024``) with the same client.
3. ``turngym eval --agent random`` (the model-free agent; the scripted expert needs the env's class,
   which a remote env does not have) on a suite naming ``turngym/GuessNumber-v0`` against one naming
   ``remote/ws://127.0.0.1:PORT`` (the same env served): episodes/s from ``summary.json``'s elapsed
   time (playing, the summary and the report) and from the whole command's wall time.

Results: perf/results/serve.json (``--quick``: serve_quick.json), and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from turngym.benchmarks.bench import percentile

GN = "turngym/GuessNumber-v0"
LOW, HIGH = 1, 100
TURNGYM = REPO / ".venv" / "bin" / "turngym"
OPENENV_PY = REPO / ".venv-openenv" / "bin" / "python"
NATIVE = REPO / "perf" / "openenv_native.py"


def load() -> float:
    return round(os.getloadavg()[0], 2)


# -- servers ----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process in its own process group; ``with`` waits for ``/health`` and kills the group."""

    def __init__(self, name: str, cmd: list[str], port: int) -> None:
        self.name, self.cmd, self.port = name, cmd, port
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:  # noqa: PYI034
        self.proc = subprocess.Popen(
            self.cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}: {self.log.read().decode()[-2000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.http}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer /health within {timeout:g} s")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.log.close()
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()

    def rss_mib(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process so far."""
        assert self.proc is not None
        fields = (
            Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        )
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def threads(self) -> int:
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def health(self) -> dict[str, Any]:
        import httpx

        return httpx.get(f"{self.http}/health", timeout=30).json()


def turngym_server(max_sessions: int = 64) -> Server:
    port = free_port()
    cmd = [
        str(TURNGYM),
        "serve",
        GN,
        "--port",
        str(port),
        "--max-sessions",
        str(max_sessions),
    ]
    return Server("turngym serve", cmd, port)


def native_server(max_sessions: int = 64) -> Server:
    port = free_port()
    cmd = [
        str(OPENENV_PY),
        str(NATIVE),
        "serve",
        "--port",
        str(port),
        "--max-sessions",
        str(max_sessions),
    ]
    return Server("OpenEnv native", cmd, port)


# -- 1. step round trip -----------------------------------------------------------------------------
def seeds(episodes: int, warmup: int) -> Iterator[tuple[int, bool]]:
    """(seed, counted): ``warmup`` episodes on seeds far from the measured ones, then seeds 0.."""
    for k in range(warmup):
        yield 1_000_000 + k, False
    for k in range(episodes):
        yield k, True


def update(lo: int, hi: int, guess: int, text: str) -> tuple[int, int]:
    if "higher" in text:
        return guess + 1, hi
    if "lower" in text:
        return lo, guess - 1
    return lo, hi


def play_sync(env_id: str, episodes: int, warmup: int) -> dict[str, Any]:
    """Binary search through ``episodes`` GuessNumber games on ``env_id`` (in-process, or a ``remote/`` URL), timing each sync ``step``."""
    import turngym

    env = turngym.make(env_id)
    steps: list[float] = []
    wins = calls = 0
    cpu0 = time.process_time()
    try:
        for seed, counted in seeds(episodes, warmup):
            env.reset(seed=seed)
            calls += 1
            lo, hi, done = LOW, HIGH, False
            while not done:
                guess = (lo + hi) // 2
                t = time.perf_counter()
                obs, reward, terminated, truncated, _ = env.step(f"[{guess}]")
                dt = time.perf_counter() - t
                calls += 1
                if counted:
                    steps.append(dt)
                done = terminated or truncated
                lo, hi = update(lo, hi, guess, obs.last_text)
            wins += counted and reward > 0
    finally:
        env.close()
    return {
        "steps": steps,
        "successes": wins,
        "calls": calls,
        "client_cpu_s": time.process_time() - cpu0,
    }


async def _play_remote_async(url: str, episodes: int, warmup: int) -> dict[str, Any]:
    import turngym

    env = turngym.make(f"remote/{url}")
    steps: list[float] = []
    wins = calls = 0
    cpu0 = time.process_time()
    try:
        for seed, counted in seeds(episodes, warmup):
            await env.areset(seed=seed)
            calls += 1
            lo, hi, done = LOW, HIGH, False
            while not done:
                guess = (lo + hi) // 2
                t = time.perf_counter()
                obs, reward, terminated, truncated, _ = await env.astep(f"[{guess}]")
                dt = time.perf_counter() - t
                calls += 1
                if counted:
                    steps.append(dt)
                done = terminated or truncated
                lo, hi = update(lo, hi, guess, obs.last_text)
            wins += counted and reward > 0
    finally:
        await env.aclose()
    return {
        "steps": steps,
        "successes": wins,
        "calls": calls,
        "client_cpu_s": time.process_time() - cpu0,
    }


def play_remote(url: str, episodes: int, warmup: int) -> dict[str, Any]:
    return asyncio.run(_play_remote_async(url, episodes, warmup))


def play_generic_client(url: str, episodes: int, warmup: int) -> dict[str, Any]:
    cmd = [
        str(OPENENV_PY),
        str(NATIVE),
        "client",
        "--url",
        url,
        "--episodes",
        str(episodes),
        "--warmup",
        str(warmup),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    if out.returncode != 0:
        raise RuntimeError(
            f"GenericEnvClient driver failed ({out.returncode}): {out.stderr[-2000:]}"
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


VARIANTS = {
    "a": "in-process env.step (turngym)",
    "b": "turngym serve <- OpenEnv GenericEnvClient",
    "c": "turngym serve <- turngym remote env (await astep)",
    "c_sync": "turngym serve <- turngym remote env (sync step)",
    "d": "OpenEnv native server <- OpenEnv GenericEnvClient",
}


def bench_latency(args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in VARIANTS}
    with turngym_server() as tg, native_server() as nat:
        players = {
            "a": lambda: play_sync(GN, args.episodes, args.warmup),
            "b": lambda: play_generic_client(tg.ws, args.episodes, args.warmup),
            "c": lambda: play_remote(tg.ws, args.episodes, args.warmup),
            "c_sync": lambda: play_sync(f"remote/{tg.ws}", args.episodes, args.warmup),
            "d": lambda: play_generic_client(nat.ws, args.episodes, args.warmup),
        }
        server_of = {"a": None, "b": tg, "c": tg, "c_sync": tg, "d": nat}
        order = list(VARIANTS)
        for r in range(args.repeats):
            rot = order[r % len(order) :] + order[: r % len(order)]
            for key in rot:
                l0 = load()
                server = server_of[key]
                cpu0 = server.cpu_s() if server is not None else 0.0
                res = players[key]()
                server_cpu = (
                    server.cpu_s() - cpu0 if server is not None else float("nan")
                )
                s = res["steps"]
                runs[key].append(
                    {
                        "p50_ms": percentile(s, 50) * 1e3,
                        "p99_ms": percentile(s, 99) * 1e3,
                        "mean_ms": statistics.fmean(s) * 1e3,
                        "steps": len(s),
                        "successes": res["successes"],
                        "calls": res["calls"],
                        "server_cpu_us_per_call": server_cpu / res["calls"] * 1e6,
                        "client_cpu_us_per_call": res["client_cpu_s"]
                        / res["calls"]
                        * 1e6,
                        "load": [l0, load()],
                    }
                )
                x = runs[key][-1]
                print(
                    f"  repeat {r} {key:7s} p50 {x['p50_ms']:.3f} ms  p99 {x['p99_ms']:.3f} ms  steps {len(s)}  "
                    f"CPU us/call server {x['server_cpu_us_per_call']:.0f} client {x['client_cpu_us_per_call']:.0f}  "
                    f"load {l0}",
                    file=sys.stderr,
                    flush=True,
                )
        tg_rss, nat_rss = tg.rss_mib(), nat.rss_mib()
    steps = {runs[k][0]["steps"] for k in runs}
    if len(steps) != 1:
        raise RuntimeError(
            f"the variants played different games: steps per run {steps}"
        )
    summary = {
        k: {
            "what": VARIANTS[k],
            "p50_ms": statistics.median(x["p50_ms"] for x in v),
            "p99_ms": statistics.median(x["p99_ms"] for x in v),
            "mean_ms": statistics.median(x["mean_ms"] for x in v),
            "server_cpu_us_per_call": statistics.median(
                x["server_cpu_us_per_call"] for x in v
            ),
            "client_cpu_us_per_call": statistics.median(
                x["client_cpu_us_per_call"] for x in v
            ),
            "runs": v,
        }
        for k, v in runs.items()
    }
    return {
        "variants": summary,
        "steps_per_run": steps.pop(),
        "server_rss_mib": {"turngym": tg_rss, "openenv": nat_rss},
    }


# -- 2. sessions held at once -----------------------------------------------------------------------
async def hold_sessions(
    server: Server, n: int, *, steps: int = 3, open_timeout: float = 120.0
) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    errors: list[str] = []
    held = 0
    all_there = asyncio.Event()
    release = asyncio.Event()

    def settle() -> None:
        if held + len(errors) >= n:
            all_there.set()

    async def call(ws: Any, message: dict[str, Any]) -> dict[str, Any]:
        await ws.send(json.dumps(message))
        reply = json.loads(await ws.recv())
        if reply.get("type") != "observation":
            raise RuntimeError(f"{reply.get('type')}: {reply.get('data')}")
        return reply["data"]

    async def one(i: int) -> None:
        nonlocal held
        counted = False
        try:
            async with connect(
                f"{server.ws}/ws",
                open_timeout=open_timeout,
                max_size=None,
                proxy=None,
                ping_interval=None,
                close_timeout=30,
            ) as ws:
                await call(ws, {"type": "reset", "data": {"seed": i}})
                lo, hi = LOW, HIGH
                for _ in range(steps):
                    guess = (lo + hi) // 2
                    data = await call(
                        ws, {"type": "step", "data": {"text": f"[{guess}]"}}
                    )
                    lo, hi = update(
                        lo, hi, guess, str(data["observation"].get("text", ""))
                    )
                    if data["done"]:
                        break
                held += 1
                counted = True
                settle()
                await release.wait()
                await ws.send(json.dumps({"type": "close"}))
        except Exception as e:  # noqa: BLE001 - counted, the run goes on
            errors.append(f"{type(e).__name__}: {e}")
            if not counted:
                settle()

    rss0 = server.rss_mib()
    t0 = time.perf_counter()
    tasks = [asyncio.create_task(one(i)) for i in range(n)]
    try:
        await asyncio.wait_for(all_there.wait(), open_timeout + 60)
    except TimeoutError:
        errors.append(
            f"timeout: only {held} of {n} sessions held after {open_timeout + 60:g} s"
        )
    ramp = time.perf_counter() - t0
    health = await asyncio.to_thread(server.health)
    rss, threads = server.rss_mib(), server.threads()
    release.set()
    await asyncio.gather(*tasks)
    return {
        "n": n,
        "held": held,
        "errors": len(errors),
        "first_errors": errors[:3],
        "seconds_to_hold_all": ramp,
        "server_sessions_reported": health.get(
            "sessions", health.get("active_sessions")
        ),
        "server_rss_mib_idle": rss0,
        "server_rss_mib_held": rss,
        "server_threads_held": threads,
        "load": load(),
    }


def bench_sessions(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, list[dict[str, Any]]] = {"turngym": [], "openenv": []}
    for n in args.sessions:
        for name, make in (("turngym", turngym_server), ("openenv", native_server)):
            with make(max(n, 1024)) as server:
                res = asyncio.run(hold_sessions(server, n))
            out[name].append(res)
            print(
                f"  sessions {name:8s} N={n:5d}: held {res['held']}, errors {res['errors']}, "
                f"{res['seconds_to_hold_all']:.1f} s, RSS {res['server_rss_mib_held']:.0f} MiB, "
                f"load {res['load']}",
                file=sys.stderr,
                flush=True,
            )
    return out


# -- 3. turngym eval, remote vs in-process ----------------------------------------------------------
def eval_once(env_id: str, episodes: int, workdir: Path, tag: str) -> dict[str, Any]:
    suite = workdir / f"{tag}.yaml"
    suite.write_text(
        f"name: {tag}\nepisodes: {episodes}\nseed: 0\nenvs:\n  - id: {env_id}\n"
    )
    out = workdir / f"run-{tag}"
    cmd = [
        str(TURNGYM),
        "eval",
        "--suite",
        str(suite),
        "--agent",
        "random",
        "--out",
        str(out),
    ]
    l0 = load()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(
            f"turngym eval on {env_id} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
    summary = json.loads((out / "summary.json").read_text())
    overall = summary["overall"]
    n = overall["episodes"]
    return {
        "episodes": n,
        "errors": overall.get("errors"),
        "mean_turns": overall.get("mean_turns"),
        "elapsed_s": summary["elapsed"],
        "episodes_per_s": n / summary["elapsed"],
        "turns_per_s": n * (overall.get("mean_turns") or 0) / summary["elapsed"],
        "command_wall_s": wall,
        "episodes_per_s_command": n / wall,
        "load": [l0, load()],
    }


def bench_eval(args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"in-process": [], "remote": []}
    with turngym_server() as tg, tempfile.TemporaryDirectory() as tmp:
        ids = {"in-process": GN, "remote": f"remote/{tg.ws}"}
        for r in range(args.eval_repeats):
            for name in (
                ("in-process", "remote") if r % 2 == 0 else ("remote", "in-process")
            ):
                res = eval_once(ids[name], args.eval_episodes, Path(tmp), f"{name}-{r}")
                runs[name].append(res)
                print(
                    f"  eval {name:10s} {res['episodes_per_s']:.0f} episodes/s ({res['episodes']} episodes, "
                    f"{res['mean_turns']:.1f} turns, {res['errors']} errors), load {res['load'][0]}",
                    file=sys.stderr,
                    flush=True,
                )
    return {
        name: {
            "episodes_per_s": statistics.median(x["episodes_per_s"] for x in v),
            "turns_per_s": statistics.median(x["turns_per_s"] for x in v),
            "mean_turns": statistics.median(x["mean_turns"] for x in v),
            "episodes_per_s_command": statistics.median(
                x["episodes_per_s_command"] for x in v
            ),
            "runs": v,
        }
        for name, v in runs.items()
    }


# -- report -----------------------------------------------------------------------------------------
def markdown(result: dict[str, Any]) -> str:
    lines = [f"Command: `{result['command']}`", f"Load average: {result['load']}", ""]
    lat = result.get("latency")
    if lat:
        lines += [
            "| variant | step p50 ms | step p99 ms | mean ms | server CPU us/call | client CPU us/call |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for k, v in lat["variants"].items():
            sc = (
                "-"
                if v["server_cpu_us_per_call"] != v["server_cpu_us_per_call"]
                else f"{v['server_cpu_us_per_call']:.0f}"
            )
            lines.append(
                f"| ({k}) {v['what']} | {v['p50_ms']:.3f} | {v['p99_ms']:.3f} | {v['mean_ms']:.3f} | {sc} | "
                f"{v['client_cpu_us_per_call']:.0f} |"
            )
        lines.append("")
    ses = result.get("sessions")
    if ses:
        lines += [
            "| server | N | held | errors | s to hold all | server RSS MiB (idle -> held) | threads |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, rows in ses.items():
            for r in rows:
                lines.append(
                    f"| {name} | {r['n']} | {r['held']} | {r['errors']} | {r['seconds_to_hold_all']:.1f} | "
                    f"{r['server_rss_mib_idle']:.0f} -> {r['server_rss_mib_held']:.0f} | {r['server_threads_held']} |"
                )
        lines.append("")
    ev = result.get("eval")
    if ev:
        lines += [
            (
                "| turngym eval --agent random | episodes/s (summary elapsed) | turns/episode | turns/s | "
                "episodes/s (whole command) |"
            ),
            "|---|---:|---:|---:|---:|",
        ]
        for name, v in ev.items():
            lines.append(
                f"| {name} | {v['episodes_per_s']:.0f} | {v['mean_turns']:.2f} | {v['turns_per_s']:.0f} | "
                f"{v['episodes_per_s_command']:.0f} |"
            )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a short run: 2 repeats of 100 episodes, N 64 and 256",
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument(
        "--episodes",
        type=int,
        default=500,
        help="measured episodes per variant per repeat",
    )
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--sessions", default="64,256,512,1024")
    ap.add_argument("--eval-episodes", type=int, default=500)
    ap.add_argument("--eval-repeats", type=int, default=3)
    ap.add_argument(
        "--only", default="latency,sessions,eval", help="which parts, comma-separated"
    )
    ap.add_argument(
        "--out",
        help="the JSON results file [default: perf/results/serve.json, serve_quick.json]",
    )
    args = ap.parse_args()
    if args.quick:
        args.repeats, args.episodes, args.warmup = 2, 100, 5
        args.sessions, args.eval_episodes, args.eval_repeats = "64,256", 100, 1
    args.sessions = [int(x) for x in str(args.sessions).split(",") if x]
    if not OPENENV_PY.exists():
        print(
            f"{OPENENV_PY} is missing: run scripts/setup/65-openenv.sh first",
            file=sys.stderr,
        )
        return 2
    parts = set(args.only.split(","))
    result: dict[str, Any] = {
        "command": "python perf/serve.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "args": {k: v for k, v in vars(args).items() if k != "out"},
    }
    loads = [load()]
    if "latency" in parts:
        print("step round trip ...", file=sys.stderr)
        result["latency"] = bench_latency(args)
        loads.append(load())
    if "sessions" in parts:
        print("sessions held at once ...", file=sys.stderr)
        result["sessions"] = bench_sessions(args)
        loads.append(load())
    if "eval" in parts:
        print("turngym eval, remote vs in-process ...", file=sys.stderr)
        result["eval"] = bench_eval(args)
        loads.append(load())
    result["load"] = loads
    out = (
        Path(args.out)
        if args.out
        else REPO
        / "perf"
        / "results"
        / ("serve_quick.json" if args.quick else "serve.json")
    )
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\nwritten: {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

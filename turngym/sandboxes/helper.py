"""The in-container helper: the fast exec channel of a Docker sandbox.

Runs as the container's main process (PID 1, so code in the sandbox cannot kill it) with the
Python standard library only. It reads requests from stdin and writes answers to stdout, each a
4-byte big-endian length and a JSON object; the host side is ``turngym.sandboxes.docker``.

    {"id": 1, "op": "exec", "cmd": "ls", "timeout": 10, "cwd": "/work", "env": {}, "stdin": null}
      -> {"id": 1, "exit_code": 0, "stdout": "...", "stderr": "", "timed_out": false, "duration": 0.002}
    {"id": 2, "op": "write", "path": "a.txt", "data": "<base64>", "mode": 420}  -> {"id": 2, "ok": true}
    {"id": 3, "op": "read", "path": "a.txt"}        -> {"id": 3, "data": "<base64>"}
    {"id": 4, "op": "clean"}                        -> {"id": 4, "ok": true, "killed": 0}
    {"id": 5, "op": "ping"}                         -> {"id": 5, "ok": true}
    a failed request                                -> {"id": n, "error": "what went wrong"}

Each command runs in its own session and process group, with its oom_score_adj raised so a memory
bomb is what the kernel kills. At the timeout the whole group (and every descendant still found
in /proc) gets SIGKILL. ``clean`` kills every process but the helper and empties the writable
directories. End of stdin (the owner went away) kills everything and exits.
"""

import base64
import json
import os
import selectors
import shutil
import signal
import stat
import struct
import sys
import time

WORKDIR = os.environ.get("TURNGYM_WORKDIR", "/work")
WIPE = [WORKDIR, "/tmp", "/dev/shm"]
OUTPUT_LIMIT = int(os.environ.get("TURNGYM_OUTPUT_LIMIT", str(1 << 20)))
SHELL = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"

sel = selectors.DefaultSelector()
jobs = {}  # pid -> Job
inbuf = bytearray()


class Job:
    def __init__(self, rid, pid, out_fd, err_fd, timeout):
        self.rid, self.pid = rid, pid
        self.fds = {out_fd: bytearray(), err_fd: bytearray()}
        self.out_fd, self.err_fd = out_fd, err_fd
        self.start = time.monotonic()
        self.deadline = self.start + timeout if timeout else None
        self.timed_out = False
        self.truncated = False
        self.closed = set()
        self.stdin = None  # (fd, bytes still to write)
        self.status = None  # the wait status, once reaped


def send(msg):
    blob = json.dumps(msg).encode()
    data = struct.pack(">I", len(blob)) + blob
    while data:
        n = os.write(1, data)
        data = data[n:]


def nonblock(fd):
    os.set_blocking(fd, False)


def others():
    """Pids of every process in the container but this one."""
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]


def proc_table():
    """pid -> (parent pid, process group) of every other process in the container."""
    table = {}
    for pid in others():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            table[pid] = (int(fields[1]), int(fields[2]))
        except (OSError, IndexError, ValueError):
            pass
    return table


def job_members(root):
    """The processes of a command: its process group and every descendant (even in new sessions)."""
    table = proc_table()
    found = {p for p, (_, pgrp) in table.items() if pgrp == root}
    frontier = found | {root}
    while frontier:
        frontier = {p for p, (pp, _) in table.items() if pp in frontier and p not in found}
        found |= frontier
    return found


def kill_job(job):
    """SIGKILL the command's processes until none is left (a fork bomb forks while it is killed)."""
    deadline = time.monotonic() + 3
    while True:
        try:
            os.killpg(job.pid, signal.SIGKILL)
        except OSError:
            pass
        members = job_members(job.pid)
        alive = [p for p in members if not zombie(p)]
        if not alive or time.monotonic() > deadline:
            return
        for p in alive:
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        reap_children()
        time.sleep(0.002)


def zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def reap_children():
    """Reap every exited child (orphans re-parented to pid 1 among them); for our commands, record the
    wait status, which ``reap`` answers."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        job = jobs.get(pid)
        if job is not None:
            job.status = status


def set_oom(value):
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(value))
    except OSError:
        pass


def spawn(req):
    cmd = req["cmd"]
    argv = [SHELL, "-c", cmd] if isinstance(cmd, str) else list(cmd)
    env = {"HOME": WORKDIR, "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TERM": "dumb"}
    env.update(req.get("env") or {})
    cwd = req.get("cwd") or WORKDIR
    stdin_data = req.get("stdin")
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    in_r, in_w = os.pipe() if stdin_data is not None else (None, None)
    # posix_spawn (vfork) costs a fraction of a fork of this process. The child's oom_score_adj is
    # inherited: raised around the spawn so that a memory bomb, not the helper, is what the kernel
    # kills (an unprivileged process may lower it again down to where it started).
    set_oom(1000)
    try:
        os.chdir(cwd)
        pid = os.posix_spawnp(
            argv[0], argv, env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, in_r, 0) if in_r is not None else (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, out_w, 1),
                (os.POSIX_SPAWN_DUP2, err_w, 2),
            ],
            setsid=True,
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGTERM),
        )
    except BaseException:
        for fd in (out_r, out_w, err_r, err_w, in_r, in_w):
            if fd is not None:
                os.close(fd)
        raise
    finally:
        os.chdir(WORKDIR)
        set_oom(0)
    os.close(out_w)
    os.close(err_w)
    job = Job(req["id"], pid, out_r, err_r, req.get("timeout"))
    if in_r is not None:  # fed from the loop, so a child that never reads cannot block the helper
        os.close(in_r)
        nonblock(in_w)
        job.stdin = (in_w, bytearray(stdin_data.encode()))
        sel.register(in_w, selectors.EVENT_WRITE, ("stdin_w", job))
    for fd in (out_r, err_r):
        nonblock(fd)
        sel.register(fd, selectors.EVENT_READ, ("job", job))
    jobs[pid] = job


def read_job_fd(job, fd):
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        return
    except OSError:
        chunk = b""
    if not chunk:
        sel.unregister(fd)
        os.close(fd)
        job.closed.add(fd)
        return
    keep(job, fd, chunk)


def feed_stdin(job):
    fd, data = job.stdin
    try:
        n = os.write(fd, data[:65536])
        del data[:n]
    except BlockingIOError:
        return
    except OSError:
        data.clear()
    if not data:
        close_stdin(job)


def close_stdin(job):
    if job.stdin is not None:
        sel.unregister(job.stdin[0])
        os.close(job.stdin[0])
        job.stdin = None


def keep(job, fd, chunk):
    buf = job.fds[fd]
    room = OUTPUT_LIMIT - len(buf)
    if room > 0:
        buf += chunk[:room]
    if len(chunk) > room:
        job.truncated = True


def finish(job, status):
    close_stdin(job)
    for fd in (job.out_fd, job.err_fd):
        if fd in job.closed:
            continue
        while True:  # what the process wrote before it exited is in the pipe now
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            keep(job, fd, chunk)
        sel.unregister(fd)
        os.close(fd)
    code = os.waitstatus_to_exitcode(status)
    stderr = job.fds[job.err_fd].decode("utf-8", "replace")
    if job.truncated:
        stderr += f"\n[turngym: output truncated at {OUTPUT_LIMIT} bytes]"
    send({
        "id": job.rid,
        "exit_code": code,
        "stdout": job.fds[job.out_fd].decode("utf-8", "replace"),
        "stderr": stderr,
        "timed_out": job.timed_out,
        "duration": time.monotonic() - job.start,
    })


def reap():
    """Reap every exited child and answer for each of our commands that has exited."""
    reap_children()
    for pid, job in list(jobs.items()):
        if job.status is not None:
            del jobs[pid]
            finish(job, job.status)


def resolve(path):
    return path if os.path.isabs(path) else os.path.join(WORKDIR, path)


def wipe(top):
    """Empty ``top``, even where the sandboxed program took away its own permissions."""
    try:
        os.chmod(top, os.stat(top).st_mode | stat.S_IRWXU)
    except OSError:
        pass
    for root, dirs, _files in os.walk(top):
        for d in dirs:
            path = os.path.join(root, d)
            if not os.path.islink(path):
                try:
                    os.chmod(path, stat.S_IRWXU)
                except OSError:
                    pass
    try:
        entries = list(os.scandir(top))
    except OSError:
        return
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path, ignore_errors=True)
            else:
                os.unlink(e.path)
        except OSError:
            pass


def clean():
    """Kill every process but this one, then empty the writable directories."""
    killed = 0
    deadline = time.monotonic() + 5
    while True:
        left = others()
        if not left or time.monotonic() > deadline:
            break
        killed += len(left)
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        reap()
        time.sleep(0.001)
    reap()
    for job in list(jobs.values()):  # a command that escaped the reap: answer for it
        jobs.pop(job.pid, None)
        finish(job, 9)
    for top in WIPE:
        wipe(top)
    left = others()
    return {"ok": not left, "killed": killed, "left": len(left)}


def handle(req):
    op = req.get("op")
    rid = req.get("id")
    try:
        if op == "exec":
            spawn(req)
            return
        if op == "write":
            path = resolve(req["path"])
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "wb") as f:
                f.write(base64.b64decode(req["data"]))
            os.chmod(path, req.get("mode", 0o644))
            send({"id": rid, "ok": True})
        elif op == "read":
            with open(resolve(req["path"]), "rb") as f:
                send({"id": rid, "data": base64.b64encode(f.read()).decode()})
        elif op == "clean":
            send({"id": rid, **clean()})
        elif op == "ping":
            send({"id": rid, "ok": True, "jobs": len(jobs)})
        else:
            send({"id": rid, "error": f"unknown op {op!r}"})
    except Exception as e:  # noqa: BLE001 - every failure is an answer, never a crash
        send({"id": rid, "error": f"{type(e).__name__}: {e}"})


def read_requests():
    try:
        chunk = os.read(0, 1 << 20)
    except BlockingIOError:
        return True
    if not chunk:
        return False
    inbuf.extend(chunk)
    while len(inbuf) >= 4:
        (n,) = struct.unpack(">I", inbuf[:4])
        if len(inbuf) < 4 + n:
            break
        req = json.loads(bytes(inbuf[4 : 4 + n]))
        del inbuf[: 4 + n]
        handle(req)
    return True


def main():
    os.makedirs(WORKDIR, exist_ok=True)
    wake_r, wake_w = os.pipe()
    nonblock(wake_r)
    nonblock(wake_w)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    nonblock(0)
    sel.register(0, selectors.EVENT_READ, ("stdin", None))
    sel.register(wake_r, selectors.EVENT_READ, ("wake", None))
    send({"id": 0, "ready": True, "pid": os.getpid(), "uid": os.getuid()})
    while True:
        deadlines = [j.deadline for j in jobs.values() if j.deadline and not j.timed_out]
        wait = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
        for key, _ in sel.select(wait):
            kind, job = key.data
            if kind == "stdin":
                if not read_requests():
                    clean()
                    return
            elif kind == "wake":
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
            elif kind == "stdin_w":
                feed_stdin(job)
            else:
                read_job_fd(job, key.fd)
        now = time.monotonic()
        for job in list(jobs.values()):
            if job.deadline and not job.timed_out and now >= job.deadline:
                job.timed_out = True
                kill_job(job)
        reap()


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# Docker for the tool envs: a running dockerd, the base image turngym/base:bookworm (a Debian root
# file system from debootstrap, imported with `docker import`, because no image registry may be
# reachable) and the project's images (`turngym sandbox build`). Idempotent.
set -euo pipefail
source scripts/setup/lib.sh

# 1. dockerd: start one only if none runs; wait until it answers. Only `docker info` is asked (never
# `docker version` parsed): a newer CLI (say 28 in /usr/local/bin) negotiates the API down to an older
# Debian dockerd. ROOT (tests only) stands for / in the paths of the pid and log files.
ROOT=${SETUP_ROOT:-}
if ! docker info >/dev/null 2>&1; then
  if pgrep -x dockerd >/dev/null; then
    echo "waiting for the running dockerd"
  else
    echo "starting dockerd"
    # a dockerd killed with its session leaves pid files that would stop a new one from starting
    rm -f "$ROOT"/var/run/docker.pid "$ROOT"/var/run/docker/containerd/containerd.pid
    mkdir -p "$ROOT"/var/log
    # detached so it outlives this script
    setsid nohup dockerd --bridge=none --iptables=false >"$ROOT"/var/log/turngym-dockerd.log 2>&1 < /dev/null &
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not answer in 60 s; see $ROOT/var/log/turngym-dockerd.log" >&2; exit 1; }
fi

# 2. the base image, from the Debian mirror apt is configured with.
BASE=${TURNGYM_BASE_IMAGE:-turngym/base:bookworm}
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  mirror=$(debian_mirror)
  echo "building $BASE from $mirror (debootstrap, about a minute)"
  root=$(mktemp -d /tmp/turngym-rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase --include=python3 bookworm "$root" "$mirror" >/tmp/turngym-debootstrap.log 2>&1 \
    || { tail -n 30 /tmp/turngym-debootstrap.log >&2; exit 1; }
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  rm -rf "$root"; trap - EXIT
fi

# 3. the project's images, FROM the base (rebuilt when the Dockerfiles change). turngym/mcp:latest
# (git and the MCP reference servers) fetches its wheels and .debs on the host first, into
# ~/.cache/turngym/images/mcp, once per pin list: a rebuild needs no network.
if ! stamp_ok docker-images $(find turngym/sandboxes/images turngym/envs/tools/terminal_tasks -type f -not -name '*.pyc' 2>/dev/null | sort) \
     || ! docker image inspect turngym/sandbox:latest >/dev/null 2>&1 \
     || ! docker image inspect turngym/mcp:latest >/dev/null 2>&1 \
     || ! docker image inspect turngym/serve:latest >/dev/null 2>&1; then
  "$VENV/bin/turngym" sandbox build --base "$BASE"
  stamp_set docker-images $(find turngym/sandboxes/images turngym/envs/tools/terminal_tasks -type f -not -name '*.pyc' 2>/dev/null | sort)
fi

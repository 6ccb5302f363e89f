#!/usr/bin/env bash
# Docker for the tool envs: a running dockerd, the base image turngym/base:bookworm (a Debian root
# file system from debootstrap, imported with `docker import`, because no image registry may be
# reachable) and the project's images (`turngym sandbox build`). Idempotent.
set -euo pipefail
source scripts/setup/lib.sh

# 1. dockerd: start one only if none answers; detached so it outlives this script.
if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd"
  # a dockerd killed with its session leaves pid files that would stop a new one from starting
  if ! pgrep -x dockerd >/dev/null; then rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid; fi
  mkdir -p /var/log
  setsid nohup dockerd --bridge=none --iptables=false >/var/log/turngym-dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /var/log/turngym-dockerd.log" >&2; exit 1; }
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

# 3. the project's images, FROM the base (rebuilt when the Dockerfiles change).
if ! stamp_ok docker-images $(find turngym/sandboxes/images turngym/envs/tools/terminal_tasks -type f 2>/dev/null | sort) \
     || ! docker image inspect turngym/sandbox:latest >/dev/null 2>&1; then
  "$VENV/bin/turngym" sandbox build --base "$BASE"
  stamp_set docker-images $(find turngym/sandboxes/images turngym/envs/tools/terminal_tasks -type f 2>/dev/null | sort)
fi

#!/usr/bin/env bash
# The virtualenv .venv-openenv: OpenEnv's own package (openenv 0.10.0: its GenericEnvClient and
# `openenv validate`), the real peer the tests of `turngym serve` play against, and perf/serve.py's
# native OpenEnv server. Its own venv, so OpenEnv's pins never fight ours; turngym is not installed
# here (the peer only talks to the server). Held to the versions CI tested,
# scripts/constraints-openenv.txt (scripts/freeze-constraints.sh openenv refreshes it).
set -euo pipefail
source scripts/setup/lib.sh
OVENV=$REPO/.venv-openenv
OPENENV_VERSION=0.10.0
PINS=scripts/constraints-openenv.txt
pins=(); if [ -f "$PINS" ]; then pins=(-c "$PINS"); fi  # a deleted file: unpinned, to refresh it
if stamp_ok openenv "openenv==$OPENENV_VERSION" scripts/setup/65-openenv.sh "$PINS" \
   && "$OVENV/bin/python" -c "import openenv.core.generic_client" 2>/dev/null; then
  exit 0
fi
LOG=$STAMPS/openenv-setup.log
: > "$LOG"
run() { "$@" >>"$LOG" 2>&1 || { echo "failed: $*"; tail -40 "$LOG"; exit 1; }; }
[ -x "$OVENV/bin/python" ] || python3 -m venv "$OVENV"
run "$OVENV/bin/pip" install -q --upgrade pip
run "$OVENV/bin/pip" install -q "${pins[@]}" "openenv==$OPENENV_VERSION" uvicorn
"$OVENV/bin/python" -c "import openenv.core.generic_client, openenv.core.env_server, uvicorn"
stamp_set openenv "openenv==$OPENENV_VERSION" scripts/setup/65-openenv.sh "$PINS"

#!/usr/bin/env bash
# The virtualenv .venv-trl for turngym.integrations.trl (TRL's GRPOTrainer over turngym envs), its test
# (tests/integrations/test_trl.py) and perf/trainer.py's TRL baseline (perf/setup_trl.sh runs this
# step). TRL pins its own transformers / accelerate / datasets, which is why it does not go into .venv.
# torch goes in first (the local CPU wheel: letting trl resolve torch pulls the CUDA build,
# gigabytes), then trl, then turngym itself editable with its core dependencies only (the worker
# scripts load models built in .venv). Every install is held to the versions CI tested in this venv,
# scripts/constraints-trl.txt; scripts/freeze-constraints.sh trl refreshes it (to move TRL: change
# TRL_VERSION, delete the file, set up, test, refresh it).
set -euo pipefail
source scripts/setup/lib.sh
TVENV=$REPO/.venv-trl
TRL_VERSION=1.16.0
PINS=scripts/constraints-trl.txt
pins=(); if [ -f "$PINS" ]; then pins=(-c "$PINS"); fi  # a deleted file: unpinned, to refresh it
installed="import importlib.metadata as m, importlib.util as u, sys; sys.exit(m.version('trl') != '$TRL_VERSION' or u.find_spec('turngym') is None)"
if stamp_ok trl pyproject.toml "trl==$TRL_VERSION" scripts/setup/70-trl.sh "$PINS" \
   && "$TVENV/bin/python" -c "$installed" 2>/dev/null; then
  exit 0
fi
LOG=$STAMPS/trl-setup.log
: > "$LOG"
# pip's output goes to the log, shown only when a step fails
run() { "$@" >>"$LOG" 2>&1 || { echo "failed: $*"; tail -40 "$LOG"; exit 1; }; }
[ -x "$TVENV/bin/python" ] || python3 -m venv "$TVENV"
run "$TVENV/bin/pip" install -q --upgrade pip
run "$TVENV/bin/pip" install -q "${pins[@]}" torch==2.13.0
run "$TVENV/bin/pip" install -q "${pins[@]}" "trl==$TRL_VERSION" torch==2.13.0
run "$TVENV/bin/pip" install -q "${pins[@]}" -e . "trl==$TRL_VERSION" torch==2.13.0
# the same check as the tests: trl and turngym import, torch is the CPU build
"$TVENV/bin/python" -c "import torch, trl, turngym; assert torch.__version__.startswith('2.13.0'), torch.__version__"
stamp_set trl pyproject.toml "trl==$TRL_VERSION" scripts/setup/70-trl.sh "$PINS"

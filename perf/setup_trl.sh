#!/usr/bin/env bash
# Sets up the TRL comparison virtualenv for perf/trainer.py, OUTSIDE the repo tree
# (default ~/.cache/turngym/trl-venv; override with TRL_VENV). Not part of `make test`.
# Idempotent: re-running only re-checks the install. TRL may pull its own transformers / accelerate /
# datasets, which is why it does not go into the project's .venv.
set -euo pipefail
VENV=${TRL_VENV:-$HOME/.cache/turngym/trl-venv}
TRL_VERSION=${TRL_VERSION:-1.16.0}
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
if ! "$VENV/bin/python" -c "import trl, torch; assert trl.__version__ == '$TRL_VERSION'" 2>/dev/null; then
  "$VENV/bin/pip" install -q --upgrade pip
  # torch FIRST, pinned to the CPU wheel the machine has on disk: letting trl resolve torch pulls the
  # CUDA build (gigabytes)
  "$VENV/bin/pip" install -q "torch==2.13.0"
  "$VENV/bin/pip" install -q "trl==$TRL_VERSION"
fi
"$VENV/bin/python" - <<EOF
import torch, transformers, trl, accelerate
print("trl venv ready:", "$VENV", "| trl", trl.__version__, "| transformers", transformers.__version__,
      "| accelerate", accelerate.__version__, "| torch", torch.__version__)
EOF

#!/usr/bin/env bash
# The TRL virtualenv perf/trainer.py compares against: the one set-up makes for turngym's TRL
# integration and its tests, .venv-trl (scripts/setup/70-trl.sh: torch 2.13.0 CPU first, then TRL at
# the pinned version, then turngym editable; held to scripts/constraints-trl.txt). One venv, not two.
# perf/trainer.py looks for it at $TRL_VENV (default ~/.cache/turngym/trl-venv): that path is made a
# link to .venv-trl. Not part of `make test`. Idempotent: a second run only re-checks the install.
set -euo pipefail
cd "$(dirname "$0")/.."
export REPO=$PWD STAMPS=$PWD/.cache/setup
mkdir -p "$STAMPS"
bash scripts/setup/70-trl.sh
VENV=${TRL_VENV:-$HOME/.cache/turngym/trl-venv}
if [ "$(realpath -m "$VENV")" != "$(realpath "$REPO/.venv-trl")" ]; then
  if [ -e "$VENV" ] && [ ! -L "$VENV" ]; then
    echo "$VENV is a virtualenv of its own (made by an older perf/setup_trl.sh): perf/trainer.py would use it" \
         "instead of .venv-trl. Remove it (rm -r $VENV) and run this again." >&2
    exit 1
  fi
  mkdir -p "$(dirname "$VENV")"
  ln -sfn "$REPO/.venv-trl" "$VENV"
fi
"$VENV/bin/python" - <<PY
import torch, transformers, trl, accelerate
print("trl venv ready:", "$VENV", "->", "$REPO/.venv-trl", "| trl", trl.__version__, "| transformers",
      transformers.__version__, "| accelerate", accelerate.__version__, "| torch", torch.__version__)
PY

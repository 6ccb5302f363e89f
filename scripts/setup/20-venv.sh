#!/usr/bin/env bash
# tags: core
# The virtualenv .venv: torch 2.13.0 (CPU) first, then turngym with all extras and the test tools.
set -euo pipefail
source scripts/setup/lib.sh
if stamp_ok venv pyproject.toml; then exit 0; fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/pip" install -q torch==2.13.0 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/pip" install -q -e ".[all,test]" 2>&1 | grep -v '^WARNING: Location' || true
"$VENV/bin/python" -c "import torch, turngym" # fails the step if the install did not work
stamp_set venv pyproject.toml

#!/usr/bin/env bash
# tags: core
# The virtualenv .venv: torch 2.13.0 (CPU) first, then turngym with all extras and the test tools,
# at the versions CI tested (scripts/constraints.txt; scripts/freeze-constraints.sh refreshes it).
set -euo pipefail
source scripts/setup/lib.sh
PINS=scripts/constraints.txt
pins=(); if [ -f "$PINS" ]; then pins=(-c "$PINS"); fi  # a deleted file: unpinned, to refresh it
if stamp_ok venv pyproject.toml "$PINS"; then exit 0; fi
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
# pip's exit status decides (pipefail); the filter only hides a harmless warning
pip_install() { "$VENV/bin/pip" install -q "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }; }
pip_install --upgrade pip
pip_install "${pins[@]}" torch==2.13.0
pip_install "${pins[@]}" -e ".[all,test]"
"$VENV/bin/python" -c "import torch, turngym" # fails the step if the install did not work
stamp_set venv pyproject.toml "$PINS"

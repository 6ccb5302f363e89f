#!/usr/bin/env bash
# Installs everything turngym needs on a fresh Debian 12 machine, as root. Idempotent: a step whose
# inputs did not change since it last ran is skipped (stamps in .cache/setup/).
#   scripts/setup.sh            all steps (what `make test` needs)
#   scripts/setup.sh core       only the steps tagged core (what `make demo` needs)
set -euo pipefail
cd "$(dirname "$0")/.."
export REPO=$PWD VENV=$PWD/.venv STAMPS=$PWD/.cache/setup
mkdir -p "$STAMPS"
only=${1:-all}
for step in scripts/setup/[0-9]*.sh; do
  if [ "$only" = core ] && ! grep -q '^# tags:.*core' "$step"; then continue; fi
  echo "== setup: $(basename "$step")"
  bash "$step"
done

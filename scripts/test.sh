#!/usr/bin/env bash
# The test command behind `make test` and CI: the whole pytest suite, nothing skipped in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -q -ra --durations=30 "$@"

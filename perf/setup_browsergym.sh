#!/usr/bin/env bash
# Sets up the BrowserGym comparison virtualenv for perf/browser.py, OUTSIDE the repo tree
# (default ~/.cache/turngym/browsergym-venv; override with BROWSERGYM_VENV). Not part of `make test`.
# Idempotent: re-running only re-checks the install. BrowserGym drives the same system Chromium
# (/usr/bin/chromium) that turngym uses; Playwright's own browser download is not needed.
set -euo pipefail
VENV=${BROWSERGYM_VENV:-$HOME/.cache/turngym/browsergym-venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if ! "$VENV/bin/python" -c "import browsergym.miniwob, miniwob" 2>/dev/null; then
  "$VENV/bin/pip" install -q --upgrade pip
  # miniwob ships the task HTML that browsergym-miniwob loads through MINIWOB_URL
  "$VENV/bin/pip" install -q browsergym-core browsergym-miniwob miniwob
fi
"$VENV/bin/python" -c "import browsergym.core, browsergym.miniwob, playwright; print('browsergym venv ready:', '$VENV')"

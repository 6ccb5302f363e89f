#!/usr/bin/env bash
# tags: core
# System packages, listed one per line in scripts/apt-packages.txt.
set -euo pipefail
source scripts/setup/lib.sh
mapfile -t pkgs < <(grep -v '^#' scripts/apt-packages.txt | awk 'NF{print $1}')
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

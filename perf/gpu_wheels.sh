#!/usr/bin/env bash
# Wheels of turngym's pure-Python dependencies that a GPU machine's image lacks (it has torch, transformers,
# numpy, safetensors, sentencepiece, tiktoken, regex, rich, typer, pyyaml, requests, matplotlib...), for
# perf/gpu_check.py (issue 15). Run here once, from the repo root; fills .whl/ (git-ignored) with cp312
# manylinux wheels at the versions CI tested (scripts/constraints.txt). On the GPU machine:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD && python3 perf/gpu_check.py --out $OUT
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(
  gymnasium Farama-Notifications pydantic pydantic_core annotated-types typing-inspection
  jsonschema jsonschema-specifications referencing rpds-py pydantic-extra-types
  mistral_common interegular typing_extensions
)
PY="${PYTHON:-.venv/bin/python}"
pins=()
for p in "${PACKAGES[@]}"; do
  pin=$(grep -i -E "^${p//-/[-_]}==" scripts/constraints.txt | head -1) || true
  [[ -n "$pin" ]] || { echo "gpu_wheels: $p has no pin in scripts/constraints.txt: add it there first" >&2; exit 1; }
  pins+=("$pin")
done
mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d .whl "${pins[@]}" 2> >(grep -v "^WARNING: Location" >&2)
ls .whl

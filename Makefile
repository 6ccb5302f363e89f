# The two commands a newcomer needs (README.md): `make demo` and `make test`.
PY := .venv/bin/python

.PHONY: setup setup-core demo test perf
setup:
	bash scripts/setup.sh all

setup-core:
	bash scripts/setup.sh core

demo: setup-core
	.venv/bin/turngym eval --suite smoke --agent scripted --out runs/demo-scripted
	.venv/bin/turngym eval --suite smoke --agent random --out runs/demo-random

test: setup
	bash scripts/test.sh

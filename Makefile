# The two commands a newcomer needs (README.md): `make demo` and `make test`.
PY := .venv/bin/python

.PHONY: setup setup-core demo test perf
setup:
	bash scripts/setup.sh all

setup-core:
	bash scripts/setup.sh core

# a tiny model learns GuessNumber from scratch on the CPU (eval before, Flow-GRPO, eval after, report);
# a second `make demo` continues the same run (--resume) instead of overwriting it
demo: setup-core
	if [ -f runs/quickstart/metrics.jsonl ]; then .venv/bin/turngym quickstart --resume; else .venv/bin/turngym quickstart; fi

test: setup
	bash scripts/test.sh

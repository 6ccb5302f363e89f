#!/usr/bin/env bash
set -e
mkdir -p logs
python3 - <<'EOF'
import random
rng = random.Random(7)
counts = [9, 6, 8]
for i, n in enumerate(counts):
    lines = [f"2024-01-0{i+1} INFO ok {k}" for k in range(40)] + [f"2024-01-0{i+1} ERROR failed {k}" for k in range(n)]
    lines += [f"2024-01-0{i+1} WARN error-ish {k}" for k in range(5)]
    rng.shuffle(lines)
    open(f"logs/app{i}.log", "w").write("\n".join(lines) + "\n")
EOF

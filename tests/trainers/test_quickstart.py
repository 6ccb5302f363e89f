"""`turngym quickstart` end to end on a short budget: model built, trained, evaluated before and after,
table printed, report with the learning curve written. (The full demo's learning is measured in
PERFORMANCE.md: it takes minutes, not a test's seconds.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_quickstart_short_run_prints_the_table_and_writes_the_report(tmp_path):
    out = tmp_path / "qs"
    cmd = [sys.executable, "-m", "turngym.cli.app", "quickstart", "--out", str(out),
           "--set", "iterations=2", "--set", "eval.every=2", "--set", "eval.seeds=4", "--set", "rollout.groups=2"]
    proc = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "before training" in proc.stdout and "after training" in proc.stdout
    report = (out / "report.html").read_text()
    assert "data:image/png;base64," in report and "flow_grpo" in report
    assert (out / "curve.png").stat().st_size > 1000
    # a second quickstart into the same directory asks for --resume instead of overwriting
    again = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode != 0 and "--resume" in again.stderr

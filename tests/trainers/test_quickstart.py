"""`turngym quickstart` end to end on a short budget: model built, trained, evaluated before and after,
table printed, report with the learning curve written. (The full demo's learning is measured in
PERFORMANCE.md: it takes minutes, not a test's seconds.)"""

from __future__ import annotations

import json
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
    # the one report writer's train section: the curve, the evals, the last eval's per-env table and a transcript
    assert "Learning curve" in report and "Held-out evals" in report and "Last held-out eval (iteration 2)" in report
    data = json.loads(report.split("id='report-data'>")[1].split("</script>")[0].replace("<\\/", "</"))
    assert data["envs"] == ["turngym/GuessNumber-v0"] and len(data["rows"]) == 4
    assert data["transcripts"] and data["transcripts"][0]["turns"]  # the viewer opens the last eval's transcripts
    # the eval episodes are in the run's episode store (not lost), marked with their iteration
    from turngym.benchmarks.store import read_episodes

    stored = read_episodes(out / "episodes.jsonl")
    assert sorted({e.run_id for e in stored}) == ["eval0", "eval2", "it1", "it2"]
    assert sum(e.run_id == "eval2" for e in stored) == 4
    # turngym view opens a training run as it opens an eval run
    view = subprocess.run([sys.executable, "-m", "turngym.cli.app", "view", str(out)], check=False, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert view.returncode == 0 and view.stdout.strip() == str((out / "report.html").resolve()), view.stderr
    # a second quickstart into the same directory asks for --resume instead of overwriting
    again = subprocess.run(cmd, check=False, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert again.returncode != 0 and "--resume" in again.stderr

"""`turngym export model` through a subprocess: the newest checkpoint's model by default, a chosen one with
--checkpoint, and one-paragraph errors with exit code 2 and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.agents.conftest import tiny_model
from tests.trainers.test_onpolicy import config
from turngym.trainers.config import TrainConfig
from turngym.trainers.onpolicy import OnPolicyTrainer

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "turngym.cli.app", "export", "model"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model = tiny_model("gn-nano", size="nano", tokenizer="task:guess_number", init_std=0.02)
    cfg = TrainConfig(**config(tmp_path_factory.mktemp("export"), model, **{"eval.every": 0, "checkpoint.keep": 2}))
    OnPolicyTrainer(cfg).run(progress=False)
    torch.set_num_threads(threads)
    return Path(cfg.run_dir)


def _export(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], check=False, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_export_model_writes_the_checkpoints_model(run, tmp_path):
    out = tmp_path / "latest"
    proc = _export(str(run), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"hf:{out}" in proc.stdout
    src = run / "checkpoints" / "iter-000002" / "model"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in src.iterdir())
    assert (out / "model.safetensors").read_bytes() == (src / "model.safetensors").read_bytes()
    first = _export(str(run), "--checkpoint", "1", "--out", str(tmp_path / "first"))
    assert first.returncode == 0, first.stderr[-2000:]
    assert (tmp_path / "first" / "model.safetensors").read_bytes() == (
        run / "checkpoints" / "iter-000001" / "model" / "model.safetensors"
    ).read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}"], "does not exist"),
        (["{run}", "--checkpoint", "7"], "has no checkpoint 7 (checkpoints kept: 1, 2)"),
        (["{empty}"], "holds no checkpoint"),
    ],
)
def test_export_model_errors_exit_2_without_a_traceback(run, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    paths = {"missing": str(tmp_path / "missing"), "run": str(run), "empty": str(tmp_path / "empty")}
    proc = _export(*[a.format(**paths) for a in args], "--out", str(tmp_path / "out"))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert message in " ".join(proc.stderr.split()), proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()

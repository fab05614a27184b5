"""DDP under torchrun: 2 CPU processes (gloo) follow the same loss curve as 1 process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_processes_match_one_process(tmp_path, run_cli):
    config = tmp_path / "c.yml"
    config.write_text(yaml.safe_dump({
        "task": "classifier", "seed": 3, "device": "cpu", "data": {"max_samples": 200},
        "model": {"hidden": [16, 16, 16]}, "optim": {"name": "muon"},
        "train": {"epochs": 3, "batch_size": 30, "loss": "mse"}}))
    one = run_cli("train", "-c", config, "--work-dir", tmp_path, "--name", "one")
    assert one.code == 0, one.err
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "mdcli", "-q", "train", "-c", str(config), "--work-dir", str(tmp_path),
         "--name", "two"], env=env, capture_output=True, text=True, timeout=200)
    assert two.returncode == 0, two.stderr[-2000:]

    def curve(name: str) -> list[float]:
        lines = (tmp_path / "train" / name / "metrics.jsonl").read_text().splitlines()
        return [r[key] for r in map(json.loads, lines) for key in ("train_loss", "val_loss")]

    assert len(curve("two")) == 8
    assert curve("two") == pytest.approx(curve("one"), rel=1e-5)
    a = torch.load(tmp_path / "train" / "one" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "train" / "two" / "checkpoints" / "last.pt", weights_only=True)
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=1e-4, atol=1e-5)

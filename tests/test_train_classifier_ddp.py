"""DDP under torchrun: 2 CPU processes (gloo) follow the same loss curve as 1 process."""

from __future__ import annotations

import json

import pytest
import torch
import yaml


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_two_processes_match_one_process(tmp_path, run_cli, torchrun):
    config = tmp_path / "c.yml"
    config.write_text(yaml.safe_dump({
        "task": "classifier", "seed": 3, "device": "cpu", "data": {"max_samples": 200},
        "model": {"hidden": [16, 16, 16]}, "optim": {"name": "muon"},
        "train": {"epochs": 3, "batch_size": 30, "loss": "mse"}}))
    one = run_cli("train", "-c", config, "--work-dir", tmp_path, "--name", "one")
    assert one.code == 0, one.err
    two = torchrun("train", "-c", config, "--work-dir", tmp_path, "--name", "two")
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

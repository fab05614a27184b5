"""``mdcli condense`` end to end on digits: outputs, --evaluate, bad input, torchrun = 1 process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

TINY = {
    "seed": 0, "device": "cpu",
    "dataset": {"batch_real": 32},
    "network": {"model": {"arch": "convnet", "channels": [8], "hidden": [16]}, "batch_size": 256},
    "optimization": {"optimizer": "sgd", "lr_img": 0.5, "mom_img": 0.5},
    "condense": {"ipc": 1, "num_premodel": 1, "niter": 4, "num_freqs": 64,
                 "teacher_model_epoch": 1, "save_every": 2, "init": "mix"},
    "evaluation": {"seeds": [0], "epochs": 3, "full_epochs": 1},
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _config(tmp_path: Path, **sections) -> Path:
    raw = yaml.safe_load(yaml.safe_dump(TINY))
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    path = tmp_path / "tiny.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.slow
def test_condense_writes_the_reference_outputs_and_evaluates(tmp_path, run_cli):
    config = _config(tmp_path)
    res = run_cli("condense", "-c", config, "--work-dir", tmp_path, "--name", "a")
    assert res.code == 0, res.err
    run = tmp_path / "condense" / "a"
    for name in ("distilled_data/syn_data_0.pth", "distilled_data/syn_data_2.pth",
                 "distilled_data/syn_data_4.pth", "images/loss_curve.png", "images/syn_grid.png",
                 "print.log", "args.log", "config.yaml", "metrics.jsonl"):
        assert (run / name).is_file(), name
    syn = torch.load(run / "distilled_data" / "syn_data_4.pth", weights_only=True)
    assert syn["data"].shape == (10, 1, 8, 8) and syn["labels"].tolist() == list(range(10))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    ev = summary["evaluation"]
    for key in ("condensed", "random_subset", "full"):
        assert set(ev[key]) == {"mean", "std", "ci95", "runs", "budget"}
        assert 0.0 <= ev[key]["mean"] <= 1.0
    assert ev["full"]["budget"] == {"samples": 1438, "epochs": 1, "steps": 6}
    assert ev["condensed"]["budget"] == {"samples": 10, "epochs": 3, "steps": 3}
    assert set(ev["cross_arch"]["mlp"]) == {"condensed", "random_subset"}
    assert ev["augmentation"]["dsa"] == "color_crop_cutout_flip_scale_rotate"
    assert "condensed" in res.out and "random_subset" in res.out and "95% interval" in res.out
    assert "budget" in res.out
    assert "condensing 10 classes" in (run / "print.log").read_text()
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 4
    # the premodel is cached: a second run trains nothing
    again = run_cli("condense", "-c", config, "--work-dir", tmp_path, "--name", "b",
                    "--set", "evaluation.enabled=false", "--ipc", "2", "--init", "noise")
    assert again.code == 0, again.err
    assert "cached" in (tmp_path / "condense" / "b" / "log.txt").read_text()
    assert torch.load(tmp_path / "condense" / "b" / "distilled_data" / "syn_data_4.pth",
                      weights_only=True)["data"].shape == (20, 1, 8, 8)
    loaded = run_cli("condense", "-c", config, "--work-dir", tmp_path, "--name", "c",
                     "--load-path", run / "distilled_data" / "syn_data_4.pth",
                     "--set", "evaluation.enabled=false", "--set", "condense.niter=1")
    assert loaded.code == 0, loaded.err
    start = torch.load(tmp_path / "condense" / "c" / "distilled_data" / "syn_data_0.pth",
                       weights_only=True)
    torch.testing.assert_close(start["data"], syn["data"])
    evaluated = run_cli("condense", "--evaluate", run / "distilled_data" / "syn_data_4.pth",
                        "--work-dir", tmp_path, "--name", "ev")
    assert evaluated.code == 0, evaluated.err
    ev = json.loads((tmp_path / "condense" / "ev" / "summary.json").read_text())["evaluation"]
    assert ev["condensed"]["runs"] == summary["evaluation"]["condensed"]["runs"]


@pytest.mark.parametrize(("args", "message"), [
    (("--set", "condense.ipcs=3"), "did you mean 'condense.ipc'"),
    (("--set", "condense.factor=3"), "condense.factor"),
    (("--init", "load"), "--load-path"),
    (("--init", "load", "--set", "condense.load_path=missing.pth"), "missing.pth"),
    (("--init", "best"), "--init"),
    (("--set", "dataset.source=missing.npz"), "missing.npz"),
    (("--set", "network.pretrained=[nowhere]"), "network.pretrained"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, run_cli, args, message):
    res = run_cli("condense", "-c", _config(tmp_path), "--work-dir", tmp_path, *args)
    assert res.code == 2
    assert message in res.err and "Traceback" not in res.err


def test_load_path_conflicts_with_another_init(tmp_path, run_cli):
    config = _config(tmp_path)
    res = run_cli("condense", "-c", config, "--work-dir", tmp_path, "--init", "noise",
                  "--load-path", config)
    assert res.code == 2 and "--init load" in res.err


def test_missing_config_and_bad_evaluate_file(tmp_path, run_cli):
    assert run_cli("condense", "--work-dir", tmp_path).code == 2
    bogus = tmp_path / "x.pth"
    bogus.write_bytes(b"not a checkpoint")
    res = run_cli("condense", "--evaluate", bogus, "--work-dir", tmp_path)
    assert res.code == 2 and "x.pth" in res.err


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_processes_match_one_process(tmp_path, run_cli, torchrun):
    # DSA off: with it on the two runs differ by up to 2.4e-4 on ~1 % of the values
    config = _config(tmp_path, condense={"sampling_net": True, "niter": 3, "ipc": 2},
                     evaluation={"enabled": False}, augmentation={"dsa": False})
    one = run_cli("condense", "-c", config, "--work-dir", tmp_path, "--name", "one")
    assert one.code == 0, one.err
    two = torchrun("condense", "-c", config, "--work-dir", tmp_path, "--name", "two",
                   timeout=250)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = (torch.load(tmp_path / "condense" / n / "distilled_data" / "syn_data_3.pth",
                       weights_only=True) for n in ("one", "two"))
    assert not torch.equal(a["data"], torch.load(
        tmp_path / "condense" / "one" / "distilled_data" / "syn_data_0.pth",
        weights_only=True)["data"])
    torch.testing.assert_close(b["data"], a["data"], rtol=1e-4, atol=1e-5)

    def losses(name: str) -> list[float]:
        lines = (tmp_path / "condense" / name / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["match_loss"] for line in lines]

    assert losses("two") == pytest.approx(losses("one"), rel=1e-5)

"""``mdcli agop`` end to end on two tiny training runs: outputs, values, cache, errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mdcli.config import from_dict
from mdcli.data.arrays import load_split
from mdcli.models.classifier import linear_layers, load_classifier
from mdcli.runs import start_run
from mdcli.training.classifier import ClassifierConfig, train_classifier

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("agop")
    for name, optim in (("adam_run", "adam"), ("muon_run", "muon")):
        cfg = from_dict(ClassifierConfig, {
            "device": "cpu", "data": {"max_samples": 120}, "model": {"hidden": [12, 12, 12]},
            "optim": {"name": optim}, "train": {"epochs": 2, "batch_size": 32, "loss": "mse"}})
        with start_run("train", cfg, path=root / "train" / name) as run:
            train_classifier(cfg, run)
    return root


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum(a * b) / np.linalg.norm(a) / np.linalg.norm(b))


def test_agop_writes_seed_outputs_with_correct_values(work, run_cli):
    out = work / "enhanced"
    result = run_cli("agop", "--models", "adam_run", "muon_run", "--work-dir", work,
                     "--output-dir", out, "--device", "cpu")
    assert result.code == 0, result.err
    for name in ("adam_run", "muon_run"):
        assert (out / f"{name}_enhanced_analysis.png").stat().st_size > 10_000
    assert (out / "agop_comparison.png").is_file()
    assert "AGOP/NFM" in result.out and "muon_run" in result.out
    data = json.loads((out / "adam_run_similarities.json").read_text())
    assert data["epochs"] == [0, 1, 2] and list(data["layers"]) == ["0", "1", "2", "3"]
    assert data["computed"]["samples"] == 96 and data["computed"]["loss"] == "mse"
    assert data["layers"]["3"]["agop_vs_nfm"] == pytest.approx([1.0] * 3, abs=1e-6)
    # H vs M of layer 0 from numpy: H = X^T X / N, M = W^T W
    model, record = load_classifier(work / "train" / "adam_run" / "checkpoints" / "epoch_0002.pt")
    x = load_split(from_dict(ClassifierConfig, record["config"]).data).x_train
    x = x.reshape(len(x), -1).double().numpy()
    w = linear_layers(model)[0].weight.detach().double().numpy()
    assert data["layers"]["0"]["h_vs_m"][2] == pytest.approx(cos(x.T @ x / len(x), w.T @ w))
    # train loss of epoch 2 from numpy: the bias-free ReLU MLP's MSE to one-hot targets
    y = load_split(from_dict(ClassifierConfig, record["config"]).data).y_train.numpy()
    h = x
    weights = [lin.weight.detach().double().numpy() for lin in linear_layers(model)]
    for w_k in weights[:-1]:
        h = np.maximum(h @ w_k.T, 0.0)
    mse = np.mean((h @ weights[-1].T - np.eye(10)[y]) ** 2)
    assert data["train_loss"][2] == pytest.approx(mse, rel=1e-4)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["models"]["muon_run"]["final_epoch"] == 2


def test_rerun_reuses_the_per_checkpoint_cache(work, run_cli, monkeypatch):
    args = ("agop", "adam_run", "--work-dir", work, "--name", "cached", "--device", "cpu")
    assert run_cli(*args).code == 0
    first = json.loads((work / "agop" / "cached" / "adam_run_similarities.json").read_text())
    import mdcli.analysis.agop_runs as runs

    calls = []
    original = runs.layer_statistics
    monkeypatch.setattr(runs, "layer_statistics",
                        lambda *a, **k: calls.append(1) or original(*a, **k))
    cache = next((work / "train" / "adam_run" / "cache" / "agop").iterdir())
    (cache / "epoch_0001.h5").unlink()
    (cache / "epoch_0002.h5").write_bytes(b"truncated")
    assert run_cli(*args).code == 0
    assert len(calls) == 2  # only the missing and the corrupt checkpoint are recomputed
    again = json.loads((work / "agop" / "cached" / "adam_run_similarities.json").read_text())
    assert again["layers"] == first["layers"]


def test_epochs_subset_and_remove_init(work, run_cli):
    out = work / "sub"
    result = run_cli("agop", "--models", "muon_run", "--work-dir", work, "--output-dir", out,
                     "--epochs", "2", "--layers", "1,2", "--remove-init", "--max-samples", "40")
    assert result.code == 0, result.err
    data = json.loads((out / "muon_run_similarities.json").read_text())
    assert data["epochs"] == [0, 2] and list(data["layers"]) == ["1", "2"]
    assert data["computed"]["samples"] == 40 and data["computed"]["remove_init"] is True
    assert data["layers"]["1"]["agop_vs_nfm"][0] is None  # W - W0 = 0 at epoch 0
    assert 0 < data["layers"]["1"]["agop_vs_nfm"][1] <= 1


@pytest.mark.parametrize("args, message", [
    (["--models", "nope"], "Model directory not found: "),
    (["--models", "adam_run", "--epochs", "7"], "Model not found for epoch 7"),
    (["--models", "adam_run", "--layers", "9"], "--layers: 9 is out of range"),
    (["--models", "adam_run", "--layers", "a,b"], "expected comma-separated integers"),
    (["--models", "adam_run", "--split", "test"], "config key 'split'"),
    ([], "--models: name at least one"),
])
def test_bad_input_exits_2(work, run_cli, args, message):
    result = run_cli("agop", "--work-dir", work, "--output-dir", work / "bad", *args)
    assert result.code == 2 and message in result.err, result.err
    assert not (work / "bad").exists()  # checked before any output is written


def test_run_without_initial_checkpoint_reports_epoch_0(work, run_cli, tmp_path):
    folder = tmp_path / "no_init" / "checkpoints"
    shutil.copytree(work / "train" / "adam_run" / "checkpoints", folder)
    (folder / "epoch_0000.pt").unlink()
    result = run_cli("agop", tmp_path / "no_init", "--work-dir", work, "--output-dir",
                     tmp_path / "out")
    assert result.code == 2 and "Model not found for epoch 0" in result.err, result.err


def test_metric_pearson_sqrt_and_centred_agop_drive_the_summary(work, run_cli):
    out = work / "pearson"
    result = run_cli("agop", "adam_run", "--work-dir", work, "--output-dir", out,
                     "--metric", "pearson_sqrt", "--centred-agop", "--epochs", "2")
    assert result.code == 0, result.err
    data = json.loads((out / "adam_run_similarities.json").read_text())
    summary = json.loads((out / "summary.json").read_text())["models"]["adam_run"]
    assert summary["metric"] == "pearson_sqrt_centred_agop_vs_nfm"
    layer = summary["layers"]["1"]
    assert layer["agop_vs_nfm"] == data["layers"]["1"]["pearson_sqrt_centred_agop_vs_nfm"][-1]
    assert layer["g_vs_h"] == data["layers"]["1"]["pearson_g_vs_h"][-1]
    assert -1 <= data["layers"]["0"]["init_baseline"][-1] <= 1
    bad = run_cli("agop", "adam_run", "--work-dir", work, "--output-dir", work / "bad_metric",
                  "--metric", "spearman")
    assert bad.code == 2 and "metric" in bad.err

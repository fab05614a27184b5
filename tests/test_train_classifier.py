"""Classifier training: data, losses, optimizers, checkpoints, determinism, resume, CLI errors."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from mdcli.config import from_dict
from mdcli.data.arrays import DataConfig, load_arrays, load_split
from mdcli.errors import InputError
from mdcli.losses.classification import per_sample_loss
from mdcli.models.classifier import ModelConfig, build_classifier, load_classifier
from mdcli.runs import start_run
from mdcli.training.classifier import ClassifierConfig, train_classifier
from mdcli.training.optim import OptimConfig, build_optimizer, muon_parameters

SMALL = {"device": "cpu", "data": {"max_samples": 160},
         "model": {"hidden": [16, 16, 16]}, "train": {"epochs": 2, "batch_size": 32}}


def small_config(**sections) -> ClassifierConfig:
    raw = json.loads(json.dumps(SMALL))
    for key, value in sections.items():
        if isinstance(value, dict):
            raw.setdefault(key, {}).update(value)
        else:
            raw[key] = value
    return from_dict(ClassifierConfig, raw)


def test_losses_match_direct_formulas():
    logits, y = torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 3, 1, 1, 2])
    z = logits.numpy()
    ce = np.log(np.exp(z).sum(1)) - z[np.arange(5), y.numpy()]
    np.testing.assert_allclose(per_sample_loss("cross_entropy", logits, y).numpy(), ce)
    mse = ((z - np.eye(4)[y.numpy()]) ** 2).mean(1)
    np.testing.assert_allclose(per_sample_loss("mse", logits, y).numpy(), mse)
    assert per_sample_loss("mse", logits, y).mean().item() == pytest.approx(
        F.mse_loss(logits, F.one_hot(y, 4).double()).item())


def test_user_arrays_from_npz_and_hdf5(tmp_path):
    x, y = np.random.default_rng(0).normal(size=(30, 3, 2)), np.arange(30) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y)
    with h5py.File(tmp_path / "d.h5", "w") as handle:
        handle["feats"], handle["labels"] = x, y
    for source, keys in ((tmp_path / "d.npz", ("x", "y")),
                         (tmp_path / "d.h5", ("feats", "labels"))):
        got_x, got_y = load_arrays(str(source), *keys)
        np.testing.assert_allclose(got_x, x.astype(np.float32))
        assert got_y.dtype == np.int64 and (got_y == y).all()


@pytest.mark.parametrize("make, message", [
    (lambda p: np.savez(p / "d.npz", x=np.zeros((4, 2))), "no array 'y'"),
    (lambda p: np.savez(p / "d.npz", x=np.zeros((4, 2)), y=np.array([0, 1, -1, 0])), "integer"),
    (lambda p: np.savez(p / "d.npz", x=np.zeros((4, 2)), y=np.zeros(3)), "1-D array of 4"),
])
def test_bad_user_arrays_are_input_errors(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(InputError, match=message):
        load_arrays(str(tmp_path / "d.npz"))


def test_missing_file_and_bad_suffix_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        load_arrays(str(tmp_path / "none.npz"))
    (tmp_path / "d.csv").write_text("1,2\n")
    with pytest.raises(InputError, match="expected 'digits'"):
        load_arrays(str(tmp_path / "d.csv"))


def test_split_is_seeded_disjoint_and_normalised_with_train_statistics():
    cfg = DataConfig(val_fraction=0.25, split_seed=7, normalize="standard")
    a, b = load_split(cfg), load_split(cfg)
    assert torch.equal(a.x_train, b.x_train) and len(a.x_val) == round(0.25 * 1797)
    assert len(a.x_train) + len(a.x_val) == 1797 and a.num_classes == 10
    flat = a.x_train.reshape(len(a.x_train), -1).double()
    np.testing.assert_allclose(flat.mean(0).numpy(), 0, atol=1e-5)
    other = load_split(DataConfig(val_fraction=0.25, split_seed=8, normalize="standard"))
    assert not torch.equal(a.y_val, other.y_val)


def test_muon_gets_hidden_weights_and_adamw_the_rest():
    model = build_classifier(ModelConfig(hidden=[8, 8, 8], bias=True, input_shape=[5],
                                         num_classes=3))
    hidden, rest = muon_parameters(model)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert [id(p) for p in hidden] == [id(m.weight) for m in linears[1:-1]]
    assert {id(p) for p in rest} == {id(linears[0].weight), id(linears[-1].weight)} | {
        id(m.bias) for m in linears}
    group = build_optimizer(OptimConfig(name="muon"), model)
    assert [type(o).__name__ for o in group.optimizers] == ["Muon", "AdamW"]
    with pytest.raises(InputError, match="muon needs hidden"):
        build_optimizer(OptimConfig(name="muon"), build_classifier(
            ModelConfig(hidden=[4], input_shape=[5], num_classes=3)))


def test_sgd_first_step_is_w_minus_lr_grad():
    model = build_classifier(ModelConfig(hidden=[4], input_shape=[3], num_classes=2))
    before = [p.detach().clone() for p in model.parameters()]
    opt = build_optimizer(OptimConfig(name="sgd", lr=0.1, momentum=0.9), model)
    model(torch.randn(6, 3)).square().sum().backward()
    opt.step()
    for p, p0 in zip(model.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), p0 - 0.1 * p.grad)


def test_training_writes_epoch_checkpoints_and_metrics(tmp_path):
    cfg = small_config()
    with start_run("train", cfg, path=tmp_path / "run") as run:
        model, history = train_classifier(cfg, run)
    names = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert names == ["epoch_0000.pt", "epoch_0001.pt", "epoch_0002.pt", "last.pt"]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [r["epoch"] for r in records] == [0, 1, 2] == [h["epoch"] for h in history]
    # the logged accuracy and loss equal an independent evaluation of the epoch checkpoint
    loaded, record = load_classifier(tmp_path / "run" / "checkpoints" / "epoch_0001.pt")
    split = load_split(cfg.data)
    logits = loaded(split.x_val).detach().double().numpy()
    y = split.y_val.numpy()
    assert records[1]["val_acc"] == pytest.approx((logits.argmax(1) == y).mean())
    ce = np.log(np.exp(logits).sum(1)) - logits[np.arange(len(y)), y]
    assert records[1]["val_loss"] == pytest.approx(ce.mean(), rel=1e-5)
    assert record["model_config"]["input_shape"] == [1, 8, 8]


def test_same_seed_same_history_different_seed_differs():
    a = train_classifier(small_config(optim={"name": "muon"}))[1]
    b = train_classifier(small_config(optim={"name": "muon"}))[1]
    c = train_classifier(small_config(optim={"name": "muon"}, seed=1))[1]
    drop = lambda history: [{k: v for k, v in r.items() if k != "seconds"} for r in history]  # noqa: E731
    assert drop(a) == drop(b)
    assert [r["train_loss"] for r in a] != [r["train_loss"] for r in c]


def test_resume_after_interrupt_mid_epoch_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    cfg = small_config(optim={"name": "adam"}, train={"epochs": 3})
    full_model, full = train_classifier(cfg)
    calls = {"n": 0}
    original = torch.optim.Adam.step

    def flaky_step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:  # epoch 2, batch 3 of 4
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", flaky_step)
    with pytest.raises(KeyboardInterrupt), start_run("train", cfg, path=tmp_path / "r") as run:
        train_classifier(cfg, run)
    last = torch.load(tmp_path / "r" / "checkpoints" / "last.pt", weights_only=True)
    assert (last["epoch"], last["batch"]) == (1, 2)
    monkeypatch.setattr(torch.optim.Adam, "step", original)
    with start_run("train", cfg, path=tmp_path / "r") as run:
        model, history = train_classifier(cfg, run, resume=True)
    assert [r["train_loss"] for r in history] == pytest.approx([r["train_loss"] for r in full])
    for p, q in zip(model.parameters(), full_model.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_convnet_trains_and_reloads(tmp_path):
    cfg = small_config(model={"arch": "convnet", "channels": [4, 8], "hidden": [8]},
                       train={"epochs": 1})
    with start_run("train", cfg, path=tmp_path / "c") as run:
        model, history = train_classifier(cfg, run)
    loaded, _ = load_classifier(tmp_path / "c" / "checkpoints" / "last.pt")
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(loaded(x), model(x))
    assert history[1]["train_loss"] < history[0]["train_loss"]


def _write_config(path, **changes):
    raw = yaml.safe_load(open("configs/train/mlp_digits_adam.yml"))
    raw.update(SMALL)
    raw.update(changes)
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cli_trains_resumes_and_rejects_bad_input(tmp_path, run_cli):
    config = _write_config(tmp_path / "c.yml")
    ok = run_cli("train", "-c", config, "--work-dir", tmp_path, "--name", "r", "--set",
                 "train.epochs=1")
    assert ok.code == 0, ok.err
    clash = run_cli("train", "-c", config, "--work-dir", tmp_path, "--name", "r")
    assert clash.code == 2 and "pass --resume" in clash.err
    more = run_cli("train", "--work-dir", tmp_path, "--name", "r", "--resume", "--set",
                   "train.epochs=2")
    assert more.code == 0, more.err
    metrics = tmp_path / "train" / "r" / "metrics.jsonl"
    epochs = [json.loads(line)["epoch"] for line in metrics.open()]
    assert epochs == [0, 1, 2]
    summary = json.loads((tmp_path / "train" / "r" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 2


@pytest.mark.parametrize("args, message", [
    (["--set", "task=teacher"], "top-level key 'task' is 'teacher'"),
    (["--set", "optim.nme=adam"], "did you mean 'optim.name'"),
    (["--set", "data.source=nothing.npz"], "file not found: nothing.npz"),
    (["--resume"], "--resume: needs --name"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, run_cli, args, message):
    result = run_cli("train", "-c", _write_config(tmp_path / "c.yml"), "--work-dir", tmp_path,
                     *args)
    assert result.code == 2 and message in result.err
    assert "Traceback" not in result.err

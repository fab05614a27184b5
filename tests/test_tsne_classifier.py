"""`mdcli tsne --ckpt` on a classifier checkpoint: hooked layer features, cache reuse."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from mdcli.config import to_dict
from mdcli.data.arrays import DataConfig, load_split
from mdcli.models.classifier import CHECKPOINT_KIND, ModelConfig, build_classifier
from mdcli.storage.checkpoint import save_checkpoint


@pytest.fixture
def classifier_ckpt(tmp_path):
    torch.manual_seed(0)
    data = DataConfig(source="digits", max_samples=300)
    model_cfg = ModelConfig(arch="mlp", hidden=[32, 16], input_shape=[1, 8, 8], num_classes=10)
    model = build_classifier(model_cfg)
    path = tmp_path / "train" / "clf" / "checkpoints" / "last.pt"
    save_checkpoint(path, {"kind": CHECKPOINT_KIND, "model_config": to_dict(model_cfg),
                           "config": {"data": to_dict(data)}, "state_dict": model.state_dict()})
    return path, model, data


@pytest.mark.slow
def test_classifier_layer_features_and_cache(run_cli, tmp_path, classifier_ckpt):
    path, model, data = classifier_ckpt
    args = ("tsne", "--ckpt", path, "--max-samples", 60, "--perplexity", 10, "--n-iter", 300,
            "--work-dir", tmp_path / "runs")
    first = run_cli(*args, "--name", "a")
    assert first.code == 0, first.err
    cache = sorted((path.parents[1] / "cache").glob("features_*.h5"))
    assert len(cache) == 1  # cached with the checkpoint's run, for every later tsne/align
    split = load_split(data)
    with h5py.File(cache[0]) as handle:
        features, labels = handle["features"][()], handle["labels"][()]
    # direct: the input of the last linear layer on the validation rows
    direct = model.net[:-1](split.x_val.flatten(1)).detach().numpy()
    match = [np.flatnonzero(np.all(np.isclose(direct, row, atol=1e-5), axis=1)) for row in features]
    assert all(len(m) == 1 for m in match)
    assert np.array_equal(labels, split.y_val.numpy()[[m[0] for m in match]])
    second = run_cli(*args, "--name", "b", "--layer", "net.0")
    assert second.code == 0 and len(list((path.parents[1] / "cache").glob("features_*.h5"))) == 2
    third = run_cli(*args, "--name", "c")
    assert third.code == 0 and "reusing feature cache" in third.err
    out = tmp_path / "runs" / "tsne" / "c"
    assert (out / "tsne_pre_logits.png").is_file()
    with h5py.File(out / "tsne_embeddings.h5") as handle:
        assert handle["embedding"].shape == (60, 2)


def test_classifier_checkpoint_is_not_a_distillation_one(run_cli, tmp_path, classifier_ckpt):
    path, _, _ = classifier_ckpt
    result = run_cli("align", "--ckpt", path, "--save-dir", tmp_path / "o")
    assert result.code == 2 and "expected a student checkpoint from `mdcli distill`" in result.err


def test_unknown_layer_is_exit_2(run_cli, tmp_path, classifier_ckpt):
    path, _, _ = classifier_ckpt
    result = run_cli("tsne", "--ckpt", path, "--layer", "net.9", "--save-dir", tmp_path / "o")
    assert result.code == 2 and "--layer 'net.9'" in result.err


def test_perplexity_too_large_fails_before_extraction(run_cli, tmp_path, classifier_ckpt):
    path, _, _ = classifier_ckpt
    out = tmp_path / "o"
    result = run_cli("tsne", "--ckpt", path, "--max-samples", 20, "--perplexity", 30,
                     "--save-dir", out)
    assert result.code == 2 and "--perplexity 30 is too large for 20 samples" in result.err
    assert not out.exists() and not (path.parents[1] / "cache").exists()  # no run, no network


def test_neck_is_the_input_of_the_head():
    from mdcli.analysis.layer_features import layer_features, pool_output

    torch.manual_seed(0)
    conv = build_classifier(ModelConfig(arch="convnet", channels=[4, 8], hidden=[16],
                                        input_shape=[1, 8, 8], num_classes=10))
    x = torch.randn(6, 1, 8, 8)
    direct = pool_output(conv.features(x)).detach().numpy()
    assert np.allclose(layer_features(conv, "neck", [x]), direct, atol=1e-6)
    mlp = build_classifier(ModelConfig(arch="mlp", hidden=[32, 16], input_shape=[1, 8, 8],
                                       num_classes=10))
    assert np.allclose(layer_features(mlp, "neck", [x]), layer_features(mlp, "pre_logits", [x]))


@pytest.mark.slow
def test_mmpretrain_command_line_runs_as_written(run_cli, tmp_path, classifier_ckpt,
                                                 monkeypatch):
    import json

    import yaml

    path, _, _ = classifier_ckpt
    config = tmp_path / "clf.yml"
    config.write_text(yaml.safe_dump({"data": {"source": "digits", "max_samples": 300}}))
    test_cfg = tmp_path / "test.yml"
    test_cfg.write_text(yaml.safe_dump({"data": {"source": "digits", "max_samples": 200}}))
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    work = tmp_path / "work"
    result = run_cli("tsne", config, "--checkpoint", path, "--cfg-options", "seed=3",
                     "--work-dir", work, "--test-cfg", test_cfg, "--show",
                     "--vis-stage", "neck", "--perplexity", 5, "--n-iter", 300,
                     "--name", "mm")
    assert result.code == 0, result.err
    shows = [line for line in result.err.splitlines() if "--show" in line]
    assert len(shows) == 1 and "cannot open a window" in shows[0]
    out = work / "tsne" / "mm"
    assert (out / "tsne_neck.png").is_file()
    summary = json.loads((out / "summary.json").read_text())
    expected = len(load_split(DataConfig(source="digits", max_samples=200)).y_val)
    assert summary["n_available"] == expected  # the --test-cfg data, not the config's
    assert f"embedding {summary['n_points']} of {expected} rows available" in result.err


def test_config_given_twice_differently_is_exit_2(run_cli, tmp_path, classifier_ckpt):
    path, _, _ = classifier_ckpt
    result = run_cli("tsne", "a.yml", "--config", "b.yml", "--ckpt", path)
    assert result.code == 2 and "give the config once" in result.err


def test_checkpoint_is_read_once_and_cfg_options_take_several_values(run_cli, tmp_path,
                                                                     classifier_ckpt,
                                                                     monkeypatch):
    import json

    import yaml

    path, _, _ = classifier_ckpt
    config = tmp_path / "clf.yml"
    config.write_text(yaml.safe_dump({"data": {"source": "digits", "max_samples": 300}}))
    reads = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: reads.append(f) or real(f, *a, **k))
    out = tmp_path / "o"
    result = run_cli("tsne", config, "--checkpoint", path, "--cfg-options",
                     "data.max_samples=120", "data.val_fraction=0.25", "--perplexity", 5,
                     "--n-iter", 260, "--save-dir", out)
    assert result.code == 0, result.err
    assert [str(f) for f in reads] == [str(path)]
    expected = load_split(DataConfig(source="digits", max_samples=120, val_fraction=0.25))
    assert json.loads((out / "summary.json").read_text())["n_available"] == len(expected.y_val)
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["source"]["sets"] == ["data.max_samples=120", "data.val_fraction=0.25"]


def test_show_switches_to_an_interactive_backend_where_a_display_exists(monkeypatch, tmp_path):
    import matplotlib.pyplot as plt

    from mdcli.plots import tsne as tsne_plots

    figure = tmp_path / "f.png"
    plt.imsave(figure, [[0.0, 1.0]])
    calls: list[str] = []
    real = plt.switch_backend

    def switch(name: str) -> None:
        calls.append(name)
        if name not in ("QtAgg", "Agg"):
            raise ImportError(name)  # e.g. no tkinter
        real("Agg")  # stands in for Qt here: no display to open

    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(plt, "switch_backend", switch)
    monkeypatch.setattr(plt, "show", lambda: calls.append("show"))
    assert tsne_plots.show_figures([figure]) is True
    assert calls == ["TkAgg", "QtAgg", "show", "Agg"]  # back to Agg for later figures

    def none_load(name: str) -> None:
        if name != "Agg":
            raise ImportError(name)

    monkeypatch.setattr(plt, "switch_backend", none_load)
    assert tsne_plots.show_figures([figure]) is False  # the command then says it cannot

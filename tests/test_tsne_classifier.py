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

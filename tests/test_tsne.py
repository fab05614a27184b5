"""t-SNE wrapper: option checks, embedding quality, shared maps, and `mdcli tsne` end to end."""

from __future__ import annotations

import dataclasses
import json

import h5py
import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs
from sklearn.manifold import trustworthiness

from mdcli.analysis import tsne as T
from mdcli.analysis.feature_files import load_feature_file
from mdcli.analysis.layer_features import find_layer, layer_features, pool_output
from mdcli.analysis.sources import DEFAULT_MAX_SAMPLES, SourceSpec, open_source
from mdcli.analysis.tsne_runs import (
    EMBEDDINGS_FILE,
    TsneOptions,
    plan_tsne,
    run_tsne,
    select_classes,
)
from mdcli.cli import tsne as cli_tsne
from mdcli.cli.options import not_option, spread_values
from mdcli.errors import InputError

FAST = T.TSNEParams(n_iter=400, seed=0)


@pytest.fixture(scope="module")
def blobs():
    x, y = make_blobs(240, 60, centers=4, cluster_std=1.0, random_state=0)
    return x.astype(np.float32), y


@pytest.mark.parametrize("change, option", [
    ({"n_components": 4}, "--n-components"), ({"perplexity": 0}, "--perplexity"),
    ({"n_iter": 250}, "--n-iter"), ({"init": "umap"}, "--init"),
    ({"learning_rate": -1.0}, "--learning-rate"), ({"early_exaggeration": 0.5},
                                                    "--early-exaggeration"),
    ({"n_iter_without_progress": 10}, "--n-iter-without-progress"),
    ({"pca_dims": 1}, "--pca-dims"),
])
def test_bad_options_name_the_parameter_in_the_library_and_the_flag_in_the_cli(change, option):
    (parameter,) = change
    with pytest.raises(T.ParamError, match=rf"^{parameter} ") as error:
        dataclasses.replace(T.TSNEParams(), **change)
    assert "--" not in str(error.value)
    with pytest.raises(InputError, match=rf"^{option} "), cli_tsne.worded_with_flags():
        dataclasses.replace(T.TSNEParams(), **change)


def test_perplexity_too_large_for_the_samples():
    T.check_sample_count(T.TSNEParams(perplexity=33), n_samples=100)
    with pytest.raises(InputError, match=r"^perplexity 34 is too large for 100 samples.*33"):
        T.check_sample_count(T.TSNEParams(perplexity=34), n_samples=100)
    with pytest.raises(InputError, match=r"^--perplexity 34 is too large for 100 samples"), \
            cli_tsne.worded_with_flags():
        T.embed(np.zeros((100, 3)), T.TSNEParams(perplexity=34))


def test_tsne_params_module_does_not_import_opentsne():
    import subprocess
    import sys

    code = ("import sys, mdcli.analysis.tsne_params, mdcli.cli.tsne; "
            "print('openTSNE' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_embedding_keeps_clusters_and_is_deterministic(blobs):
    x, y = blobs
    a = T.embed(x, FAST)
    b = T.embed(x, FAST)
    assert a.shape == (240, 2) and np.array_equal(a, b)
    assert trustworthiness(x, a, n_neighbors=10) > 0.9
    # every point's nearest embedded neighbour lies in its own blob
    d = np.linalg.norm(a[:, None] - a[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert np.mean(y[d.argmin(1)] == y) == 1.0


def test_pca_pre_reduction_and_three_components(blobs):
    x, _ = blobs
    fitted = T.fit_map(x, dataclasses.replace(FAST, pca_dims=10, n_components=3, init="random"))
    assert fitted.pca is not None and fitted.pca.n_components_ == 10
    assert fitted.coords.shape == (240, 3)
    assert T.fit_map(x, dataclasses.replace(FAST, pca_dims=100)).pca is None


def test_shared_map_places_copies_on_their_originals_and_drift_away(blobs):
    x, _ = blobs
    fitted = T.fit_map(x, FAST)
    ref = fitted.coords
    same = fitted.transform(x + 0.01)
    spread = np.linalg.norm(ref - ref.mean(0), axis=1).mean()
    assert np.linalg.norm(same - ref, axis=1).mean() < 0.2 * spread
    teacher, student = T.embed_pair(x[:120], x[:120] + 0.01, FAST, shared_map=True)
    offset = teacher - T.embed(x[:120], FAST)  # the same layout, recentred for the transform
    assert np.allclose(offset, offset[0], atol=1e-6)
    assert np.linalg.norm(student - teacher, axis=1).mean() < 0.2 * spread


def test_n_iter_without_progress_stops_early():
    stop = T._StopWithoutProgress(patience=100)
    assert not stop(50, 2.0, None) and not stop(100, 1.0, None)
    assert not stop(150, 1.5, None) and stop(200, 1.2, None)


@pytest.mark.parametrize("cores, n, expected", [(16, 20_000, 8), (2, 20_000, 2),
                                                 (16, 1000, 1), (1, 20_000, 1)])
def test_threads_follow_the_cores_and_the_problem_size(monkeypatch, cores, n, expected):
    monkeypatch.setattr(T.os, "sched_getaffinity", lambda pid: set(range(cores)))
    assert T._threads(T.TSNEParams(), n) == expected


def test_pooling_and_layer_hooks():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    assert torch.allclose(pool_output(x), x.mean(dim=(2, 3)))
    assert torch.allclose(pool_output(x[..., 0]), x[..., 0].mean(dim=1))
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    inputs = torch.randn(10, 4)
    hidden = torch.relu(model[0](inputs))
    got = layer_features(model, "pre_logits", torch.split(inputs, 3))
    assert np.allclose(got, hidden.detach().numpy(), atol=1e-6)
    assert np.allclose(layer_features(model, "0", [inputs]), model[0](inputs).detach().numpy(),
                       atol=1e-6)
    with pytest.raises(InputError, match="--layer 'nope'.*pre_logits"):
        find_layer(model, "nope")


def test_select_classes_follows_mmpretrain_options():
    labels = np.array([2, 0, 1, 2, 0, 1, 2, 3])
    assert list(select_classes(labels, None, 2, 100)) == [1, 2, 4, 5]  # classes 0 and 1
    assert list(select_classes(labels, ["2"], 20, 2)) == [0, 3]
    for bad in ("9", "cat"):
        with pytest.raises(InputError, match=f"--class-idx {bad}"):
            select_classes(labels, [bad], 20, 2)


def test_feature_file_checks(tmp_path):
    good = tmp_path / "f.npz"
    np.savez(good, teacher=np.ones((5, 3)), student=np.zeros((5, 3)),
             variable=np.array(list("aabbc")))
    loaded = load_feature_file(good)
    assert loaded.paired and loaded.variable.tolist() == list("aabbc")
    h5 = tmp_path / "f.h5"
    with h5py.File(h5, "w") as handle:
        handle["features"] = np.ones((4, 2))
        handle["labels"] = np.arange(4)
    assert not load_feature_file(h5).paired
    cases = {"a.npz": dict(teacher=np.ones((5, 3))),
             "b.npz": dict(teacher=np.ones((5, 3)), student=np.ones((4, 3))),
             "c.npz": dict(x=np.ones((5, 3))),
             "d.npz": dict(features=np.ones((5, 3)), labels=np.arange(4))}
    for name, arrays in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(InputError, match=name):
            load_feature_file(tmp_path / name)
    with pytest.raises(InputError, match="unknown file type"):
        (tmp_path / "x.csv").write_text("1,2\n")
        load_feature_file(tmp_path / "x.csv")


@pytest.fixture
def paired_file(tmp_path):
    rng = np.random.default_rng(0)
    variable = np.repeat(np.array(["sst", "msl", "z", "r"]), 30)
    teacher = rng.normal(size=(4, 24))[np.repeat(np.arange(4), 30)] * 4
    teacher += rng.normal(size=teacher.shape)
    path = tmp_path / "paired.npz"
    np.savez(path, teacher=teacher, student=teacher + 0.3 * rng.normal(size=teacher.shape),
             variable=variable)
    return path


@pytest.mark.slow
def test_cli_paired_features(run_cli, tmp_path, paired_file):
    out = tmp_path / "out"
    result = run_cli("tsne", "--features", paired_file, "--save-dir", out, "--n-iter", 300,
                     "--shared-map")
    assert result.code == 0, result.err
    for name in ("tsne_features.png", "alignment_metrics_features.txt",
                 "feature_alignment_analysis.txt", "tsne_embeddings.h5", "alignment.json"):
        assert (out / name).is_file(), name
    with h5py.File(out / "tsne_embeddings.h5") as handle:
        assert handle["features/teacher"].shape == (120, 2)
        assert handle["features/student"].shape == (120, 2)
        assert handle.attrs["perplexity"] == 30.0 and handle.attrs["shared_map"] == 1
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["grade"] == "excellent"
    assert "SST" in (out / "feature_alignment_analysis.txt").read_text()


@pytest.mark.slow
def test_cli_single_features_with_classes(run_cli, tmp_path):
    x, y = make_blobs(150, 16, centers=3, random_state=1)
    path = tmp_path / "single.npz"
    np.savez(path, features=x, labels=y)
    out = tmp_path / "o"
    result = run_cli("tsne", "--features", path, "--save-dir", out, "--n-iter", 300,
                     "--class-idx", "0,2", "--max-num-samples", 40, "--legend", "--perplexity", 20)
    assert result.code == 0, result.err
    with h5py.File(out / "tsne_embeddings.h5") as handle:
        assert handle["embedding"].shape == (80, 2)
        assert sorted(set(handle["labels"][()].tolist())) == [0, 2]
    assert (out / "tsne_features.png").is_file()


def test_cli_perplexity_too_large_is_exit_2(run_cli, tmp_path, paired_file):
    result = run_cli("tsne", "--features", paired_file, "--save-dir", tmp_path / "o",
                     "--perplexity", 100)
    assert result.code == 2
    assert "--perplexity 100 is too large for 240 samples" in result.err
    assert "Traceback" not in result.err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("args, message", [
    ((), "exactly one of --ckpt"),
    (("--features", "missing.npz"), "--features missing.npz: file not found"),
    (("--features", "x.npz", "--n-iter", "100"), "--n-iter 100"),
    (("--features", "x.npz", "--learning-rate", "fast"), "--learning-rate 'fast'"),
])
def test_cli_bad_input_is_exit_2(run_cli, tmp_path, args, message):
    result = run_cli("tsne", *args, "--save-dir", tmp_path / "o")
    assert result.code == 2 and message in result.err


def test_help_explains_n_iter(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # option names are cut at 80 columns
    result = run_cli("tsne", "--help")
    assert result.code == 0
    text = " ".join(result.out.replace("│", " ").split())
    assert "the first 250 being the early-exaggeration phase" in text
    for option in ("--n-components", "--early-exaggeration", "--learning-rate", "--n-iter",
                   "--n-iter-without-progress", "--init", "--legend", "--class-idx",
                   "--max-num-class", "--max-num-samples", "--vis-stage", "--layer",
                   "--shared-map", "--features", "--perplexity"):
        assert option in text, option


@pytest.mark.slow
def test_features_file_embeds_every_row_by_default_and_says_so(run_cli, tmp_path):
    x, y = make_blobs(1200, 8, centers=3, random_state=2)
    path = tmp_path / "many.npz"
    np.savez(path, features=x)
    out = tmp_path / "o"
    result = run_cli("tsne", "--features", path, "--save-dir", out, "--n-iter", 260)
    assert result.code == 0, result.err
    assert "embedding 1200 of 1200 rows available" in result.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_points"] == summary["n_available"] == 1200


@pytest.mark.slow
def test_seed_script_flags_keep_working(run_cli, tmp_path, paired_file):
    out = tmp_path / "seed"
    result = run_cli("tsne", "--features", paired_file, "--save_dir", out,
                     "--max_samples", 50, "--n-iter", 260, "--perplexity", 10)
    assert result.code == 0, result.err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"]["features"] == {"n_points": 50, "n_available": 120}
    assert "embedding 50 of 120 rows available" in result.err
    missing = run_cli("tsne", "--features", paired_file, "--data_path", tmp_path / "no.h5",
                      "--config", "x.yml")
    assert missing.code == 2 and "--data-path" in missing.err and "file not found" in missing.err


def test_source_spec_takes_every_row_of_a_file_and_a_thousand_of_a_dataset(tmp_path,
                                                                           paired_file):
    assert SourceSpec.from_options(ckpt=None, features=paired_file).max_samples is None
    ckpt = tmp_path / "x.pt"
    ckpt.write_bytes(b"")
    assert SourceSpec.from_options(ckpt=ckpt, features=None).max_samples == DEFAULT_MAX_SAMPLES
    assert SourceSpec.from_options(ckpt=ckpt, features=None, max_samples=7).max_samples == 7


def test_plan_bounds_the_points_before_any_embedding(paired_file, tmp_path):
    source = open_source(SourceSpec(features=paired_file, max_samples=None))
    # 120 pairs: a joint map embeds 240 points (perplexity <= 79), a shared map 120 (<= 39)
    assert plan_tsne(source, TsneOptions(T.TSNEParams(perplexity=79))).max_points == 240
    with pytest.raises(T.ParamError, match=r"^perplexity 40 is too large for 120 samples"):
        plan_tsne(source, TsneOptions(T.TSNEParams(perplexity=40), shared_map=True))
    x, y = make_blobs(150, 4, centers=3, random_state=0)
    np.savez(tmp_path / "single.npz", features=x, labels=y)
    single = open_source(SourceSpec(features=tmp_path / "single.npz", max_samples=None))
    options = TsneOptions(T.TSNEParams(perplexity=20), class_idx=("0", "2"), max_num_samples=40)
    assert plan_tsne(single, options).max_points == 80  # two classes of at most 40 rows


def test_library_paired_run_returns_what_it_saved(paired_file, tmp_path):
    source = open_source(SourceSpec(features=paired_file, max_samples=50, seed=1))
    plan = plan_tsne(source, TsneOptions(T.TSNEParams(n_iter=260, perplexity=10)))
    result = run_tsne(plan, tmp_path, tmp_path / "cache", torch.device("cpu"))
    assert [path.name for path in result.figures] == ["tsne_features.png"]
    assert result.rows == {"features": {"n_points": 50, "n_available": 120}}
    with h5py.File(tmp_path / EMBEDDINGS_FILE) as handle:
        for key in ("features/teacher", "features/student", "features/variable"):
            assert np.array_equal(handle[key][()], result.embeddings[key])
    saved = json.loads((tmp_path / "alignment.json").read_text())
    assert saved["grade"] == result.summary()["grade"] == result.report["grade"]
    assert result.summary()["rows"] == result.rows


def test_features_file_is_read_once_per_run(run_cli, tmp_path, paired_file, monkeypatch):
    reads = []
    real = np.load
    monkeypatch.setattr(np, "load", lambda path, *a, **k: reads.append(path) or real(path, *a, **k))
    result = run_cli("tsne", "--features", paired_file, "--save-dir", tmp_path / "o",
                     "--n-iter", 260, "--perplexity", 10, "--max-samples", 20)
    assert result.code == 0, result.err
    assert [str(path) for path in reads] == [str(paired_file)]


@pytest.mark.parametrize("args, expected", [
    (["--cfg-options", "a=1", "b=2", "c.d=[1, 2]"],
     ["--cfg-options", "a=1", "--cfg-options", "b=2", "--cfg-options", "c.d=[1, 2]"]),
    (["--cfg-options=a=1", "b=2", "--n-iter", "300"],
     ["--cfg-options=a=1", "--cfg-options", "b=2", "--n-iter", "300"]),
    (["--cfg-options", "a=1", "config.yml", "b=2"], ["--cfg-options", "a=1", "config.yml", "b=2"]),
    (["--cfg-options", "a=1", "--", "b=2"], ["--cfg-options", "a=1", "--", "b=2"]),
    (["--set", "a=1", "b=2"], ["--set", "a=1", "b=2"]),
])
def test_several_values_after_one_flag_become_repeated_flags(args, expected):
    assert spread_values(args, "--cfg-options") == expected


def test_class_ids_after_one_flag_as_mmpretrain_writes_them(run_cli, tmp_path):
    assert spread_values(["--class-idx", "0", "2", "--legend"], "--class-idx", not_option) == [
        "--class-idx", "0", "--class-idx", "2", "--legend"]
    x, y = make_blobs(150, 8, centers=3, random_state=0)
    path = tmp_path / "single.npz"
    np.savez(path, features=x, labels=y)
    result = run_cli("tsne", "--features", path, "--save-dir", tmp_path / "o", "--class-idx",
                     "0", "2", "--max-num-samples", 20, "--perplexity", 5, "--n-iter", 260)
    assert result.code == 0, result.err
    with h5py.File(tmp_path / "o" / "tsne_embeddings.h5") as handle:
        assert sorted(handle["labels"][()].tolist()) == [0] * 20 + [2] * 20

"""`mdcli align` on features files: report keys, --json, --fail-under, --baseline, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mdcli.errors import EXIT_BELOW_BAR

KEYS = {"cosine_similarity", "euclidean_distance", "euclidean_distance_median",
        "relative_distance", "nearest_distance", "cluster_variance_ratio", "knn_overlap",
        "mutual_knn", "cka", "cka_debiased", "grade", "raw_grade",
        "diagnoses", "n_samples", "dim", "variables"}


def _pair(tmp_path, name, noise, seed=0, n=80, d=12):
    rng = np.random.default_rng(seed)
    teacher = rng.normal(size=(n, d)) + 2.0
    student = teacher + noise * rng.normal(size=(n, d))
    variable = np.tile(np.array(["sst", "msl", "z", "r"]), n // 4)
    path = tmp_path / name
    np.savez(path, teacher=teacher, student=student, variable=variable)
    return path, teacher, student


def test_json_report_keys_and_values(run_cli, tmp_path):
    path, teacher, student = _pair(tmp_path, "good.npz", noise=0.1)
    out = tmp_path / "out"
    result = run_cli("align", "--features", path, "--save-dir", out, "--json")
    assert result.code == 0, result.err
    rep = json.loads(result.out)
    assert rep == json.loads((out / "alignment.json").read_text())
    entry = rep["sets"]["features"]
    assert set(entry) == KEYS and rep["grade"] == entry["grade"] == "excellent"
    cos = np.sum(teacher * student, 1) / np.linalg.norm(teacher, axis=1) / np.linalg.norm(
        student, axis=1)
    assert entry["cosine_similarity"] == pytest.approx(cos.mean())
    z = (student - teacher) / teacher.std(0)
    assert entry["euclidean_distance"] == pytest.approx(np.linalg.norm(z, axis=1).mean())
    assert set(rep["per_variable_cosine"]) == {"sst", "msl", "z", "r"}
    sst = np.arange(80) % 4 == 0
    assert rep["per_variable_cosine"]["sst"]["features"] == pytest.approx(cos[sst].mean())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["grade"] == "excellent" and summary["status"] == "completed"
    assert (out / "feature_alignment_analysis.txt").is_file()


def test_fail_under_exit_code(run_cli, tmp_path):
    good, _, _ = _pair(tmp_path, "good.npz", noise=0.1)
    poor, _, _ = _pair(tmp_path, "poor.npz", noise=3.0)
    assert run_cli("align", "--features", good, "--save-dir", tmp_path / "a",
                   "--fail-under", "excellent").code == 0
    result = run_cli("align", "--features", poor, "--save-dir", tmp_path / "b",
                     "--fail-under", "good")
    assert result.code == EXIT_BELOW_BAR == 3
    assert "below --fail-under good" in result.err
    assert "grade" in result.out  # the table still printed
    rep = json.loads((tmp_path / "b" / "alignment.json").read_text())
    assert rep["grade"] == "poor" and rep["sets"]["features"]["diagnoses"]


def test_baseline_comparison(run_cli, tmp_path):
    after, _, _ = _pair(tmp_path, "after.npz", noise=0.1)
    before, _, _ = _pair(tmp_path, "before.npz", noise=2.0)
    result = run_cli("align", "--features", after, "--baseline", before,
                     "--save-dir", tmp_path / "c", "--json")
    assert result.code == 0, result.err
    rep = json.loads(result.out)
    base = rep["baseline"]["sets"]["features"]
    now = rep["sets"]["features"]
    assert rep["change"]["features"]["cka"] == pytest.approx(now["cka"] - base["cka"])
    assert rep["change"]["features"]["cosine_similarity"] > 0
    assert rep["baseline"]["grade"] == "poor"


@pytest.mark.parametrize("extra, message", [
    (("--fail-under", "great"), "--fail-under 'great'"),
    (("--baseline", "nope.npz"), "--baseline nope.npz: file not found"),
])
def test_bad_options_exit_2(run_cli, tmp_path, extra, message):
    path, _, _ = _pair(tmp_path, "p.npz", noise=0.1)
    result = run_cli("align", "--features", path, "--save-dir", tmp_path / "o", *extra)
    assert result.code == 2 and message in result.err


def test_single_set_file_is_exit_2(run_cli, tmp_path):
    path = tmp_path / "single.npz"
    np.savez(path, features=np.ones((6, 3)))
    result = run_cli("align", "--features", path, "--save-dir", tmp_path / "o")
    assert result.code == 2 and "expected paired 'teacher' and 'student'" in result.err


def test_features_file_is_aligned_on_every_row_by_default(run_cli, tmp_path):
    path, _, _ = _pair(tmp_path, "big.npz", noise=0.1, n=1200)
    result = run_cli("align", "--features", path, "--save-dir", tmp_path / "o", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["sets"]["features"]["n_samples"] == 1200

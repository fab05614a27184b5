"""Distillation features: the return_feat contract, pooling, the four sets and their report."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mdcli.analysis import alignment
from mdcli.analysis.distill_features import (
    DistillBatch,
    distill_features,
    distill_sets,
    variable_rows,
)
from mdcli.models.sites import FEATURE_KEYS

V, C = 4, 6


class StandInTeacher(nn.Module):
    """Follows the teacher contract: forward(x, sigma, cond, era5, return_feat) -> (out, feats)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, V * C, 1)

    def feats(self, x: torch.Tensor, cond: torch.Tensor, extra: torch.Tensor) -> dict:
        base = self.proj(torch.cat([x, cond, extra], 1))  # [B, V*C, H, W]
        b, _, h, w = base.shape
        f32 = base.view(b, V, C, h, w)
        f16 = nn.functional.avg_pool2d(base, 2).view(b, V, C, h // 2, w // 2)
        return {"attn16": f16, "attn32": f32, "enc16": 2 * f16, "enc32": f32.relu()}

    def forward(self, x, sigma, cond, era5, return_feat=False):
        feats = self.feats(x, cond, era5.mean(dim=(1, 2)).unsqueeze(1))
        return (x, feats) if return_feat else x


class StandInStudent(StandInTeacher):
    """Follows the student contract: (out, feats, causal_loss); sees no ERA5."""

    def forward(self, x, sigma, cond, return_feat=False, target=None):
        feats = self.feats(x, cond, torch.zeros_like(x))
        return (x, feats, x.new_zeros(())) if return_feat else x


def _batches(n=10, size=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    for start in range(0, n, size):
        b = min(size, n - start)
        yield DistillBatch(cond=torch.randn(b, 1, 8, 8, generator=g),
                           target=torch.randn(b, 1, 8, 8, generator=g),
                           era5=torch.randn(b, V, 2, 8, 8, generator=g))


def _perturb(target, eps):
    return target + 0.5 * eps, torch.full((target.shape[0],), 0.5)


def test_contract_features_are_spatial_means():
    torch.manual_seed(0)
    teacher, student = StandInTeacher(), StandInStudent()
    student.load_state_dict(teacher.state_dict())
    arrays = distill_features(teacher, student, _batches(), _perturb, seed=3)
    assert set(arrays) == {f"{w}_{k}" for w in ("teacher", "student") for k in FEATURE_KEYS}
    assert arrays["teacher_attn16"].shape == (10, V, C)
    # direct: the same noise draws, features averaged over h, w by hand
    g = torch.Generator().manual_seed(3)
    rows = []
    for batch in _batches():
        eps = torch.randn(batch.target.shape, generator=g)
        x = batch.target + 0.5 * eps
        f = teacher.feats(x, batch.cond, batch.era5.mean(dim=(1, 2)).unsqueeze(1))["attn32"]
        rows.append(f.detach().numpy().mean(axis=(3, 4)))
    assert np.allclose(arrays["teacher_attn32"], np.concatenate(rows), atol=1e-5)
    # teacher with ERA5, student without: the same weights give different features
    assert not np.allclose(arrays["teacher_attn32"], arrays["student_attn32"])


def test_four_sets_with_variable_rows_and_report():
    rng = np.random.default_rng(0)
    arrays = {}
    for key in FEATURE_KEYS:
        teacher = rng.normal(size=(12, V, C))
        arrays[f"teacher_{key}"] = teacher
        arrays[f"student_{key}"] = teacher + 0.1 * rng.normal(size=teacher.shape)
    sets = distill_sets(arrays)
    assert [s.name for s in sets] == ["16", "32", "encoder_16", "encoder_32"]
    rows, ids = variable_rows(arrays["teacher_attn16"])
    assert np.array_equal(sets[0].teacher, rows) and np.array_equal(sets[0].variable, ids)
    assert np.array_equal(rows[5], arrays["teacher_attn16"][1, 1]) and ids[5] == 1
    rep = alignment.report(sets)
    assert set(rep["sets"]) == {"16", "32", "encoder_16", "encoder_32"}
    assert set(rep["per_variable_cosine"]) == {"sst", "msl", "z", "r"}
    t, s = arrays["teacher_enc32"][:, 2], arrays["student_enc32"][:, 2]  # Z
    direct = np.mean(np.sum(t * s, 1) / np.linalg.norm(t, axis=1) / np.linalg.norm(s, axis=1))
    assert rep["per_variable_cosine"]["z"]["encoder_32"] == pytest.approx(direct)


TINY = dict(image_size=32, cond_frames=2, pred_frames=1, era5_steps=2, ch=8, ch_mult=[1, 2, 2],
            num_res_blocks=1, attn_resolutions=[8], enc_base_channels=4, enc_channels=8,
            heads=2, dim_head=4, proj_dim=8, dropout=0.0)


@pytest.fixture
def distill_ckpt(tmp_path):
    """A distill checkpoint of untrained tiny models (the layout `mdcli distill` writes) and a
    small synthetic cyclone file."""
    from mdcli.config import to_dict
    from mdcli.data.synth_tc import generate_from_config
    from mdcli.diffusion.objectives import DiffusionConfig
    from mdcli.models.teacher_student import ModelConfig, Student, Teacher
    from mdcli.storage.checkpoint import save_checkpoint
    from mdcli.training.distill import DISTILL_KIND, DistillConfig

    data = generate_from_config("data/tc_tiny", tmp_path / "tc.h5", ["n_storms=12"])
    torch.manual_seed(0)
    cfg = ModelConfig(**TINY)
    teacher, student = Teacher(cfg), Student(cfg)
    record = {"kind": DISTILL_KIND, "model_config": to_dict(cfg),
              "diffusion": to_dict(DiffusionConfig(num_steps=50)),
              "config": to_dict(DistillConfig()), "teacher": teacher.state_dict(),
              "student": student.state_dict(), "student_ema": student.state_dict()}
    path = tmp_path / "distill" / "run" / "checkpoints" / "last.pt"
    save_checkpoint(path, record)
    return path, data


@pytest.mark.slow
def test_distill_checkpoint_end_to_end(run_cli, tmp_path, distill_ckpt, monkeypatch):
    import json

    path, data = distill_ckpt
    out = tmp_path / "tsne"
    reads = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: reads.append(f) or real(f, *a, **k))
    result = run_cli("tsne", "--ckpt", path, "--data-path", data, "--max-samples", 10,
                     "--perplexity", 10, "--n-iter", 300, "--save-dir", out)
    assert result.code == 0, result.err
    assert [str(f) for f in reads] == [str(path)]  # the checkpoint is read once
    for name in ("16", "32", "encoder_16", "encoder_32"):
        assert (out / f"tsne_{name}_features.png").is_file()
        assert (out / f"alignment_metrics_{name}.txt").is_file()
    assert (out / "feature_alignment_analysis.txt").is_file()
    assert len(list((path.parents[1] / "cache").glob("features_*.h5"))) == 1
    result = run_cli("align", "--ckpt", path, "--data-path", data, "--max-samples", 10,
                     "--save-dir", tmp_path / "align", "--json")
    assert result.code == 0, result.err
    assert "reusing feature cache" in result.err  # same checkpoint and data: no second pass
    rep = json.loads(result.out)
    assert set(rep["sets"]) == {"16", "32", "encoder_16", "encoder_32"}
    assert rep["sets"]["16"]["n_samples"] == 10 * 4  # 10 windows x 4 ERA5 variables
    assert set(rep["per_variable_cosine"]) == {"sst", "msl", "z", "r"}


def test_perplexity_too_large_fails_before_extraction(run_cli, tmp_path, distill_ckpt):
    path, data = distill_ckpt
    out = tmp_path / "tsne"
    result = run_cli("tsne", "--ckpt", path, "--data-path", data, "--max-samples", 10,
                     "--perplexity", 30, "--save-dir", out)
    # at most 10 windows x 4 variables x (teacher + student) = 80 points: perplexity <= 26
    assert result.code == 2 and "--perplexity 30 is too large for 80 samples" in result.err
    assert not out.exists() and not (path.parents[1] / "cache").exists()


def test_distill_config_from_the_record_with_overrides():
    from mdcli.config import to_dict
    from mdcli.training.distill import DistillConfig, distill_config

    record = {"config": to_dict(DistillConfig(seed=4))}
    cfg = distill_config(record, overrides=["data.test_split=val", "seed=5"])
    assert cfg.data.test_split == "val" and cfg.seed == 5
    assert record["config"]["data"]["test_split"] == "test"  # the record is left as it was
    assert distill_config(record).seed == 4
    assert distill_config(record, "distill/tc_tiny", ["seed=6"]).seed == 6

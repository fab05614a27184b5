"""The score network and its parts: shapes, per-variable independence, attention against a
brute-force loop, the teacher/student feature contract. (The causal mask, the internal
sensitivity and the causal InfoNCE loss are tested in test_distill.py.)"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mdcli.errors import InputError
from mdcli.losses.distill import DistillLossConfig, causal_loss_fn
from mdcli.models.cross_attention import CrossAttention, CrossModalFusion
from mdcli.models.era5_encoder import ERA5Encoder
from mdcli.models.ncsnpp import ConditionalUNet, noise_embedding
from mdcli.models.teacher_student import ModelConfig, Student, Teacher, build_diffusion_model

TINY = dict(image_size=32, cond_frames=2, pred_frames=1, era5_steps=3, ch=8, ch_mult=[1, 2, 2],
            num_res_blocks=1, attn_resolutions=[8], dropout=0.0, enc_base_channels=4,
            enc_channels=8, heads=2, dim_head=4, proj_dim=16)


def _inputs(b=2, cfg=TINY, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = cfg["image_size"]
    return (torch.randn(b, cfg["pred_frames"], s, s, generator=g),
            torch.rand(b, generator=g) + 0.05,
            torch.randn(b, cfg["cond_frames"], s, s, generator=g),
            torch.randn(b, 4, cfg["era5_steps"], s, s, generator=g))


def test_noise_embedding_is_sin_cos_of_scaled_log_level():
    level = torch.tensor([0.5, 2.0])
    emb = noise_embedding(level, 8, scale=100.0).numpy()
    freqs = np.exp(-math.log(10000.0) * np.arange(4) / 4)
    arg = 100.0 * np.log([0.5, 2.0])[:, None] * freqs[None]
    np.testing.assert_allclose(emb, np.concatenate([np.sin(arg), np.cos(arg)], 1), rtol=1e-4,
                               atol=1e-5)


@pytest.mark.parametrize("size, mult, low", [(32, [1, 2, 2], 8), (128, [1, 1, 2, 2], 16)])
def test_unet_fuses_at_the_two_lowest_resolutions(size, mult, low):
    net = ConditionalUNet(3, 2, size, 8, mult, 1, [low])
    seen = {}

    def fuse(site, h):
        seen[site] = tuple(h.shape[1:])
        return h

    out = net(torch.randn(1, 2, size, size), torch.tensor([0.3]), torch.randn(1, 1, size, size),
              fuse)
    assert out.shape == (1, 2, size, size)
    assert seen == {"low": (net.low_channels, low, low),
                    "high": (net.high_channels, 2 * low, 2 * low)}


def test_era5_encoder_keeps_variables_separate():
    enc = ERA5Encoder(4, 3, 32, 16, 4, 8).eval()
    x = torch.randn(2, 4, 3, 32, 32)
    high, low = enc(x)
    assert high.shape == (2, 4, 8, 16, 16) and low.shape == (2, 4, 8, 8, 8)
    y = x.clone()
    y[:, 2] += 1.0
    high2, low2 = enc(y)
    changed = (high2 - high).abs().flatten(2).amax(2).amax(0)
    assert changed[2] > 1e-4 and torch.all(changed[[0, 1, 3]] == 0)


def test_cross_attention_matches_a_loop_over_heads():
    torch.manual_seed(0)
    att = CrossAttention(6, 5, heads=2, dim_head=3)
    q_in, c_in = torch.randn(2, 4, 6), torch.randn(2, 7, 5)
    got = att(q_in, c_in).detach().numpy()
    wq, wk, wv = (m.weight.detach().numpy() for m in (att.to_q, att.to_k, att.to_v))
    wo, bo = att.to_out.weight.detach().numpy(), att.to_out.bias.detach().numpy()
    for n in range(2):
        q, k, v = q_in[n].numpy() @ wq.T, c_in[n].numpy() @ wk.T, c_in[n].numpy() @ wv.T
        heads = []
        for h in range(2):
            sl = slice(3 * h, 3 * h + 3)
            logits = q[:, sl] @ k[:, sl].T / math.sqrt(3)
            p = np.exp(logits - logits.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            heads.append(p @ v[:, sl])
        np.testing.assert_allclose(got[n], np.concatenate(heads, 1) @ wo.T + bo, rtol=1e-4,
                                   atol=1e-5)


def test_fusion_attends_per_variable_and_adds_the_weighted_sum():
    torch.manual_seed(0)
    fusion = CrossModalFusion(6, 5, heads=2, dim_head=3)
    h, enc = torch.randn(2, 5, 4, 4), torch.randn(2, 4, 6, 4, 4)
    w = torch.softmax(torch.randn(4), 0)
    h_new, attn, parts = fusion(h, enc, w)
    assert parts is None and attn.shape == (2, 4, 6, 4, 4)
    context = fusion.norm_kv(h.flatten(2).transpose(1, 2))
    for v in range(4):
        q = fusion.norm_q(enc[:, v].flatten(2).transpose(1, 2))
        one = fusion.attn(q, context).transpose(1, 2).reshape(2, 6, 4, 4)
        assert torch.allclose(attn[:, v], enc[:, v] + one, atol=1e-5)
    fused = sum(w[v] * attn[:, v] for v in range(4))
    assert torch.allclose(h_new, h + fusion.proj(fused), atol=1e-5)


def test_teacher_and_student_return_the_feature_contract():
    cfg = ModelConfig(**TINY)
    teacher, student = Teacher(cfg), Student(cfg, causal_loss_fn(DistillLossConfig()))
    x, s, cond, era5 = _inputs()
    out, feats = teacher(x, s, cond, era5, return_feat=True)
    s_out, s_feats, causal = student(x, s, cond, return_feat=True, target=x)
    assert out.shape == s_out.shape == x.shape
    shapes = {"attn16": (2, 4, 8, 8, 8), "attn32": (2, 4, 8, 16, 16),
              "enc16": (2, 4, 8, 8, 8), "enc32": (2, 4, 8, 16, 16)}
    assert {k: tuple(v.shape) for k, v in feats.items()} == shapes
    assert {k: tuple(v.shape) for k, v in s_feats.items()} == shapes
    assert causal.ndim == 0 and float(causal.detach()) > 0
    assert float(student(x, s, cond, return_feat=True)[2]) == 0.0
    assert torch.allclose(teacher(x, s, cond, era5), out)


def test_teacher_intervention_equals_zeroing_that_variable():
    teacher = Teacher(ModelConfig(**TINY)).eval()
    x, s, cond, era5 = _inputs()
    zeroed = era5.clone()
    zeroed[:, 1] = 0
    assert torch.allclose(teacher(x, s, cond, era5, intervene=1), teacher(x, s, cond, zeroed))


def test_student_causal_loss_trains_the_masks_and_the_heads():
    student = Student(ModelConfig(**TINY), causal_loss_fn(DistillLossConfig()))
    x, s, cond, _ = _inputs()
    _, _, causal = student(x, s, cond, return_feat=True, target=x)
    causal.backward()
    for site in ("low", "high"):
        assert student.fusion[site].decompose.net[0].weight.grad.abs().sum() > 0
    assert all(p.grad.abs().sum() > 0 for p in student.mi_heads.parameters())


def test_build_from_a_config_dict_equals_the_dataclass_and_follows_its_values():
    torch.manual_seed(0)
    from_dict = build_diffusion_model(dict(TINY), "teacher")
    torch.manual_seed(0)
    from_dataclass = build_diffusion_model(ModelConfig(**TINY), "teacher")
    a, b = from_dict.state_dict(), from_dataclass.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    wider = build_diffusion_model({**TINY, "ch": 16}, "teacher")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(wider) > count(from_dict)
    assert isinstance(build_diffusion_model(ModelConfig(**TINY), "student"), Student)
    with pytest.raises(InputError, match="role"):
        build_diffusion_model(dict(TINY), "critic")
    with pytest.raises(InputError, match="model.ch_mult"):
        Teacher(ModelConfig(**{**TINY, "ch_mult": [1]}))
    with pytest.raises(InputError, match="model_config.heads"):
        build_diffusion_model({**TINY, "heads": 0}, "teacher")

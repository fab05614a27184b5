"""The score network and its parts: shapes, per-variable independence, attention against a
brute-force loop, the causal mask's gradients, the effect matrix and the MI loss."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mdcli.errors import InputError
from mdcli.losses.causal_mi import ConditionalMILoss
from mdcli.models.causal import CausalDecomposition, CausalEffectMatrix, counterfactual_effects
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


def test_causal_decomposition_keeps_top_channels_and_detaches_the_rest():
    torch.manual_seed(0)
    dec = CausalDecomposition(10, mask_ratio=0.7)
    x = torch.randn(2, 4, 10, 3, 3, requires_grad=True)
    out, causal, non_causal = dec(x)
    hard = dec.hard_mask()
    top = torch.topk(dec.score.detach(), 7).indices
    assert hard.sum() == 7 and torch.all(hard[top] == 1)
    assert torch.allclose(out, x)  # forward value unchanged
    assert not non_causal.requires_grad
    g = torch.randn_like(x)
    (out * g).sum().backward()
    keep = hard.bool()
    assert torch.allclose(x.grad[:, :, keep], g[:, :, keep])
    assert torch.all(x.grad[:, :, ~keep] == 0)
    assert dec.score.grad is not None and dec.score.grad.abs().sum() > 0


def test_effect_matrix_ema_and_counterfactual_effects_of_a_linear_toy():
    base = torch.ones(2, 4, 3, 2, 2)
    scale = torch.tensor([1.0, 2.0, 3.0, 4.0])

    def run(v):
        f = base * scale.view(1, 4, 1, 1, 1)
        if v is not None:
            f = f.clone()
            f[:, v] = 0
        feats = {k: f for k in ("enc16", "enc32", "attn16", "attn32")}
        return f.sum(1), feats

    w = torch.full((4,), 0.25)
    m = counterfactual_effects(run, w, 4)
    expect = (scale / scale.sum()).view(4, 1).expand(4, 5)  # removing v removes its share
    assert torch.allclose(m, expect, atol=1e-6)
    ema = CausalEffectMatrix(4)
    ema.update(m, 0.9)
    ema.update(torch.zeros(4, 5), 0.9)
    assert torch.allclose(ema.effects, 0.9 * m)
    assert set(ema.as_dict(("sst", "msl", "z", "r"))["z"]) == {"enc16", "enc32", "attn16",
                                                                "attn32", "output"}


def test_mi_loss_matches_a_direct_calculation():
    torch.manual_seed(0)
    mi = ConditionalMILoss(6, 2, proj_dim=5, noncausal_weight=0.5, margin=0.2, temperature=0.1)
    c, n, t = torch.randn(3, 4, 6, 2, 2), torch.randn(3, 4, 6, 2, 2), torch.randn(3, 2, 16, 16)
    got = float(mi(c, n, t).detach())

    def lin(layer, x):
        return x @ layer.weight.detach().numpy().T + layer.bias.detach().numpy()

    tp = lin(mi.proj_target, t.numpy().reshape(3, 2, 8, 2, 8, 2).mean((3, 5)).reshape(3, -1))
    cp = lin(mi.proj_causal, c.numpy().mean((3, 4)))
    npj = lin(mi.proj_noncausal, n.numpy().mean((3, 4)))

    def cos(a, b):
        norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)[:, None]
        return (a * b[:, None]).sum(-1) / norms

    sc, sn = cos(cp, tp), cos(npj, tp)
    bce_pos = np.log1p(np.exp(-sc / 0.1)).mean()
    bce_neg = np.log1p(np.exp(sn / 0.1)).mean()
    margin = np.maximum(0.2 - (sc - sn), 0).mean()
    assert got == pytest.approx(bce_pos + 0.5 * bce_neg + margin, rel=1e-5)


def test_teacher_and_student_return_the_feature_contract():
    cfg = ModelConfig(**TINY)
    teacher, student = Teacher(cfg), Student(cfg)
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


def test_student_causal_loss_trains_mask_and_projections_but_not_noncausal_channels():
    student = Student(ModelConfig(**TINY))
    x, s, cond, _ = _inputs()
    _, _, causal = student(x, s, cond, return_feat=True, target=x)
    causal.backward()
    for site in ("low", "high"):
        assert student.fusion[site].decompose.score.grad.abs().sum() > 0
    assert student.mi_loss.proj_causal.weight.grad.abs().sum() > 0
    assert student.mi_loss.proj_noncausal.weight.grad.abs().sum() > 0
    # the attention output rows that make non-causal channels get no gradient
    dec = student.fusion["low"].decompose
    rows = ~dec.hard_mask().bool()
    grad = student.fusion["low"].attn.to_out.weight.grad
    assert torch.all(grad[rows] == 0) and grad[~rows].abs().sum() > 0


def test_build_from_config_dict_round_trips_weights():
    teacher = build_diffusion_model(dict(TINY), "teacher")
    again = build_diffusion_model(dict(TINY), "teacher")
    again.load_state_dict(teacher.state_dict())
    x, s, cond, era5 = _inputs()
    assert torch.allclose(teacher.eval()(x, s, cond, era5), again.eval()(x, s, cond, era5))
    assert isinstance(build_diffusion_model(ModelConfig(**TINY), "student"), Student)
    with pytest.raises(InputError, match="role"):
        build_diffusion_model(dict(TINY), "critic")
    with pytest.raises(InputError, match="model.ch_mult"):
        Teacher(ModelConfig(**{**TINY, "ch_mult": [1]}))
    with pytest.raises(InputError, match="model_config.heads"):
        build_diffusion_model({**TINY, "heads": 0}, "teacher")


def test_effect_consistency_is_spearman_rank_correlation():
    from mdcli.models.causal import effect_consistency

    a, b = torch.tensor([0.1, 0.5, 0.3, 0.9]), torch.tensor([1.0, 7.0, 2.0, 3.0])
    ra, rb = np.array([0, 2, 1, 3]), np.array([0, 3, 1, 2])
    expect = np.corrcoef(ra, rb)[0, 1]
    assert effect_consistency(a, b) == pytest.approx(expect)
    assert effect_consistency(a, a) == pytest.approx(1.0)
    assert math.isnan(effect_consistency(a, torch.ones(4)))

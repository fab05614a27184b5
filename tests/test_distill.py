"""Distillation losses and the student's causal parts: the loss composition and both
reductions, the adaptive weight, InfoNCE against a loop and against heads that would cheat,
the per-sample causal mask, the gradient reaching every attention channel, the feature
sites' real resolutions, the internal-sensitivity diagnostic, and the CLI's input errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mdcli.config import load_config
from mdcli.errors import InputError
from mdcli.losses.causal_mi import info_nce
from mdcli.losses.distill import (
    DistillLossConfig,
    adaptive_lambda,
    causal_loss_fn,
    distill_loss,
    feature_loss,
)
from mdcli.models.causal import CausalMaskNet, InternalSensitivity, internal_sensitivity
from mdcli.models.mi_heads import MIProjection
from mdcli.models.sites import resolution_label, site_resolutions
from mdcli.models.teacher_student import ModelConfig, Student, Teacher
from mdcli.training.distill import DistillConfig, check_config

pytestmark = pytest.mark.usefixtures("one_thread")

KEYS = ("attn16", "attn32", "enc16", "enc32")
TINY = dict(image_size=32, cond_frames=2, pred_frames=1, era5_steps=2, ch=8, ch_mult=[1, 2, 2],
            num_res_blocks=1, attn_resolutions=[8], dropout=0.0, enc_base_channels=4,
            enc_channels=8, heads=2, dim_head=4, proj_dim=16)


def _feats(seed, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(2, 4, 3, 2, 2, generator=g).requires_grad_(requires_grad)
            for k in KEYS}


def _np(t):
    return t.detach().numpy().astype(np.float64)


def test_adaptive_lambda_is_the_clipped_ratio_without_gradient():
    score = torch.tensor(2.0, requires_grad=True)
    causal = torch.tensor(-0.5, requires_grad=True)
    lam = adaptive_lambda(score, causal, 0.01, 100.0, eps=0.0)
    assert float(lam) == pytest.approx(4.0) and not lam.requires_grad
    assert float(adaptive_lambda(score, causal, 0.01, 100.0, eps=0.0, divisor=4)) == \
        pytest.approx(1.0)
    assert float(adaptive_lambda(torch.tensor(1e-6), torch.tensor(10.0))) == pytest.approx(0.01)
    assert float(adaptive_lambda(torch.tensor(5.0), torch.tensor(0.0))) == pytest.approx(100.0)


def test_feature_loss_mean_and_seed_reductions():
    s, t = _feats(0), _feats(1)
    per_site = {k: ((_np(s[k]) - _np(t[k])) ** 2).mean() for k in KEYS}
    assert float(feature_loss(s, t)) == pytest.approx(np.mean(list(per_site.values())), rel=1e-6)
    assert float(feature_loss(s, t, ["enc16"])) == pytest.approx(per_site["enc16"], rel=1e-6)
    # the seed: for every site and variable F.mse_loss(teacher[var], student[var]), summed
    seed = sum(((_np(s[k])[:, v] - _np(t[k])[:, v]) ** 2).mean() for k in KEYS for v in range(4))
    assert float(feature_loss(s, t, reduction="seed")) == pytest.approx(seed, rel=1e-6)
    assert float(feature_loss(s, t, [], "seed")) == 0.0


def test_total_loss_is_the_weighted_sum_of_the_seed_terms():
    cfg = DistillLossConfig(score=1.0, distill=1.0, feat=10.0, causal=1.0)
    s_out = torch.randn(2, 1, 4, 4, requires_grad=True)
    t_out = torch.randn(2, 1, 4, 4)
    s_feats, t_feats = _feats(0, True), _feats(1)
    score, causal = torch.tensor(0.8, requires_grad=True), torch.tensor(0.2, requires_grad=True)
    total, terms = distill_loss(score, s_out, t_out, s_feats, t_feats, causal, cfg)
    mse_out = ((_np(s_out) - _np(t_out)) ** 2).mean()
    mse_feat = np.mean([((_np(s_feats[k]) - _np(t_feats[k])) ** 2).mean() for k in KEYS])
    lam = min(max(0.8 / (0.2 + 1e-8), 0.01), 100.0)
    expect = 0.8 + mse_out + 10 * mse_feat + lam * 0.2
    assert float(total.detach()) == pytest.approx(expect, rel=1e-5)
    assert float(terms["lambda"]) == pytest.approx(lam, rel=1e-6)
    total.backward()
    assert float(causal.grad) == pytest.approx(lam, rel=1e-6)  # lambda itself is constant
    assert float(score.grad) == pytest.approx(1.0)


def test_seed_reduction_is_the_seed_codes_arithmetic():
    """``losses/dsm.py`` of the seed: pow_ = x^2 / 2 summed over pixels, mean over the batch;
    16 per-variable feature MSEs summed; lambda the ratio score / (4 |causal|)."""
    g = torch.Generator().manual_seed(3)
    z, s_out, t_out = (torch.randn(3, 2, 4, 4, generator=g) for _ in range(3))
    s_feats, t_feats = _feats(0), _feats(1)
    causal = torch.tensor(2.5)
    per_element = ((s_out - z) ** 2).mean()  # what a DDPM objective hands over
    cfg = DistillLossConfig(reduction="seed", feat=10.0, lambda_max=1e6)
    total, terms = distill_loss(per_element, s_out, t_out, s_feats, t_feats, causal, cfg)
    score = np.mean([0.5 * ((_np(z)[b] - _np(s_out)[b]) ** 2).sum() for b in range(3)])
    dist = np.mean([0.5 * ((_np(s_out)[b] - _np(t_out)[b]) ** 2).sum() for b in range(3)])
    feat = sum(((_np(s_feats[k])[:, v] - _np(t_feats[k])[:, v]) ** 2).mean()
               for k in KEYS for v in range(4))
    lam = score / (4 * (2.5 + 1e-8))
    assert float(terms["score"]) == pytest.approx(score, rel=1e-5)
    assert float(terms["distill"]) == pytest.approx(dist, rel=1e-5)
    assert float(terms["lambda"]) == pytest.approx(lam, rel=1e-5)
    assert float(total) == pytest.approx(score + dist + 10 * feat + lam * 2.5, rel=1e-5)
    # a score that is already 0.5 * a pixel sum (NCSN) is taken as is by seed, averaged by mean
    summed = torch.tensor(score, dtype=torch.float32)
    _, as_seed = distill_loss(summed, s_out, t_out, s_feats, t_feats, causal, cfg,
                              score_summed=True)
    _, as_mean = distill_loss(summed, s_out, t_out, s_feats, t_feats, causal,
                              DistillLossConfig(), score_summed=True)
    assert float(as_seed["score"]) == pytest.approx(score, rel=1e-6)
    assert float(as_mean["score"]) == pytest.approx(float(per_element), rel=1e-5)


def test_feat_weight_zero_is_an_ablation_not_an_edit():
    cfg = load_config(DistillConfig, None, ["loss.feat=0", "loss.distill=0",
                                            "teacher.checkpoint=t.pt"])
    s_out, t_out = torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    total, _ = distill_loss(torch.tensor(1.0), s_out, t_out, _feats(0), _feats(1),
                            torch.tensor(1.0), cfg.loss)
    assert float(total) == pytest.approx(2.0)  # score + lambda (=1) * causal


def test_teacher_outputs_are_detached_in_the_loss():
    cfg = DistillLossConfig()
    t_out = torch.randn(2, 1, 4, 4, requires_grad=True)
    t_feats = _feats(1, True)
    total, _ = distill_loss(torch.tensor(1.0), torch.randn(2, 1, 4, 4, requires_grad=True),
                            t_out, _feats(0, True), t_feats, torch.tensor(0.5), cfg)
    total.backward()
    assert t_out.grad is None and all(t_feats[k].grad is None for k in KEYS)


def test_info_nce_matches_a_loop():
    g = torch.Generator().manual_seed(0)
    anchors, targets = torch.randn(2, 3, 5, 4, generator=g), torch.randn(5, 4, generator=g)
    got = float(info_nce(anchors, targets, temperature=0.2))
    a, t = _np(anchors), _np(targets)
    terms = []
    for s in range(2):
        for v in range(3):
            for i in range(5):
                cos = [a[s, v, i] @ t[j] / np.linalg.norm(a[s, v, i]) / np.linalg.norm(t[j])
                       for j in range(5)]
                logits = np.array(cos) / 0.2
                terms.append(-logits[i] + np.log(np.exp(logits).sum()))
    assert got == pytest.approx(np.mean(terms), rel=1e-5)
    with pytest.raises(ValueError, match="anchors"):
        info_nce(anchors, targets[:4])


def test_mi_heads_pool_to_coarse_maps_then_project():
    torch.manual_seed(0)
    heads = MIProjection(3, 2, 5, ("low",))
    causal, target = torch.randn(2, 4, 3, 8, 8), torch.randn(2, 2, 16, 16)

    def mlp(seq, x):
        w1, b1, w2, b2 = (_np(p) for p in seq.parameters())
        return np.maximum(x @ w1.T + b1, 0) @ w2.T + b2

    pooled = _np(causal).reshape(2, 4, 3, 4, 2, 4, 2).mean((4, 6)).reshape(2, 4, -1)
    np.testing.assert_allclose(_np(heads.anchor("low", causal)),
                               mlp(heads.anchors["low"], pooled), rtol=1e-4, atol=1e-5)
    pooled_t = _np(target).reshape(2, 2, 8, 2, 8, 2).mean((3, 5)).reshape(2, -1)
    np.testing.assert_allclose(_np(heads.target(target)), mlp(heads.target_head, pooled_t),
                               rtol=1e-4, atol=1e-5)


def _train_heads(features, targets, n_train, steps=300, batch=16, seed=0):
    """Train fresh MI heads with InfoNCE on the first ``n_train`` windows; return the mean
    loss on the other windows (held out), in batches of ``batch``."""
    torch.manual_seed(seed)
    heads = MIProjection(features.shape[2], targets.shape[1], 16, ("low",))
    opt = torch.optim.Adam(heads.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)

    def loss(rows):
        anchors = heads.anchor("low", features[rows]).transpose(0, 1)
        return info_nce(anchors, heads.target(targets[rows]), 0.1)

    for _ in range(steps):
        rows = torch.randperm(n_train, generator=g)[:batch]
        opt.zero_grad()
        loss(rows).backward()
        opt.step()
    with torch.no_grad():
        held = torch.arange(n_train, len(features)).view(-1, batch)
        return float(torch.stack([loss(rows) for rows in held]).mean())


def test_info_nce_heads_cannot_solve_target_independent_features():
    """The old loss fell 1.55 -> 0.003 in 50 steps on random features; InfoNCE is bounded by
    log B - I(features; target) on unseen windows, whatever the heads learn."""
    g = torch.Generator().manual_seed(1)
    n_train, n, batch = 256, 384, 16
    latent = torch.randn(n, 4, generator=g)  # what makes one target differ from another
    targets = (latent @ torch.randn(4, 256, generator=g)).view(n, 1, 16, 16)
    targets += 0.3 * torch.randn(n, 1, 16, 16, generator=g)
    code = torch.einsum("nk,vkc->nvc", latent, torch.randn(2, 4, 8, generator=g))
    dependent = code[..., None, None] + 0.3 * torch.randn(n, 2, 8, 4, 4, generator=g)
    independent = torch.randn(n, 2, 8, 4, 4, generator=g)
    log_b = math.log(batch)
    assert _train_heads(independent, targets, n_train, batch=batch) > 0.8 * log_b
    assert _train_heads(dependent, targets, n_train, batch=batch) < 0.5 * log_b


def test_causal_mask_is_per_sample_top_k_with_a_straight_through_gradient():
    torch.manual_seed(0)
    net = CausalMaskNet(num_vars=2, channels=10, mask_ratio=0.7, hidden=6)
    x = torch.randn(5, 2, 10, 3, 3, requires_grad=True)
    hard, _ = net.mask(x)
    # the scores by hand: per variable pooled -> W1 -> ReLU -> W2
    w1, b1 = _np(net.net[0].weight)[..., 0], _np(net.net[0].bias)
    w2, b2 = _np(net.net[2].weight)[..., 0], _np(net.net[2].bias)
    pooled = _np(x).mean((3, 4))
    score = np.zeros((5, 2, 10))
    for v in range(2):
        hid = np.maximum(pooled[:, v] @ w1[6 * v:6 * v + 6].T + b1[6 * v:6 * v + 6], 0)
        score[:, v] = hid @ w2[10 * v:10 * v + 10].T + b2[10 * v:10 * v + 10]
    expect = np.zeros_like(score)
    np.put_along_axis(expect, np.argsort(-score, axis=-1)[..., :7], 1.0, axis=-1)
    np.testing.assert_array_equal(_np(hard), expect)
    assert np.all(expect.sum(-1) == 7)
    assert len({tuple(expect[b].ravel()) for b in range(5)}) > 1  # masks differ by sample

    fused, causal, non_causal = net(x)
    assert torch.allclose(fused, x) and not non_causal.requires_grad
    g = torch.randn_like(x)
    (causal * g).sum().backward()
    keep = torch.from_numpy(expect).float()[..., None, None]
    assert torch.allclose(x.grad, g * keep)  # the mask net reads x detached
    # straight-through: d/d score = sum_hw(x g) * sigmoid'(score); the last bias sees its sum
    sig = 1 / (1 + np.exp(-score))
    d_score = (_np(x) * _np(g)).sum((3, 4)) * sig * (1 - sig)
    np.testing.assert_allclose(_np(net.net[2].bias.grad), d_score.sum(0).ravel(), rtol=1e-4,
                               atol=1e-6)
    assert net.net[0].weight.grad.abs().sum() > 0


def _models(batch=3, seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(**TINY)
    loss_cfg = DistillLossConfig()
    teacher, student = Teacher(cfg).eval(), Student(cfg, causal_loss_fn(loss_cfg))
    g = torch.Generator().manual_seed(seed)
    s = cfg.image_size
    x = torch.randn(batch, 1, s, s, generator=g)
    inputs = (x, torch.rand(batch, generator=g) + 0.05, torch.randn(batch, 2, s, s, generator=g))
    era5 = torch.randn(batch, 4, 2, s, s, generator=g)
    return cfg, loss_cfg, teacher, student, inputs, era5, x


def test_every_attention_channel_gets_gradient_from_the_total_loss():
    """Each sample's attention output, every variable and channel (also those the sample's
    mask leaves non-causal), gets gradient: the features are distilled before the mask."""
    _, loss_cfg, teacher, student, inputs, era5, target = _models()
    caught = {}

    def keep(site):
        def hook(_module, _args, out):
            out.retain_grad()
            caught[site] = out
        return hook

    for site in ("low", "high"):
        student.fusion[site].attn.register_forward_hook(keep(site))
    with torch.no_grad():
        t_out, t_feats = teacher(*inputs, era5, return_feat=True)
    s_out, s_feats, causal = student(*inputs, return_feat=True, target=target)
    score = ((s_out - target) ** 2).mean()
    total, _ = distill_loss(score, s_out, t_out, s_feats, t_feats, causal, loss_cfg)
    total.backward()
    for site, out in caught.items():
        b, v = 3, 4
        grad = out.grad.view(b, v, -1, out.shape[-1]).abs().sum(2)  # [B, V, E]
        assert torch.all(grad > 0), site
        rows = student.fusion[site].attn.to_out.weight.grad.abs().sum(1)
        assert torch.all(rows > 0), site
        assert student.fusion[site].decompose.net[0].weight.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in student.mi_heads.parameters())


def test_student_features_are_the_pre_mask_attention_and_masks_follow_the_sample():
    _, _, _, student, inputs, _, target = _models()
    caught = {}

    def hook(_module, args, _out):
        caught["x"] = args[0]

    student.fusion["low"].decompose.register_forward_hook(hook)
    _, feats, causal = student(*inputs, return_feat=True, target=target)
    assert feats["attn16"] is caught["x"]  # the tensor the mask received, not its output
    hard, _ = student.fusion["low"].decompose.mask(feats["attn16"])
    assert torch.all(hard.sum(-1) == student.fusion["low"].decompose.keep)
    assert not torch.equal(hard[0], hard[1])
    assert causal.ndim == 0 and 0 < float(causal.detach()) < 3 * math.log(3)
    assert float(student(*inputs, return_feat=True)[2]) == 0.0
    with pytest.raises(ValueError, match="causal_loss"):
        Student(ModelConfig(**TINY))(*inputs, return_feat=True, target=target)


def test_site_resolutions_are_the_real_feature_sizes():
    cfg, _, teacher, _, inputs, era5, _ = _models(batch=1)
    _, feats = teacher(*inputs, era5, return_feat=True)
    assert site_resolutions(cfg) == {k: tuple(v.shape[-2:]) for k, v in feats.items()}
    assert resolution_label(cfg, "attn16") == "8x8" and resolution_label(cfg, "enc32") == "16x16"
    research = ModelConfig()  # 128x128, ch_mult [1, 1, 2, 2]: the names are the sizes
    assert site_resolutions(research)["attn16"] == (16, 16)
    assert resolution_label(research, "attn32") == "32x32"


def test_old_checkpoint_model_configs_still_load():
    from mdcli.config import to_dict
    from mdcli.models.teacher_student import model_config

    old = {**to_dict(ModelConfig(**TINY)), "noncausal_weight": 0.5, "margin": 0.2,
           "temperature": 0.1}
    assert model_config(old) == ModelConfig(**TINY)
    with pytest.raises(InputError, match="model_config.marginal"):
        model_config({**old, "marginal": 1})


def test_variables_and_feature_keys_have_one_definition():
    from mdcli.data import synth_tc
    from mdcli.losses import distill
    from mdcli.models import sites, teacher_student

    assert teacher_student.VARIABLES is synth_tc.VARIABLES
    assert teacher_student.FEATURE_KEYS is sites.FEATURE_KEYS is distill.FEATURE_KEYS


def test_internal_sensitivity_of_a_linear_toy_and_its_ema():
    base = torch.ones(2, 4, 3, 2, 2)
    scale = torch.tensor([1.0, 2.0, 3.0, 4.0])

    def run(v):
        f = base * scale.view(1, 4, 1, 1, 1)
        if v is not None:
            f = f.clone()
            f[:, v] = 0
        return f.sum(1), dict.fromkeys(KEYS, f)

    m = internal_sensitivity(run, torch.full((4,), 0.25), 4)
    expect = (scale / scale.sum()).view(4, 1).expand(4, 5)  # removing v removes its share
    assert torch.allclose(m, expect, atol=1e-6)
    ema = InternalSensitivity(4)
    ema.update(m, 0.9)
    ema.update(torch.zeros(4, 5), 0.9)
    assert torch.allclose(ema.effects, 0.9 * m)
    assert set(ema.as_dict(("sst", "msl", "z", "r"))["z"]) == {*KEYS, "output"}


def test_config_checks_name_the_key():
    with pytest.raises(InputError, match="loss.feat_keys"):
        check_config(load_config(DistillConfig, None, ["loss.feat_keys=[attn64]",
                                                       "teacher.checkpoint=t.pt"]))
    with pytest.raises(InputError, match="teacher.checkpoint"):
        check_config(DistillConfig())
    with pytest.raises(InputError, match="loss.reduction"):
        load_config(DistillConfig, None, ["loss.reduction=sum"])


def test_cli_needs_a_config_and_an_existing_teacher(run_cli, tmp_path):
    result = run_cli("distill", "--work-dir", tmp_path)
    assert result.code == 2 and "--config" in result.err
    result = run_cli("distill", "-c", "distill/tc_tiny", "--teacher", tmp_path / "none.pt",
                     "--work-dir", tmp_path)
    assert result.code == 2 and "none.pt" in result.err
    result = run_cli("distill", "-c", "distill/tc_tiny", "--set", "loss.fet=1",
                     "--work-dir", tmp_path)
    assert result.code == 2 and "loss.feat" in result.err

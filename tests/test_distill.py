"""Distillation loss composition, the adaptive weight, the frozen teacher, and the CLI's
input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mdcli.config import load_config
from mdcli.errors import InputError
from mdcli.losses.distill import DistillLossConfig, adaptive_lambda, distill_loss, feature_loss
from mdcli.training.distill import DistillConfig, check_config

KEYS = ("attn16", "attn32", "enc16", "enc32")


def _feats(seed, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(2, 4, 3, 2, 2, generator=g).requires_grad_(requires_grad)
            for k in KEYS}


def test_adaptive_lambda_is_the_clipped_ratio_without_gradient():
    score = torch.tensor(2.0, requires_grad=True)
    causal = torch.tensor(-0.5, requires_grad=True)
    lam = adaptive_lambda(score, causal, 0.01, 100.0, eps=0.0)
    assert float(lam) == pytest.approx(4.0) and not lam.requires_grad
    assert float(adaptive_lambda(torch.tensor(1e-6), torch.tensor(10.0))) == pytest.approx(0.01)
    assert float(adaptive_lambda(torch.tensor(5.0), torch.tensor(0.0))) == pytest.approx(100.0)


def test_feature_loss_is_the_mean_of_per_site_mse():
    s, t = _feats(0), _feats(1)
    expect = np.mean([((s[k].numpy() - t[k].numpy()) ** 2).mean() for k in KEYS])
    assert float(feature_loss(s, t)) == pytest.approx(expect, rel=1e-6)
    assert float(feature_loss(s, t, ["enc16"])) == pytest.approx(
        ((s["enc16"].numpy() - t["enc16"].numpy()) ** 2).mean(), rel=1e-6)


def test_total_loss_is_the_weighted_sum_of_the_seed_terms():
    cfg = DistillLossConfig(score=1.0, distill=1.0, feat=10.0, causal=1.0)
    s_out = torch.randn(2, 1, 4, 4, requires_grad=True)
    t_out = torch.randn(2, 1, 4, 4)
    s_feats, t_feats = _feats(0, True), _feats(1)
    score, causal = torch.tensor(0.8, requires_grad=True), torch.tensor(0.2, requires_grad=True)
    total, terms = distill_loss(score, s_out, t_out, s_feats, t_feats, causal, cfg)
    mse_out = ((s_out.detach().numpy() - t_out.numpy()) ** 2).mean()
    mse_feat = np.mean([((s_feats[k].detach().numpy() - t_feats[k].numpy()) ** 2).mean()
                        for k in KEYS])
    lam = min(max(0.8 / (0.2 + 1e-8), 0.01), 100.0)
    expect = 0.8 + mse_out + 10 * mse_feat + lam * 0.2
    assert float(total.detach()) == pytest.approx(expect, rel=1e-5)
    assert float(terms["lambda"]) == pytest.approx(lam, rel=1e-6)
    total.backward()
    assert float(causal.grad) == pytest.approx(lam, rel=1e-6)  # lambda itself is constant
    assert float(score.grad) == pytest.approx(1.0)


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


def test_config_checks_name_the_key():
    with pytest.raises(InputError, match="loss.feat_keys"):
        check_config(load_config(DistillConfig, None, ["loss.feat_keys=[attn64]",
                                                       "teacher.checkpoint=t.pt"]))
    with pytest.raises(InputError, match="teacher.checkpoint"):
        check_config(DistillConfig())


def test_cli_needs_a_config_and_an_existing_teacher(run_cli, tmp_path):
    result = run_cli("distill", "--work-dir", tmp_path)
    assert result.code == 2 and "--config" in result.err
    result = run_cli("distill", "-c", "distill/tc_tiny", "--teacher", tmp_path / "none.pt",
                     "--work-dir", tmp_path)
    assert result.code == 2 and "none.pt" in result.err
    result = run_cli("distill", "-c", "distill/tc_tiny", "--set", "loss.fet=1",
                     "--work-dir", tmp_path)
    assert result.code == 2 and "loss.feat" in result.err

"""Schedules, objectives, denoising losses, samplers, EMA: checked against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mdcli.diffusion.objectives import DDPMObjective, NCSNObjective
from mdcli.diffusion.samplers import annealed_langevin, ddim, ddpm_ancestral, sample
from mdcli.diffusion.schedules import ddpm_betas, ncsn_sigmas
from mdcli.errors import InputError
from mdcli.losses.dsm import annealed_dsm_loss, ddpm_noise_loss
from mdcli.training.ema import EMA


def test_ddpm_betas_are_linear_from_start_to_end():
    betas = ddpm_betas(1000, 1e-4, 0.02).numpy()
    assert betas.shape == (1000,)
    np.testing.assert_allclose(betas, np.linspace(1e-4, 0.02, 1000))


def test_ncsn_sigmas_are_geometric_with_constant_ratio():
    sigmas = ncsn_sigmas(50.0, 0.01, 232).numpy()
    assert sigmas[0] == pytest.approx(50.0) and sigmas[-1] == pytest.approx(0.01)
    ratios = sigmas[1:] / sigmas[:-1]
    np.testing.assert_allclose(ratios, (0.01 / 50.0) ** (1 / 231), rtol=1e-10)


def test_ddpm_perturbation_matches_closed_form_alpha_bar():
    obj = DDPMObjective(100, 1e-4, 0.02)
    betas = np.linspace(1e-4, 0.02, 100)
    abar = np.cumprod(1 - betas)
    x, z = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    idx = torch.tensor([0, 50, 99])
    x_noisy, level = obj.perturb(x, idx, z)
    for i, t in enumerate(idx.tolist()):
        expect = math.sqrt(abar[t]) * x[i].numpy() + math.sqrt(1 - abar[t]) * z[i].numpy()
        np.testing.assert_allclose(x_noisy[i].numpy(), expect, rtol=1e-5, atol=1e-6)
        assert float(level[i]) == pytest.approx(math.sqrt((1 - abar[t]) / abar[t]), rel=1e-5)


def test_ddpm_loss_is_mean_squared_noise_error():
    a, b = torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    expect = ((a.numpy() - b.numpy()) ** 2).reshape(2, -1).mean(1)
    np.testing.assert_allclose(ddpm_noise_loss(a, b).numpy(), expect, rtol=1e-6)


def test_annealed_dsm_loss_matches_a_loop_over_samples():
    torch.manual_seed(0)
    x, z, score = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    sigma = torch.tensor([0.1, 1.0, 5.0])
    x_noisy = x + sigma.view(-1, 1, 1, 1) * z
    got = annealed_dsm_loss(score, x_noisy, x, sigma, anneal_power=2.0)
    for i in range(3):
        s = float(sigma[i])
        target = -(x_noisy[i].numpy() - x[i].numpy()) / s**2
        expect = 0.5 * ((score[i].numpy() - target) ** 2).sum() * s**2
        assert float(got[i]) == pytest.approx(expect, rel=1e-5)


def test_ncsn_loss_is_zero_for_the_exact_score_and_denoise_recovers_x():
    obj = NCSNObjective(10.0, 0.1, 8)
    x, z = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3)
    idx = torch.tensor([0, 2, 5, 7])
    x_noisy, sigma = obj.perturb(x, idx, z)
    output = -z  # score * sigma = -z for the true conditional score -z / sigma
    assert torch.allclose(obj.loss(output, x, x_noisy, z, idx), torch.zeros(4), atol=1e-10)
    assert torch.allclose(obj.denoise(output, x_noisy, idx), x, atol=1e-5)
    assert float(sigma[0]) == pytest.approx(0.1) and float(sigma[3]) == pytest.approx(10.0)


def test_ddpm_denoise_inverts_the_perturbation_with_true_noise():
    obj = DDPMObjective(50)
    x, z = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    idx = torch.tensor([1, 20, 49])
    x_noisy, _ = obj.perturb(x, idx, z)
    assert torch.allclose(obj.denoise(z, x_noisy, idx), x, atol=1e-4)


def test_eval_indices_are_bin_midpoints_from_low_to_high_noise():
    obj = DDPMObjective(1000)
    assert obj.eval_indices(10).tolist() == [50, 150, 250, 350, 450, 550, 650, 750, 850, 950]
    assert obj.eval_indices(1).tolist() == [500]
    assert len(DDPMObjective(4).eval_indices(10)) == 4


# Gaussian data x0 ~ N(mu, s^2): the exact noise predictor / score are known in closed form,
# so a correct sampler must return samples with mean mu and std s.
MU, S = 0.7, 0.3


def _gaussian_eps(obj: DDPMObjective):
    def net(x, level):
        abar = 1 / (1 + level.double().view(-1, 1) ** 2)
        a, b = abar.sqrt(), (1 - abar).sqrt()
        return (b * (x.double() - a * MU) / (a**2 * S**2 + b**2)).float()
    return net


def _gaussian_ncsn_output(x, sigma):
    s = sigma.double().view(-1, 1)
    return (s * (-(x.double() - MU) / (S**2 + s**2))).float()


@pytest.mark.parametrize("method", ["ddpm", "ddim"])
def test_ddpm_samplers_reproduce_gaussian_data(method):
    obj = DDPMObjective(200, 1e-4, 0.1)
    gen = torch.Generator().manual_seed(0)
    if method == "ddpm":
        x = ddpm_ancestral(_gaussian_eps(obj), obj, (20000, 1), gen)
    else:
        x = ddim(_gaussian_eps(obj), obj, (20000, 1), gen, steps=100)
    assert float(x.mean()) == pytest.approx(MU, abs=0.02)
    assert float(x.std()) == pytest.approx(S, abs=0.02)


def test_annealed_langevin_reproduces_gaussian_data():
    obj = NCSNObjective(5.0, 0.01, 20)
    gen = torch.Generator().manual_seed(0)
    x = annealed_langevin(_gaussian_ncsn_output, obj, (20000, 1), gen, n_steps_each=20,
                          step_lr=2e-5, denoise=False)
    assert float(x.mean()) == pytest.approx(MU, abs=0.03)
    assert float(x.std()) == pytest.approx(S, abs=0.03)


def test_sampler_must_fit_the_objective():
    with pytest.raises(InputError, match="sampling.method"):
        sample(_gaussian_ncsn_output, NCSNObjective(1.0, 0.1, 3), (2, 1), "ddim",
               torch.Generator())


def test_ema_follows_the_warmed_up_decay():
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = EMA(model, decay=0.9)
    shadow = 0.0
    for n in range(5):
        with torch.no_grad():
            model.weight.fill_(float(n + 1))
        ema.update(model)
        d = min(0.9, (1 + n) / (10 + n))
        shadow = d * shadow + (1 - d) * (n + 1)
    assert float(ema.shadow.weight[0, 0]) == pytest.approx(shadow, rel=1e-6)
    assert not ema.shadow.weight.requires_grad

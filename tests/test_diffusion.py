"""Schedules, objectives, denoising losses, samplers, EMA: checked against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mdcli.diffusion.objectives import (
    DDPMObjective,
    DiffusionConfig,
    NCSNObjective,
    build_objective,
    diffusion_config,
)
from mdcli.diffusion.samplers import annealed_langevin, ddim, ddpm_ancestral, sample
from mdcli.diffusion.schedules import ddpm_betas, ncsn_sigmas
from mdcli.errors import InputError
from mdcli.losses.dsm import annealed_dsm_loss, prediction_loss
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


def test_prediction_loss_is_the_per_sample_mean_squared_error():
    a, b = torch.randn(2, 3, 5, 5), torch.randn(2, 3, 5, 5)
    expect = ((a.numpy() - b.numpy()) ** 2).reshape(2, -1).mean(1)
    np.testing.assert_allclose(prediction_loss(a, b).numpy(), expect, rtol=1e-6)


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
    assert torch.allclose(obj.eps_from(output, x_noisy, idx), z)
    assert float(sigma[0]) == pytest.approx(0.1) and float(sigma[3]) == pytest.approx(10.0)


def test_ddpm_denoise_inverts_the_perturbation_with_true_noise():
    obj = DDPMObjective(50, prediction="eps")
    x, z = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    idx = torch.tensor([1, 20, 49])
    x_noisy, _ = obj.perturb(x, idx, z)
    assert torch.allclose(obj.denoise(z, x_noisy, idx), x, atol=1e-4)


def test_eval_indices_are_bin_midpoints_from_low_to_high_noise():
    obj = DDPMObjective(1000)
    assert obj.eval_indices(10).tolist() == [50, 150, 250, 350, 450, 550, 650, 750, 850, 950]
    assert obj.eval_indices(1).tolist() == [500]
    assert len(DDPMObjective(4).eval_indices(10)) == 4


def test_checkpoints_without_prediction_read_as_eps_and_the_default_is_v():
    assert DiffusionConfig().prediction == "v"
    old = {"objective": "ddpm", "num_steps": 50, "beta_start": 1e-4, "beta_end": 0.02}
    assert diffusion_config(old).prediction == "eps"
    assert diffusion_config({**old, "prediction": "x0"}).prediction == "x0"
    assert diffusion_config(old).num_steps == 50
    assert build_objective(diffusion_config({**old, "prediction": "v"})).prediction == "v"
    with pytest.raises(InputError, match="diffusion.prediction"):
        diffusion_config({**old, "prediction": "score"})
    with pytest.raises(InputError, match="diffusion.steps"):
        diffusion_config({**old, "steps": 3})


# Data x ~ N(MU_D, diag VAR_D) under the 1000-step linear schedule. Given x_t = a x + s eps,
# the posterior means are E[x | x_t] = MU + a VAR / D (x_t - a MU) and
# E[eps | x_t] = s / D (x_t - a MU) with D = a^2 VAR + s^2, so an oracle network that sees only
# the noise level returns the best possible eps, v = a eps - s x, or x0.
MU_D = np.array([0.7, -0.4, 0.1])
VAR_D = np.array([0.09, 0.5, 1.5])
BETAS = np.linspace(1e-4, 0.02, 1000)
ABAR = np.cumprod(1 - BETAS)
PREDICTIONS = ["eps", "v", "x0"]


def _oracle(prediction: str):
    mu, var = torch.from_numpy(MU_D), torch.from_numpy(VAR_D)

    def net(x, level):
        lv = level.double().view(-1, 1)
        a = 1 / (1 + lv**2).sqrt()
        s = lv * a
        r = x.double() - a * mu
        d = a**2 * var + s**2
        x0, eps = mu + a * var / d * r, s / d * r
        return {"eps": eps, "x0": x0, "v": a * eps - s * x0}[prediction].to(x.dtype)
    return net


def _noisy_gaussian(n: int, t: np.ndarray, seed: int = 0):
    """Clean data, noise, and x_t ``[n, 3]`` (float64) at steps ``t`` ``[n]``, in numpy."""
    rng = np.random.default_rng(seed)
    x = MU_D + np.sqrt(VAR_D) * rng.standard_normal((n, 3))
    eps = rng.standard_normal((n, 3))
    a, s = np.sqrt(ABAR[t])[:, None], np.sqrt(1 - ABAR[t])[:, None]
    return x, eps, a * x + s * eps, a, s


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_denoise_and_eps_from_give_the_posterior_means_for_every_prediction(prediction):
    t = np.repeat([0, 10, 250, 500, 750, 999], 50)
    _, _, xt, a, s = _noisy_gaussian(len(t), t)
    level = torch.from_numpy(np.sqrt((1 - ABAR[t]) / ABAR[t]))
    r = xt - a * MU_D
    d = a**2 * VAR_D + s**2
    obj, idx, x_t = DDPMObjective(prediction=prediction), torch.from_numpy(t), torch.from_numpy(xt)
    out = _oracle(prediction)(x_t, level)
    np.testing.assert_allclose(obj.denoise(out, x_t, idx).numpy(), MU_D + a * VAR_D / d * r,
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(obj.eps_from(out, x_t, idx).numpy(), s / d * r, rtol=0, atol=1e-6)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_targets_are_the_salimans_ho_parametrisation_and_have_zero_loss(prediction):
    t = np.array([0, 3, 400, 999])
    x, eps, xt, a, s = _noisy_gaussian(4, t, seed=1)
    expect = {"eps": eps, "x0": x, "v": a * eps - s * x}[prediction]
    obj = DDPMObjective(prediction=prediction)
    idx, x_t = torch.from_numpy(t), torch.from_numpy(xt)
    tx, teps = torch.from_numpy(x), torch.from_numpy(eps)
    target = obj.target(tx, teps, idx)
    np.testing.assert_allclose(target.numpy(), expect, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(obj.loss(target, tx, x_t, teps, idx).numpy(), 0.0, atol=1e-24)
    np.testing.assert_allclose(obj.denoise(target, x_t, idx).numpy(), x, atol=1e-9)
    np.testing.assert_allclose(obj.eps_from(target, x_t, idx).numpy(), eps, atol=1e-9)
    wrong = target + 0.5
    np.testing.assert_allclose(obj.loss(wrong, tx, x_t, teps, idx).numpy(), 0.25, rtol=1e-9)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_oracle_loss_is_the_irreducible_posterior_variance(prediction):
    # The oracle's error is the target's posterior spread: Var(x | x_t) = VAR s^2 / D, and
    # given x_t, eps = (x_t - a x) / s and v = (a x_t - x) / s.
    n = 40000
    obj = DDPMObjective(prediction=prediction)
    for step in (0, 150, 600, 999):
        t = np.full(n, step)
        x, eps, xt, a, s = _noisy_gaussian(n, t, seed=step)
        idx = torch.from_numpy(t)
        x_t = torch.from_numpy(xt)
        level = torch.from_numpy(np.sqrt((1 - ABAR[t]) / ABAR[t]))
        out = _oracle(prediction)(x_t, level)
        got = obj.loss(out, torch.from_numpy(x), x_t, torch.from_numpy(eps), idx)
        a, s = a[0, 0], s[0, 0]
        post = VAR_D * s**2 / (a**2 * VAR_D + s**2)
        expect = {"x0": post, "eps": a**2 * post / s**2, "v": post / s**2}[prediction].mean()
        assert float(got.mean()) == pytest.approx(expect, rel=0.03)


def _ddim_moments(steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and variance of deterministic DDIM with the oracle from x_T ~ N(0, 1): each
    step maps x_t - a MU linearly by (a' a VAR + s' s) / D."""
    times = np.unique(np.round(np.linspace(999, 0, steps)).astype(int))[::-1]
    m, v = np.zeros(3), np.ones(3)
    for i, t in enumerate(times):
        a, s = np.sqrt(ABAR[t]), np.sqrt(1 - ABAR[t])
        a1 = np.sqrt(ABAR[times[i + 1]]) if i + 1 < len(times) else 1.0
        k = (a1 * a * VAR_D + np.sqrt(1 - a1**2) * s) / (a**2 * VAR_D + s**2)
        m, v = a1 * MU_D + k * (m - a * MU_D), k**2 * v
    return m, v


def _ancestral_moments() -> tuple[np.ndarray, np.ndarray]:
    """Exact mean and variance of Ho et al.'s sampler (sigma_t^2 = beta_t) with the oracle."""
    m, v = np.zeros(3), np.ones(3)
    for t in range(999, -1, -1):
        a, s = np.sqrt(ABAR[t]), np.sqrt(1 - ABAR[t])
        abar1 = ABAR[t - 1] if t > 0 else 1.0
        c_x0 = np.sqrt(abar1) * BETAS[t] / (1 - ABAR[t])
        c_xt = np.sqrt(1 - BETAS[t]) * (1 - abar1) / (1 - ABAR[t])
        k = c_x0 * a * VAR_D / (a**2 * VAR_D + s**2) + c_xt
        m = np.sqrt(abar1) * MU_D + k * (m - a * MU_D)
        v = k**2 * v + (BETAS[t] if t > 0 else 0.0)
    return m, v


def _check_moments(x: torch.Tensor, mean: np.ndarray, var: np.ndarray) -> None:
    n = x.shape[0]
    np.testing.assert_allclose(x.double().mean(0).numpy(), mean, atol=4 * np.sqrt(var / n).max())
    np.testing.assert_allclose(x.double().var(0).numpy(), var, rtol=0.05)


@pytest.mark.parametrize("steps", [10, 20])
def test_ddim_with_few_steps_samples_the_gaussian_for_every_prediction(steps):
    mean, var = _ddim_moments(steps)
    # DDIM's own discretisation error only: the mean is exact, the variance shrinks a little
    assert np.abs(mean - MU_D).max() < 0.01 and 0.35 < (var / VAR_D).min() <= 1.0
    samples = {}
    for prediction in PREDICTIONS:
        obj = DDPMObjective(prediction=prediction)
        x = ddim(_oracle(prediction), obj, (20000, 3), torch.Generator().manual_seed(0),
                 steps=steps)
        _check_moments(x, mean, var)
        samples[prediction] = x
    for prediction in ("v", "x0"):  # same starting noise: the same deterministic path
        torch.testing.assert_close(samples[prediction], samples["eps"], rtol=0, atol=1e-3)


def test_ddim_with_many_steps_approaches_the_data_distribution():
    x = ddim(_oracle("v"), DDPMObjective(prediction="v"), (20000, 3),
             torch.Generator().manual_seed(1), steps=250)
    _check_moments(x, *_ddim_moments(250))
    np.testing.assert_allclose(x.double().var(0).numpy(), VAR_D, rtol=0.07)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_ancestral_ddpm_samples_the_data_distribution(prediction):
    obj = DDPMObjective(prediction=prediction)
    x = ddpm_ancestral(_oracle(prediction), obj, (10000, 3), torch.Generator().manual_seed(2))
    mean, var = _ancestral_moments()
    _check_moments(x, mean, var)
    _check_moments(x, MU_D, VAR_D)


def _ddim_by_hand(x: np.ndarray, steps: int, clip: float) -> np.ndarray:
    """Deterministic DDIM with the oracle, x0 clipped and eps re-derived from it, in numpy."""
    times = np.unique(np.round(np.linspace(999, 0, steps)).astype(int))[::-1]
    for i, t in enumerate(times):
        a, s = np.sqrt(ABAR[t]), np.sqrt(1 - ABAR[t])
        a1 = np.sqrt(ABAR[times[i + 1]]) if i + 1 < len(times) else 1.0
        d = a**2 * VAR_D + s**2
        x0 = np.clip(MU_D + a * VAR_D / d * (x - a * MU_D), -clip, clip)
        x = a1 * x0 + np.sqrt(1 - a1**2) * (x - a * x0) / s
    return x


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_clipped_samplers_clip_x0_and_rederive_eps(prediction):
    obj, net = DDPMObjective(prediction=prediction), _oracle(prediction)
    x = ddim(net, obj, (500, 3), torch.Generator().manual_seed(3), steps=5, clip=0.3)
    x_start = torch.randn((500, 3), generator=torch.Generator().manual_seed(3)).double().numpy()
    np.testing.assert_allclose(x.numpy(), _ddim_by_hand(x_start, 5, 0.3), rtol=0, atol=2e-5)
    for sampler in (lambda c: ddim(net, obj, (2000, 3), torch.Generator().manual_seed(4),
                                   steps=20, clip=c),
                    lambda c: ddpm_ancestral(net, obj, (500, 3),
                                             torch.Generator().manual_seed(4), clip=c)):
        clipped = sampler(0.5)
        assert float(clipped.abs().max()) <= 0.5 and float(clipped.abs().max()) > 0.49
        torch.testing.assert_close(sampler(100.0), sampler(None), rtol=0, atol=1e-4)


# Gaussian data x0 ~ N(mu, s^2): the exact noise predictor / score are known in closed form,
# so a correct sampler must return samples with mean mu and std s.
MU, S = 0.7, 0.3


def _gaussian_ncsn_output(x, sigma):
    s = sigma.double().view(-1, 1)
    return (s * (-(x.double() - MU) / (S**2 + s**2))).float()


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

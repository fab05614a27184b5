"""NCFM's CF loss and the linear-kernel MMD against direct numpy calculations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mdcli.losses.mmd import mmd_loss
from mdcli.losses.ncfm import cf_loss


def _numpy_cf_loss(real, syn, t, alpha, beta):
    phi_r = np.exp(1j * real @ t.T).mean(0)  # (k,) complex
    phi_s = np.exp(1j * syn @ t.T).mean(0)
    amp = (np.abs(phi_r) - np.abs(phi_s)) ** 2
    phase = 2 * (np.abs(phi_r) * np.abs(phi_s) - (phi_r * np.conj(phi_s)).real)
    return np.sqrt(alpha * amp + beta * np.maximum(phase, 1e-12)).mean()


@pytest.mark.parametrize(("alpha", "beta"), [(0.5, 0.5), (0.9, 0.1), (0.2, 1.3)])
def test_cf_loss_matches_complex_numpy(alpha, beta):
    rng = np.random.default_rng(0)
    real, syn, t = rng.normal(size=(40, 6)), rng.normal(size=(7, 6)) + 0.3, rng.normal(size=(50, 6))
    got = cf_loss(*(torch.from_numpy(a) for a in (real, syn, t)), alpha=alpha, beta=beta)
    assert got.item() == pytest.approx(_numpy_cf_loss(real, syn, t, alpha, beta), rel=1e-10)


def test_equal_weights_give_alpha_times_squared_cf_distance():
    rng = np.random.default_rng(1)
    real, syn, t = rng.normal(size=(30, 4)), rng.normal(size=(5, 4)), rng.normal(size=(64, 4))
    phi_r, phi_s = np.exp(1j * real @ t.T).mean(0), np.exp(1j * syn @ t.T).mean(0)
    expected = np.sqrt(0.7 * np.abs(phi_r - phi_s) ** 2).mean()
    got = cf_loss(*(torch.from_numpy(a) for a in (real, syn, t)), alpha=0.7, beta=0.7)
    assert got.item() == pytest.approx(expected, rel=1e-9)


def test_cf_loss_of_identical_sets_is_at_the_floor_and_has_finite_gradient():
    x = torch.randn(10, 3, dtype=torch.float64)
    syn = x.clone().requires_grad_(True)
    loss = cf_loss(x, syn, torch.randn(16, 3, dtype=torch.float64))
    assert loss.item() == pytest.approx(np.sqrt(0.5 * 1e-12), rel=1e-3)
    loss.backward()
    assert torch.isfinite(syn.grad).all()


def test_cf_loss_decreases_when_synthetic_moves_towards_real():
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(200, 5, generator=gen)
    t = torch.randn(256, 5, generator=gen)
    far, near = real[:20] + 3.0, real[:20] + 0.3
    assert cf_loss(real, near, t) < cf_loss(real, far, t)


def test_mmd_equals_brute_force_linear_kernel_mmd():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(9, 5)), rng.normal(size=(4, 5)) + 1
    k = lambda a, b: a @ b.T  # noqa: E731
    expected = k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()
    assert mmd_loss(torch.from_numpy(x), torch.from_numpy(y)).item() == pytest.approx(expected)

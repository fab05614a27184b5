"""DSA transforms and CutMix against independent calculations, and their effect on evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mdcli.condense import dsa
from mdcli.condense.config import AugmentationConfig
from mdcli.condense.eval_training import fit_image
from mdcli.errors import InputError
from mdcli.models.classifier import ModelConfig, build_classifier
from mdcli.training.optim import OptimConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def _x(n: int = 4, c: int = 3, h: int = 8, w: int = 8) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(1))


def test_flip_mirrors_only_the_chosen_samples():
    x = _x()
    out = dsa.flip(x, torch.tensor([True, False, True, False]))
    torch.testing.assert_close(out[[0, 2]], torch.flip(x[[0, 2]], dims=[3]))
    torch.testing.assert_close(out[[1, 3]], x[[1, 3]])


def test_color_transforms_match_their_formulas():
    x = _x().double()
    u = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    xn = x.numpy()
    b = dsa.brightness(x, u).numpy()
    np.testing.assert_allclose(b, xn + (u.numpy() - 0.5)[:, None, None, None])
    s = dsa.saturation(x, u).numpy()
    mean_c = xn.mean(1, keepdims=True)
    np.testing.assert_allclose(s, (xn - mean_c) * 2 * u.numpy()[:, None, None, None] + mean_c)
    c = dsa.contrast(x, u).numpy()
    mean_all = xn.mean((1, 2, 3), keepdims=True)
    np.testing.assert_allclose(c, (xn - mean_all) * (u.numpy() + 0.5)[:, None, None, None]
                               + mean_all)


def test_crop_is_a_zero_filled_shift():
    x = _x()
    dy, dx = torch.tensor([1, -1, 0, 2]), torch.tensor([0, 1, -2, 1])
    out = dsa.crop(x, dy, dx)
    for i in range(4):
        expected = np.zeros_like(x[i].numpy())
        for r in range(8):
            for q in range(8):
                if 0 <= r + dy[i] < 8 and 0 <= q + dx[i] < 8:
                    expected[:, r, q] = x[i, :, r + dy[i], q + dx[i]].numpy()
        np.testing.assert_array_equal(out[i].numpy(), expected)


def test_cutout_zeroes_exactly_its_box():
    x = _x() + 1.0  # no zeros of its own
    cy, cx = torch.tensor([0, 3, 7, 4]), torch.tensor([5, 3, 0, 8])
    out = dsa.cutout(x, cy, cx)
    for i in range(4):
        expected = x[i].clone()
        top, left = max(int(cy[i]) - 2, 0), max(int(cx[i]) - 2, 0)
        expected[:, top:int(cy[i]) + 2, left:int(cx[i]) + 2] = 0  # 4 x 4 box (half of 8)
        torch.testing.assert_close(out[i], expected)


def test_rotate_and_scale_identity_and_quarter_turn():
    x = _x()
    torch.testing.assert_close(dsa.rotate(x, torch.zeros(4)), x)
    torch.testing.assert_close(dsa.scale(x, torch.ones(4), torch.ones(4)), x)
    quarter = dsa.rotate(x, torch.full((4,), math.pi / 2))
    turned = [torch.rot90(x, k, dims=(2, 3)) for k in (1, -1)]
    assert any(torch.allclose(quarter, t, atol=1e-5) for t in turned)
    mixed = dsa.rotate(x, torch.tensor([0.0, math.pi / 2, 0.0, 0.0]))
    torch.testing.assert_close(mixed[[0, 2, 3]], x[[0, 2, 3]])  # per-sample parameters


def test_shared_draw_applies_one_transformation_to_the_whole_batch():
    aug = dsa.DiffAugment("color_crop_cutout")
    x = _x(2).repeat(3, 1, 1, 1)  # identical pairs
    shared = aug(x, torch.Generator().manual_seed(0), shared=True)
    torch.testing.assert_close(shared[0], shared[2])
    own = aug(x, torch.Generator().manual_seed(0))
    assert not torch.allclose(own[0], own[2])
    grad = torch.zeros_like(x, requires_grad=True)
    aug(grad + x, torch.Generator().manual_seed(0)).sum().backward()  # differentiable


def test_unknown_transform_is_refused():
    with pytest.raises(InputError, match="augmentation.aug_type.*'blur'"):
        dsa.DiffAugment("color_blur", "augmentation.aug_type")
    assert not dsa.DiffAugment("none")


def test_cutmix_pastes_the_partner_box_and_reports_the_kept_share():
    x = _x(6)
    y = torch.arange(6)
    mixed, ya, yp, kept = dsa.cutmix(x, y, 1.0, torch.Generator().manual_seed(3))
    changed = (mixed != x).any(1)  # (n, h, w) pixels taken from the partner
    partner = {int(a): int(b) for a, b in zip(ya, yp, strict=True)}
    for i in range(6):
        j = partner[i]
        torch.testing.assert_close(mixed[i][:, changed[i]], x[j][:, changed[i]])
    box = (mixed[0] != x[0]).any(0).float().sum().item() if partner[0] != 0 else None
    if box is not None:
        assert kept == pytest.approx(1 - box / 64)
    assert 0.0 <= kept <= 1.0


def _fit(augmentation):
    torch.manual_seed(0)
    model = build_classifier(ModelConfig(arch="convnet", channels=[4], hidden=[8],
                                         input_shape=[1, 8, 8], num_classes=2))
    x = _x(16, 1)
    y = torch.arange(16) % 2
    fit_image(model, x, y, epochs=2, batch_size=8, optim=OptimConfig(lr=0.01),
              gen=torch.Generator().manual_seed(5), augmentation=augmentation)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_dsa_on_and_off_change_evaluation_training():
    plain = _fit(None)
    off = _fit(AugmentationConfig(dsa=False, mixup="none"))
    torch.testing.assert_close(plain, off)  # switched off is no augmentation at all
    assert not torch.allclose(plain, _fit(AugmentationConfig(mixup="none")))
    assert not torch.allclose(plain, _fit(AugmentationConfig(dsa=False, mix_p=1.0)))

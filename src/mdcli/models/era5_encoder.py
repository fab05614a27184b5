"""ERA5 encoder: 3-D convolutions over (time, H, W), one branch per variable.

The four variables (SST, MSL, Z, R) are encoded by separate weights run as grouped
convolutions, so one call encodes all of them. Each branch halves H and W down to the high
fusion resolution, collapses time, and emits the "encoder features" at the high and the low
(half of it) fusion resolutions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mdcli.models.ncsnpp import norm_groups


def _grouped_norm(num_vars: int, channels: int) -> nn.GroupNorm:
    """GroupNorm whose groups never mix two variables' channels."""
    return nn.GroupNorm(num_vars * norm_groups(channels), num_vars * channels, eps=1e-6)


class ERA5Encoder(nn.Module):
    """``[B, V, T, H, W] -> (enc_high [B, V, E, H/2^n, W/2^n], enc_low [B, V, E, .../2])``.

    Parameters
    ----------
    num_vars, steps : V variables, T time steps.
    image_size, high_res : input and high fusion resolution (a power-of-two ratio).
    channels : hidden width per variable; ``enc_channels`` (E): output width per variable.
    """

    def __init__(self, num_vars: int, steps: int, image_size: int, high_res: int, channels: int,
                 enc_channels: int) -> None:
        super().__init__()
        v, c = num_vars, channels
        self.num_vars, self.enc_channels = v, enc_channels
        self.stem = nn.Conv3d(v, v * c, 3, padding=1, groups=v)
        downs = []
        for _ in range(int(round(math.log2(image_size // high_res)))):
            downs += [_grouped_norm(v, c), nn.SiLU(),
                      nn.Conv3d(v * c, v * c, 3, stride=(1, 2, 2), padding=1, groups=v)]
        self.downs = nn.Sequential(*downs)
        self.time = nn.Sequential(_grouped_norm(v, c), nn.SiLU(),
                                  nn.Conv3d(v * c, v * c, (steps, 1, 1), groups=v))
        self.to_high = nn.Sequential(_grouped_norm(v, c), nn.SiLU(),
                                     nn.Conv2d(v * c, v * enc_channels, 3, padding=1, groups=v))
        self.down_low = nn.Sequential(_grouped_norm(v, c), nn.SiLU(),
                                      nn.Conv2d(v * c, v * c, 3, stride=2, padding=1, groups=v))
        self.to_low = nn.Sequential(_grouped_norm(v, c), nn.SiLU(),
                                    nn.Conv2d(v * c, v * enc_channels, 3, padding=1, groups=v))

    def forward(self, era5: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = era5.shape[0]
        h = self.time(self.downs(self.stem(era5))).squeeze(2)
        low = self.down_low(h)
        high = self.to_high(h)
        low = self.to_low(low)
        return (high.view(b, self.num_vars, self.enc_channels, *high.shape[-2:]),
                low.view(b, self.num_vars, self.enc_channels, *low.shape[-2:]))


class EncoderPredictor(nn.Module):
    """The student's branch: per-variable encoder features predicted from a U-Net state.

    ``[B, C, h, w] -> [B, V, E, h, w]``.
    """

    def __init__(self, in_channels: int, num_vars: int, enc_channels: int) -> None:
        super().__init__()
        self.num_vars, self.enc_channels = num_vars, enc_channels
        width = num_vars * enc_channels
        self.inp = nn.Conv2d(in_channels, width, 3, padding=1)
        self.norm = _grouped_norm(num_vars, enc_channels)
        self.out = nn.Conv2d(width, width, 3, padding=1, groups=num_vars)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        y = self.out(F.silu(self.norm(self.inp(h))))
        return y.view(h.shape[0], self.num_vars, self.enc_channels, *h.shape[-2:])


def softmax_weights(logits: torch.Tensor) -> torch.Tensor:
    """Per-variable fusion weights ``[V]`` (positive, summing to one)."""
    return torch.softmax(logits, dim=0)


def fuse_variables(features: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted sum over variables: ``[B, V, C, h, w]``, ``[V]`` -> ``[B, C, h, w]``."""
    return torch.einsum("v,bvchw->bchw", weights, features)

"""A conditional NCSN++-style U-Net (MCVD: condition frames stacked as input channels).

Residual blocks with a noise-level embedding, self-attention at low resolutions, skip
connections rescaled by ``1/sqrt(2)``. Two *fusion sites* let a caller change the hidden
state: ``"low"`` after the middle block (the lowest resolution) and ``"high"`` after the
up-sampling level at twice that resolution (16x16 and 32x32 for 128x128 frames with four
levels).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

Fuse = Callable[[str, torch.Tensor], torch.Tensor]
SKIP_SCALE = 1 / math.sqrt(2.0)


def norm_groups(channels: int, max_groups: int = 32) -> int:
    """Largest divisor of ``channels`` that is at most ``min(max_groups, channels // 4)``."""
    limit = max(1, min(max_groups, channels // 4))
    return max(g for g in range(1, limit + 1) if channels % g == 0)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(norm_groups(channels), channels, eps=1e-6)


def noise_embedding(noise_level: torch.Tensor, dim: int, scale: float = 100.0) -> torch.Tensor:
    """Sinusoidal embedding of ``scale * log(noise_level)``: ``[B] -> [B, dim]``."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=noise_level.device) / half)
    arg = scale * torch.log(noise_level.float()).unsqueeze(1) * freqs.unsqueeze(0)
    return torch.cat([arg.sin(), arg.cos()], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, noise embedding added in between, rescaled skip."""

    def __init__(self, cin: int, cout: int, temb_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1, self.conv1 = group_norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb_dim, cout)
        self.norm2, self.conv2 = group_norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return (self.skip(x) + h) * SKIP_SCALE


class AttnBlock(nn.Module):
    """Single-head self-attention over the ``h*w`` positions, rescaled skip."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).flatten(2).transpose(1, 2).chunk(3, dim=2)
        a = F.scaled_dot_product_attention(q, k, v)
        return (x + self.out(a.transpose(1, 2).reshape(b, c, h, w))) * SKIP_SCALE


class ResAttn(nn.Module):
    """A residual block, followed by self-attention when ``attn``."""

    def __init__(self, cin: int, cout: int, temb_dim: int, dropout: float, attn: bool) -> None:
        super().__init__()
        self.res = ResBlock(cin, cout, temb_dim, dropout)
        self.attn = AttnBlock(cout) if attn else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return self.attn(self.res(x, temb))


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class ConditionalUNet(nn.Module):
    """Noise-conditional U-Net on ``[x_noisy ; cond]`` stacked along channels.

    Parameters
    ----------
    in_frames, out_frames : input channels (target + condition frames), output channels.
    image_size : frame height and width.
    ch, ch_mult, num_res_blocks : width, per-level multipliers (>= 2 levels), blocks per level.
    attn_resolutions : resolutions with self-attention.
    """

    def __init__(self, in_frames: int, out_frames: int, image_size: int, ch: int,
                 ch_mult: list[int], num_res_blocks: int, attn_resolutions: list[int],
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.ch, temb = ch, 4 * ch
        self.embed = nn.Sequential(nn.Linear(ch, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(in_frames, ch, 3, padding=1)
        levels = len(ch_mult)
        self.low_res, self.high_level = image_size // 2 ** (levels - 1), levels - 2
        self.down = nn.ModuleList()
        skips, cin, res = [ch], ch, image_size
        for i, mult in enumerate(ch_mult):
            for _ in range(num_res_blocks):
                self.down.append(ResAttn(cin, ch * mult, temb, dropout, res in attn_resolutions))
                cin = ch * mult
                skips.append(cin)
            if i < levels - 1:
                self.down.append(nn.Conv2d(cin, cin, 3, stride=2, padding=1))
                skips.append(cin)
                res //= 2
        self.mid = nn.ModuleList([ResAttn(cin, cin, temb, dropout, True),
                                  ResAttn(cin, cin, temb, dropout, False)])
        self.low_channels = cin
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(levels)):
            blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                blocks.append(ResAttn(cin + skips.pop(), ch * ch_mult[i], temb, dropout,
                                      res in attn_resolutions))
                cin = ch * ch_mult[i]
            if i == self.high_level:
                self.high_channels = cin
            self.up.append(blocks)
            self.upsample.append(Upsample(cin) if i > 0 else nn.Identity())
            res *= 2
        self.norm_out = group_norm(cin)
        self.conv_out = nn.Conv2d(cin, out_frames, 3, padding=1)

    def forward(self, x_noisy: torch.Tensor, noise_level: torch.Tensor, cond: torch.Tensor,
                fuse: Fuse | None = None) -> torch.Tensor:
        """``[B, P, H, W]``, ``[B]``, ``[B, K, H, W]`` -> ``[B, P, H, W]``.

        ``fuse(site, h)`` returns the new hidden state at the ``"low"`` and ``"high"`` sites.
        """
        temb = self.embed(noise_embedding(noise_level, self.ch))
        h = self.conv_in(torch.cat([x_noisy, cond], dim=1))
        hs = [h]
        for layer in self.down:
            h = layer(h, temb) if isinstance(layer, ResAttn) else layer(h)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, temb)
        if fuse is not None:
            h = fuse("low", h)
        for index, (blocks, upsample) in enumerate(zip(self.up, self.upsample, strict=True)):
            for block in blocks:
                h = block(torch.cat([h, hs.pop()], dim=1), temb)
            if len(self.up) - 1 - index == self.high_level and fuse is not None:
                h = fuse("high", h)
            h = upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))

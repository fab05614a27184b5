"""A small ConvNet classifier for images (conv-norm-act-pool blocks, then linear layers)."""

from __future__ import annotations

import torch
from torch import nn

from mdcli.models.mlp import ACTIVATIONS


class ConvNet(nn.Module):
    """Conv blocks (3x3 conv, optional instance norm, activation, 2x2 average pool) + an MLP head.

    Parameters
    ----------
    input_shape : list of int
        ``[channels, height, width]`` of one image.
    channels : list of int
        Output channels of each conv block; each block halves height and width
        (the pool is skipped once a side is down to 1).
    hidden : list of int
        Widths of the hidden linear layers of the head.
    num_classes : int
        Number of outputs (logits).
    """

    def __init__(self, input_shape: list[int], channels: list[int], hidden: list[int],
                 num_classes: int, activation: str = "relu", bias: bool = True,
                 norm: bool = True) -> None:
        super().__init__()
        c, h, w = input_shape
        blocks: list[nn.Module] = []
        for out in channels:
            blocks.append(nn.Conv2d(c, out, 3, padding=1, bias=bias))
            if norm:
                blocks.append(nn.GroupNorm(out, out, affine=True))
            blocks.append(ACTIVATIONS[activation]())
            if min(h, w) >= 2:
                blocks.append(nn.AvgPool2d(2))
                h, w = h // 2, w // 2
            c = out
        self.features = nn.Sequential(*blocks)
        widths = [c * h * w, *hidden, num_classes]
        head: list[nn.Module] = [nn.Flatten()]
        for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            head.append(nn.Linear(d_in, d_out, bias=bias))
            if i < len(widths) - 2:
                head.append(ACTIVATIONS[activation]())
        self.head = nn.Sequential(*head)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened conv features, (N, C, H, W) -> (N, feature_dim)."""
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` of shape (N, C, H, W) -> logits (N, num_classes)."""
        return self.head(self.features(x))

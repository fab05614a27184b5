"""A fully connected classifier whose depth and widths come from the config."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "silu": nn.SiLU,
}


class MLP(nn.Module):
    """``len(hidden) + 1`` linear layers with an activation between them.

    Parameters
    ----------
    in_features : int
        Size of the flattened input.
    hidden : list of int
        Widths of the hidden layers (``[256] * 4`` gives 5 linear layers).
    num_classes : int
        Number of outputs (logits).
    activation : str
        One of :data:`ACTIVATIONS`.
    bias : bool
        Whether the linear layers have biases.
    """

    def __init__(self, in_features: int, hidden: list[int], num_classes: int,
                 activation: str = "relu", bias: bool = False) -> None:
        super().__init__()
        widths = [in_features, *hidden, num_classes]
        layers: list[nn.Module] = []
        for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(nn.Linear(d_in, d_out, bias=bias))
            if i < len(widths) - 2:
                layers.append(ACTIVATIONS[activation]())
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` of shape (N, ...) -> logits (N, num_classes)."""
        return self.net(x.flatten(1))

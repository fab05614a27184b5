"""Exponential moving average of a model's weights (NCSN++/MCVD use 0.999)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps ``shadow = d * shadow + (1 - d) * weights`` after every optimiser step.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so short
    runs are not dominated by the initial weights. Buffers are copied as they are.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = copy.deepcopy(model).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        params = dict(model.named_parameters())
        for name, shadow in self.shadow.named_parameters():
            shadow.lerp_(params[name].detach(), 1.0 - d)
        buffers = dict(model.named_buffers())
        for name, shadow in self.shadow.named_buffers():
            shadow.copy_(buffers[name])
        self.updates += 1

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        self.shadow.load_state_dict(state["shadow"])

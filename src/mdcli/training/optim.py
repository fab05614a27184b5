"""Optimizers from the ``optim`` config section: SGD (momentum), Adam, AdamW and Muon.

Muon (``torch.optim.Muon``) orthogonalises the update of 2-D weight matrices, so, as its
authors recommend, it gets only the hidden linear layers' weights; the input layer, the output
layer, biases and any other parameter (norms, conv kernels) go to AdamW. The two optimizers are
stepped together through :class:`OptimizerGroup`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from mdcli.config import param
from mdcli.errors import InputError
from mdcli.models.classifier import linear_layers


@dataclass
class MuonConfig:
    """``optim.muon``: hyper-parameters of the Muon part (hidden 2-D weights)."""

    lr: float = param(0.02, gt=0)
    momentum: float = param(0.95, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = param(0.0, ge=0)
    ns_steps: int = param(5, ge=1, help="Newton-Schulz iterations")
    eps: float = param(1e-7, gt=0)
    adjust_lr_fn: Literal["original", "match_rms_adamw"] | None = param(
        None, help="Muon's learning-rate scaling per matrix shape (null: torch's default)")


@dataclass
class OptimConfig:
    """The ``optim`` section. With ``name: muon``, ``lr``/``betas``/``eps``/``weight_decay``
    configure the AdamW part and ``muon`` the Muon part."""

    name: Literal["sgd", "adam", "adamw", "muon"] = "adam"
    lr: float = param(1e-3, gt=0)
    weight_decay: float = param(0.0, ge=0)
    momentum: float = param(0.9, ge=0, lt=1, help="SGD only")
    nesterov: bool = param(False, help="SGD only")
    betas: list[float] = param([0.9, 0.999], ge=0, lt=1, help="Adam, AdamW (and Muon's AdamW part)")
    eps: float = param(1e-8, gt=0)
    muon: MuonConfig = dataclasses.field(default_factory=MuonConfig)


class OptimizerGroup:
    """Several optimizers over disjoint parameters, used like one optimizer."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]) -> None:
        self.optimizers = optimizers

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [g for opt in self.optimizers for g in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def state_dict(self) -> dict[str, Any]:
        return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for opt, sub in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(sub)


def muon_parameters(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(hidden linear weights for Muon, every other trainable parameter for AdamW)."""
    hidden = {id(m.weight) for m in linear_layers(model)[1:-1]}
    params = [p for p in model.parameters() if p.requires_grad]
    return [p for p in params if id(p) in hidden], [p for p in params if id(p) not in hidden]


def build_optimizer(cfg: OptimConfig, model: nn.Module) -> OptimizerGroup:
    """The optimizer(s) for ``model`` described by ``cfg``."""
    params = [p for p in model.parameters() if p.requires_grad]
    betas = tuple(cfg.betas)
    if len(betas) != 2:
        raise InputError(f"config key 'optim.betas': expected two numbers, got {cfg.betas}")
    if cfg.name == "sgd":
        return OptimizerGroup([torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                               nesterov=cfg.nesterov and cfg.momentum > 0,
                                               weight_decay=cfg.weight_decay)])
    if cfg.name == "adam":
        return OptimizerGroup([torch.optim.Adam(params, lr=cfg.lr, betas=betas, eps=cfg.eps,
                                                weight_decay=cfg.weight_decay)])
    if cfg.name == "adamw":
        return OptimizerGroup([torch.optim.AdamW(params, lr=cfg.lr, betas=betas, eps=cfg.eps,
                                                 weight_decay=cfg.weight_decay)])
    hidden, rest = muon_parameters(model)
    if not hidden:
        raise InputError("config key 'optim.name': muon needs hidden 2-D weight matrices "
                         "(a model with at least 3 linear layers)")
    m = cfg.muon
    optimizers: list[torch.optim.Optimizer] = [torch.optim.Muon(
        hidden, lr=m.lr, weight_decay=m.weight_decay, momentum=m.momentum, nesterov=m.nesterov,
        eps=m.eps, ns_steps=m.ns_steps, adjust_lr_fn=m.adjust_lr_fn)]
    if rest:
        optimizers.append(torch.optim.AdamW(rest, lr=cfg.lr, betas=betas, eps=cfg.eps,
                                            weight_decay=cfg.weight_decay))
    return OptimizerGroup(optimizers)

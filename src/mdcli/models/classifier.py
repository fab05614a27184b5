"""Classifier models built from a config, and rebuilt from the config stored in a checkpoint.

``build_classifier(ModelConfig(...))`` gives an :class:`~mdcli.models.mlp.MLP` or a
:class:`~mdcli.models.convnet.ConvNet`; ``load_classifier(path)`` reads a checkpoint written by
:func:`mdcli.training.classifier.train_classifier` (its ``model_config`` dict and
``state_dict``) and returns the model in eval mode.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from mdcli.config import from_dict, param
from mdcli.errors import InputError
from mdcli.models.convnet import ConvNet
from mdcli.models.mlp import MLP
from mdcli.storage.checkpoint import load_checkpoint

CHECKPOINT_KIND = "classifier"


@dataclass
class ModelConfig:
    """The ``model`` section of a classifier config."""

    arch: Literal["mlp", "convnet"] = param("mlp", help="mlp or convnet")
    hidden: list[int] = param([256, 256, 256, 256], ge=1,
                              help="hidden widths (MLP: 4 give 5 linear layers; ConvNet: head)")
    activation: Literal["relu", "tanh", "gelu", "silu"] = "relu"
    bias: bool = param(False, help="biases in the layers (the NFA papers train without)")
    channels: list[int] = param([32, 64], ge=1, help="ConvNet only: channels per conv block")
    norm: bool = param(True, help="ConvNet only: group norm after each conv")
    input_shape: list[int] = param([], ge=1, help="shape of one input; empty: from the data")
    num_classes: int = param(0, ge=0, help="number of outputs; 0: from the data")


def with_data_shape(cfg: ModelConfig, input_shape: tuple[int, ...],
                    num_classes: int) -> ModelConfig:
    """Fill ``input_shape``/``num_classes`` from the data, checking values the user gave."""
    shape = list(input_shape)
    if cfg.input_shape and math.prod(cfg.input_shape) != math.prod(shape):
        raise InputError(f"config key 'model.input_shape': {cfg.input_shape} does not match "
                         f"the data's sample shape {shape}")
    if cfg.num_classes and cfg.num_classes < num_classes:
        raise InputError(f"config key 'model.num_classes': {cfg.num_classes} is fewer than the "
                         f"{num_classes} classes in the data")
    return dataclasses.replace(cfg, input_shape=cfg.input_shape or shape,
                               num_classes=cfg.num_classes or num_classes)


def build_classifier(cfg: ModelConfig) -> nn.Module:
    """The model described by ``cfg`` (``input_shape`` and ``num_classes`` must be set)."""
    if not cfg.input_shape or cfg.num_classes < 1:
        raise InputError("model config: input_shape and num_classes must be set "
                         "(use with_data_shape(cfg, x.shape[1:], n_classes))")
    if cfg.arch == "mlp":
        return MLP(math.prod(cfg.input_shape), cfg.hidden, cfg.num_classes,
                   activation=cfg.activation, bias=cfg.bias)
    if len(cfg.input_shape) != 3:
        raise InputError(f"config key 'model.arch': convnet needs image inputs of shape "
                         f"(channels, height, width), got {cfg.input_shape}")
    return ConvNet(cfg.input_shape, cfg.channels, cfg.hidden, cfg.num_classes,
                   activation=cfg.activation, bias=cfg.bias, norm=cfg.norm)


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The model's ``nn.Linear`` modules in registration (= forward) order: layers 0, 1, ..."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def classifier_from_record(record: dict[str, Any], source: str = "checkpoint") -> nn.Module:
    """The classifier (eval mode) saved in a checkpoint ``record``; ``source`` names it in
    errors."""
    if record.get("kind") != CHECKPOINT_KIND or "model_config" not in record:
        raise InputError(f"{source}: not a classifier checkpoint "
                         f"(kind {record.get('kind')!r}, expected {CHECKPOINT_KIND!r})")
    model = build_classifier(from_dict(ModelConfig, record["model_config"], "model"))
    model.load_state_dict(record["state_dict"])
    return model.eval()


def load_classifier(path: str | Path, map_location: str | torch.device = "cpu"
                    ) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the classifier saved in checkpoint ``path``; returns (model in eval mode, record)."""
    record = load_checkpoint(path, map_location=map_location)
    return classifier_from_record(record, f"checkpoint {path}"), record

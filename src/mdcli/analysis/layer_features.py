"""One feature vector per sample from a layer of a network: forward hooks and pooling.

Spatial outputs ``[B, C, h, w]`` are pooled by global average pooling (the mean over the
``h x w`` positions of each channel), sequence outputs ``[B, T, C]`` by the mean over the ``T``
tokens; anything else is flattened. Extraction runs batched under ``torch.no_grad()``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from mdcli.errors import InputError

PRE_LOGITS, BACKBONE, NECK = "pre_logits", "backbone", "neck"


def pool_spatial(features: torch.Tensor, spatial_dims: int = 2) -> torch.Tensor:
    """Mean over the trailing ``spatial_dims`` axes: ``[..., C, h, w] -> [..., C]``."""
    return features.mean(dim=tuple(range(-spatial_dims, 0)))


def pool_output(output: torch.Tensor) -> torch.Tensor:
    """One vector per sample from a layer output: ``[B, C]`` as is, ``[B, C, h, w]`` and
    ``[B, T, C]`` averaged over positions / tokens, anything else flattened -> ``[B, F]``."""
    if output.ndim == 4:
        return pool_spatial(output)
    if output.ndim == 3:
        return output.mean(dim=1)
    return output.reshape(output.shape[0], -1)


def _first_tensor(output: object) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise InputError(f"layer output is {type(output).__name__}, expected a tensor")


def find_layer(model: nn.Module, layer: str) -> tuple[nn.Module, bool]:
    """The module whose output (or, for ``pre_logits``, input) is the layer's features.

    ``layer`` is a name from ``model.named_modules()``, or MMPretrain's stage names:
    ``pre_logits`` (the input of the last linear layer), ``backbone`` (the output of the
    model's ``features`` module when it has one, else ``pre_logits``) and ``neck`` (the input
    of the classifier ``head`` module when the model has one, else ``pre_logits``). Returns
    ``(module, use_input)``.
    """
    modules = dict(model.named_modules())
    if layer == BACKBONE and "features" in modules:
        return modules["features"], False
    if layer == NECK and "head" in modules:
        return modules["head"], True
    if layer in (PRE_LOGITS, BACKBONE, NECK):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise InputError(f"--layer {layer}: the model has no linear layer")
        return linears[-1], True
    if layer not in modules or not layer:
        names = ", ".join(name for name in modules if name)
        raise InputError(f"--layer {layer!r}: no such layer; expected pre_logits, backbone or "
                         f"one of: {names}")
    return modules[layer], False


@torch.no_grad()
def layer_features(model: nn.Module, layer: str, batches: Iterable[torch.Tensor],
                   device: torch.device | str = "cpu") -> np.ndarray:
    """Pooled features of ``layer`` (see :func:`find_layer`) for every input batch
    ``[B, ...]``, caught by a forward hook -> ``[N, F]`` float32."""
    captured: list[torch.Tensor] = []
    module, use_input = find_layer(model, layer)

    def hook(module: nn.Module, inputs: tuple, output: object) -> None:
        value = inputs[0] if use_input else _first_tensor(output)
        captured.append(pool_output(value).float().cpu())

    handle = module.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            model(batch.to(device))
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(captured).numpy()

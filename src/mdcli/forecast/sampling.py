"""Sampled forecasts of every model from the same starting noise."""

from __future__ import annotations

import torch

from mdcli.diffusion.samplers import sample
from mdcli.forecast.config import SamplingConfig
from mdcli.forecast.forecasters import Forecaster
from mdcli.forecast.heldout import HeldOut


@torch.no_grad()
def sample_forecasts(models: dict[str, Forecaster], held: HeldOut, objective,
                     sampling: SamplingConfig, device: torch.device, seed: int,
                     batch_size: int = 32, era5: dict[str, torch.Tensor] | None = None
                     ) -> dict[str, torch.Tensor]:
    """``{name: [N, P, H, W]}`` sampled next frames of every window.

    Each model draws from a generator seeded with ``seed`` over the same batches, so all
    start from the same noise (common random numbers). ``era5[name]`` (``[N, 4, E, H, W]``)
    replaces the ERA5 the model ``name`` would otherwise get.
    """
    frames = {}
    for name, model in models.items():
        model.net.eval()
        generator = torch.Generator().manual_seed(seed)
        parts = []
        for rows in held.batches(batch_size):
            fields = era5[name][rows] if era5 and name in era5 else None

            def net(x, level, rows=rows, fields=fields, model=model):
                return model(x, level, held, rows, fields).float()

            shape = tuple(held.target[rows].shape)
            parts.append(sample(net, objective, shape, sampling.method, generator, device,
                                sampling.steps, sampling.eta, sampling.clip,
                                sampling.n_steps_each, sampling.step_lr,
                                description=f"sampling {name}").cpu())
        frames[name] = torch.cat(parts)
    return frames

"""The training loop pieces the teacher and the distillation share: the ``optim:`` and
``train:`` config sections, the optimiser with warm-up, one optimiser step with clipping and
EMA, noise draws that are the same on one process and under DDP, and the epoch / interrupt
checkpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from mdcli.config import param
from mdcli.diffusion.objectives import Objective
from mdcli.dist import DistContext
from mdcli.errors import InputError
from mdcli.logs import log
from mdcli.runs import Run
from mdcli.training.ema import EMA


@dataclass
class DiffusionOptimConfig:
    lr: float = param(2e-4, gt=0)
    betas: list[float] = param([0.9, 0.999], ge=0, lt=1)
    eps: float = param(1e-8, gt=0)
    weight_decay: float = param(0.0, ge=0)
    warmup: int = param(5000, ge=0, help="linear learning-rate warm-up steps")
    grad_clip: float = param(1.0, ge=0, help="max gradient norm (0: off)")
    ema_decay: float = param(0.999, ge=0, lt=1)


@dataclass
class LoopConfig:
    epochs: int = param(10, ge=1)
    batch_size: int = param(16, ge=1, help="global batch (split over DDP ranks)")
    max_steps_per_epoch: int | None = param(None, ge=1)
    log_every: int = param(10, ge=1)
    amp: bool = param(False, help="bf16 autocast of the forward passes on CUDA")




def flush_denormals() -> None:
    """Treat denormal floats as zero: Adam's second moments and Gaussian-blob frames are full
    of them early in training and make CPU steps 10-50x slower."""
    torch.set_flush_denormal(True)


def make_optimizer(cfg: DiffusionOptimConfig, model: nn.Module) -> torch.optim.Adam:
    if len(cfg.betas) != 2:
        raise InputError(f"config key 'optim.betas': got {cfg.betas}, expected two numbers")
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                            weight_decay=cfg.weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, cfg: DiffusionOptimConfig, step: int) -> float:
    """Linear warm-up to ``cfg.lr`` over ``cfg.warmup`` steps."""
    lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) if cfg.warmup else cfg.lr
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def optimizer_step(loss: torch.Tensor, model: nn.Module, optimizer: torch.optim.Optimizer,
                   cfg: DiffusionOptimConfig, step: int, ema: EMA) -> None:
    """Backward, clip, step with the warmed-up learning rate, update the EMA."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    set_lr(optimizer, cfg, step)
    optimizer.step()
    ema.update(unwrap(model))


def check_batch_size(cfg: LoopConfig, ctx: DistContext) -> None:
    """The global batch must split evenly over the DDP ranks."""
    if cfg.batch_size % ctx.world_size:
        raise InputError(f"config key 'train.batch_size': {cfg.batch_size} is not "
                         f"divisible by the {ctx.world_size} processes")


def autocast(device: torch.device, enabled: bool) -> torch.autocast:
    """bf16 autocast on CUDA when ``enabled`` (a no-op on the CPU)."""
    return torch.autocast(device.type, dtype=torch.bfloat16,
                          enabled=enabled and device.type == "cuda")


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


class NoisyBatch(NamedTuple):
    """This rank's rows of a global batch and their noise draws: ``x_noisy`` (at noise level
    ``sigma``) is ``target`` perturbed with ``noise`` at schedule indices ``idx``."""

    cond: torch.Tensor
    era5: torch.Tensor
    target: torch.Tensor
    idx: torch.Tensor
    noise: torch.Tensor
    x_noisy: torch.Tensor
    sigma: torch.Tensor


def noisy_batches(loader: DataLoader, batches: list[list[int]], skip: int, objective: Objective,
                  generator: torch.Generator, ctx: DistContext
                  ) -> Iterator[tuple[int, NoisyBatch]]:
    """``(index in the epoch, batch)`` for ``rank_loader(data, batches[skip:], ...)``; the
    levels and noise of the whole global batch come from ``generator``, this rank keeps its
    rows."""
    device = ctx.device
    for batch, (cond, era5, target) in enumerate(loader, start=skip):
        cond, era5, target = cond.to(device), era5.to(device), target.to(device)
        idx, noise = objective.draw(torch.empty(len(batches[batch]), *target.shape[1:]),
                                    generator)
        idx = idx[ctx.rank::ctx.world_size].to(device)
        noise = noise[ctx.rank::ctx.world_size].to(device)
        x_noisy, sigma = objective.perturb(target, idx, noise)
        yield batch, NoisyBatch(cond, era5, target, idx, noise, x_noisy, sigma)


def wrap_ddp(model: nn.Module, ctx: DistContext, find_unused: bool = False) -> nn.Module:
    if not ctx.distributed:
        return model
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)



def end_epoch(save: Callable[[Path], None], run: Run, last: Path, pos: dict[str, Any],
              epoch: int) -> None:
    """Mark ``epoch`` (0-based) complete in ``pos``; save ``epoch_NNNN.pt`` and ``last``."""
    pos.update(epoch=epoch + 1, batch=0)
    save(run.checkpoints / f"epoch_{epoch + 1:04d}.pt")
    save(last)


@contextmanager
def saved_on_interrupt(save: Callable[[Path], None], last: Path, pos: dict[str, Any]
                       ) -> Iterator[None]:
    """On ``KeyboardInterrupt`` (SIGTERM) save the resumable checkpoint ``last``, re-raise."""
    try:
        yield
    except KeyboardInterrupt:
        save(last)
        log.warning("saved resumable checkpoint %s (epoch %d, batch %d)", last,
                    pos["epoch"] + 1, pos["batch"])
        raise



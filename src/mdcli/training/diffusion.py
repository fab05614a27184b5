"""Training the ERA5 teacher (``mdcli train``, ``task: tc_teacher``) and the pieces the
distillation shares with it: config sections, data, optimiser with warm-up, batching and
noise draws that give the same result on one process or under DDP, held-out denoising
evaluation, epoch and interrupt checkpoints.

Determinism: the epoch order comes from ``seed + epoch``, the noise draws from a generator
seeded with ``seed`` that is saved in every checkpoint. Under DDP each rank draws the noise of
the whole (global) batch and keeps its own rows, so ``world_size`` processes with batch
``B / world_size`` each take the same steps as one process with batch ``B``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from mdcli.config import param, to_dict
from mdcli.diffusion.objectives import DiffusionConfig, Objective, build_objective
from mdcli.dist import DistContext, all_reduce_mean, barrier
from mdcli.errors import InputError
from mdcli.logs import log
from mdcli.models.causal import EFFECT_TARGETS, counterfactual_effects, effects_dict
from mdcli.models.teacher_student import VARIABLES, ModelConfig, Teacher, variable_dict
from mdcli.progress import progress
from mdcli.runs import Run
from mdcli.seeding import seed_everything
from mdcli.storage.checkpoint import load_checkpoint, save_checkpoint
from mdcli.training.ema import EMA

TEACHER_KIND = "tc_teacher"


@dataclass
class TCDataConfig:
    path: str = param("data/tc_tiny.h5", help="HDF5 cyclone file")
    generate: str | None = param(
        "data/tc_tiny", help="synth-tc config that generates 'path' when it is missing (null: "
                             "a missing file is an error)")
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    num_workers: int = param(0, ge=0)


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


@dataclass
class EvalConfig:
    noise_levels: int = param(10, ge=1, help="levels spread over the schedule")
    batch_size: int = param(32, ge=1)
    max_samples: int | None = param(64, ge=1, help="held-out windows used (null: all)")
    seed: int = param(1234, help="seed of the evaluation noise draws")
    baseline: bool = param(True, help="distill: also train an undistilled student")


@dataclass
class SamplingConfig:
    method: Literal["ddim", "ddpm", "langevin", "none"] = "ddim"
    steps: int = param(50, ge=1, help="DDIM steps")
    eta: float = param(0.0, ge=0)
    num_samples: int = param(4, ge=1)
    n_steps_each: int = param(5, ge=1, help="Langevin steps per sigma")
    step_lr: float = param(3e-6, gt=0, help="Langevin step size")
    clip: float | None = param(1.0, gt=0, help="clip predicted clean frames (DDPM/DDIM)")


@dataclass
class TeacherConfig:
    task: str = "tc_teacher"
    seed: int = 0
    device: str = "auto"
    data: TCDataConfig = dataclasses.field(default_factory=TCDataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = dataclasses.field(default_factory=DiffusionConfig)
    optim: DiffusionOptimConfig = dataclasses.field(default_factory=DiffusionOptimConfig)
    train: LoopConfig = dataclasses.field(default_factory=LoopConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    sampling: SamplingConfig = dataclasses.field(default_factory=SamplingConfig)


# ----------------------------------------------------------------------------- data
def ensure_data(cfg: TCDataConfig, main: bool = True) -> Path:
    """The cyclone file, generated from ``cfg.generate`` on first use when missing."""
    path = Path(cfg.path)
    if path.is_file():
        return path
    if cfg.generate is None:
        raise InputError(f"config key 'data.path': {path} not found (set data.generate to a "
                         f"synth-tc config to generate it)")
    if main:
        from mdcli.data.synth_tc import generate_from_config

        log.info("generating %s from %s", path, cfg.generate)
        generate_from_config(cfg.generate, path)
    return path


def open_split(cfg: TCDataConfig, model: ModelConfig, split: str) -> Dataset:
    """A ``TCWindows`` split whose frame size must match ``model.image_size``."""
    from mdcli.data.tc_dataset import TCWindows

    data = TCWindows(cfg.path, split, cond_frames=model.cond_frames,
                     pred_frames=model.pred_frames, era5_steps=model.era5_steps)
    cond, era5, _, _ = data[0]
    if tuple(cond.shape[-2:]) != (model.image_size, model.image_size):
        raise InputError(f"config key 'model.image_size': {model.image_size}, but {cfg.path} "
                         f"holds {tuple(cond.shape[-2:])} frames")
    return data


def _collate(items: list[tuple]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    cond, era5, target = (torch.stack([torch.as_tensor(it[i]) for it in items]).float()
                          for i in range(3))
    return cond, era5, target


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int,
                  limit: int | None = None) -> list[list[int]]:
    """Global batches of epoch ``epoch``: a permutation seeded by ``seed + epoch``, last
    incomplete batch dropped."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    count = n // batch_size if limit is None else min(n // batch_size, limit)
    return [order[i * batch_size:(i + 1) * batch_size] for i in range(count)]


def rank_loader(data: Dataset, batches: list[list[int]], ctx: DistContext, workers: int
                ) -> DataLoader:
    """This rank's rows ``[rank::world_size]`` of every global batch."""
    mine = [b[ctx.rank::ctx.world_size] for b in batches]
    return DataLoader(data, batch_sampler=mine, collate_fn=_collate, num_workers=workers)


def eval_loader(data: Dataset, cfg: EvalConfig, workers: int = 0) -> DataLoader:
    n = len(data) if cfg.max_samples is None else min(len(data), cfg.max_samples)
    idx = list(range(n))
    return DataLoader(data, batch_sampler=[idx[i:i + cfg.batch_size]
                                           for i in range(0, n, cfg.batch_size)],
                      collate_fn=_collate, num_workers=workers)


def check_batch_size(cfg: LoopConfig, ctx: DistContext) -> None:
    """The global batch must split evenly over the DDP ranks."""
    if cfg.batch_size % ctx.world_size:
        raise InputError(f"config key 'train.batch_size': {cfg.batch_size} is not "
                         f"divisible by the {ctx.world_size} processes")


def prepare_data(cfg: Any, model: ModelConfig, ctx: DistContext
                 ) -> tuple[Dataset, DataLoader]:
    """Seed, generate the data file on first use (main rank, the others wait) and return the
    training split and the validation loader; ``cfg`` has ``seed``, ``data`` and ``eval``."""
    seed_everything(cfg.seed)
    flush_denormals()
    ensure_data(cfg.data, ctx.is_main)
    barrier()
    train_set = open_split(cfg.data, model, cfg.data.train_split)
    val_loader = eval_loader(open_split(cfg.data, model, cfg.data.val_split), cfg.eval)
    return train_set, val_loader


# ------------------------------------------------------------------------ training
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
    ema.update(_unwrap(model))


def autocast(device: torch.device, enabled: bool) -> torch.autocast:
    """bf16 autocast on CUDA when ``enabled`` (a no-op on the CPU)."""
    return torch.autocast(device.type, dtype=torch.bfloat16,
                          enabled=enabled and device.type == "cuda")


def _unwrap(model: nn.Module) -> nn.Module:
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


# ---------------------------------------------------------------------- evaluation
Predict = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
                   torch.Tensor]


@torch.no_grad()
def heldout_losses(nets: dict[str, Predict], loader: DataLoader, objective: Objective,
                   num_levels: int, seed: int, device: torch.device,
                   clip: float | None = None) -> dict[str, dict[str, Any]]:
    """Denoising loss per noise level on held-out windows, same noise draws for every net.

    ``nets[name](x_noisy, noise_level, cond, era5, target)`` returns the network output.
    Returns per net ``{"levels": [...], "per_level": [...], "mean": float,
    "one_step_mse": float}`` (``one_step_mse``: MSE of the one-step clean estimate, clipped
    to ``[-clip, clip]`` when ``clip`` is set, averaged over the levels).
    """
    generator = torch.Generator().manual_seed(seed)
    levels = objective.eval_indices(num_levels)
    sums = {name: torch.zeros(len(levels), dtype=torch.float64) for name in nets}
    mse = {name: torch.zeros(len(levels), dtype=torch.float64) for name in nets}
    count = 0
    for cond, era5, target in loader:
        cond, era5, target = cond.to(device), era5.to(device), target.to(device)
        for j, level in enumerate(levels.tolist()):
            idx = torch.full((target.shape[0],), level, dtype=torch.long, device=device)
            noise = torch.randn(target.shape, generator=generator).to(device)
            x_noisy, sigma = objective.perturb(target, idx, noise)
            for name, net in nets.items():
                out = net(x_noisy, sigma, cond, era5, target)
                loss = objective.loss(out, target, x_noisy, noise, idx)
                sums[name][j] += loss.double().sum().cpu()
                x0 = objective.denoise(out, x_noisy, idx)
                x0 = x0.clamp(-clip, clip) if clip is not None else x0
                mse[name][j] += (x0 - target).pow(2).flatten(1).mean(1).double().sum().cpu()
        count += target.shape[0]
    noise_levels = objective.levels[levels].tolist()
    return {name: {"levels": noise_levels, "per_level": (sums[name] / count).tolist(),
                   "mean": float(sums[name].mean() / count),
                   "one_step_mse": float(mse[name].mean() / count)} for name in nets}


def teacher_predict(model: nn.Module) -> Predict:
    return lambda x, s, cond, era5, target: model(x, s, cond, era5)


def noisy_at(objective: Objective, level_index: int, target: torch.Tensor,
             generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``target`` perturbed at one level of the schedule: ``(x_noisy, noise_level)``."""
    idx = torch.full((target.shape[0],), level_index, dtype=torch.long, device=target.device)
    noise = torch.randn(target.shape, generator=generator).to(target.device)
    return objective.perturb(target, idx, noise)


def effect_level_index(objective: Objective, num_levels: int, which: int) -> int:
    """The schedule index of evaluation level ``which`` (clipped to the last one)."""
    levels = objective.eval_indices(num_levels)
    return int(levels[min(which, len(levels) - 1)])


@torch.no_grad()
def teacher_effects(model: Teacher, loader: DataLoader, objective: Objective, level_index: int,
                    device: torch.device) -> torch.Tensor:
    """The teacher's ``[4, 5]`` counterfactual effect matrix on the first held-out batch."""
    cond, era5, target = (t.to(device) for t in next(iter(loader)))
    x_noisy, sigma = noisy_at(objective, level_index, target, torch.Generator().manual_seed(0))
    return counterfactual_effects(
        lambda v: model(x_noisy, sigma, cond, era5, return_feat=True, intervene=v),
        model.variable_weights(), len(VARIABLES))


# ------------------------------------------------------------------------ checkpoints
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


def teacher_record(cfg: TeacherConfig, model: nn.Module, ema: EMA, optimizer,
                   pos: dict[str, Any], history: list) -> dict:
    """The teacher checkpoint; ``pos`` holds ``epoch`` (completed), ``batch`` (completed in
    the current epoch), ``step`` and the noise generator state ``rng``."""
    return {"kind": TEACHER_KIND, "model_config": to_dict(cfg.model),
            "diffusion": to_dict(cfg.diffusion), "config": to_dict(cfg),
            "model": _unwrap(model).state_dict(), "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(), "epoch": pos["epoch"],
            "batch_in_epoch": pos["batch"], "step": pos["step"], "noise_rng": pos["rng"],
            "history": list(history)}


def load_teacher(path: str | Path, device: torch.device | str = "cpu", ema: bool = True
                 ) -> tuple[Teacher, dict[str, Any]]:
    """The teacher network (EMA weights by default, eval mode) and its checkpoint record."""
    from mdcli.models.teacher_student import build_diffusion_model

    record = load_checkpoint(path, map_location=device)
    if record.get("kind") != TEACHER_KIND:
        raise InputError(f"--teacher {path}: not a teacher checkpoint (kind "
                         f"{record.get('kind')!r}, expected {TEACHER_KIND!r})")
    model = build_diffusion_model(record["model_config"], "teacher")
    model.load_state_dict(record["ema"]["shadow"] if ema else record["model"])
    return model.to(device).eval(), record


def train_teacher(cfg: TeacherConfig, run: Run, ctx: DistContext, resume: bool = False
                  ) -> dict[str, Any]:
    """Train, validate every epoch on ``val`` with the EMA weights, checkpoint every epoch.

    Returns the summary figures. A ``KeyboardInterrupt`` (SIGTERM) saves ``last.pt`` at the
    current step and is re-raised.
    """
    device = ctx.device
    check_batch_size(cfg.train, ctx)
    train_set, val_loader = prepare_data(cfg, cfg.model, ctx)
    objective = build_objective(cfg.diffusion)
    model = Teacher(cfg.model).to(device)
    ema = EMA(model, cfg.optim.ema_decay)
    optimizer = make_optimizer(cfg.optim, model)
    generator = torch.Generator().manual_seed(cfg.seed)
    start_epoch, skip, step, history = 0, 0, 0, []
    last = run.path / "checkpoints" / "last.pt"
    if resume:
        record = load_checkpoint(last, map_location=device)
        model.load_state_dict(record["model"])
        ema.load_state_dict(record["ema"])
        optimizer.load_state_dict(record["optimizer"])
        generator.set_state(record["noise_rng"])
        start_epoch, skip, step = record["epoch"], record["batch_in_epoch"], record["step"]
        history = list(record["history"])
        log.info("resumed from %s at epoch %d, step %d", last, start_epoch + 1, step)
    ddp = wrap_ddp(model, ctx)
    pos = {"epoch": start_epoch, "batch": skip, "step": step, "rng": generator.get_state()}

    def save(path: Path) -> None:
        if ctx.is_main:
            save_checkpoint(path, teacher_record(cfg, model, ema, optimizer, pos, history))

    with saved_on_interrupt(save, last, pos):
        for epoch in range(start_epoch, cfg.train.epochs):
            batches = epoch_batches(len(train_set), cfg.train.batch_size, cfg.seed, epoch,
                                    cfg.train.max_steps_per_epoch)
            loader = rank_loader(train_set, batches[skip:], ctx, cfg.data.num_workers)
            ddp.train()
            running = torch.zeros((), dtype=torch.float64)
            with progress(len(batches) - skip, f"train epoch {epoch + 1}",
                          enabled=ctx.is_main) as bar:
                for batch, (cond, era5, target, idx, noise, x_noisy, sigma) in noisy_batches(
                        loader, batches, skip, objective, generator, ctx):
                    with autocast(device, cfg.train.amp):
                        out = ddp(x_noisy, sigma, cond, era5)
                    loss = objective.loss(out.float(), target, x_noisy, noise, idx).mean()
                    optimizer_step(loss, ddp, optimizer, cfg.optim, step, ema)
                    step += 1
                    pos.update(batch=batch + 1, step=step, rng=generator.get_state())
                    value = float(all_reduce_mean(loss.detach()))
                    running += value
                    bar.advance(1, loss=value)
                    if step % cfg.train.log_every == 0:
                        run.log_metrics({"step": step, "epoch": epoch + 1, "loss": value,
                                         "lr": optimizer.param_groups[0]["lr"]})
            skip = 0
            epoch_loss = float(running / max(1, len(batches)))
            val = heldout_losses({"teacher": teacher_predict(ema.shadow)}, val_loader, objective,
                                 cfg.eval.noise_levels, cfg.eval.seed, device,
                                 cfg.sampling.clip)["teacher"]
            record = {"epoch": epoch + 1, "step": step, "train_loss": epoch_loss,
                      "val_dsm": val["mean"], "val_one_step_mse": val["one_step_mse"]}
            history.append(record)
            run.log_metrics(record)
            log.info("epoch %d: train loss %.4f, val DSM %.4f", epoch + 1, epoch_loss,
                     val["mean"])
            end_epoch(save, run, last, pos, epoch)
    effects = teacher_effects(ema.shadow, val_loader, objective,
                              effect_level_index(objective, cfg.eval.noise_levels, 5), device)
    return {"task": TEACHER_KIND, "epochs": pos["epoch"], "steps": pos["step"],
            "history": history, "val_dsm": history[-1]["val_dsm"] if history else None,
            "causal_effect": {"targets": list(EFFECT_TARGETS),
                              "teacher": effects_dict(effects, VARIABLES)},
            "variable_weights": variable_dict(ema.shadow.variable_weights()),
            "checkpoint": str(last)}

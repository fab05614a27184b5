"""Training the ERA5 teacher (``mdcli train``, ``task: tc_teacher``).

With ``eval.era5_free`` an ERA5-free network of the teacher's architecture (same initial
weights, batches, noise draws and budget, its ERA5 input always zero) is trained side by
side: the held-out gap between the two is the value of ERA5 to this architecture. Both are
validated every epoch on ``val`` with their EMA weights and evaluated at the end on the
held-out ``test`` storms (:mod:`mdcli.forecast.evaluate`).

Determinism: the epoch order comes from ``seed + epoch``, the noise draws from a generator
seeded with ``seed`` that is saved in every checkpoint. Under DDP each rank draws the noise of
the whole (global) batch and keeps its own rows, so ``world_size`` processes with batch
``B / world_size`` each take the same steps as one process with batch ``B``.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mdcli.config import to_dict
from mdcli.diffusion.objectives import DiffusionConfig, build_objective, diffusion_config
from mdcli.dist import DistContext, all_reduce_mean
from mdcli.errors import InputError
from mdcli.forecast.config import EvalConfig, SamplingConfig
from mdcli.forecast.evaluate import evaluate_forecasts
from mdcli.forecast.forecasters import Forecaster, teacher_forecasters
from mdcli.forecast.heldout import HeldOut, load_heldout
from mdcli.forecast.skill import denoising_skill
from mdcli.logs import log
from mdcli.models.teacher_student import ModelConfig, Teacher, model_config, variable_dict
from mdcli.progress import progress
from mdcli.runs import Run
from mdcli.storage.checkpoint import load_checkpoint, save_checkpoint
from mdcli.training.ema import EMA
from mdcli.training.loop import (
    DiffusionOptimConfig,
    LoopConfig,
    autocast,
    check_batch_size,
    end_epoch,
    make_optimizer,
    noisy_batches,
    optimizer_step,
    saved_on_interrupt,
    unwrap,
    wrap_ddp,
)
from mdcli.training.tc_data import (
    TCDataConfig,
    epoch_batches,
    open_split,
    prepare_data,
    rank_loader,
)

TEACHER_KIND = "tc_teacher"
ERA5_FREE = "era5_free"


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


def check_eval_seed(cfg: Any, training_seeds: tuple[int, ...] = ()) -> None:
    """Evaluation noise (seeds ``eval.seed`` .. ``eval.seed + max(members, response_draws) - 1``)
    must not be drawn with a training seed: ``cfg.seed`` or any of ``training_seeds``."""
    draws = max(cfg.eval.members, cfg.eval.response_draws)
    low, high = cfg.eval.seed, cfg.eval.seed + draws
    for seed in (cfg.seed, *training_seeds):
        if low <= seed < high:
            raise InputError(f"config key 'eval.seed': {cfg.eval.seed} (with {draws} noise "
                             f"draws, eval.members / eval.response_draws) uses the training "
                             f"seed {seed}; evaluation seeds must differ from training seeds")


class Trained:
    """A network with its EMA and optimiser (one of the nets trained side by side)."""

    def __init__(self, model: nn.Module, ema_decay: float, optim: DiffusionOptimConfig,
                 keys: tuple[str, str, str]) -> None:
        self.model, self.ema = model, EMA(model, ema_decay)
        self.optimizer = make_optimizer(optim, model)
        self.keys = keys  # checkpoint keys of the weights, the EMA and the optimiser

    def state(self) -> dict[str, Any]:
        return dict(zip(self.keys, (self.model.state_dict(), self.ema.state_dict(),
                                    self.optimizer.state_dict()), strict=True))

    def restore(self, record: dict[str, Any]) -> None:
        if self.keys[0] not in record:
            raise InputError(f"--resume: the checkpoint has no '{self.keys[0]}' weights (was "
                             f"eval.era5_free changed?)")
        weights, ema, optimizer = (record[k] for k in self.keys)
        self.model.load_state_dict(weights)
        self.ema.load_state_dict(ema)
        self.optimizer.load_state_dict(optimizer)


def teacher_record(cfg: TeacherConfig, nets: dict[str, Trained], pos: dict[str, Any],
                   history: list) -> dict:
    """The teacher checkpoint; ``pos`` holds ``epoch`` (completed), ``batch`` (completed in
    the current epoch), ``step`` and the noise generator state ``rng``."""
    record = {"kind": TEACHER_KIND, "model_config": to_dict(cfg.model),
              "diffusion": to_dict(cfg.diffusion), "config": to_dict(cfg),
              "epoch": pos["epoch"], "batch_in_epoch": pos["batch"], "step": pos["step"],
              "noise_rng": pos["rng"], "history": list(history)}
    for net in nets.values():
        record.update(net.state())
    return record


def load_teacher(path: str | Path, device: torch.device | str = "cpu", ema: bool = True
                 ) -> tuple[Teacher, dict[str, Any]]:
    """The teacher network (EMA weights by default, eval mode) and its checkpoint record."""
    record = load_checkpoint(path, map_location=device)
    if record.get("kind") != TEACHER_KIND:
        raise InputError(f"--teacher {path}: not a teacher checkpoint (kind "
                         f"{record.get('kind')!r}, expected {TEACHER_KIND!r})")
    model = Teacher(model_config(record["model_config"]))
    model.load_state_dict(record["ema"]["shadow"] if ema else record["model"])
    return model.to(device).eval(), record


def load_era5_free(record: dict[str, Any], device: torch.device | str = "cpu"
                   ) -> Teacher | None:
    """The ERA5-free network (EMA weights) of a teacher record, or None without one."""
    if f"{ERA5_FREE}_ema" not in record:
        return None
    model = Teacher(model_config(record["model_config"]))
    model.load_state_dict(record[f"{ERA5_FREE}_ema"]["shadow"])
    return model.to(device).eval()


def objective_of(record: dict[str, Any]):
    """The objective a teacher or distill checkpoint was trained with."""
    return build_objective(diffusion_config(record["diffusion"]))


def train_teacher(cfg: TeacherConfig, run: Run, ctx: DistContext, resume: bool = False
                  ) -> dict[str, Any]:
    """Train, validate every epoch, checkpoint every epoch, evaluate on ``test``.

    Returns the summary figures. A ``KeyboardInterrupt`` (SIGTERM) saves ``last.pt`` at the
    current step and is re-raised.
    """
    device = ctx.device
    check_batch_size(cfg.train, ctx)
    check_eval_seed(cfg)
    train_set, val_set = prepare_data(cfg, cfg.model, ctx)
    val = load_heldout(val_set, cfg.eval.val_windows, controls=False)
    test_set = open_split(cfg.data, cfg.model, cfg.data.test_split)
    test = load_heldout(test_set, cfg.eval.max_samples, cfg.eval.controls)  # checked up front
    objective = build_objective(cfg.diffusion)
    model = Teacher(cfg.model).to(device)
    nets = {"teacher": Trained(model, cfg.optim.ema_decay, cfg.optim,
                               ("model", "ema", "optimizer"))}
    if cfg.eval.era5_free:
        nets[ERA5_FREE] = Trained(copy.deepcopy(model), cfg.optim.ema_decay, cfg.optim,
                                  (ERA5_FREE, f"{ERA5_FREE}_ema", f"{ERA5_FREE}_optimizer"))
    generator = torch.Generator().manual_seed(cfg.seed)
    start_epoch, skip, step, history = 0, 0, 0, []
    last = run.path / "checkpoints" / "last.pt"
    if resume:
        record = load_checkpoint(last, map_location=device)
        for net in nets.values():
            net.restore(record)
        generator.set_state(record["noise_rng"])
        start_epoch, skip, step = record["epoch"], record["batch_in_epoch"], record["step"]
        history = list(record["history"])
        log.info("resumed from %s at epoch %d, step %d", last, start_epoch + 1, step)
    wrapped = {name: wrap_ddp(net.model, ctx) for name, net in nets.items()}
    pos = {"epoch": start_epoch, "batch": skip, "step": step, "rng": generator.get_state()}

    def save(path: Path) -> None:
        if ctx.is_main:
            save_checkpoint(path, teacher_record(cfg, nets, pos, history))

    with saved_on_interrupt(save, last, pos):
        for epoch in range(start_epoch, cfg.train.epochs):
            batches = epoch_batches(len(train_set), cfg.train.batch_size, cfg.seed, epoch,
                                    cfg.train.max_steps_per_epoch)
            loader = rank_loader(train_set, batches[skip:], ctx, cfg.data.num_workers)
            for m in wrapped.values():
                m.train()
            running = torch.zeros((), dtype=torch.float64)
            with progress(len(batches) - skip, f"train epoch {epoch + 1}",
                          enabled=ctx.is_main) as bar:
                for batch, (cond, era5, target, idx, noise, x_noisy, sigma) in noisy_batches(
                        loader, batches, skip, objective, generator, ctx):
                    metrics = {}
                    for name, net in nets.items():
                        fields = era5 if name == "teacher" else torch.zeros_like(era5)
                        with autocast(device, cfg.train.amp):
                            out = wrapped[name](x_noisy, sigma, cond, fields)
                        loss = objective.loss(out.float(), target, x_noisy, noise, idx).mean()
                        optimizer_step(loss, wrapped[name], net.optimizer, cfg.optim, step,
                                       net.ema)
                        metrics[name] = float(all_reduce_mean(loss.detach()))
                    step += 1
                    pos.update(batch=batch + 1, step=step, rng=generator.get_state())
                    running += metrics["teacher"]
                    bar.advance(1, loss=metrics["teacher"])
                    if step % cfg.train.log_every == 0:
                        run.log_metrics({"step": step, "epoch": epoch + 1,
                                         "loss": metrics["teacher"],
                                         **({"loss_era5_free": metrics[ERA5_FREE]}
                                            if ERA5_FREE in metrics else {}),
                                         "lr": nets["teacher"].optimizer.param_groups[0]["lr"]})
            skip = 0
            record = {"epoch": epoch + 1, "step": step,
                      "train_loss": float(running / max(1, len(batches)))}
            if ctx.is_main:
                record.update(_validate(nets, val, objective, cfg, device))
            history.append(record)
            run.log_metrics(record)
            log.info("epoch %d: %s", epoch + 1, ", ".join(
                f"{k} {v:.4f}" for k, v in record.items() if k not in ("epoch", "step")))
            end_epoch(save, run, last, pos, epoch)
    summary = {"task": TEACHER_KIND, "epochs": pos["epoch"], "steps": pos["step"],
               "history": history, "checkpoint": str(last),
               "variable_weights": variable_dict(nets["teacher"].ema.shadow.variable_weights())}
    if ctx.is_main:
        summary["eval"] = evaluate_teacher(cfg, nets, objective, test, test_set.attrs,
                                           test_set.causal_links, run, device)
    return summary


def _validate(nets: dict[str, Trained], val, objective, cfg: TeacherConfig,
              device: torch.device) -> dict[str, float]:
    """Validation figures of every net's EMA weights (ERA5-free: zeros)."""
    models = {name: Forecaster(net.ema.shadow, "true" if name == "teacher" else "zero")
              for name, net in nets.items()}
    skill = denoising_skill(models, val, objective, cfg.eval, device, cfg.sampling.clip)
    out = {}
    for name, v in skill.items():
        suffix = "" if name == "teacher" else f"_{name}"
        out[f"val_eps_mse{suffix}"] = v["eps_mse_mean"]
        out[f"val_clean_mse_pooled_top{suffix}"] = v["clean_mse_pooled_top"]
    return out


def evaluate_teacher(cfg: TeacherConfig, nets: dict[str, Trained], objective, held: HeldOut,
                     attrs: dict, causal_links: dict, run: Run, device: torch.device
                     ) -> dict[str, Any]:
    """The teacher, its ERA5 controls and the ERA5-free network on the held-out storms."""
    free = unwrap(nets[ERA5_FREE].ema.shadow) if ERA5_FREE in nets else None
    models = teacher_forecasters(nets["teacher"].ema.shadow, cfg.eval.controls, free)
    return evaluate_forecasts(models, held, objective, cfg.eval, cfg.sampling, device, run.path,
                              attrs, causal_links,
                              respond=cfg.eval.response and cfg.eval.controls)

"""Distilling the ERA5 teacher into the satellite-only student (``mdcli distill``).

Per step, on the same batch and noise draws: the frozen teacher (eval mode, no gradient) gives
its output and features; the student is trained on
``loss_score + loss_distill + w_feat * loss_feat + lambda_adaptive * causal_loss``
(:mod:`mdcli.losses.distill`); when ``eval.baseline`` is on, a baseline student with the same
initial weights is trained on ``loss_score`` alone, side by side. Every
``causal.effect_every`` steps the student's internal sensitivity matrix (a diagnostic, see
:mod:`mdcli.models.causal`) is measured and blended into its EMA. At the end the teacher, its
ERA5 controls, the student and the baseline (EMA weights) are evaluated on the held-out
``test`` storms (:mod:`mdcli.forecast.evaluate`).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mdcli.config import apply_override, from_dict, load_config, param, to_dict
from mdcli.dist import DistContext, all_reduce_mean
from mdcli.errors import InputError
from mdcli.forecast.config import EvalConfig, SamplingConfig
from mdcli.forecast.evaluate import HEADLINE, evaluate_forecasts, skill_table
from mdcli.forecast.forecasters import Forecaster, teacher_forecasters
from mdcli.forecast.heldout import HeldOut, load_heldout
from mdcli.forecast.skill import denoising_skill
from mdcli.logs import log
from mdcli.losses.distill import DistillLossConfig, causal_loss_fn, distill_loss
from mdcli.models.causal import SENSITIVITY_TARGETS, internal_sensitivity
from mdcli.models.teacher_student import (
    FEATURE_KEYS,
    VARIABLES,
    Student,
    model_config,
    variable_dict,
)
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
    wrap_ddp,
)
from mdcli.training.tc_data import (
    TCDataConfig,
    epoch_batches,
    open_split,
    prepare_data,
    rank_loader,
)
from mdcli.training.teacher import check_eval_seed, load_era5_free, load_teacher, objective_of

DISTILL_KIND = "distill"


@dataclass
class TeacherRef:
    checkpoint: str | None = param(None, help="teacher checkpoint (train's last.pt)")
    ema: bool = param(True, help="use the teacher's EMA weights")


@dataclass
class CausalConfig:
    effect_every: int = param(10, ge=1, help="steps between causal effect measurements")
    effect_decay: float = param(0.9, ge=0, lt=1, help="EMA decay of the effect matrix")
    effect_level: int = param(5, ge=0, help="noise level index (of eval.noise_levels) at "
                                            "which effects are measured")


@dataclass
class DistillConfig:
    seed: int = 0
    device: str = "auto"
    teacher: TeacherRef = dataclasses.field(default_factory=TeacherRef)
    data: TCDataConfig = dataclasses.field(default_factory=TCDataConfig)
    optim: DiffusionOptimConfig = dataclasses.field(default_factory=DiffusionOptimConfig)
    train: LoopConfig = dataclasses.field(default_factory=LoopConfig)
    loss: DistillLossConfig = dataclasses.field(default_factory=DistillLossConfig)
    causal: CausalConfig = dataclasses.field(default_factory=CausalConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    sampling: SamplingConfig = dataclasses.field(default_factory=SamplingConfig)


def check_config(cfg: DistillConfig) -> None:
    bad = [k for k in cfg.loss.feat_keys if k not in FEATURE_KEYS]
    if bad:
        raise InputError(f"config key 'loss.feat_keys': {bad[0]!r} is not a feature site, "
                         f"expected some of {', '.join(sorted(FEATURE_KEYS))}")
    if cfg.teacher.checkpoint is None:
        raise InputError("config key 'teacher.checkpoint': no teacher given; pass --teacher "
                         "CKPT (the last.pt of a 'mdcli train' tc_teacher run)")


def distill_config(record: dict[str, Any], config: str | Path | None = None,
                   overrides: tuple[str, ...] | list[str] = ()) -> DistillConfig:
    """The config of a distill checkpoint ``record``: ``config`` (a YAML file or packaged
    name) when given, else the one saved in the record; then ``overrides`` (``key.path=v``)."""
    if config is not None:
        return load_config(DistillConfig, config, overrides)
    cfg = from_dict(DistillConfig, record.get("config") or {}, "config")
    if not overrides:
        return cfg
    data = to_dict(cfg)
    for override in overrides:
        apply_override(data, override)
    return from_dict(DistillConfig, data)


def distill_record(cfg: DistillConfig, teacher_record: dict, teacher: torch.nn.Module,
                   nets: dict[str, Any], pos: dict[str, Any], history: list) -> dict:
    """The distill checkpoint (keys documented in docs/distill.md)."""
    record = {"kind": DISTILL_KIND, "model_config": teacher_record["model_config"],
              "diffusion": teacher_record["diffusion"], "config": to_dict(cfg),
              "teacher": teacher.state_dict(), "teacher_path": str(cfg.teacher.checkpoint),
              "teacher_config": teacher_record["config"], "teacher_ema": cfg.teacher.ema,
              "epoch": pos["epoch"], "batch_in_epoch": pos["batch"], "step": pos["step"],
              "noise_rng": pos["rng"], "effect_rng": pos["effect_rng"],
              "history": list(history)}
    for name, (model, ema, optimizer) in nets.items():
        key = "student" if name == "student" else "baseline"
        record[key] = model.state_dict()
        record[f"{key}_ema"] = ema.shadow.state_dict()
        record[f"{key}_ema_updates"] = ema.updates
        record[f"{key}_optimizer"] = optimizer.state_dict()
    return record


def _restore(record: dict, nets: dict[str, Any]) -> None:
    for name, (model, ema, optimizer) in nets.items():
        key = "student" if name == "student" else "baseline"
        if key not in record:
            raise InputError(f"--resume: the checkpoint has no '{key}' weights (was "
                             f"eval.baseline changed?)")
        model.load_state_dict(record[key])
        ema.load_state_dict({"decay": ema.decay, "updates": record[f"{key}_ema_updates"],
                             "shadow": record[f"{key}_ema"]})
        optimizer.load_state_dict(record[f"{key}_optimizer"])


def train_distill(cfg: DistillConfig, run: Run, ctx: DistContext, resume: bool = False
                  ) -> dict[str, Any]:
    """Distil, evaluate, and return the summary figures (see the module docstring)."""
    check_config(cfg)
    device = ctx.device
    check_batch_size(cfg.train, ctx)
    teacher, t_record = load_teacher(cfg.teacher.checkpoint, device, cfg.teacher.ema)
    # the teacher's training noise and the diagnostic's generator (seed + 1) are training seeds
    check_eval_seed(cfg, (cfg.seed + 1, int(t_record["config"]["seed"])))
    for p in teacher.parameters():
        p.requires_grad_(False)
    mcfg = model_config(t_record["model_config"])
    objective = objective_of(t_record)
    train_set, val_set = prepare_data(cfg, mcfg, ctx)
    val = load_heldout(val_set, cfg.eval.val_windows, controls=False)
    test_set = open_split(cfg.data, mcfg, cfg.data.test_split)
    test = load_heldout(test_set, cfg.eval.max_samples, cfg.eval.controls)  # checked up front

    student = Student(mcfg, causal_loss_fn(cfg.loss)).to(device)
    nets: dict[str, Any] = {"student": student}
    if cfg.eval.baseline:
        nets["student_no_distill"] = copy.deepcopy(student)
    nets = {name: (m, EMA(m, cfg.optim.ema_decay), make_optimizer(cfg.optim, m))
            for name, m in nets.items()}
    generator = torch.Generator().manual_seed(cfg.seed)
    effect_gen = torch.Generator().manual_seed(cfg.seed + 1)
    start_epoch, skip, step, history = 0, 0, 0, []
    last = run.path / "checkpoints" / "last.pt"
    if resume:
        record = load_checkpoint(last, map_location=device)
        _restore(record, nets)
        generator.set_state(record["noise_rng"])
        effect_gen.set_state(record["effect_rng"])
        start_epoch, skip, step = record["epoch"], record["batch_in_epoch"], record["step"]
        history = list(record["history"])
        log.info("resumed from %s at epoch %d, step %d", last, start_epoch + 1, step)
    wrapped = {name: wrap_ddp(m, ctx, find_unused=True) for name, (m, _, _) in nets.items()}
    levels = objective.eval_indices(cfg.eval.noise_levels)
    effect_level = int(levels[min(cfg.causal.effect_level, len(levels) - 1)])
    pos = {"epoch": start_epoch, "batch": skip, "step": step, "rng": generator.get_state(),
           "effect_rng": effect_gen.get_state()}

    def save(path: Path) -> None:
        if ctx.is_main:
            save_checkpoint(path, distill_record(cfg, t_record, teacher, nets, pos, history))

    with saved_on_interrupt(save, last, pos):
        for epoch in range(start_epoch, cfg.train.epochs):
            batches = epoch_batches(len(train_set), cfg.train.batch_size, cfg.seed, epoch,
                                    cfg.train.max_steps_per_epoch)
            loader = rank_loader(train_set, batches[skip:], ctx, cfg.data.num_workers)
            for m in wrapped.values():
                m.train()
            with progress(len(batches) - skip, f"distill epoch {epoch + 1}",
                          enabled=ctx.is_main) as bar:
                for batch, (cond, era5, target, idx, noise, x_noisy, sigma) in noisy_batches(
                        loader, batches, skip, objective, generator, ctx):
                    with autocast(device, cfg.train.amp):
                        with torch.no_grad():
                            t_out, t_feats = teacher(x_noisy, sigma, cond, era5,
                                                     return_feat=True)
                        s_out, s_feats, causal = wrapped["student"](
                            x_noisy, sigma, cond, return_feat=True, target=target)
                    t_out, s_out, causal = t_out.float(), s_out.float(), causal.float()
                    t_feats = {k: v.float() for k, v in t_feats.items()}
                    s_feats = {k: v.float() for k, v in s_feats.items()}
                    loss_score = objective.loss(s_out, target, x_noisy, noise, idx).mean()
                    total, terms = distill_loss(loss_score, s_out, t_out, s_feats, t_feats,
                                                causal, cfg.loss,
                                                score_summed=objective.name == "ncsn")
                    _, ema, optimizer = nets["student"]
                    optimizer_step(total, wrapped["student"], optimizer, cfg.optim, step, ema)
                    metrics = {f"loss_{k}" if k != "lambda" else k: float(all_reduce_mean(v))
                               for k, v in terms.items()}
                    metrics["loss_total"] = float(all_reduce_mean(total.detach()))
                    if "student_no_distill" in nets:
                        _, b_ema, b_opt = nets["student_no_distill"]
                        with autocast(device, cfg.train.amp):
                            b_out = wrapped["student_no_distill"](x_noisy, sigma, cond)
                        b_loss = objective.loss(b_out.float(), target, x_noisy, noise, idx).mean()
                        optimizer_step(b_loss, wrapped["student_no_distill"], b_opt, cfg.optim,
                                       step, b_ema)
                        metrics["baseline_loss_score"] = float(all_reduce_mean(b_loss.detach()))
                    step += 1
                    pos.update(batch=batch + 1, step=step, rng=generator.get_state())
                    if step % cfg.causal.effect_every == 0:
                        _update_effects(student, objective, effect_level, cond, target,
                                        effect_gen, cfg.causal.effect_decay)
                        pos["effect_rng"] = effect_gen.get_state()
                        nets["student"][1].shadow.internal_sensitivity.load_state_dict(
                            student.internal_sensitivity.state_dict())
                    bar.advance(1, loss=metrics["loss_total"], lam=metrics["lambda"])
                    if step % cfg.train.log_every == 0:
                        run.log_metrics({"step": step, "epoch": epoch + 1, **metrics})
            skip = 0
            record = {"epoch": epoch + 1, "step": step}
            if ctx.is_main:
                skill = denoising_skill({name: Forecaster(ema.shadow, None)
                                         for name, (_, ema, _) in nets.items()}, val,
                                        objective, cfg.eval, device, cfg.sampling.clip)
                for name, v in skill.items():
                    record[f"val_eps_mse_{name}"] = v["eps_mse_mean"]
                    record[f"val_clean_mse_pooled_top_{name}"] = v["clean_mse_pooled_top"]
            history.append(record)
            run.log_metrics(record)
            log.info("epoch %d: %s", epoch + 1, ", ".join(
                f"{k} {v:.4f}" for k, v in record.items() if k.startswith("val")))
            end_epoch(save, run, last, pos, epoch)
    summary = {"task": DISTILL_KIND, "epochs": pos["epoch"], "steps": pos["step"],
               "history": history, "checkpoint": str(last),
               "teacher_checkpoint": str(cfg.teacher.checkpoint)}
    if ctx.is_main:
        summary.update(evaluate(cfg, teacher, t_record, nets, objective, test, test_set.attrs,
                                test_set.causal_links, run, device))
    return summary


def _update_effects(student: Student, objective, level_index: int, cond, target, generator,
                    decay: float) -> None:
    was_training = student.training
    student.eval()
    idx = torch.full((target.shape[0],), level_index, dtype=torch.long, device=target.device)
    noise = torch.randn(target.shape, generator=generator).to(target.device)
    x_noisy, sigma = objective.perturb(target, idx, noise)
    matrix = internal_sensitivity(
        lambda v: student(x_noisy, sigma, cond, return_feat=True, intervene=v)[:2],
        student.variable_weights().detach(), len(VARIABLES))
    student.internal_sensitivity.update(all_reduce_mean(matrix), decay)
    student.train(was_training)


def lead_closed(table: dict[str, dict[str, float]]) -> dict[str, float]:
    """Share of the teacher's lead over the undistilled student that distillation closes,
    ``(baseline - student) / (baseline - teacher)``, per headline figure."""
    names = ("teacher", "student", "student_no_distill")
    if not all(n in table for n in names):
        return {}
    out = {}
    for key in HEADLINE:
        if all(key in table[n] for n in names):
            t, s, b = (table[n][key] for n in names)
            out[key] = (b - s) / (b - t) if b != t else float("nan")
    return out


def evaluate(cfg: DistillConfig, teacher, t_record: dict, nets: dict[str, Any], objective,
             held: HeldOut, attrs: dict, causal_links: dict, run: Run, device: torch.device
             ) -> dict[str, Any]:
    """The forecast skill of the teacher (and its controls), the student and the undistilled
    student on the held-out storms; the student's internal sensitivities."""
    models = teacher_forecasters(teacher, cfg.eval.controls, load_era5_free(t_record, device))
    models.update({name: Forecaster(ema.shadow, None) for name, (_, ema, _) in nets.items()})
    result = evaluate_forecasts(models, held, objective, cfg.eval, cfg.sampling, device,
                                run.path, attrs, causal_links,
                                reuse=Path(cfg.teacher.checkpoint).resolve().parent.parent
                                / "eval_samples.h5")
    result["lead_closed"] = lead_closed(skill_table(result))
    student = nets["student"][1].shadow
    return {"eval": result,
            "internal_sensitivity": {"targets": list(SENSITIVITY_TARGETS),
                              "student": student.internal_sensitivity.as_dict(VARIABLES)},
            "variable_weights": {"teacher": variable_dict(teacher.variable_weights()),
                                 "student": variable_dict(student.variable_weights())}}

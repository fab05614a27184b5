"""Distilling the ERA5 teacher into the satellite-only student (``mdcli distill``).

Per step, on the same batch and noise draws: the frozen teacher (eval mode, no gradient) gives
its output and features; the student is trained on
``loss_score + loss_distill + w_feat * loss_feat + lambda_adaptive * causal_loss``
(:mod:`mdcli.losses.distill`); when ``eval.baseline`` is on, a baseline student with the same
initial weights is trained on ``loss_score`` alone, side by side. Every
``causal.effect_every`` steps the student's causal effect matrix is measured and blended into
its EMA. At the end the teacher, the student and the baseline (EMA weights) are evaluated on
the held-out ``test`` split with the same noise draws.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mdcli.config import param, to_dict
from mdcli.diffusion.objectives import DiffusionConfig, build_objective
from mdcli.dist import DistContext, all_reduce_mean
from mdcli.errors import InputError
from mdcli.logs import log
from mdcli.losses.distill import DistillLossConfig, distill_loss
from mdcli.models.causal import (
    EFFECT_TARGETS,
    counterfactual_effects,
    effect_consistency,
    effects_dict,
)
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
from mdcli.training.diffusion import (
    DiffusionOptimConfig,
    EvalConfig,
    LoopConfig,
    SamplingConfig,
    TCDataConfig,
    autocast,
    check_batch_size,
    effect_level_index,
    end_epoch,
    epoch_batches,
    eval_loader,
    heldout_losses,
    load_teacher,
    make_optimizer,
    noisy_at,
    noisy_batches,
    open_split,
    optimizer_step,
    prepare_data,
    rank_loader,
    saved_on_interrupt,
    teacher_effects,
    teacher_predict,
    wrap_ddp,
)
from mdcli.training.ema import EMA

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
    for p in teacher.parameters():
        p.requires_grad_(False)
    mcfg = model_config(t_record["model_config"])
    objective = build_objective(dataclasses.replace(
        DiffusionConfig(), **t_record["diffusion"]))
    train_set, val_loader = prepare_data(cfg, mcfg, ctx)

    student = Student(mcfg).to(device)
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
    effect_level = effect_level_index(objective, cfg.eval.noise_levels, cfg.causal.effect_level)
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
                                                causal, cfg.loss)
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
                        nets["student"][1].shadow.causal_effect.load_state_dict(
                            student.causal_effect.state_dict())
                    bar.advance(1, loss=metrics["loss_total"], lam=metrics["lambda"])
                    if step % cfg.train.log_every == 0:
                        run.log_metrics({"step": step, "epoch": epoch + 1, **metrics})
            skip = 0
            val = heldout_losses({name: _student_predict(ema.shadow)
                                  for name, (_, ema, _) in nets.items()}, val_loader,
                                 objective, cfg.eval.noise_levels, cfg.eval.seed, device,
                                 cfg.sampling.clip)
            record = {"epoch": epoch + 1, "step": step,
                      **{f"val_dsm_{name}": v["mean"] for name, v in val.items()}}
            history.append(record)
            run.log_metrics(record)
            log.info("epoch %d: %s", epoch + 1, ", ".join(
                f"{k} {v:.4f}" for k, v in record.items() if k.startswith("val")))
            end_epoch(save, run, last, pos, epoch)
    summary = {"task": DISTILL_KIND, "epochs": pos["epoch"], "steps": pos["step"],
               "history": history, "checkpoint": str(last),
               "teacher_checkpoint": str(cfg.teacher.checkpoint)}
    if ctx.is_main:
        summary.update(evaluate(cfg, teacher, nets, objective, mcfg, run, device))
    return summary


def _student_predict(model):
    return lambda x, s, cond, era5, target: model(x, s, cond)


def _update_effects(student: Student, objective, level_index: int, cond, target, generator,
                    decay: float) -> None:
    was_training = student.training
    student.eval()
    x_noisy, sigma = noisy_at(objective, level_index, target, generator)
    matrix = counterfactual_effects(
        lambda v: student(x_noisy, sigma, cond, return_feat=True, intervene=v)[:2],
        student.variable_weights().detach(), len(VARIABLES))
    student.causal_effect.update(all_reduce_mean(matrix), decay)
    student.train(was_training)


def _truth(data, teacher: torch.Tensor, student: torch.Tensor) -> dict[str, Any]:
    """The generator's true links (when the file has them) and the Spearman agreement of each
    network's per-variable effect on its output with the true per-variable total effect."""
    links = getattr(data, "causal_links", {}) or {}
    if "matrix" not in links:
        return {}
    total = torch.tensor(links["matrix"], dtype=torch.float64).sum(dim=1)
    out = EFFECT_TARGETS.index("output")
    return {"truth": {k: links[k] for k in ("variables", "targets", "matrix", "matrix_meaning")
                      if k in links},
            "rank_agreement_output": {"teacher": effect_consistency(teacher[:, out], total),
                                      "student": effect_consistency(student[:, out], total)}}


def evaluate(cfg: DistillConfig, teacher, nets: dict[str, Any], objective, mcfg, run: Run,
             device: torch.device) -> dict[str, Any]:
    """Held-out denoising losses, effect matrices, variable weights, the samples figure."""
    from mdcli.plots.samples import plot_dsm_per_level, plot_samples

    test_loader = eval_loader(open_split(cfg.data, mcfg, cfg.data.test_split), cfg.eval)
    predict = {"teacher": teacher_predict(teacher)}
    predict.update({name: _student_predict(ema.shadow) for name, (_, ema, _) in nets.items()})
    # the teacher with each window's ERA5 swapped for its neighbour's: how much it uses ERA5
    predict["teacher_era5_shuffled"] = lambda x, s, cond, era5, target: teacher(
        x, s, cond, era5.roll(1, dims=0))
    losses = heldout_losses(predict, test_loader, objective, cfg.eval.noise_levels,
                            cfg.eval.seed, device, cfg.sampling.clip)
    first = next(iter(losses.values()))
    student = nets["student"][1].shadow
    level = effect_level_index(objective, cfg.eval.noise_levels, cfg.causal.effect_level)
    t_effects = teacher_effects(teacher, test_loader, objective, level, device)
    result = {
        "eval": {
            "split": cfg.data.test_split,
            "windows": sum(len(b) for b in test_loader.batch_sampler),
            "objective": objective.name,
            "dsm_loss": {name: v["mean"] for name, v in losses.items()},
            "era5_gain": losses["teacher_era5_shuffled"]["mean"] - losses["teacher"]["mean"],
            "one_step_mse": {name: v["one_step_mse"] for name, v in losses.items()},
            "dsm_per_level": {"noise_level": first["levels"],
                              **{name: v["per_level"] for name, v in losses.items()}},
        },
        "causal_effect": {
            "targets": list(EFFECT_TARGETS),
            "student": student.causal_effect.as_dict(VARIABLES),
            "teacher": effects_dict(t_effects, VARIABLES),
            **_truth(test_loader.dataset, t_effects, student.causal_effect.effects),
        },
        "variable_weights": {
            "teacher": variable_dict(teacher.variable_weights()),
            "student": variable_dict(student.variable_weights()),
        },
    }
    d = result["eval"]["dsm_loss"]
    log.info("held-out DSM loss: %s", ", ".join(f"{k} {v:.4f}" for k, v in d.items()))
    plot_dsm_per_level(result["eval"]["dsm_per_level"], run.figures / "dsm_per_level.png")
    if cfg.sampling.method != "none":
        models = {"teacher": teacher, **{n: ema.shadow for n, (_, ema, _) in nets.items()}}
        plot_samples(models, test_loader, objective, cfg.sampling, device,
                     run.figures / "samples.png", seed=cfg.seed)
    return result

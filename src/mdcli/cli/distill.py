"""``mdcli distill`` (and ``mdcli train``'s ``task: tc_teacher``): the cyclone diffusion
teacher and its satellite-only student. The work is in :mod:`mdcli.training.diffusion` and
:mod:`mdcli.training.distill`; this module wires options to it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mdcli.cli.options import (
    DEFAULT_WORK_DIR,
    ConfigOpt,
    DeviceOpt,
    NameOpt,
    ResumeOpt,
    SeedOpt,
    SetOpt,
    WorkDirOpt,
    config_source,
    resolve_config,
)
from mdcli.errors import InputError

COMMAND = "distill"

TeacherOpt = Annotated[Path | None, typer.Option(
    "--teacher", metavar="CKPT",
    help="Teacher checkpoint (last.pt of a 'mdcli train' tc_teacher run); overrides "
         "teacher.checkpoint.")]


def _print_eval(summary: dict[str, Any], run_path: Path) -> None:
    from mdcli.logs import console

    losses = summary.get("eval", {}).get("dsm_loss", {})
    figures = ", ".join(f"{name} {value:.4f}" for name, value in losses.items())
    console.print(f"held-out denoising loss: {figures}\nrun folder: {run_path}")


def distill(config: ConfigOpt = None, sets: SetOpt = None, teacher: TeacherOpt = None,
            work_dir: WorkDirOpt = DEFAULT_WORK_DIR, name: NameOpt = None,
            device: DeviceOpt = None, seed: SeedOpt = None, resume: ResumeOpt = False) -> None:
    """Distil the ERA5 teacher into the satellite-only student, then evaluate both (and an
    undistilled baseline) on held-out storms."""
    from mdcli import dist
    from mdcli.runs import resolve_run_dir, start_run
    from mdcli.training.distill import DistillConfig, check_config, train_distill

    source = config_source(COMMAND, config, work_dir, name, resume, "distill/tc_tiny")
    overrides = list(sets or [])
    cfg = resolve_config(DistillConfig, source, overrides, seed, device)
    if teacher is not None:
        if not teacher.is_file():
            raise InputError(f"--teacher {teacher}: checkpoint not found")
        cfg.teacher.checkpoint = str(teacher)
    check_config(cfg)
    ctx = dist.init_distributed(cfg.device)
    try:
        path = dist.broadcast_object(
            resolve_run_dir(work_dir, COMMAND, name, source) if ctx.is_main else None)
        with start_run(COMMAND, cfg, path=path, enabled=ctx.is_main,
                       device=str(ctx.device)) as run:
            summary = train_distill(cfg, run, ctx, resume=resume)
            run.update_summary(**summary)
        if ctx.is_main:
            _print_eval(summary, run.path)
    finally:
        dist.cleanup()


def train_tc_teacher_task(request: Any) -> None:
    """``mdcli train`` with ``task: tc_teacher``: the ERA5 teacher (see docs/distill.md)."""
    from mdcli import dist
    from mdcli.config import from_dict
    from mdcli.logs import console
    from mdcli.runs import start_run
    from mdcli.training.diffusion import TeacherConfig, train_teacher

    cfg = from_dict(TeacherConfig, request.raw)
    ctx = dist.init_distributed(cfg.device)
    try:
        path = dist.broadcast_object(request.run_dir() if ctx.is_main else None)
        with start_run("train", cfg, path=path, enabled=ctx.is_main,
                       device=str(ctx.device)) as run:
            summary = train_teacher(cfg, run, ctx, resume=request.resume)
            run.update_summary(**summary)
        if ctx.is_main:
            console.print(f"trained the teacher {summary['epochs']} epochs ({summary['steps']} "
                          f"steps): val DSM {summary['val_dsm']:.4f}\n"
                          f"checkpoint: {summary['checkpoint']}")
    finally:
        dist.cleanup()

"""``mdcli distill``: the satellite-only student of the cyclone diffusion teacher. The work
is in :mod:`mdcli.training.distill`; this module wires options to it."""

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
    from mdcli.forecast.evaluate import skill_report
    from mdcli.logs import console

    console.print(f"{skill_report(summary['eval'])}\nrun folder: {run_path}")


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

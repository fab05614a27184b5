"""``mdcli train``: train what the config's top-level ``task`` names.

Only ``task`` is read from the raw YAML here; the task's trainer builds its own typed config
from ``TrainRequest.raw``. A new task is one function ``(TrainRequest) -> None`` and one entry
in :data:`TRAINERS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdcli.cli.options import (
    DEFAULT_WORK_DIR,
    ConfigOpt,
    DeviceOpt,
    NameOpt,
    ResumeOpt,
    SeedOpt,
    SetOpt,
    WorkDirOpt,
    config_mapping,
    config_source,
)
from mdcli.config import from_dict
from mdcli.errors import InputError

COMMAND = "train"


@dataclass
class TrainRequest:
    """What every trainer gets from the command line."""

    raw: dict[str, Any]        # config mapping after --set/--seed/--device
    config_name: str           # the config file (or the resumed run's config.yaml)
    work_dir: Path
    name: str | None
    resume: bool

    def run_dir(self) -> Path:
        """The result folder: ``WORK_DIR/train/<name>`` or a fresh timestamped one."""
        from mdcli.runs import resolve_run_dir

        return resolve_run_dir(self.work_dir, COMMAND, self.name, self.config_name)


def train_classifier_task(request: TrainRequest) -> None:
    """``task: classifier``: an MLP / ConvNet (see docs/train.md), DDP under torchrun."""
    from mdcli import dist
    from mdcli.logs import console
    from mdcli.runs import start_run
    from mdcli.training.classifier import ClassifierConfig, train_classifier

    cfg = from_dict(ClassifierConfig, request.raw)
    ctx = dist.init_distributed(cfg.device)
    try:
        path = dist.broadcast_object(request.run_dir() if ctx.is_main else None)
        with start_run(COMMAND, cfg, path=path, enabled=ctx.is_main,
                       device=str(ctx.device)) as run:
            _, history = train_classifier(cfg, run, ctx=ctx, resume=request.resume)
            final = history[-1]
            run.update_summary(task="classifier", epochs=final["epoch"], final=final,
                               checkpoint=str(run.path / "checkpoints" / "last.pt"))
        if ctx.is_main:
            figures = " ".join(f"{k}={v:.4f}" for k, v in final.items()
                               if k.endswith(("loss", "acc")))
            console.print(f"trained {final['epoch']} epochs: {figures}\nrun folder: {run.path}")
    finally:
        dist.cleanup()


def train_tc_teacher_task(request: TrainRequest) -> None:
    """``mdcli train`` with ``task: tc_teacher``: the ERA5 teacher (see docs/distill.md)."""
    from mdcli import dist
    from mdcli.config import from_dict
    from mdcli.forecast.evaluate import skill_report
    from mdcli.logs import console
    from mdcli.runs import start_run
    from mdcli.training.teacher import TeacherConfig, train_teacher

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
                          f"steps)\n{skill_report(summary['eval'])}\n"
                          f"checkpoint: {summary['checkpoint']}")
    finally:
        dist.cleanup()


TRAINERS: dict[str, Callable[[TrainRequest], None]] = {
    "classifier": train_classifier_task,
    "tc_teacher": train_tc_teacher_task,
}


def train(config: ConfigOpt = None, sets: SetOpt = None, work_dir: WorkDirOpt = DEFAULT_WORK_DIR,
          name: NameOpt = None, device: DeviceOpt = None, seed: SeedOpt = None,
          resume: ResumeOpt = False) -> None:
    """Train a model from a config (task: classifier, ...); checkpoints every epoch."""
    source = config_source(COMMAND, config, work_dir, name, resume, "train/mlp_digits_adam")
    raw = config_mapping(source, sets, seed, device)
    task = raw.get("task")
    if task not in TRAINERS:
        raise InputError(f"config {source}: top-level key 'task' is {task!r}, expected one of: "
                         f"{', '.join(TRAINERS)}")
    TRAINERS[task](TrainRequest(raw, source, work_dir, name, resume))

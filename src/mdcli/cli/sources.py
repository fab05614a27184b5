"""What ``tsne`` and ``align`` share: the feature-source options and the run they open."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import torch

    from mdcli.analysis.sources import SourceSpec
    from mdcli.runs import Run

TeacherOpt = Annotated[Path | None, typer.Option(
    "--teacher", help="Teacher checkpoint (overrides the one the student names).")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", min=1)]
NoisePositionOpt = Annotated[float, typer.Option(
    "--noise-position", help="Distill checkpoints: noise the inputs at this point of the "
                             "schedule, 0 = least noise, 1 = most.")]


@dataclass
class RunSettings:
    """What a command ran with (saved as the run's ``config.yaml``): seed, device, source."""

    seed: int
    device: str
    source: SourceSpec


@contextmanager
def source_run(command: str, settings: RunSettings, *, work_dir: Path, name: str | None,
               save_dir: Path | None) -> Iterator[tuple[Run, torch.device]]:
    """Seed, pick the device and open the run folder (``save_dir``, else under ``work_dir``)."""
    from mdcli.devices import resolve_device
    from mdcli.runs import start_run
    from mdcli.seeding import seed_everything

    device = resolve_device(settings.device)
    seed_everything(settings.seed)
    spec = settings.source
    with start_run(command, settings, work_dir=work_dir, name=name, path=save_dir,
                   config_name=spec.config or spec.stem, device=str(device)) as run:
        yield run, device

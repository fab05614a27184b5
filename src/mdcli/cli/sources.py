"""What ``tsne`` and ``align`` share: the feature-source options, their settings, the run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import torch

    from mdcli.analysis.features import SourceSpec
    from mdcli.runs import Run

TeacherOpt = Annotated[Path | None, typer.Option(
    "--teacher", help="Teacher checkpoint (overrides the one the student names).")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", min=1)]
NoisePositionOpt = Annotated[float, typer.Option(
    "--noise-position", help="Distill checkpoints: noise the inputs at this point of the "
                             "schedule, 0 = least noise, 1 = most.")]


def path_text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _text_path(text: str | None) -> Path | None:
    return None if text is None else Path(text)


DEFAULT_MAX_SAMPLES = 1000


@dataclass
class SourceSettings:
    """Where the features come from (the start of the command's saved ``config.yaml``)."""

    seed: int = 0
    device: str = "auto"
    ckpt: str | None = None
    features: str | None = None
    teacher: str | None = None
    config: str | None = None
    sets: list[str] | None = None
    data_path: str | None = None
    max_samples: int | None = None  # None: every row of a features file, 1000 of a dataset
    test_cfg: str | None = None
    batch_size: int = 32
    noise_position: float = 0.2

    def sample_limit(self) -> int | None:
        """``--max-samples``, or its default: every row of a features file, else 1000."""
        if self.max_samples is not None:
            return self.max_samples
        return None if self.features is not None else DEFAULT_MAX_SAMPLES

    def spec(self, **extra: object) -> SourceSpec:
        """The checked :class:`SourceSpec` (``extra``: further fields such as ``layer``)."""
        from mdcli.analysis.features import SourceSpec

        return SourceSpec.from_options(
            ckpt=_text_path(self.ckpt), features=_text_path(self.features),
            teacher=_text_path(self.teacher), config=self.config, sets=self.sets,
            data_path=_text_path(self.data_path), max_samples=self.sample_limit(),
            test_cfg=_text_path(self.test_cfg),
            batch_size=self.batch_size, noise_position=self.noise_position, seed=self.seed,
            **extra)


@contextmanager
def source_run(command: str, settings: SourceSettings, spec: SourceSpec, *, work_dir: Path,
               name: str | None, save_dir: Path | None) -> Iterator[tuple[Run, torch.device]]:
    """Seed, pick the device and open the run folder (``save_dir``, else under ``work_dir``)."""
    from mdcli.devices import resolve_device
    from mdcli.runs import start_run
    from mdcli.seeding import seed_everything

    device = resolve_device(settings.device)
    seed_everything(settings.seed)
    with start_run(command, settings, work_dir=work_dir, name=name, path=save_dir,
                   config_name=settings.config or spec.stem, device=str(device)) as run:
        yield run, device

"""``mdcli align``: grade how well a student's features match its teacher's."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from mdcli.cli.options import DEFAULT_WORK_DIR, DeviceOpt, NameOpt, SeedOpt, SetOpt, WorkDirOpt
from mdcli.cli.sources import BatchSizeOpt, NoisePositionOpt, RunSettings, TeacherOpt, source_run
from mdcli.errors import EXIT_BELOW_BAR, InputError
from mdcli.logs import log

# Heavy modules (torch, scikit-learn) are imported inside the function that needs them, so
# that `mdcli --help` and shell completion stay fast.


@dataclass
class AlignSettings(RunSettings):
    """What ``align`` ran with (saved as the run's ``config.yaml``)."""

    baseline: Path | None = None
    fail_under: str | None = None


def align(
    ckpt: Annotated[Path | None, typer.Option(
        "--ckpt", help="Student checkpoint from `mdcli distill` (its teacher from the "
                       "checkpoint, --config or --teacher).")] = None,
    features: Annotated[Path | None, typer.Option(
        "--features", help="Precomputed features (.npz or HDF5) with paired 'teacher' and "
                           "'student' [N, D] arrays, optional 'variable'/'labels' [N].")] = None,
    teacher: TeacherOpt = None,
    config: Annotated[str | None, typer.Option(
        "--config", "-c", metavar="FILE",
        help="The distill config the checkpoint was trained with (teacher, data).")] = None,
    sets: SetOpt = None,
    data_path: Annotated[Path | None, typer.Option(
        "--data-path", help="HDF5 dataset to draw samples from (default: the config's).")] = None,
    baseline: Annotated[Path | None, typer.Option(
        "--baseline", help="A second checkpoint (or features file) to compare with, e.g. "
                           "before training.")] = None,
    save_dir: Annotated[Path | None, typer.Option(
        "--save-dir", help="Write the outputs here instead of WORK_DIR/align/<run-name>/.")] = None,
    max_samples: Annotated[int | None, typer.Option(
        "--max-samples", min=2,
        help="At most this many samples (default: every row of a features file, 1000 from a "
             "dataset).")] = None,
    batch_size: BatchSizeOpt = 32,
    noise_position: NoisePositionOpt = 0.2,
    fail_under: Annotated[str | None, typer.Option(
        "--fail-under", metavar="good|excellent",
        help="Exit with code 3 when the overall grade is below this bar.")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the report as one JSON object on stdout (also alignment.json).")
    ] = False,
    work_dir: WorkDirOpt = DEFAULT_WORK_DIR,
    name: NameOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
) -> None:
    """Grade how well the student's features match the teacher's.

    Per feature set and per ERA5 variable: cosine similarity, Euclidean
    distance (mean, median; on features standardised by the teacher's mean
    and std), teacher-to-nearest-student distance, cluster variance ratio,
    k-NN overlap, linear CKA. Writes alignment.json and
    feature_alignment_analysis.txt (keys: docs/align.md).
    """
    from rich.console import Console

    from mdcli.analysis import alignment
    from mdcli.analysis.align_report import GRADE_STYLE, align_sources, summary_values, tables
    from mdcli.analysis.sources import SourceSpec, open_source
    from mdcli.logs import console

    if fail_under not in (None, "good", "excellent"):
        raise InputError(f"--fail-under {fail_under!r}: expected good or excellent")
    spec = SourceSpec.from_options(
        ckpt=ckpt, features=features, teacher=teacher, config=config, sets=sets,
        data_path=data_path, max_samples=max_samples, batch_size=batch_size,
        noise_position=noise_position, seed=0 if seed is None else seed)
    source = open_source(spec)
    base = None if baseline is None else open_source(spec.with_baseline(baseline))
    settings = AlignSettings(spec.seed, device or "auto", spec, baseline, fail_under)
    with source_run("align", settings, work_dir=work_dir, name=name,
                    save_dir=save_dir) as (run, torch_device):
        rep = align_sources(source, run.path, run.cache, torch_device, base)
        run.update_summary(**summary_values(rep))
        log.info("overall grade: %s (alignment.json in %s)", rep["grade"], run.path)
    if as_json:
        print(json.dumps(rep))
    else:
        # files and pipes get full-width tables instead of 80 squeezed columns
        out = console if console.is_terminal else Console(width=120, soft_wrap=True)
        for table in tables(rep):
            out.print(table)
        out.print(f"overall grade: [{GRADE_STYLE[rep['grade']]}]{rep['grade']}[/]")
    if fail_under and not alignment.meets(rep["grade"], fail_under):
        log.warning("grade %s is below --fail-under %s", rep["grade"], fail_under)
        raise typer.Exit(EXIT_BELOW_BAR)

"""``mdcli align``: grade how well a student's features match its teacher's."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mdcli.cli.options import DEFAULT_WORK_DIR, DeviceOpt, NameOpt, SeedOpt, SetOpt, WorkDirOpt
from mdcli.cli.sources import (
    BatchSizeOpt,
    NoisePositionOpt,
    SourceSettings,
    TeacherOpt,
    path_text,
    source_run,
)
from mdcli.errors import EXIT_BELOW_BAR, InputError
from mdcli.logs import console, log
from mdcli.storage.atomic import atomic_write_text

# Heavy modules (torch, scikit-learn) are imported inside the functions that need them, so
# that `mdcli --help` and shell completion stay fast.
METRIC_KEYS = ("cosine_similarity", "relative_distance", "euclidean_distance",
               "euclidean_distance_median", "nearest_distance", "cluster_variance_ratio",
               "knn_overlap", "mutual_knn", "cka", "cka_debiased")

DISPLAY_NAMES = {"16": "attention 16x16", "32": "attention 32x32",
                 "encoder_16": "encoder 16x16", "encoder_32": "encoder 32x32",
                 "features": "features file"}
VARIABLE_DISPLAY = {"sst": "SST", "msl": "MSL", "z": "Z", "r": "R"}
GRADE_STYLE = {"excellent": "green", "good": "yellow", "poor": "red"}


def display(name: str) -> str:
    return DISPLAY_NAMES.get(name, name)


def metrics_table(rep: dict, title: str = "feature alignment") -> Table:
    """Rows: feature sets; columns: every metric and the grade."""
    table = Table(title=title)
    table.add_column("feature set")
    for header in ("cosine", "rel. dist.", "raw dist.", "raw median", "raw nearest",
                   "var. ratio", "k-NN overlap", "mutual k-NN", "CKA", "debiased CKA", "grade"):
        table.add_column(header, justify="right")
    for name, entry in rep["sets"].items():
        values = [f"{entry[key]:.3f}" for key in METRIC_KEYS]
        style = GRADE_STYLE[entry["grade"]]
        table.add_row(display(name), *values, f"[{style}]{entry['grade']}[/{style}]")
    return table


def variable_table(rep: dict) -> Table | None:
    """The seed's table: cosine similarity per ERA5 variable (rows) and feature set (columns)."""
    per_variable = rep["per_variable_cosine"]
    if not per_variable:
        return None
    names = list(rep["sets"])
    table = Table(title="cosine similarity per variable")
    table.add_column("variable")
    for name in names:
        table.add_column(display(name), justify="right")
    for variable, values in per_variable.items():
        table.add_row(VARIABLE_DISPLAY.get(variable, variable),
                      *[f"{values[n]:.3f}" if n in values else "-" for n in names])
    return table


def change_table(rep: dict) -> Table:
    """Baseline vs current: grades and metric changes per feature set."""
    table = Table(title="change from baseline (current - baseline)")
    table.add_column("feature set")
    table.add_column("grade", justify="right")
    for header in ("cosine", "rel. dist.", "var. ratio", "k-NN overlap", "CKA"):
        table.add_column(f"d {header}", justify="right")
    for name, delta in rep["change"].items():
        before = rep["baseline"]["sets"][name]["grade"]
        after = rep["sets"][name]["grade"]
        table.add_row(display(name), f"{before} -> {after}",
                      *[f"{delta[k]:+.3f}" for k in ("cosine_similarity", "relative_distance",
                                                      "cluster_variance_ratio", "knn_overlap",
                                                      "cka")])
    return table


def tables(rep: dict) -> list[Table]:
    found = [metrics_table(rep), variable_table(rep)]
    if "baseline" in rep:
        found += [metrics_table(rep["baseline"], "baseline feature alignment"),
                  change_table(rep)]
    return [table for table in found if table is not None]


def analysis_text(rep: dict) -> str:
    """``feature_alignment_analysis.txt``: the tables, then each set's metrics and diagnoses."""
    from mdcli.analysis import alignment

    buffer = io.StringIO()
    out = Console(file=buffer, width=120, no_color=True, highlight=False)
    for table in tables(rep):
        out.print(table)
    out.print(f"overall grade: {rep['grade']}\n")
    for name, entry in rep["sets"].items():
        out.print(alignment.set_text(display(name), entry), markup=False)
    return buffer.getvalue()


def write_report(folder: Path, rep: dict, per_set_files: bool) -> None:
    """Save ``alignment.json``, ``feature_alignment_analysis.txt`` and, with ``per_set_files``,
    ``alignment_metrics_<set>.txt`` into ``folder``."""
    from mdcli.analysis import alignment
    from mdcli.runs import dump_json

    dump_json(folder / "alignment.json", rep)
    atomic_write_text(folder / "feature_alignment_analysis.txt", analysis_text(rep))
    if per_set_files:
        for name, entry in rep["sets"].items():
            atomic_write_text(folder / f"alignment_metrics_{name}.txt",
                              alignment.set_text(display(name), entry))


@dataclass
class AlignSettings(SourceSettings):
    """What ``align`` ran with (saved as the run's ``config.yaml``)."""

    baseline: str | None = None
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
    from mdcli.analysis import alignment
    from mdcli.analysis.features import load_paired_sets

    if fail_under not in (None, "good", "excellent"):
        raise InputError(f"--fail-under {fail_under!r}: expected good or excellent")
    settings = AlignSettings(
        seed=0 if seed is None else seed, device=device or "auto", ckpt=path_text(ckpt),
        features=path_text(features), teacher=path_text(teacher), config=config, sets=sets,
        data_path=path_text(data_path), baseline=path_text(baseline), max_samples=max_samples,
        batch_size=batch_size, noise_position=noise_position, fail_under=fail_under)
    spec = settings.spec()
    with source_run("align", settings, spec, work_dir=work_dir, name=name,
                    save_dir=save_dir) as (run, torch_device):
        rep = alignment.report(load_paired_sets(spec, torch_device, run.cache))
        if baseline is not None:
            base = alignment.report(load_paired_sets(spec.with_baseline(baseline),
                                                     torch_device, run.cache))
            rep["baseline"] = {"source": str(baseline), **base}
            rep["change"] = alignment.compare(rep, base)
        rep["source"] = spec.describe()
        write_report(run.path, rep, per_set_files=False)
        keys = (*METRIC_KEYS, "grade", "raw_grade")
        run.update_summary(grade=rep["grade"], sets={
            n: {k: e[k] for k in keys} for n, e in rep["sets"].items()})
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


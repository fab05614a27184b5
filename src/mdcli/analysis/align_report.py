"""The alignment report of paired feature sets: computed (with a baseline), tabled, written.

Files: ``alignment.json`` (the report), ``feature_alignment_analysis.txt`` (the tables, then
each set's metrics and diagnoses) and, for ``tsne``, the seed's ``alignment_metrics_<set>.txt``.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from mdcli.analysis import alignment
from mdcli.analysis.source_features import paired_sets
from mdcli.analysis.sources import Source
from mdcli.runs import dump_json
from mdcli.storage.atomic import atomic_write_text

METRIC_KEYS = ("cosine_similarity", "relative_distance", "euclidean_distance",
               "euclidean_distance_median", "nearest_distance", "cluster_variance_ratio",
               "knn_overlap", "mutual_knn", "cka", "cka_debiased")

DISPLAY_NAMES = {"16": "attention 16x16", "32": "attention 32x32",
                 "encoder_16": "encoder 16x16", "encoder_32": "encoder 32x32",
                 "features": "features file"}
VARIABLE_DISPLAY = {"sst": "SST", "msl": "MSL", "z": "Z", "r": "R"}
GRADE_STYLE = {"excellent": "green", "good": "yellow", "poor": "red"}


def display(name: str) -> str:
    """The name a feature set is shown with (``encoder_16`` -> ``encoder 16x16``)."""
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
    """The report's tables: metrics, cosine per variable, and the baseline's with the change."""
    found = [metrics_table(rep), variable_table(rep)]
    if "baseline" in rep:
        found += [metrics_table(rep["baseline"], "baseline feature alignment"),
                  change_table(rep)]
    return [table for table in found if table is not None]


def analysis_text(rep: dict) -> str:
    """``feature_alignment_analysis.txt``: the tables, then each set's metrics and diagnoses."""
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
    dump_json(folder / "alignment.json", rep)
    atomic_write_text(folder / "feature_alignment_analysis.txt", analysis_text(rep))
    if per_set_files:
        for name, entry in rep["sets"].items():
            atomic_write_text(folder / f"alignment_metrics_{name}.txt",
                              alignment.set_text(display(name), entry))


def align_sources(source: Source, folder: Path, cache_folder: Path, device: torch.device,
                  baseline: Source | None = None) -> dict:
    """The alignment report of ``source``'s paired sets (with ``baseline``'s and the change
    from it when given), written into ``folder`` (:func:`write_report`)."""
    rep = alignment.report(paired_sets(source, device, cache_folder))
    if baseline is not None:
        base = alignment.report(paired_sets(baseline, device, cache_folder))
        rep["baseline"] = {"source": str(baseline.spec.source), **base}
        rep["change"] = alignment.compare(rep, base)
    rep["source"] = source.spec.describe()
    write_report(folder, rep, per_set_files=False)
    return rep


def summary_values(rep: dict) -> dict:
    """What ``summary.json`` keeps of a report: the grade, and each set's metrics and grades."""
    keys = (*METRIC_KEYS, "grade", "raw_grade")
    return {"grade": rep["grade"],
            "sets": {name: {k: entry[k] for k in keys} for name, entry in rep["sets"].items()}}

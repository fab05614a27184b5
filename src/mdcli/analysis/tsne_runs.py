"""``tsne`` runs as library calls: teacher/student pairs or one labelled set, embedded, drawn
and saved under the seed's file names.

:func:`plan_tsne` checks the settings against the most points the run can embed before any
feature is extracted; :func:`run_tsne` (or :func:`paired_run` / :func:`labelled_run`) does the
work and writes the figures, ``tsne_embeddings.h5`` and, for pairs, the alignment report.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mdcli.analysis import alignment
from mdcli.analysis.align_report import display, write_report
from mdcli.analysis.source_features import labelled_features, paired_sets
from mdcli.analysis.sources import Source
from mdcli.analysis.tsne import embed, embed_pair, save_embeddings
from mdcli.analysis.tsne_params import TSNEParams, check_sample_count
from mdcli.data.synth_tc import VARIABLES
from mdcli.errors import InputError
from mdcli.logs import log
from mdcli.plots.tsne import plot_classes, plot_teacher_student

EMBEDDINGS_FILE = "tsne_embeddings.h5"


@dataclass(frozen=True)
class TsneOptions:
    """How ``tsne`` embeds: the t-SNE settings, a shared map for pairs, and MMPretrain's class
    selection and legend for labelled sets."""

    params: TSNEParams = field(default_factory=TSNEParams)
    shared_map: bool = False
    class_idx: tuple[str, ...] = ()
    max_num_class: int = 20
    max_num_samples: int = 100
    legend: bool = False


@dataclass(frozen=True)
class TsnePlan:
    """A checked run: its source, options and the most points it can embed."""

    source: Source
    options: TsneOptions
    max_points: int


@dataclass
class TsneResult:
    """What a run embedded and wrote: ``embeddings`` holds ``tsne_embeddings.h5``'s arrays;
    ``rows`` the points embedded and available per set; ``report`` the alignment report of
    pairs (else None)."""

    mode: str
    figures: list[Path]
    embeddings: dict[str, np.ndarray]
    rows: dict[str, dict[str, int]]
    report: dict | None = None

    def summary(self) -> dict:
        """The run's ``summary.json`` values."""
        values: dict = {"mode": self.mode, "figures": [path.name for path in self.figures]}
        if self.report is not None:
            values.update(grade=self.report["grade"], rows=self.rows)
        else:
            values.update(self.rows["embedding"])
        return {**values, "embeddings": EMBEDDINGS_FILE}


def figure_name(set_name: str) -> str:
    """The seed's figure names: ``tsne_16_features.png``, ``tsne_encoder_32_features.png``."""
    return "tsne_features.png" if set_name == "features" else f"tsne_{set_name}_features.png"


def select_classes(labels: np.ndarray, class_idx: tuple | list | None, max_num_class: int,
                   max_num_samples: int) -> np.ndarray:
    """Row indices MMPretrain's options pick: the classes in ``class_idx`` (else the first
    ``max_num_class`` classes in sorted order), at most ``max_num_samples`` rows of each."""
    classes = list(np.unique(labels))
    if class_idx:
        names = {str(c): c for c in classes}
        wanted = [names.get(str(c).strip()) for c in class_idx]
        missing = [str(c) for c, w in zip(class_idx, wanted, strict=True) if w is None]
        if missing:
            raise InputError(f"--class-idx {', '.join(missing)}: no such class; the data has "
                             f"{', '.join(map(str, classes[:30]))}")
        classes = wanted
    else:
        classes = classes[:max_num_class]
    rows = [np.flatnonzero(labels == cls)[:max_num_samples] for cls in classes]
    return np.sort(np.concatenate(rows)) if rows else np.arange(0)


def max_points(source: Source, options: TsneOptions) -> int:
    """An upper bound on the points t-SNE will embed, known before any feature extraction."""
    spec, file = source.spec, source.file
    labelled = file is None
    if file is not None:
        rows = len(file.teacher if file.paired else file.features)
        rows = rows if spec.max_samples is None else min(rows, spec.max_samples)
        labelled = file.labels is not None
    else:
        rows = spec.max_samples * (len(VARIABLES) if source.paired else 1)
    if source.paired:
        return rows * (1 if options.shared_map else 2)
    if labelled:
        classes = len(options.class_idx) or options.max_num_class
        rows = min(rows, classes * options.max_num_samples)
    return rows


def plan_tsne(source: Source, options: TsneOptions) -> TsnePlan:
    """Check ``options`` against the most points the run can embed (a perplexity too large
    for them fails here, before any network runs)."""
    bound = max_points(source, options)
    check_sample_count(options.params, bound)
    return TsnePlan(source, options, bound)


def paired_run(plan: TsnePlan, folder: Path, cache_folder: Path, device: torch.device
               ) -> TsneResult:
    """Embed each teacher/student set (joint map, or the teacher's with ``shared_map``), draw
    the seed's four-panel figures and write the alignment report into ``folder``."""
    params, shared_map = plan.options.params, plan.options.shared_map
    sets = paired_sets(plan.source, device, cache_folder)
    rows = {item.name: {"n_points": len(item.teacher),
                        "n_available": item.available or len(item.teacher)} for item in sets}
    for item in sets:
        log.info("%s: embedding %d of %d rows available (teacher and student each)",
                 display(item.name), rows[item.name]["n_points"],
                 rows[item.name]["n_available"])
    rep = alignment.report(sets)
    rep["source"] = plan.source.spec.describe()
    write_report(folder, rep, per_set_files=True)
    arrays: dict[str, np.ndarray] = {}
    figures = []
    for item in sets:
        start = time.perf_counter()
        log.info("t-SNE of %s: %d teacher + %d student points, dim %d", display(item.name),
                 len(item.teacher), len(item.student), item.teacher.shape[1])
        teacher_xy, student_xy = embed_pair(item.teacher, item.student, params, shared_map)
        teacher_dist, student_dist = alignment.centre_distances(item.teacher, item.student)
        frame = "shared map fitted on the teacher" if shared_map else "joint map"
        title = (f"{display(item.name)}: teacher vs student "
                 f"({frame}, grade {rep['sets'][item.name]['grade']})")
        figures.append(plot_teacher_student(
            folder / figure_name(item.name), teacher_xy, student_xy, title, teacher_dist,
            student_dist, alignment.nearest_distances(item.teacher, item.student),
            item.variable, [v.upper() for v in item.variable_names]))
        arrays[f"{item.name}/teacher"], arrays[f"{item.name}/student"] = teacher_xy, student_xy
        if item.variable is not None:
            arrays[f"{item.name}/variable"] = item.variable
        log.info("t-SNE of %s done in %.1f s", display(item.name), time.perf_counter() - start)
    save_embeddings(folder / EMBEDDINGS_FILE, arrays, params, {"shared_map": int(shared_map)})
    mode = "distillation" if plan.source.spec.ckpt else "features"
    return TsneResult(mode, figures, arrays, rows, rep)


def labelled_run(plan: TsnePlan, folder: Path, cache_folder: Path, device: torch.device
                 ) -> TsneResult:
    """Embed one labelled set (MMPretrain's class selection applied) and draw it coloured by
    class into ``folder``."""
    spec, options = plan.source.spec, plan.options
    data = labelled_features(plan.source, device, cache_folder)
    if data.labels is not None:
        rows = select_classes(data.labels, options.class_idx, options.max_num_class,
                              options.max_num_samples)
    else:
        rows = np.arange(len(data.features))
    available = data.available or len(data.features)
    log.info("t-SNE: embedding %d of %d rows available, dim %d", len(rows), available,
             data.features.shape[1])
    coords = embed(data.features[rows], options.params)
    labels = data.labels[rows] if data.labels is not None else None
    stem = "features" if spec.features else re.sub(r"[^A-Za-z0-9_-]+", "_", spec.layer)
    figure = plot_classes(folder / f"tsne_{stem}.png", coords, labels, data.title,
                          legend=options.legend)
    arrays = {"embedding": coords}
    if labels is not None:
        arrays["labels"] = labels if labels.dtype.kind != "U" else labels.astype("S")
    save_embeddings(folder / EMBEDDINGS_FILE, arrays, options.params)
    mode = "features" if spec.features else "classifier"
    counts = {"n_points": int(len(rows)), "n_available": int(available)}
    return TsneResult(mode, [figure], arrays, {"embedding": counts})


def run_tsne(plan: TsnePlan, folder: Path, cache_folder: Path, device: torch.device
             ) -> TsneResult:
    """:func:`paired_run` for teacher/student sources, else :func:`labelled_run`."""
    run = paired_run if plan.source.paired else labelled_run
    return run(plan, folder, cache_folder, device)

"""``mdcli tsne``: t-SNE pictures of teacher/student or classifier features."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mdcli.analysis.tsne_params import (
    EARLY_EXAGGERATION_ITER,
    ParamError,
    TSNEParams,
    check_params,
)
from mdcli.cli.options import DEFAULT_WORK_DIR, DeviceOpt, NameOpt, SeedOpt, SetOpt, WorkDirOpt
from mdcli.cli.sources import (
    BatchSizeOpt,
    NoisePositionOpt,
    SourceSettings,
    TeacherOpt,
    path_text,
    source_run,
)
from mdcli.errors import InputError

FLAGS = {"n_components": "--n-components", "perplexity": "--perplexity",
         "early_exaggeration": "--early-exaggeration", "learning_rate": "--learning-rate",
         "n_iter": "--n-iter", "n_iter_without_progress": "--n-iter-without-progress",
         "init": "--init", "pca_dims": "--pca-dims"}

if TYPE_CHECKING:
    from mdcli.analysis.features import SourceSpec
    from mdcli.runs import Run

# Heavy modules (torch, openTSNE, matplotlib) are imported inside the functions that use them,
# so that `mdcli --help` and shell completion stay fast.
PRE_LOGITS = "pre_logits"
EMBEDDINGS_FILE = "tsne_embeddings.h5"


@dataclass
class TsneSettings(SourceSettings):
    """What ``tsne`` ran with (saved as the run's ``config.yaml``)."""

    layer: str = PRE_LOGITS
    class_idx: list[str] = field(default_factory=list)
    max_num_class: int = 20
    max_num_samples: int = 100
    legend: bool = False
    shared_map: bool = False
    tsne: dict = field(default_factory=dict)


def parse_learning_rate(value: str) -> float | str:
    """``auto`` or a positive number, from ``--learning-rate``."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return float(value)
    except ValueError:
        raise InputError(f"--learning-rate {value!r}: expected 'auto' or a number") from None


def parse_class_idx(values: list[str] | None) -> list[str]:
    """Class ids from repeated and/or comma-separated ``--class-idx`` values."""
    return [part for value in values or [] for part in re.split(r"[,\s]+", value) if part]


def checked(params: TSNEParams, n_samples: int | None = None) -> None:
    """:func:`check_params`, its errors worded with this command's flags."""
    try:
        check_params(params, n_samples)
    except ParamError as error:
        raise error.for_flag(FLAGS) from None


def show_figures(paths: list[Path]) -> None:
    """Open saved figures in a window, or say in one line that no window can be opened."""
    import os

    from mdcli.logs import log

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        log.warning("--show: no display, cannot open a window; the figures are saved in %s",
                    paths[0].parent if paths else ".")
        return
    import matplotlib.pyplot as plt

    for path in paths:
        plt.figure(path.name)
        plt.imshow(plt.imread(path))
        plt.axis("off")
    plt.show()


def figure_name(set_name: str) -> str:
    """The seed's figure names: ``tsne_16_features.png``, ``tsne_encoder_32_features.png``."""
    return "tsne_features.png" if set_name == "features" else f"tsne_{set_name}_features.png"


def max_points(spec: SourceSpec, settings: TsneSettings, paired: bool) -> int:
    """An upper bound on the points t-SNE will embed, known before any feature extraction, so
    that a perplexity too large for it fails before the network runs."""
    from mdcli.analysis.features import VARIABLES, load_feature_file

    labelled = spec.features is None
    if spec.features is not None:
        file = load_feature_file(spec.features)
        rows = len(file.teacher if file.paired else file.features)
        rows = rows if spec.max_samples is None else min(rows, spec.max_samples)
        labelled = file.labels is not None
    else:
        rows = spec.max_samples * (len(VARIABLES) if paired else 1)
    if paired:
        return rows * (1 if settings.shared_map else 2)
    if labelled:
        classes = len(settings.class_idx) or settings.max_num_class
        rows = min(rows, classes * settings.max_num_samples)
    return rows


def _paired(run: Run, spec: SourceSpec, params: TSNEParams, shared_map: bool,
            device: object) -> dict:
    import numpy as np

    from mdcli.analysis import alignment
    from mdcli.analysis.features import load_paired_sets
    from mdcli.analysis.tsne import embed_pair, save_embeddings
    from mdcli.cli.align import display, write_report
    from mdcli.logs import log
    from mdcli.plots.tsne import plot_teacher_student

    sets = load_paired_sets(spec, device, run.cache)
    for item in sets:  # every set's options are checked before any embedding starts
        checked(params, len(item.teacher) * (1 if shared_map else 2))
        log.info("%s: embedding %d of %d rows available (teacher and student each)",
                 display(item.name), len(item.teacher), item.available or len(item.teacher))
    rep = alignment.report(sets)
    rep["source"] = spec.describe()
    write_report(run.path, rep, per_set_files=True)
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
            run.path / figure_name(item.name), teacher_xy, student_xy, title, teacher_dist,
            student_dist, alignment.nearest_distances(item.teacher, item.student),
            item.variable, [v.upper() for v in item.variable_names]).name)
        arrays[f"{item.name}/teacher"], arrays[f"{item.name}/student"] = teacher_xy, student_xy
        if item.variable is not None:
            arrays[f"{item.name}/variable"] = item.variable
        log.info("t-SNE of %s done in %.1f s", display(item.name), time.perf_counter() - start)
    save_embeddings(run.path / EMBEDDINGS_FILE, arrays, params, {"shared_map": int(shared_map)})
    rows = {item.name: {"n_points": len(item.teacher),
                        "n_available": item.available or len(item.teacher)} for item in sets}
    return {"mode": "distillation" if spec.ckpt else "features", "figures": figures,
            "grade": rep["grade"], "rows": rows}


def _labelled(run: Run, spec: SourceSpec, params: TSNEParams, settings: TsneSettings,
              device: object) -> dict:
    import numpy as np

    from mdcli.analysis.features import load_labelled, select_classes
    from mdcli.analysis.tsne import embed, save_embeddings
    from mdcli.logs import log
    from mdcli.plots.tsne import plot_classes

    data = load_labelled(spec, device, run.cache)
    if data.labels is not None:
        rows = select_classes(data.labels, settings.class_idx, settings.max_num_class,
                              settings.max_num_samples)
    else:
        rows = np.arange(len(data.features))
    checked(params, len(rows))
    available = data.available or len(data.features)
    log.info("t-SNE: embedding %d of %d rows available, dim %d", len(rows), available,
             data.features.shape[1])
    coords = embed(data.features[rows], params)
    labels = data.labels[rows] if data.labels is not None else None
    stem = "features" if spec.features else re.sub(r"[^A-Za-z0-9_-]+", "_", settings.layer)
    figure = plot_classes(run.path / f"tsne_{stem}.png", coords, labels, data.title,
                          legend=settings.legend)
    arrays = {"embedding": coords}
    if labels is not None:
        arrays["labels"] = labels if labels.dtype.kind != "U" else labels.astype("S")
    save_embeddings(run.path / EMBEDDINGS_FILE, arrays, params)
    return {"mode": "features" if spec.features else "classifier", "figures": [figure.name],
            "n_points": int(len(rows)), "n_available": int(available)}


def tsne(
    config_file: Annotated[str | None, typer.Argument(
        metavar="CONFIG", show_default=False,
        help="The config (as MMPretrain's vis_tsne.py takes it); the same as --config.")] = None,
    ckpt: Annotated[Path | None, typer.Option(
        "--ckpt", "--checkpoint",
        help="A student checkpoint from `mdcli distill` (teacher vs student at "
             "attn16/attn32/enc16/enc32) or a classifier from `mdcli train`.")] = None,
    features: Annotated[Path | None, typer.Option(
        "--features", help="Precomputed features (.npz or HDF5): 'features' [N, D] with "
                           "optional 'labels', or paired 'teacher'/'student'.")] = None,
    teacher: TeacherOpt = None,
    config: Annotated[str | None, typer.Option(
        "--config", "-c", metavar="FILE",
        help="The config the checkpoint was trained with (teacher, data).")] = None,
    sets: SetOpt = None,
    cfg_options: Annotated[list[str] | None, typer.Option(
        "--cfg-options", metavar="KEY=VALUE",
        help="MMPretrain's name for --set: override one config value; repeatable.")] = None,
    test_cfg: Annotated[Path | None, typer.Option(
        "--test-cfg", help="A config whose data section gives the samples (MMPretrain's "
                           "test_dataloader config).")] = None,
    show: Annotated[bool, typer.Option(
        "--show", help="Also open the figures in a window (when a display exists); they are "
                       "saved either way.")] = False,
    data_path: Annotated[Path | None, typer.Option(
        "--data-path", "--data_path",
        help="Dataset to draw samples from (default: the checkpoint's).")] = None,
    save_dir: Annotated[Path | None, typer.Option(
        "--save-dir", "--save_dir",
        help="Write the outputs here instead of WORK_DIR/tsne/<run-name>/.")] = None,
    max_samples: Annotated[int | None, typer.Option(
        "--max-samples", "--max_samples", min=4,
        help="At most this many samples (default: every row of a features file, 1000 from a "
             "dataset).")] = None,
    batch_size: BatchSizeOpt = 32,
    noise_position: NoisePositionOpt = 0.2,
    layer: Annotated[str, typer.Option(
        "--layer", "--vis-stage",
        help="Classifier layer: pre_logits (input of the last linear layer), backbone, or a "
             "module name such as net.4.")] = PRE_LOGITS,
    class_idx: Annotated[list[str] | None, typer.Option(
        "--class-idx", help="Only these classes (repeat or comma-separate).")] = None,
    max_num_class: Annotated[int, typer.Option(
        "--max-num-class", min=1, help="The first N classes (when no --class-idx).")] = 20,
    max_num_samples: Annotated[int, typer.Option(
        "--max-num-samples", min=1, help="At most N samples per class.")] = 100,
    legend: Annotated[bool, typer.Option("--legend", help="Show the class legend.")] = False,
    shared_map: Annotated[bool, typer.Option(
        "--shared-map", help="Fit the map on the teacher's features and place the student's "
                             "into it (one coordinate frame; drift shows).")] = False,
    n_components: Annotated[int, typer.Option(
        "--n-components", help="2 or 3 embedding dimensions.")] = 2,
    perplexity: Annotated[float, typer.Option(
        "--perplexity", help="Effective number of neighbours; at most (N - 1) / 3.")] = 30.0,
    early_exaggeration: Annotated[float, typer.Option(
        "--early-exaggeration", help="Exaggeration of the early phase.")] = 12.0,
    learning_rate: Annotated[str, typer.Option(
        "--learning-rate", help="A number, or auto (N / exaggeration).")] = "auto",
    n_iter: Annotated[int, typer.Option(
        "--n-iter", help=f"Total gradient steps, the first {EARLY_EXAGGERATION_ITER} being the "
                         f"early-exaggeration phase (as scikit-learn's n_iter counted, now "
                         f"max_iter); must exceed {EARLY_EXAGGERATION_ITER}.")] = 750,
    n_iter_without_progress: Annotated[int, typer.Option(
        "--n-iter-without-progress",
        help="Stop when the KL divergence has not improved for this many steps.")] = 300,
    init: Annotated[str, typer.Option(
        "--init", help="Initial layout: pca, random or spectral.")] = "pca",
    pca_dims: Annotated[int | None, typer.Option(
        "--pca-dims", help="Reduce wider features to this many principal components first "
                           "(default: embed them as they are; PCA loses neighbours).")] = None,
    work_dir: WorkDirOpt = DEFAULT_WORK_DIR,
    name: NameOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
) -> None:
    """t-SNE of teacher/student, classifier or precomputed features.

    Distill checkpoints: the four-panel figures tsne_16_features.png,
    tsne_32_features.png, tsne_encoder_{16,32}_features.png, with
    alignment_metrics_*.txt and feature_alignment_analysis.txt. Classifier
    checkpoints and single feature sets: one figure coloured by class.
    Embeddings go to tsne_embeddings.h5 next to the figures (docs/tsne.md).
    """
    from mdcli.analysis.features import is_paired_source
    from mdcli.logs import log

    params = TSNEParams(n_components=n_components, perplexity=perplexity,
                        early_exaggeration=early_exaggeration,
                        learning_rate=parse_learning_rate(learning_rate), n_iter=n_iter,
                        n_iter_without_progress=n_iter_without_progress, init=init,
                        pca_dims=pca_dims,
                        seed=0 if seed is None else seed)
    checked(params)
    if config_file is not None and config is not None and config_file != config:
        raise InputError(f"CONFIG {config_file} and --config {config}: give the config once")
    settings = TsneSettings(
        seed=params.seed, device=device or "auto", ckpt=path_text(ckpt),
        features=path_text(features), teacher=path_text(teacher),
        config=config or config_file, sets=[*(sets or []), *(cfg_options or [])],
        data_path=path_text(data_path), max_samples=max_samples, test_cfg=path_text(test_cfg),
        batch_size=batch_size, noise_position=noise_position, layer=layer,
        class_idx=parse_class_idx(class_idx),
        max_num_class=max_num_class, max_num_samples=max_num_samples, legend=legend,
        shared_map=shared_map, tsne=asdict(params))
    spec = settings.spec(layer=layer)
    paired = is_paired_source(spec)
    checked(params, max_points(spec, settings, paired))
    with source_run("tsne", settings, spec, work_dir=work_dir, name=name,
                    save_dir=save_dir) as (run, torch_device):
        if paired:
            summary = _paired(run, spec, params, shared_map, torch_device)
        else:
            if shared_map:
                log.warning("--shared-map needs teacher/student features; ignored here")
            summary = _labelled(run, spec, params, settings, torch_device)
        run.update_summary(**summary, embeddings=EMBEDDINGS_FILE)
        log.info("figures in %s: %s", run.path, ", ".join(summary["figures"]))
    if show:
        show_figures([run.path / name for name in summary["figures"]])

"""``mdcli tsne``: t-SNE pictures of teacher/student or classifier features."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mdcli.analysis.tsne_params import EARLY_EXAGGERATION_ITER, ParamError
from mdcli.cli.options import (
    DEFAULT_WORK_DIR,
    DeviceOpt,
    NameOpt,
    SeedOpt,
    SetOpt,
    SeveralValues,
    WorkDirOpt,
    key_value,
    not_option,
)
from mdcli.cli.sources import BatchSizeOpt, NoisePositionOpt, RunSettings, TeacherOpt, source_run
from mdcli.errors import InputError

if TYPE_CHECKING:
    from mdcli.analysis.tsne_runs import TsneOptions

# Heavy modules (torch, openTSNE, matplotlib) are imported inside the function that uses them,
# so that `mdcli --help` and shell completion stay fast.
FLAGS = {"n_components": "--n-components", "perplexity": "--perplexity",
         "early_exaggeration": "--early-exaggeration", "learning_rate": "--learning-rate",
         "n_iter": "--n-iter", "n_iter_without_progress": "--n-iter-without-progress",
         "init": "--init", "pca_dims": "--pca-dims"}


class TsneCommand(SeveralValues):
    """``--cfg-options a=1 b=2`` and ``--class-idx 0 2`` as MMPretrain takes them."""

    several_values = (("--cfg-options", key_value), ("--class-idx", not_option))


@dataclass
class TsneSettings(RunSettings):
    """What ``tsne`` ran with (saved as the run's ``config.yaml``)."""

    tsne: TsneOptions


def parse_learning_rate(value: str) -> float | str:
    """``auto`` or a positive number, from ``--learning-rate``."""
    if value.strip().lower() == "auto":
        return "auto"
    try:
        return float(value)
    except ValueError:
        raise InputError(f"--learning-rate {value!r}: expected 'auto' or a number") from None


def parse_class_idx(values: list[str] | None) -> tuple[str, ...]:
    """Class ids from repeated and/or comma-separated ``--class-idx`` values."""
    return tuple(part for value in values or [] for part in re.split(r"[,\s]+", value) if part)


@contextmanager
def worded_with_flags() -> Iterator[None]:
    """The library's t-SNE parameter errors, worded with this command's flags."""
    try:
        yield
    except ParamError as error:
        raise error.for_flag(FLAGS) from None


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
        help="MMPretrain's name for --set: override config values (--cfg-options a=1 b=2, "
             "or repeated).")] = None,
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
        help="Classifier layer: pre_logits (input of the last linear layer), backbone, neck "
             "(input of the head), or a module name such as net.4.")] = "pre_logits",
    class_idx: Annotated[list[str] | None, typer.Option(
        "--class-idx", help="Only these classes (--class-idx 0 2, repeated, or "
                            "comma-separated).")] = None,
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
    from mdcli.analysis.sources import SourceSpec, open_source
    from mdcli.analysis.tsne_params import TSNEParams
    from mdcli.analysis.tsne_runs import TsneOptions, plan_tsne, run_tsne
    from mdcli.logs import log
    from mdcli.plots.tsne import show_figures

    with worded_with_flags():
        params = TSNEParams(n_components=n_components, perplexity=perplexity,
                            early_exaggeration=early_exaggeration,
                            learning_rate=parse_learning_rate(learning_rate), n_iter=n_iter,
                            n_iter_without_progress=n_iter_without_progress, init=init,
                            pca_dims=pca_dims, seed=0 if seed is None else seed)
        if config_file is not None and config is not None and config_file != config:
            raise InputError(f"CONFIG {config_file} and --config {config}: give the config once")
        spec = SourceSpec.from_options(
            ckpt=ckpt, features=features, teacher=teacher, config=config or config_file,
            sets=[*(sets or []), *(cfg_options or [])], data_path=data_path,
            max_samples=max_samples, test_cfg=test_cfg, batch_size=batch_size,
            noise_position=noise_position, seed=params.seed, layer=layer)
        options = TsneOptions(params, shared_map, parse_class_idx(class_idx), max_num_class,
                              max_num_samples, legend)
        plan = plan_tsne(open_source(spec), options)
        if shared_map and not plan.source.paired:
            log.warning("--shared-map needs teacher/student features; ignored here")
        settings = TsneSettings(params.seed, device or "auto", spec, options)
        with source_run("tsne", settings, work_dir=work_dir, name=name,
                        save_dir=save_dir) as (run, torch_device):
            result = run_tsne(plan, run.path, run.cache, torch_device)
            run.update_summary(**result.summary())
            log.info("figures in %s: %s", run.path, ", ".join(p.name for p in result.figures))
    if show and not show_figures(result.figures):
        log.warning("--show: no display or interactive matplotlib backend, cannot open a window; "
                    "the figures are saved in %s",
                    run.path)

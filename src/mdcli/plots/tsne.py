"""t-SNE figures: the seed's four-panel teacher/student figure and a class-coloured one."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from mdcli.storage.atomic import atomic_path  # noqa: E402

TEACHER_COLOR, STUDENT_COLOR = "#1f77b4", "#ff7f0e"
VARIABLE_COLORS = ("#d62728", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#e377c2")


def _save(fig: plt.Figure, path: Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight", format="png")
    plt.close(fig)
    return path


def _axes(fig: plt.Figure, position: int, dims: int, rows: int = 2, cols: int = 2) -> plt.Axes:
    if dims == 3:
        return fig.add_subplot(rows, cols, position, projection="3d")
    return fig.add_subplot(rows, cols, position)


def _scatter(ax: plt.Axes, coords: np.ndarray, **kwargs: object) -> None:
    if coords.shape[1] == 3:
        kwargs["depthshade"] = False
    ax.scatter(*coords.T, s=kwargs.pop("s", 7), linewidths=0, **kwargs)


def _point_size(n: int) -> float:
    return float(np.clip(6000.0 / max(n, 1), 3.0, 30.0))


def plot_teacher_student(path: str | Path, teacher_xy: np.ndarray, student_xy: np.ndarray,
                         title: str, teacher_centre_dist: np.ndarray,
                         student_centre_dist: np.ndarray, nearest_dist: np.ndarray,
                         variable: np.ndarray | None = None,
                         variable_names: Sequence[str] = ()) -> Path:
    """The seed's four panels in one PNG.

    (1) teacher vs student points; (2) the same points coloured by ERA5 variable (circles
    teacher, triangles student); (3) histograms of each set's distance to its own centre;
    (4) histogram of each teacher feature's distance to the nearest student feature.
    Coordinates are ``[N, 2]`` or ``[N, 3]``; distances ``[N]``, measured on the
    standardised original features; ``variable`` ``[N]`` holds integer ids into
    ``variable_names`` for the rows of both sets.
    """
    dims = teacher_xy.shape[1]
    size = _point_size(len(teacher_xy) + len(student_xy))
    fig = plt.figure(figsize=(13, 11))
    fig.suptitle(title, fontsize=14)

    ax = _axes(fig, 1, dims)
    _scatter(ax, teacher_xy, c=TEACHER_COLOR, alpha=0.6, s=size, label="teacher")
    _scatter(ax, student_xy, c=STUDENT_COLOR, marker="^", alpha=0.6, s=0.7 * size,
             label="student")
    ax.set_title("teacher vs student")
    ax.legend(loc="best", markerscale=3, fontsize=9)

    ax = _axes(fig, 2, dims)
    if variable is not None:
        for vid, name in enumerate(variable_names):
            color = VARIABLE_COLORS[vid % len(VARIABLE_COLORS)]
            mask = variable == vid
            _scatter(ax, teacher_xy[mask], c=color, marker="o", alpha=0.55, s=size,
                     label=f"{name}")
            _scatter(ax, student_xy[mask], c=color, marker="^", alpha=0.55, s=0.7 * size)
        ax.set_title("by ERA5 variable (o teacher, ^ student)")
        ax.legend(loc="best", markerscale=3, fontsize=9, title="variable")
    else:
        ax.text(0.5, 0.5, "no variable labels", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_title("by ERA5 variable")

    ax = fig.add_subplot(2, 2, 3)
    bins = np.histogram_bin_edges(np.concatenate([teacher_centre_dist, student_centre_dist]), 30)
    ax.hist(teacher_centre_dist, bins=bins, alpha=0.45, color=TEACHER_COLOR,
            histtype="stepfilled", label=f"teacher (mean {teacher_centre_dist.mean():.2f})")
    ax.hist(student_centre_dist, bins=bins, color=STUDENT_COLOR, histtype="step", linewidth=2,
            label=f"student (mean {student_centre_dist.mean():.2f})")
    ax.set_xlabel("distance to own centre (teacher-standardised features)")
    ax.set_ylabel("count")
    ax.set_title("spread around each set's centre")
    ax.legend(fontsize=9)

    ax = fig.add_subplot(2, 2, 4)
    ax.hist(nearest_dist, bins=30, color="#7f7f7f", alpha=0.8)
    ax.axvline(nearest_dist.mean(), color="k", linestyle="--",
               label=f"mean {nearest_dist.mean():.2f}")
    ax.set_xlabel("teacher -> nearest student distance (teacher-standardised features)")
    ax.set_ylabel("count")
    ax.set_title("feature alignment")
    ax.legend(fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return _save(fig, path)


def plot_classes(path: str | Path, coords: np.ndarray, labels: np.ndarray | None, title: str,
                 class_names: Sequence[str] | None = None, legend: bool = False) -> Path:
    """Points ``[N, 2|3]`` coloured by class ``labels`` ``[N]`` (MMPretrain's t-SNE picture)."""
    dims = coords.shape[1]
    fig = plt.figure(figsize=(8, 7.5))
    ax = _axes(fig, 1, dims, 1, 1)
    size = _point_size(len(coords)) * 1.5
    if labels is None:
        _scatter(ax, coords, c=TEACHER_COLOR, s=size, alpha=0.7)
    else:
        classes = np.unique(labels)
        cmap = plt.get_cmap("tab20" if len(classes) > 10 else "tab10")
        for i, cls in enumerate(classes):
            name = class_names[int(cls)] if class_names is not None else str(cls)
            _scatter(ax, coords[labels == cls], color=cmap(i % cmap.N), s=size, alpha=0.75,
                     label=name)
        if legend:
            ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), markerscale=3,
                      fontsize=9, title="class")
    ax.set_title(title)
    if dims == 2:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return _save(fig, path)


INTERACTIVE_BACKENDS = ("TkAgg", "QtAgg", "GTK4Agg", "MacOSX")


def show_figures(paths: Sequence[Path]) -> bool:
    """Open saved figures in a window; False (nothing opened) where no display exists or no
    interactive matplotlib backend can be loaded (figures are drawn with Agg, which has none)."""
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    for backend in INTERACTIVE_BACKENDS:
        try:
            plt.switch_backend(backend)
            break
        except (ImportError, RuntimeError):
            continue
    else:
        return False
    try:
        for path in paths:
            plt.figure(Path(path).name)
            plt.imshow(plt.imread(path))
            plt.axis("off")
        plt.show()
    finally:
        plt.close("all")
        plt.switch_backend("Agg")
    return True

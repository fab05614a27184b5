"""AGOP figures: the seed's per-model enhanced analysis and a comparison across models."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from mdcli.storage.atomic import atomic_path

# (metric key, label, colour) of the similarity lines, as in the seed's figure.
LINES = (("agop_vs_nfm", "AGOP/NFM Corr", "green"), ("g_vs_h", "G vs H", "purple"),
         ("g_vs_m", "G vs M", "cyan"), ("h_vs_m", "H vs M", "orange"))


def _save(fig: Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
    return Path(path)


def _key(key: str, keys: dict[str, str] | None) -> str:
    return keys.get(key, key) if keys else key


def plot_enhanced_analysis(result: dict[str, Any], path: str | Path,
                           keys: dict[str, str] | None = None) -> Path:
    """One subplot per layer: train (blue) / val (red) loss on the left axis, the four
    similarities on the right axis in [0, 1]. ``result`` is a ``*_similarities.json`` body."""
    layers = list(result["layers"])
    cols = min(len(layers), 5)
    rows = math.ceil(len(layers) / cols)
    fig = Figure(figsize=(4.6 * cols, 3.8 * rows), layout="constrained")
    epochs = result["epochs"]
    for k, layer in enumerate(layers):
        ax = fig.add_subplot(rows, cols, k + 1)
        handles = ax.plot(epochs, result["train_loss"], color="blue", label="Train Loss")
        handles += ax.plot(epochs, result["val_loss"], color="red", label="Val Loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        right = ax.twinx()
        for key, label, colour in LINES:
            handles += right.plot(epochs, result["layers"][layer][_key(key, keys)], color=colour,
                                  marker="o", markersize=2.5, label=label)
        right.set_ylim(-1.02 if _key("agop_vs_nfm", keys).startswith("pearson") else 0, 1.02)
        right.set_ylabel("similarity (" + _key("agop_vs_nfm", keys) + ")")
        dims = result["layers"][layer]
        ax.set_title(f"Layer {layer} ({dims['d_in']}->{dims['d_out']})")
        if k == 0:
            fig.legend(handles=handles, loc="outside lower center", ncol=len(handles))
    fig.suptitle(f"{result['model']}: loss and matrix alignment "
                 f"({result['computed']['samples']} samples)")
    return _save(fig, Path(path))


def plot_comparison(results: Sequence[dict[str, Any]], path: str | Path,
                    keys: dict[str, str] | None = None) -> Path:
    """A grid (rows: similarities, columns: layers) with one line per model."""
    layers = sorted({int(k) for r in results for k in r["layers"]})
    fig = Figure(figsize=(3.6 * len(layers), 2.9 * len(LINES)), layout="constrained")
    for row, (key, label, _) in enumerate(LINES):
        for col, layer in enumerate(layers):
            ax = fig.add_subplot(len(LINES), len(layers), row * len(layers) + col + 1)
            for result in results:
                entry = result["layers"].get(str(layer))
                if entry is not None:
                    ax.plot(result["epochs"], entry[_key(key, keys)], marker="o", markersize=2,
                            label=result["model"])
            ax.set_ylim(0, 1.02)
            if row == 0:
                ax.set_title(f"Layer {layer}")
            if col == 0:
                ax.set_ylabel(label)
            if row == len(LINES) - 1:
                ax.set_xlabel("epoch")
            if row == 0 and col == 0:
                fig.legend(loc="outside lower center", ncol=len(results))
    return _save(fig, Path(path))

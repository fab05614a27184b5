"""AGOP / H-G-M similarities of a training run's checkpoints, epoch by epoch, with a cache.

A model is a ``mdcli train`` run folder (``checkpoints/epoch_NNNN.pt``, ``task: classifier``).
Its data (the same split, from the config in the checkpoint) is rebuilt once; each checkpoint's
similarities are cached in an HDF5 file keyed by the checkpoint's SHA-256 and the options, so a
re-run, or one killed half-way, only computes what is missing.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from mdcli import __version__
from mdcli.analysis.agop import (
    SIMILARITIES,
    feature_layers,
    init_baseline,
    layer_dims,
    layer_similarities,
    layer_statistics,
    nfm,
)
from mdcli.config import from_dict, param
from mdcli.data.arrays import load_split
from mdcli.errors import InputError
from mdcli.logs import log
from mdcli.models.classifier import load_classifier
from mdcli.progress import progress
from mdcli.storage.cache import cache_key, file_digest, load_or_build
from mdcli.training.classifier import ClassifierConfig

METRICS = (*SIMILARITIES, *(f"pearson_{name}" for name in SIMILARITIES), "init_baseline")
EPOCH_FILE = re.compile(r"epoch_(\d+)\.pt$")


@dataclass
class AgopConfig:
    """Options of ``mdcli agop`` (also settable with ``--config``/``--set``)."""

    seed: int = param(0, help="seed of the --max-samples subset")
    device: str = "auto"
    models: list[str] = param([], help="run folder names under experiments_dir, or paths")
    experiments_dir: str = param("", help="where model run folders are (default WORK_DIR/train)")
    layers: list[int] = param([], help="linear/conv layer indices in forward order (empty: all)")
    epochs: list[int] = param([], ge=0, help="epochs to analyse (empty: every checkpoint)")
    max_samples: int = param(0, ge=0, help="analyse a seeded subset of N samples (0: all)")
    split: Literal["train", "val", "all"] = param("train", help="which samples to use")
    remove_init: bool = param(False, help="NFM of W - W(epoch 0)")
    # 512: a seed-scale pass's temporaries (C x 512 x 1024 floats) stay under glibc's mmap
    # threshold and are reused, not page-faulted afresh (4-6% faster than 1024, measured)
    batch_size: int = param(512, ge=1, help="samples per batched forward/backward")
    metric: Literal["cosine", "pearson_sqrt"] = param(
        "cosine", help="table, plots and summary: plain cosines, or Pearson with AGOP^1/2 "
                       "(and Pearson for G/H/M)")
    centred_agop: bool = param(False, help="table, plots and summary: the Jacobian-centred AGOP")


def threads_for_load() -> int:
    """torch threads to use now: fewer when other jobs already keep the cores busy.

    The analysis is many medium-sized operations; with more threads than idle cores each
    OpenMP region waits for a descheduled sibling, which we measured 2-4x slower than one
    thread on a busy 2-core machine. An explicit ``OMP_NUM_THREADS`` is respected.
    """
    threads = torch.get_num_threads()
    if "OMP_NUM_THREADS" in os.environ:
        return threads
    idle = (os.cpu_count() or 1) - round(os.getloadavg()[0])
    return max(1, min(threads, idle))


def find_model_dir(model: str, experiments_dir: Path) -> Path:
    """``experiments_dir / model`` if it exists, else ``model`` as a path."""
    for candidate in (experiments_dir / model, Path(model)):
        if candidate.is_dir():
            return candidate
    raise InputError(f"Model directory not found: {experiments_dir / model}")


def epoch_checkpoints(model_dir: Path, epochs: list[int]) -> dict[int, Path]:
    """{epoch: checkpoint} for ``epochs`` (empty: all) plus epoch 0, in order."""
    folder = model_dir / "checkpoints"
    found = {int(m.group(1)): p for p in folder.glob("epoch_*.pt")
             if (m := EPOCH_FILE.search(p.name))}
    if not found:
        raise InputError(f"Model not found for epoch 0: no checkpoints in {folder}")
    wanted = sorted({0, *(epochs or found)})
    missing = [e for e in wanted if e not in found]
    if missing:
        raise InputError(f"Model not found for epoch {missing[0]}: "
                         f"{folder / f'epoch_{missing[0]:04d}.pt'}")
    return {e: found[e] for e in wanted}


def analysis_samples(record: dict[str, Any], cfg: AgopConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples of ``cfg.split`` the run was trained with (a seeded subset if requested)."""
    train_cfg = from_dict(ClassifierConfig, record["config"])
    split = load_split(train_cfg.data)
    x, y = {"train": (split.x_train, split.y_train), "val": (split.x_val, split.y_val),
            "all": (torch.cat([split.x_train, split.x_val]),
                    torch.cat([split.y_train, split.y_val]))}[cfg.split]
    if len(x) == 0:
        raise InputError(f"--split {cfg.split}: the run has no {cfg.split} samples")
    if cfg.max_samples and cfg.max_samples < len(x):
        keep = torch.from_numpy(np.sort(
            np.random.default_rng(cfg.seed).permutation(len(x))[: cfg.max_samples]))
        x, y = x[keep], y[keep]
    return x, y


def _cache_folder(model_dir: Path, fallback: Path, options: dict[str, Any]) -> Path:
    """``<model>/cache/agop/<options hash>/`` if writable, else under ``fallback``."""
    root = model_dir / "cache" if os.access(model_dir, os.W_OK) else fallback / model_dir.name
    return root / "agop" / cache_key(options)[:12]


@dataclass
class ModelPlan:
    """One model's checkpoints and layers, checked before any work starts."""

    model_dir: Path
    checkpoints: dict[int, Path]
    layers: list[int]
    record0: dict[str, Any]


def plan_model(model: str, experiments_dir: Path, cfg: AgopConfig) -> ModelPlan:
    """Find the run folder, its checkpoints and the layers; bad input is an InputError."""
    model_dir = find_model_dir(model, experiments_dir)
    checkpoints = epoch_checkpoints(model_dir, cfg.epochs)
    model0, record0 = load_classifier(checkpoints[0])
    n_linear = len(feature_layers(model0))
    layers = cfg.layers or list(range(n_linear))
    bad = [i for i in layers if not 0 <= i < n_linear]
    if bad:
        raise InputError(f"--layers: {bad[0]} is out of range, {model_dir.name} has {n_linear} "
                         f"linear/conv layers (0-{n_linear - 1})")
    return ModelPlan(model_dir, checkpoints, layers, record0)


def checkpoint_values(model: torch.nn.Module, layers: list[int], init: list[torch.Tensor],
                      x: torch.Tensor, y: torch.Tensor, loss: str, batch_size: int,
                      device: torch.device, remove_init: bool = False) -> np.ndarray:
    """All of :data:`METRICS` for one checkpoint, shape (layers, metrics): the statistics of
    ``layers`` (indices into :func:`feature_layers`) over ``x``, ``y``, their similarities and
    the baseline against the initial weights ``init`` (one per layer)."""
    linears = [feature_layers(model)[i] for i in layers]
    stats = layer_statistics(model, linears, x, y, loss=loss, batch_size=batch_size,
                             device=device)
    values = np.zeros((len(layers), len(METRICS)))
    for row, (st, linear) in enumerate(zip(stats, linears, strict=True)):
        if remove_init:
            st = dataclasses.replace(st, M=nfm(linear.weight, init[row]).cpu())
        sims = layer_similarities(st)
        sims["init_baseline"] = init_baseline(linear.weight, init[row])
        values[row] = [sims[name] for name in METRICS]
    return values


def analyse_model(plan: ModelPlan, cfg: AgopConfig, cache_fallback: Path,
                  device: torch.device) -> dict[str, Any]:
    """Similarities per epoch and layer for one run folder (the ``*_similarities.json`` body)."""
    started = time.monotonic()
    model_dir, checkpoints, layers = plan.model_dir, plan.checkpoints, plan.layers
    loss = plan.record0["config"]["train"]["loss"]
    x, y = analysis_samples(plan.record0, cfg)
    model0, _ = load_classifier(checkpoints[0])  # W(0): --remove-init and the init baseline
    init = [feature_layers(model0)[i].weight.detach().clone() for i in layers]
    options = {"layers": layers, "split": cfg.split, "max_samples": cfg.max_samples,
               "seed": cfg.seed, "remove_init": cfg.remove_init, "loss": loss,
               "n_samples": len(x), "metrics": list(METRICS), "mdcli_version": __version__}
    options["init_sha256"] = file_digest(checkpoints[0])
    folder = _cache_folder(model_dir, cache_fallback, options)

    def compute(path: Path) -> dict[str, np.ndarray]:
        model, record = load_classifier(path)
        values = checkpoint_values(model, layers, init, x, y, loss, cfg.batch_size, device,
                                   cfg.remove_init)
        linears = [feature_layers(model)[i] for i in layers]
        metrics = record.get("metrics", {})
        losses = [metrics.get(k, float("nan")) for k in ("train_loss", "val_loss")]
        dims = [list(layer_dims(linear)) for linear in linears]
        return {"values": values, "losses": np.asarray(losses, dtype=np.float64),
                "dims": np.asarray(dims, dtype=np.int64)}

    per_epoch: dict[int, dict[str, np.ndarray]] = {}
    with progress(len(checkpoints), f"agop {model_dir.name}") as bar:
        for epoch, path in checkpoints.items():
            provenance = {**options, "checkpoint_sha256": file_digest(path), "epoch": epoch}
            per_epoch[epoch] = load_or_build(folder / f"epoch_{epoch:04d}.h5", provenance,
                                             lambda p=path: compute(p))
            bar.advance(1)
    seconds = time.monotonic() - started
    log.info("agop %s: %d checkpoints x %d layers on %d samples in %.1f s",
             model_dir.name, len(checkpoints), len(layers), len(x), seconds)
    return _result(model_dir, checkpoints, layers, per_epoch, options, seconds)


def _result(model_dir: Path, checkpoints: dict[int, Path], layers: list[int],
            per_epoch: dict[int, dict[str, np.ndarray]], options: dict[str, Any],
            seconds: float) -> dict[str, Any]:
    epochs = list(checkpoints)
    values = np.stack([per_epoch[e]["values"] for e in epochs])  # (epochs, layers, metrics)
    losses = np.stack([per_epoch[e]["losses"] for e in epochs])  # (epochs, 2)
    dims = per_epoch[epochs[0]]["dims"]
    layer_table = {}
    for row, index in enumerate(layers):
        entry: dict[str, Any] = {"d_in": int(dims[row][0]), "d_out": int(dims[row][1])}
        entry.update({name: values[:, row, k] for k, name in enumerate(METRICS)})
        layer_table[str(index)] = entry
    return {
        "model": model_dir.name, "model_dir": str(model_dir),
        "epochs": epochs, "train_loss": losses[:, 0], "val_loss": losses[:, 1],
        "layers": layer_table,
        "computed": {
            "samples": options["n_samples"], "split": options["split"],
            "max_samples": options["max_samples"], "loss": options["loss"],
            "remove_init": options["remove_init"], "layer_indices": layers,
            "checkpoints": {str(e): str(p) for e, p in checkpoints.items()},
            "definitions": {
                "H": "E[h h^T], h the input of the layer's W",
                "G": "E[g g^T], g = -d loss / d h per sample",
                "M": "W^T W (NFM)" + (" of W - W(epoch 0)" if options["remove_init"] else ""),
                "AGOP": "E[sum_k (d f_k/d h)^T (d f_k/d h)], f the logits",
                "cosine": "<A,B>_F / (|A|_F |B|_F); pearson_*: the same after centring entries",
            },
            "seconds": round(seconds, 3), "mdcli_version": __version__,
        },
    }


def display_key(name: str, cfg: AgopConfig) -> str:
    """The stored metric shown for a similarity ``name`` (``agop_vs_nfm``, ``g_vs_h``, ...)
    under ``--metric`` and ``--centred-agop``."""
    if name == "agop_vs_nfm":
        name = "centred_agop_vs_nfm" if cfg.centred_agop else name
        if cfg.metric == "pearson_sqrt":
            return f"pearson_sqrt_{name}"
        return name
    return f"pearson_{name}" if cfg.metric == "pearson_sqrt" else name

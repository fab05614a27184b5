"""Distillation features: the teacher's and student's ``return_feat=True`` outputs, pooled.

The models return a dict ``{"attn16", "attn32", "enc16", "enc32"}`` of ``[B, V, C, h, w]``
tensors (V = 4 ERA5 variables). Each is averaged over its ``h x w`` positions, so one sample
and one ERA5 variable of it become one ``C``-vector; the four sets (``16``, ``32``,
``encoder_16``, ``encoder_32``) hold one row per (sample, variable) pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mdcli.analysis.alignment import FeatureSet
from mdcli.analysis.layer_features import pool_spatial
from mdcli.data.synth_tc import VARIABLES
from mdcli.errors import InputError
from mdcli.models.sites import FEATURE_KEYS
from mdcli.models.teacher_student import distill_models
from mdcli.progress import progress
from mdcli.training.teacher import objective_of

SET_NAMES = {"attn16": "16", "attn32": "32", "enc16": "encoder_16", "enc32": "encoder_32"}


@dataclass
class DistillBatch:
    """One batch for distillation features: past frames, next frames, ERA5 fields."""

    cond: torch.Tensor
    target: torch.Tensor
    era5: torch.Tensor


Perturb = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _pooled_feats(feats: dict, who: str) -> dict[str, torch.Tensor]:
    missing = [key for key in FEATURE_KEYS if key not in feats]
    if missing:
        raise InputError(f"{who} model's return_feat output lacks {', '.join(missing)}; "
                         f"expected keys {', '.join(FEATURE_KEYS)}")
    pooled = {}
    for key in FEATURE_KEYS:
        value = feats[key]
        if value.ndim != 5:
            raise InputError(f"{who} feature {key} has shape {tuple(value.shape)}, "
                             f"expected [B, V, C, h, w]")
        pooled[key] = pool_spatial(value).float().cpu()
    return pooled


@torch.no_grad()
def distill_features(teacher: nn.Module, student: nn.Module, batches: Iterable[DistillBatch],
                     perturb: Perturb, seed: int = 0, device: torch.device | str = "cpu",
                     on_batch: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Pooled teacher and student features on the same noisy inputs.

    ``perturb(target, eps) -> (x_noisy, noise_level)`` noises each target with ``eps`` drawn
    from a generator seeded by ``seed``; the teacher also sees the ERA5 fields, the student
    does not. Returns ``{"teacher_attn16": [N, V, C], "student_attn16": [N, V, C], ...}``
    (float32, spatially averaged).
    """
    generator = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {}
    teacher.eval()
    student.eval()
    for batch in batches:
        target = batch.target.float().to(device)
        eps = torch.randn(target.shape, generator=generator).to(device)
        x_noisy, noise_level = perturb(target, eps)
        cond, era5 = batch.cond.float().to(device), batch.era5.float().to(device)
        _, teacher_feats = teacher(x_noisy, noise_level, cond, era5, return_feat=True)
        _, student_feats, _ = student(x_noisy, noise_level, cond, return_feat=True, target=None)
        for who, feats in (("teacher", teacher_feats), ("student", student_feats)):
            for key, value in _pooled_feats(feats, who).items():
                parts.setdefault(f"{who}_{key}", []).append(value)
        if on_batch is not None:
            on_batch(target.shape[0])
    return {name: torch.cat(values).numpy() for name, values in parts.items()}


def window_batches(dataset: object, max_samples: int, batch_size: int
                   ) -> Iterable[DistillBatch]:
    """The first ``max_samples`` windows of a ``TCWindows``-like dataset (items
    ``(cond, era5, target, ...)``) in batches."""
    n = min(len(dataset), max_samples)  # type: ignore[arg-type]
    for start in range(0, n, batch_size):
        items = [dataset[i] for i in range(start, min(n, start + batch_size))]  # type: ignore[index]
        cond, era5, target = (torch.stack([torch.as_tensor(item[k]) for item in items])
                              for k in range(3))
        yield DistillBatch(cond=cond, target=target, era5=era5)


def variable_rows(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``[N, V, C]`` per-variable features as rows ``[N * V, C]`` and variable ids ``[N * V]``."""
    n, v, c = features.shape
    return features.reshape(n * v, c), np.tile(np.arange(v), n)


def distill_sets(arrays: dict[str, np.ndarray]) -> list[FeatureSet]:
    """The four feature sets (16, 32, encoder_16, encoder_32) from :func:`distill_features`
    arrays; each row is one (sample, ERA5 variable) pair, ``variable`` says which."""
    sets = []
    for key in FEATURE_KEYS:
        teacher, variable = variable_rows(arrays[f"teacher_{key}"])
        student, _ = variable_rows(arrays[f"student_{key}"])
        n_vars = arrays[f"teacher_{key}"].shape[1]
        names = VARIABLES[:n_vars] if n_vars <= len(VARIABLES) else \
            tuple(f"var{i}" for i in range(n_vars))
        sets.append(FeatureSet(SET_NAMES[key], teacher, student, variable, tuple(names)))
    return sets


def checkpoint_features(record: dict, windows: object, *, noise_position: float,
                        max_samples: int, batch_size: int, seed: int = 0,
                        device: torch.device | str = "cpu", teacher: nn.Module | None = None
                        ) -> dict[str, np.ndarray]:
    """:func:`distill_features` of a distill checkpoint ``record``'s teacher (or ``teacher``)
    and EMA student on the first ``max_samples`` of ``windows``, the targets noised at
    ``noise_position`` of the schedule (0 = least noise, 1 = most)."""
    record_teacher, student = distill_models(record, ema=True, device=device)
    objective = objective_of(record)
    level = round(noise_position * (objective.num_levels - 1))

    def perturb(target: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.full((target.shape[0],), level, dtype=torch.long, device=target.device)
        return objective.perturb(target, idx, eps)

    n = min(len(windows), max_samples)  # type: ignore[arg-type]
    with progress(n, "distill features") as bar:
        return distill_features(teacher or record_teacher, student,
                                window_batches(windows, max_samples, batch_size), perturb,
                                seed, device, on_batch=bar.advance)

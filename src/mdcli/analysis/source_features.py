"""The features of an opened :class:`~mdcli.analysis.sources.Source`, cached.

Paired teacher/student sets come from a distill checkpoint (its four feature sites on the
test windows) or a ``teacher``/``student`` features file; one labelled set from a classifier
checkpoint (one layer on its data) or a ``features`` file. Extracted arrays are cached with
:func:`mdcli.storage.cache.load_or_build`, keyed on the checkpoint's digest, data, layer,
sample count and seed, so a second ``tsne`` or an ``align`` on the same inputs reuses them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from mdcli.analysis.alignment import FeatureSet
from mdcli.analysis.distill_features import checkpoint_features, distill_sets
from mdcli.analysis.feature_files import file_set, subsample
from mdcli.analysis.layer_features import layer_features
from mdcli.analysis.sources import Source
from mdcli.config import from_dict, load_config, read_yaml, resolve_config_path, to_dict
from mdcli.data.arrays import DataConfig, load_split
from mdcli.errors import InputError
from mdcli.models.classifier import CHECKPOINT_KIND, classifier_from_record
from mdcli.models.teacher_student import model_config
from mdcli.storage.cache import cache_key, file_digest, load_or_build
from mdcli.training.classifier import ClassifierConfig
from mdcli.training.distill import DISTILL_KIND, distill_config
from mdcli.training.tc_data import ensure_data, open_split
from mdcli.training.teacher import load_teacher


@dataclass
class LabelledFeatures:
    """One set of features ``[N, D]`` with optional class ``labels`` ``[N]``."""

    features: np.ndarray
    labels: np.ndarray | None
    title: str
    class_names: list[str] | None = None
    available: int = 0  # rows the source held before the ``max_samples`` draw (0: unknown)


def cache_dir_for(ckpt: Path, fallback: Path) -> Path:
    """Where features of ``ckpt`` are cached: the ``cache/`` folder of the run that wrote the
    checkpoint (``<run>/checkpoints/x.pt`` -> ``<run>/cache``) when writable, so every later
    ``tsne``/``align`` on it finds them; else ``fallback`` (this run's ``cache/``)."""
    ckpt = Path(ckpt).resolve()
    if ckpt.parent.name == "checkpoints" and os.access(ckpt.parent.parent, os.W_OK):
        return ckpt.parent.parent / "cache"
    return fallback


def cached(folder: Path, provenance: dict, build: Callable[[], dict[str, np.ndarray]]
           ) -> dict[str, np.ndarray]:
    """``build()``'s arrays, from ``folder/features_<key>.h5`` when a matching cache exists."""
    return load_or_build(Path(folder) / f"features_{cache_key(provenance)[:16]}.h5",
                         provenance, build)


def data_stamp(path: str | Path) -> str:
    """A cheap identity of a data file for cache keys: resolved path, size, modification time."""
    path = Path(path).resolve()
    stat = path.stat()
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def checkpoint_label(path: Path) -> str:
    """``<run-name>/last.pt`` for a checkpoint inside a run folder, else the file name."""
    path = Path(path).resolve()
    if path.parent.name == "checkpoints":
        return f"{path.parent.parent.name}/{path.name}"
    return path.name


def _classifier_data(source: Source) -> dict:
    """The data section a classifier's features are drawn with: ``--test-cfg``'s, else
    ``--config``'s (checked either way), else the checkpoint's; ``--data-path`` replaces its
    source."""
    spec = source.spec
    if spec.config is not None:
        data_section = to_dict(load_config(ClassifierConfig, spec.config, spec.sets).data)
    else:
        data_section = dict((source.record.get("config") or {}).get("data") or {})
    if spec.test_cfg is not None:
        test = read_yaml(resolve_config_path(spec.test_cfg))
        data_section = dict(test.get("data", test))
    if spec.data_path is not None:
        data_section["source"] = str(spec.data_path)
    return data_section


def _classifier_features(source: Source, device: torch.device, cache_folder: Path
                         ) -> LabelledFeatures:
    spec = source.spec
    data_section = _classifier_data(source)
    data_cfg = from_dict(DataConfig, data_section, "data")
    provenance = {
        "kind": "classifier-features", "checkpoint": file_digest(spec.ckpt),
        "layer": spec.layer, "data": data_section,
        "data_stamp": data_stamp(data_cfg.source) if data_cfg.source != "digits" else "digits",
        "max_samples": spec.max_samples, "seed": spec.seed,
    }

    def build() -> dict[str, np.ndarray]:
        split = load_split(data_cfg)
        x, y = (split.x_val, split.y_val) if len(split.y_val) else (split.x_train, split.y_train)
        rows = torch.from_numpy(subsample(len(y), spec.max_samples, spec.seed))
        x, y = x[rows], y[rows]
        model = classifier_from_record(source.record, f"--ckpt {spec.ckpt}").to(device)
        feats = layer_features(model, spec.layer, torch.split(x, spec.batch_size), device)
        return {"features": feats, "labels": y.numpy()}

    arrays = cached(cache_dir_for(spec.ckpt, cache_folder), provenance, build)
    return LabelledFeatures(arrays["features"], arrays["labels"],
                            f"{checkpoint_label(spec.ckpt)}: layer {spec.layer}")


def _distill_arrays(source: Source, device: torch.device, cache_folder: Path
                    ) -> dict[str, np.ndarray]:
    """Teacher/student features of a distill checkpoint on the test windows, cached."""
    spec, record = source.spec, source.record
    data_cfg = distill_config(record, spec.config, spec.sets).data
    if spec.data_path is not None:
        data_cfg = replace(data_cfg, path=str(spec.data_path), generate=None)
    ensure_data(data_cfg)
    provenance = {
        "kind": "distill-features", "checkpoint": file_digest(spec.ckpt),
        "teacher": file_digest(spec.teacher) if spec.teacher else "from-checkpoint",
        "data": data_stamp(data_cfg.path), "split": data_cfg.test_split,
        "max_samples": spec.max_samples, "seed": spec.seed,
        "noise_position": spec.noise_position, "student_weights": "ema",
    }

    def build() -> dict[str, np.ndarray]:
        teacher = load_teacher(spec.teacher, device)[0] if spec.teacher is not None else None
        windows = open_split(data_cfg, model_config(record["model_config"]),
                             data_cfg.test_split)
        return checkpoint_features(record, windows, noise_position=spec.noise_position,
                                   max_samples=spec.max_samples, batch_size=spec.batch_size,
                                   seed=spec.seed, device=device, teacher=teacher)

    return cached(cache_dir_for(spec.ckpt, cache_folder), provenance, build)


def labelled_features(source: Source, device: torch.device, cache_folder: Path
                      ) -> LabelledFeatures:
    """One labelled feature set: a classifier checkpoint's layer or a ``features`` file."""
    spec, file = source.spec, source.file
    if file is not None:
        rows = subsample(file.features.shape[0], spec.max_samples, spec.seed)
        labels = file.labels[rows] if file.labels is not None else None
        return LabelledFeatures(file.features[rows], labels, spec.features.name,
                                available=file.features.shape[0])
    if source.kind == CHECKPOINT_KIND:
        return _classifier_features(source, device, cache_folder)
    raise InputError(f"--ckpt {spec.ckpt}: a {source.kind!r} checkpoint, expected a classifier "
                     f"checkpoint from `mdcli train` here")


def paired_sets(source: Source, device: torch.device, cache_folder: Path) -> list[FeatureSet]:
    """Paired teacher/student feature sets: a distillation checkpoint's four scales, or a
    ``teacher``/``student`` features file."""
    spec, file = source.spec, source.file
    if file is not None:
        if not file.paired:
            raise InputError(f"--features {spec.features}: holds one 'features' set, expected "
                             f"paired 'teacher' and 'student' arrays")
        return [file_set(file, spec.max_samples, spec.seed)]
    if source.kind == DISTILL_KIND:
        return distill_sets(_distill_arrays(source, device, cache_folder))
    raise InputError(f"--ckpt {spec.ckpt}: a {source.kind!r} checkpoint, expected a student "
                     f"checkpoint from `mdcli distill` (or use --features)")

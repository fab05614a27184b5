"""Feature extraction for t-SNE and alignment, and feature files.

Features come from three places:

* a distillation checkpoint: the teacher's and student's ``return_feat=True`` outputs, a dict
  ``{"attn16", "attn32", "enc16", "enc32"}`` of ``[B, V, C, h, w]`` tensors (V = 4 ERA5
  variables), see :func:`distill_features`;
* a classifier: one named layer's output, caught by a forward hook, see :func:`layer_features`;
* a features file (``.npz`` or HDF5), see :func:`load_feature_file`.

Spatial features are pooled per sample by global average pooling (:func:`pool_spatial`): the
mean over the trailing ``h x w`` positions of each channel, so one sample (and, for the
distillation features, one ERA5 variable of that sample) becomes one ``C``-vector. Sequence
outputs ``[B, T, C]`` are averaged over the ``T`` tokens the same way.

Extraction runs batched under ``torch.no_grad()``; callers cache the arrays with
:func:`mdcli.storage.cache.load_or_build`, keyed on the checkpoint's digest, data spec, layer,
sample count and seed, so a second ``tsne`` or an ``align`` on the same inputs reuses them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np
import torch
from torch import nn

from mdcli.analysis.alignment import FeatureSet
from mdcli.data.synth_tc import VARIABLES
from mdcli.errors import InputError
from mdcli.models.sites import FEATURE_KEYS
from mdcli.progress import progress
from mdcli.storage.cache import cache_key, file_digest, load_or_build
from mdcli.storage.checkpoint import load_checkpoint

SET_NAMES = {"attn16": "16", "attn32": "32", "enc16": "encoder_16", "enc32": "encoder_32"}


def pool_spatial(features: torch.Tensor, spatial_dims: int = 2) -> torch.Tensor:
    """Mean over the trailing ``spatial_dims`` axes: ``[..., C, h, w] -> [..., C]``."""
    return features.mean(dim=tuple(range(-spatial_dims, 0)))


def pool_output(output: torch.Tensor) -> torch.Tensor:
    """One vector per sample from a layer output: ``[B, C]`` as is, ``[B, C, h, w]`` and
    ``[B, T, C]`` averaged over positions / tokens, anything else flattened -> ``[B, F]``."""
    if output.ndim == 4:
        return pool_spatial(output)
    if output.ndim == 3:
        return output.mean(dim=1)
    return output.reshape(output.shape[0], -1)


def _first_tensor(output: object) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    raise InputError(f"layer output is {type(output).__name__}, expected a tensor")


PRE_LOGITS, BACKBONE, NECK = "pre_logits", "backbone", "neck"


def find_layer(model: nn.Module, layer: str) -> tuple[nn.Module, bool]:
    """The module whose output (or, for ``pre_logits``, input) is the layer's features.

    ``layer`` is a name from ``model.named_modules()``, or MMPretrain's stage names:
    ``pre_logits`` (the input of the last linear layer), ``backbone`` (the output of the
    model's ``features`` module when it has one, else ``pre_logits``) and ``neck`` (the input
    of the classifier ``head`` module when the model has one, else ``pre_logits``). Returns
    ``(module, use_input)``.
    """
    modules = dict(model.named_modules())
    if layer == BACKBONE and "features" in modules:
        return modules["features"], False
    if layer == NECK and "head" in modules:
        return modules["head"], True
    if layer in (PRE_LOGITS, BACKBONE, NECK):
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise InputError(f"--layer {layer}: the model has no linear layer")
        return linears[-1], True
    if layer not in modules or not layer:
        names = ", ".join(name for name in modules if name)
        raise InputError(f"--layer {layer!r}: no such layer; expected pre_logits, backbone or "
                         f"one of: {names}")
    return modules[layer], False


@torch.no_grad()
def layer_features(model: nn.Module, layer: str, batches: Iterable[torch.Tensor],
                   device: torch.device | str = "cpu") -> np.ndarray:
    """Pooled features of ``layer`` (see :func:`find_layer`) for every input batch
    ``[B, ...]``, caught by a forward hook -> ``[N, F]`` float32."""
    captured: list[torch.Tensor] = []
    module, use_input = find_layer(model, layer)

    def hook(module: nn.Module, inputs: tuple, output: object) -> None:
        value = inputs[0] if use_input else _first_tensor(output)
        captured.append(pool_output(value).float().cpu())

    handle = module.register_forward_hook(hook)
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            model(batch.to(device))
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(captured).numpy()


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


@dataclass
class FeatureFile:
    """A features file: one set (``features``) or a paired ``teacher``/``student`` set."""

    path: Path
    features: np.ndarray | None = None
    teacher: np.ndarray | None = None
    student: np.ndarray | None = None
    labels: np.ndarray | None = None
    variable: np.ndarray | None = None

    @property
    def paired(self) -> bool:
        return self.teacher is not None


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        if suffix in (".h5", ".hdf5"):
            with h5py.File(path, "r") as handle:
                return {name: handle[name][()] for name in handle
                        if isinstance(handle[name], h5py.Dataset)}
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"--features {path}: unreadable ({type(exc).__name__}: {exc})") from None
    raise InputError(f"--features {path}: unknown file type {suffix!r}, expected .npz, .h5 "
                     f"or .hdf5")


def _as_labels(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind in "SO":
        values = values.astype(str)
    return values


def load_feature_file(path: str | Path) -> FeatureFile:
    """Read and check a features file (``.npz`` or HDF5).

    It holds either ``features`` ``[N, D]`` or paired ``teacher`` and ``student`` ``[N, D]``
    (row n of each from the same input), plus optional ``labels`` ``[N]`` (classes) and
    ``variable`` ``[N]`` (which ERA5 variable or group a row belongs to).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--features {path}: file not found")
    arrays = _read_arrays(path)
    if "teacher" in arrays or "student" in arrays:
        if "teacher" not in arrays or "student" not in arrays:
            raise InputError(f"--features {path}: has only one of 'teacher'/'student', "
                             f"expected both (paired [N, D] arrays)")
        file = FeatureFile(path, teacher=np.asarray(arrays["teacher"], dtype=np.float32),
                           student=np.asarray(arrays["student"], dtype=np.float32))
        main = file.teacher
        if file.student.shape != main.shape:
            raise InputError(f"--features {path}: 'teacher' {main.shape} and 'student' "
                             f"{file.student.shape} differ, expected the same [N, D]")
    elif "features" in arrays:
        file = FeatureFile(path, features=np.asarray(arrays["features"], dtype=np.float32))
        main = file.features
    else:
        raise InputError(f"--features {path}: no 'features' or 'teacher'/'student' arrays "
                         f"(found: {', '.join(sorted(arrays)) or 'none'})")
    if main.ndim != 2 or main.shape[0] < 2:
        raise InputError(f"--features {path}: feature array has shape {main.shape}, expected "
                         f"[N, D] with N >= 2")
    for name in ("teacher", "student", "features"):
        values = getattr(file, name)
        if values is not None and not np.all(np.isfinite(values)):
            raise InputError(f"--features {path}: '{name}' holds NaN or infinite values")
    for name in ("labels", "variable"):
        if name in arrays:
            values = _as_labels(arrays[name]).reshape(-1)
            if values.shape[0] != main.shape[0]:
                raise InputError(f"--features {path}: '{name}' has {values.shape[0]} entries, "
                                 f"expected {main.shape[0]} (one per row)")
            setattr(file, name, values)
    return file


def subsample(n: int, max_samples: int | None, seed: int) -> np.ndarray:
    """Sorted row indices: all ``n`` rows (``max_samples`` None or at least ``n``), or
    ``max_samples`` of them drawn with ``seed``."""
    if max_samples is None or n <= max_samples:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_samples, replace=False))


def _variable_ids(values: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
    unique, inverse = np.unique(values.astype(str), return_inverse=True)
    names = [str(v) for v in unique]
    lowered = [name.lower() for name in names]
    if set(lowered) <= set(VARIABLES):  # ERA5 names: keep the seed's order
        names = [names[lowered.index(v)] for v in VARIABLES if v in lowered]
    position = np.array([names.index(str(v)) for v in unique], dtype=np.int64)
    return position[inverse.reshape(-1)], tuple(names)


def file_set(file: FeatureFile, max_samples: int | None, seed: int, name: str = "features"
             ) -> FeatureSet:
    """The paired set of a ``teacher``/``student`` features file (up to ``max_samples`` rows)."""
    rows = subsample(file.teacher.shape[0], max_samples, seed)
    variable, names = (None, ())
    if file.variable is not None:
        variable, names = _variable_ids(file.variable[rows])
    return FeatureSet(name, file.teacher[rows], file.student[rows], variable, names,
                      available=file.teacher.shape[0])


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


def select_classes(labels: np.ndarray, class_idx: list | None, max_num_class: int,
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


FEATURE_SUFFIXES = (".npz", ".h5", ".hdf5")


@dataclass(frozen=True)
class SourceSpec:
    """Where features come from: a checkpoint (with its data) or a features file."""

    ckpt: Path | None = None
    features: Path | None = None
    teacher: Path | None = None
    config: str | None = None
    sets: tuple[str, ...] = ()
    data_path: Path | None = None
    max_samples: int | None = 1000  # None: every row of a features file
    test_cfg: Path | None = None  # a config whose data section gives the samples
    batch_size: int = 32
    seed: int = 0
    layer: str = PRE_LOGITS
    noise_position: float = 0.2

    @classmethod
    def from_options(cls, *, ckpt: Path | None, features: Path | None, **options: object
                     ) -> SourceSpec:
        """Check that exactly one of ``--ckpt``/``--features`` names an existing file."""
        if (ckpt is None) == (features is None):
            raise InputError("give exactly one of --ckpt CKPT or --features FILE")
        for flag, path in (("--ckpt", ckpt), ("--features", features),
                           ("--teacher", options.get("teacher")),
                           ("--test-cfg", options.get("test_cfg")),
                           ("--data-path", options.get("data_path"))):
            if path is not None and not Path(path).is_file():
                raise InputError(f"{flag} {path}: file not found")
        options["sets"] = tuple(options.get("sets") or ())
        position = options.get("noise_position", 0.2)
        if not 0.0 <= position <= 1.0:  # type: ignore[operator]
            raise InputError(f"--noise-position {position}: expected a number in [0, 1]")
        return cls(ckpt=ckpt, features=features, **options)

    @property
    def source(self) -> Path:
        return self.ckpt if self.ckpt is not None else self.features  # type: ignore[return-value]

    @property
    def stem(self) -> str:
        return self.source.stem

    def with_baseline(self, path: Path) -> SourceSpec:
        """The same spec for a baseline checkpoint or features file."""
        if not Path(path).is_file():
            raise InputError(f"--baseline {path}: file not found")
        if Path(path).suffix.lower() in FEATURE_SUFFIXES:
            return replace(self, ckpt=None, features=Path(path))
        return replace(self, ckpt=Path(path), features=None)

    def describe(self) -> dict:
        """The spec as JSON-ready values (paths as strings)."""
        def text(value: object) -> str | None:
            return None if value is None else str(value)

        return {"ckpt": text(self.ckpt), "features": text(self.features),
                "teacher": text(self.teacher), "config": self.config,
                "data_path": text(self.data_path), "max_samples": self.max_samples,
                "noise_position": self.noise_position, "seed": self.seed}


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


def _classifier_features(spec: SourceSpec, record: dict, device: torch.device,
                         cache_folder: Path) -> LabelledFeatures:
    from mdcli.config import from_dict, load_config, read_yaml, resolve_config_path, to_dict
    from mdcli.data.arrays import DataConfig, load_split
    from mdcli.models.classifier import load_classifier
    from mdcli.training.classifier import ClassifierConfig

    if spec.config is not None:
        data_section = to_dict(load_config(ClassifierConfig, spec.config, spec.sets).data)
    else:
        data_section = dict((record.get("config") or {}).get("data") or {})
    if spec.test_cfg is not None:
        test = read_yaml(resolve_config_path(spec.test_cfg))
        data_section = dict(test.get("data", test))
    if spec.data_path is not None:
        data_section["source"] = str(spec.data_path)
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
        model, _ = load_classifier(spec.ckpt, map_location=device)
        model.to(device)
        feats = layer_features(model, spec.layer, torch.split(x, spec.batch_size), device)
        return {"features": feats, "labels": y.numpy()}

    arrays = cached(cache_dir_for(spec.ckpt, cache_folder), provenance, build)
    return LabelledFeatures(arrays["features"], arrays["labels"],
                            f"{checkpoint_label(spec.ckpt)}: layer {spec.layer}")


def checkpoint_label(path: Path) -> str:
    """``<run-name>/last.pt`` for a checkpoint inside a run folder, else the file name."""
    path = Path(path).resolve()
    if path.parent.name == "checkpoints":
        return f"{path.parent.parent.name}/{path.name}"
    return path.name


def checkpoint_kind(path: Path) -> tuple[str, dict]:
    """The ``kind`` tag of an mdcli checkpoint and the record itself."""
    record = load_checkpoint(path)
    return str(record.get("kind", "unknown")), record


def load_labelled(spec: SourceSpec, device: torch.device, cache_folder: Path
                  ) -> LabelledFeatures:
    """One labelled feature set: a classifier checkpoint's layer or a ``features`` file."""
    if spec.features is not None:
        file = load_feature_file(spec.features)
        rows = subsample(file.features.shape[0], spec.max_samples, spec.seed)
        labels = file.labels[rows] if file.labels is not None else None
        return LabelledFeatures(file.features[rows], labels, spec.features.name,
                                available=file.features.shape[0])
    kind, record = checkpoint_kind(spec.ckpt)
    if kind == "classifier":
        return _classifier_features(spec, record, device, cache_folder)
    raise InputError(f"--ckpt {spec.ckpt}: a {kind!r} checkpoint, expected a classifier "
                     f"checkpoint from `mdcli train` here")


def load_paired_sets(spec: SourceSpec, device: torch.device, cache_folder: Path
                     ) -> list[FeatureSet]:
    """Paired teacher/student feature sets: a distillation checkpoint's four scales, or a
    ``teacher``/``student`` features file."""
    if spec.features is not None:
        file = load_feature_file(spec.features)
        if not file.paired:
            raise InputError(f"--features {spec.features}: holds one 'features' set, expected "
                             f"paired 'teacher' and 'student' arrays")
        return [file_set(file, spec.max_samples, spec.seed)]
    kind, record = checkpoint_kind(spec.ckpt)
    from mdcli.training.distill import DISTILL_KIND

    if kind == DISTILL_KIND:
        return distill_sets(_distill_arrays(spec, record, device, cache_folder))
    raise InputError(f"--ckpt {spec.ckpt}: a {kind!r} checkpoint, expected a student "
                     f"checkpoint from `mdcli distill` (or use --features)")


def is_paired_source(spec: SourceSpec) -> bool:
    """Whether ``spec`` gives teacher/student pairs (else one labelled set)."""
    if spec.features is not None:
        return load_feature_file(spec.features).paired
    from mdcli.training.distill import DISTILL_KIND

    return checkpoint_kind(spec.ckpt)[0] == DISTILL_KIND




def data_stamp(path: str | Path) -> str:
    """A cheap identity of a data file for cache keys: resolved path, size, modification time."""
    path = Path(path).resolve()
    stat = path.stat()
    return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def _distill_config(spec: SourceSpec, record: dict) -> object:
    from mdcli.config import from_dict, load_config
    from mdcli.training.distill import DistillConfig

    if spec.config is not None:
        return load_config(DistillConfig, spec.config, spec.sets)
    cfg = from_dict(DistillConfig, record.get("config") or {}, "config")
    if spec.sets:
        from mdcli.config import apply_override, to_dict

        data = to_dict(cfg)
        for override in spec.sets:
            apply_override(data, override)
        cfg = from_dict(DistillConfig, data)
    return cfg


def _distill_arrays(spec: SourceSpec, record: dict, device: torch.device,
                    cache_folder: Path) -> dict[str, np.ndarray]:
    """Teacher/student features of a distill checkpoint on the test windows, cached."""
    from mdcli.models.teacher_student import load_distill_models, model_config
    from mdcli.training.tc_data import ensure_data, open_split
    from mdcli.training.teacher import load_teacher, objective_of

    cfg = _distill_config(spec, record)
    data_cfg = cfg.data  # type: ignore[attr-defined]
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
        teacher, student, _ = load_distill_models(spec.ckpt, ema=True, device=device)
        if spec.teacher is not None:
            teacher, _ = load_teacher(spec.teacher, device)
        windows = open_split(data_cfg, model_config(record["model_config"]),
                             data_cfg.test_split)
        objective = objective_of(record)
        level = round(spec.noise_position * (objective.num_levels - 1))

        def perturb(target: torch.Tensor, eps: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
            idx = torch.full((target.shape[0],), level, dtype=torch.long, device=target.device)
            return objective.perturb(target, idx, eps)

        with progress(min(len(windows), spec.max_samples), "distill features") as bar:
            return distill_features(teacher, student,
                                    window_batches(windows, spec.max_samples, spec.batch_size),
                                    perturb, spec.seed, device, on_batch=bar.advance)

    return cached(cache_dir_for(spec.ckpt, cache_folder), provenance, build)

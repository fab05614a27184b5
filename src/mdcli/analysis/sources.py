"""Where features come from: a checkpoint (with its data) or a features file, checked, and
read once (:func:`open_source`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from mdcli.analysis.feature_files import FEATURE_SUFFIXES, FeatureFile, load_feature_file
from mdcli.analysis.layer_features import PRE_LOGITS
from mdcli.errors import InputError
from mdcli.storage.checkpoint import load_checkpoint
from mdcli.training.distill import DISTILL_KIND

DEFAULT_MAX_SAMPLES = 1000  # samples drawn from a dataset when no limit is given
FEATURES_KIND = "features"


@dataclass(frozen=True)
class SourceSpec:
    """Where features come from: a checkpoint (with its data) or a features file."""

    ckpt: Path | None = None
    features: Path | None = None
    teacher: Path | None = None
    config: str | None = None
    sets: tuple[str, ...] = ()
    data_path: Path | None = None
    max_samples: int | None = DEFAULT_MAX_SAMPLES  # None: every row
    test_cfg: Path | None = None  # a config whose data section gives the samples
    batch_size: int = 32
    seed: int = 0
    layer: str = PRE_LOGITS
    noise_position: float = 0.2

    @classmethod
    def from_options(cls, *, ckpt: Path | None, features: Path | None,
                     max_samples: int | None = None, **options: object) -> SourceSpec:
        """Check that exactly one of ``--ckpt``/``--features`` names an existing file (and the
        other files exist); ``max_samples`` None means every row of a features file and
        :data:`DEFAULT_MAX_SAMPLES` of a dataset."""
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
        if max_samples is None and features is None:
            max_samples = DEFAULT_MAX_SAMPLES
        return cls(ckpt=ckpt, features=features, max_samples=max_samples, **options)

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


@dataclass(frozen=True)
class Source:
    """A source read once: a features file's arrays, or a checkpoint's ``kind`` and record."""

    spec: SourceSpec
    kind: str  # FEATURES_KIND, or the checkpoint's kind tag
    file: FeatureFile | None = None
    record: dict | None = None

    @property
    def paired(self) -> bool:
        """Whether the source gives teacher/student pairs (else one labelled set)."""
        return self.file.paired if self.file is not None else self.kind == DISTILL_KIND


def open_source(spec: SourceSpec) -> Source:
    """Read ``spec``'s features file or checkpoint (once; later steps use what is read)."""
    if spec.features is not None:
        return Source(spec, FEATURES_KIND, file=load_feature_file(spec.features))
    record = load_checkpoint(spec.ckpt)  # type: ignore[arg-type]
    return Source(spec, str(record.get("kind", "unknown")), record=record)

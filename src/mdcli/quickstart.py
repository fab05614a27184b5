"""The main job on built-in defaults: synthetic cyclones -> teacher -> student -> tsne -> align.

The ``*_step`` functions build the chain's steps (tiny configs, a few minutes on a 2-core CPU);
each is the command a researcher would type, so its result folder is the usual one.
:func:`report` gathers what a newcomer looks at first from the finished steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mdcli.chain import Step, StepResult
from mdcli.config import resolve_config_path

DATA_CONFIG = "data/tc_tiny"
TEACHER_CONFIG = "train/tc_teacher_tiny"
STUDENT_CONFIG = "distill/tc_tiny"


def _common(seed: int, device: str) -> list[str]:
    return ["--seed", str(seed), "--device", device]


def data_step(work_dir: Path, seed: int) -> Step:
    """Generate the tiny synthetic cyclone file under ``work_dir/data``."""
    config = resolve_config_path(DATA_CONFIG)
    return Step("data", ["data", "synth-tc", "-c", str(config), "--seed", str(seed)],
                inputs=[config], output=(work_dir / "data" / "tc_tiny.h5").resolve())


def teacher_step(data: Path, seed: int, device: str) -> Step:
    """Train the ERA5 teacher on ``data``."""
    config = resolve_config_path(TEACHER_CONFIG)
    return Step("teacher", ["train", "-c", str(config), "--set", f"data.path={data}",
                            *_common(seed, device)],
                inputs=[config, data], resumable=True)


def student_step(data: Path, teacher: Path, seed: int, device: str) -> Step:
    """Distil ``teacher`` into the satellite-only student (with its undistilled baseline)."""
    config = resolve_config_path(STUDENT_CONFIG)
    return Step("student", ["distill", "-c", str(config), "--teacher", str(teacher),
                            "--set", f"data.path={data}", *_common(seed, device)],
                inputs=[config, data, teacher], resumable=True)


def tsne_step(student: Path, data: Path, seed: int, device: str) -> Step:
    """The four t-SNE figures of teacher vs student features."""
    return Step("tsne", ["tsne", "--ckpt", str(student), *_common(seed, device)],
                inputs=[student, data])


def align_step(student: Path, data: Path, seed: int, device: str) -> Step:
    """The alignment metrics and grade of the student's features."""
    return Step("align", ["align", "--ckpt", str(student), *_common(seed, device)],
                inputs=[student, data])


def last_checkpoint(result: StepResult) -> Path:
    return result.path / "checkpoints" / "last.pt"


def report(results: dict[str, StepResult]) -> dict[str, Any]:
    """Where the figures, the alignment grade and the held-out losses are, and their values."""
    student, tsne, align = results["student"], results["tsne"], results["align"]
    return {
        "steps": {name: {"path": str(r.path), "reused": r.reused} for name, r in results.items()},
        "dsm_loss": student.summary.get("eval", {}).get("dsm_loss", {}),
        "grade": align.summary.get("grade"),
        "figures": sorted(str(p) for p in tsne.path.glob("*.png")),
        "samples": str(student.path / "figures" / "samples.png"),
        "alignment": str(align.path / "alignment.json"),
    }
